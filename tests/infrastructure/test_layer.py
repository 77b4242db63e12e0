"""The Lambda layer ships only what the functions import: the operator CLI and the dev tooling stay out of it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from local_stack.template import load_template

ROOT = Path(__file__).resolve().parents[2]
# What `sam build` packages as the layer: the template's own ContentUri, so this check follows it if it moves.
LAYER_SOURCE = ROOT / load_template()["Resources"]["SharedLayer"]["Properties"]["ContentUri"]
BUILT_LAYER = ROOT / ".aws-sam" / "build" / "SharedLayer"
# Packages the functions never import: the CLI (an operator's machine) and the local stack (a developer's).
OUTSIDE_THE_LAYER = ("account_doctor_cli", "local_stack")
CLI_MODULES = ("account_doctor_cli", "account_doctor/cli.py", "account_doctor/__main__.py")


def _present(root: Path) -> list[str]:
    return [
        str(path.relative_to(root))
        for name in CLI_MODULES
        for path in root.rglob(Path(name).name)
        if path.relative_to(root).as_posix().endswith(name)
    ]


def _imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_layer_source_holds_no_cli_module() -> None:
    assert (LAYER_SOURCE / "account_doctor" / "__init__.py").is_file(), f"{LAYER_SOURCE} is not the layer's source"
    assert _present(LAYER_SOURCE) == []


def test_no_module_of_the_layer_imports_the_cli_or_the_local_stack() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported(path) & set(OUTSIDE_THE_LAYER))
        for path in LAYER_SOURCE.rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_cli_is_installed_from_its_own_package() -> None:
    """`account-doctor` and `python -m account_doctor_cli` both reach the CLI outside the layer."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["account-doctor"] == "account_doctor_cli.main:main"
    assert (ROOT / "account_doctor_cli" / "__main__.py").is_file()
    assert not (ROOT / "account_doctor_cli").is_relative_to(LAYER_SOURCE)


@pytest.mark.skipif(not BUILT_LAYER.is_dir(), reason="no `sam build` output (make sam-build)")
def test_the_built_layer_holds_no_cli_module() -> None:
    assert any(BUILT_LAYER.rglob("account_doctor/__init__.py")), f"{BUILT_LAYER} holds no account_doctor package"
    assert _present(BUILT_LAYER) == []
