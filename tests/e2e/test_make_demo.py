"""`make demo`'s command, in-process: it must pass, print every scenario, and write the emails.

A module of its own: one local stack per process at a time (moto's backends are process-wide),
and test_local_stack.py's stack lives as long as its module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from local_stack.__main__ import main
from local_stack.scenarios import SCENARIOS

pytestmark = pytest.mark.e2e


def test_make_demo_passes_and_reports_every_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--port", "0", "--out", str(tmp_path / "demo")])
    output = capsys.readouterr().out
    assert code == 0, output
    assert f"{len(SCENARIOS)}/{len(SCENARIOS)} scenarios as expected" in output
    for scenario in SCENARIOS:
        line = next(line for line in output.splitlines() if f" {scenario.account_id} " in line)
        assert line.startswith("✓")
        assert scenario.expected_cause in line
    assert sorted(p.suffix for p in (tmp_path / "demo").iterdir()).count(".html") >= 1
    # The recovery act (SPEC §4c, §5, §6): what the app's backend and the operator see.
    assert '"account_id": "grant-rosa", "recovered_by": "reauthentication"' in output
    assert '"recovered_by": "replaced", "replaced_by": "grant-ravi-new"' in output
    assert "grant-lena got 1 reminder(s)" in output
    report = output[output.index("$ account-doctor report") :]
    assert "CAUSE" in report
    assert "Recovered by re-authentication" in report
    assert "✗" not in output
