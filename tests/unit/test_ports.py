"""Interfaces import no implementation: importing them, or the pure code over them, loads no adapter."""

from __future__ import annotations

import subprocess
import sys

import pytest

# What the adapters bring: the AWS SDK's resource layer, the template engine, the stores and the mailer.
IMPLEMENTATIONS = ("boto3", "jinja2", "account_doctor.stores", "account_doctor.notifications")


@pytest.mark.parametrize("module", ["account_doctor.ports", "account_doctor.evidence", "account_doctor.incidents"])
def test_importing_an_interface_or_the_pure_core_loads_no_implementation(module: str) -> None:
    code = f"import sys, {module}; print(' '.join(n for n in sys.modules if n.startswith({IMPLEMENTATIONS!r})))"
    run = [sys.executable, "-c", code]
    loaded = subprocess.run(run, capture_output=True, text=True, check=True, cwd="layers/shared")  # noqa: S603
    assert loaded.stdout.split() == []
