"""The operator CLI's errors say what to do: no stack, unknown config environment, no local stack file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from moto import mock_aws

from account_doctor import cli


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv, out=io.StringIO())
    return code, capsys.readouterr().err


def test_missing_stack_names_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws():
        code, err = run(["--stack-name", "nope", "--region", "eu-west-1", "verdicts", "grant-1"], capsys)
    assert code == 2
    assert "Stack nope" in err
    assert "eu-west-1" in err
    assert "sam deploy" in err


def test_unknown_config_env(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["--config-env", "staging", "redrive"], capsys)
    assert code == 2
    assert "no [staging] environment" in err
    assert "default, prod" in err


def test_env_file_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["--env-file", str(tmp_path / "missing.env"), "verdicts", "grant-1"], capsys)
    assert code == 2
    assert "make serve" in err
