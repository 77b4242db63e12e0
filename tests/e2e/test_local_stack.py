"""The local stack end to end, over real HTTP: every scenario's verdict and emails, and the operator CLI against it.

The stack is started once for the module and the demo's own code runs against it (`run_demo`,
what `make demo` runs); test_make_demo.py runs the `make demo` command itself.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from account_doctor_cli import main as cli
from account_doctor_cli.stack import DLQ_ENV
from local_stack.demo import DemoResult, get_json, post, post_signed, run_demo
from local_stack.payloads import v3_notification
from local_stack.scenarios import SCENARIOS, Scenario
from local_stack.simulator import Grant
from local_stack.stack import RunningStack, StackOptions, running_stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = "operators@example.com"  # template.yaml's OperatorEmail default


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningStack, DemoResult]]:
    with running_stack(StackOptions(api_port=0)) as stack:
        result = run_demo(stack, out_dir=tmp_path_factory.mktemp("emails"), report=lambda _line: None)
        yield stack, result


@pytest.fixture
def stack(demo: tuple[RunningStack, DemoResult], monkeypatch: pytest.MonkeyPatch) -> RunningStack:
    """The running stack, with its environment in force for this test (the shared autouse fixture resets it)."""
    running, _ = demo
    for name, value in running.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", running.moto.url)
    monkeypatch.setenv(DLQ_ENV, running.dlq_url)
    return running


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), out=out)
    return code, out.getvalue()


# ---------------------------------------------------------------------------------------------
# Every scenario, as `make demo` runs it


def test_every_scenario_gets_its_expected_cause(demo: tuple[RunningStack, DemoResult]) -> None:
    _, result = demo
    causes = {outcome.scenario.account_id: outcome.cause for outcome in result.outcomes}
    assert causes == {scenario.account_id: scenario.expected_cause for scenario in SCENARIOS}
    assert not result.problems
    assert all(outcome.ok for outcome in result.outcomes), [o.problems for o in result.outcomes if o.problems]


def test_each_cause_of_the_procedure_is_demonstrated() -> None:
    from account_doctor.models import CAUSES, Policy
    from local_stack.incident_demo import OUTAGE_WAVES

    # One scenario per cause of the single-account table; rule 1b needs many accounts failing together, which
    # the demo's second act plays (`make demo` fails without its connector incident: test_make_demo.py).
    assert {scenario.expected_cause for scenario in SCENARIOS} == set(CAUSES) - {"connector_outage"}
    outage = [member for wave in OUTAGE_WAVES for member in wave]
    assert len({m.provider for m in outage}) == 1
    assert len({m.account_id for m in outage}) >= Policy().connector_outage_threshold
    assert len({m.email.rsplit("@", 1)[1] for m in outage}) >= 3


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: f"{s.account_id}-{s.expected_cause}")
def test_who_is_emailed(demo: tuple[RunningStack, DemoResult], scenario: Scenario) -> None:
    """The customer gets exactly the email their cause calls for, read back from SES."""
    stack, _ = demo
    received = stack.outbox.to(scenario.email)
    if scenario.customer_email is None:
        assert received == []
    else:
        # A cluster member diagnosed before its neighbours counted themselves was asked to reconnect first.
        assert len(received) == 1 or (scenario.may_be_revised and len(received) == 2)
        assert all(r.sender.endswith("<account-doctor@example.com>") for r in received)  # SenderEmail, AppName
        assert received[-1].text.strip()
        assert received[-1].html.strip()
        status, account = get_json(f"{stack.api_url}/accounts/{scenario.account_id}")
        assert status == 200
        kinds = {n["kind"]: n["message_id"] for n in account["latest_verdict"]["notifications"]}
        assert kinds[scenario.customer_email] == received[-1].message_id


def test_operator_alerts_once_per_incident(demo: tuple[RunningStack, DemoResult]) -> None:
    stack, _ = demo
    alerts = stack.outbox.to(OPERATOR)
    assert len(alerts) == len({s.operator_alert for s in SCENARIOS if s.operator_alert})
    # Three acme.example failures, one incident: one alert naming the domain.
    assert sum("acme.example" in alert.text for alert in alerts) == 1


def test_free_mail_accounts_failing_together_do_not_cluster(demo: tuple[RunningStack, DemoResult]) -> None:
    _, result = demo
    gmail = [o for o in result.outcomes if o.scenario.email.endswith("@gmail.com") and o.scenario.api_version == "v3"]
    failing_together = [o for o in gmail if o.scenario.failed_days_ago == 0 and o.cause != "recovered"]
    assert len(failing_together) >= 3
    assert {o.cause for o in failing_together}.isdisjoint({"admin_disconnected", "admin_session_policy"})


def test_emails_are_written_as_html_and_text(demo: tuple[RunningStack, DemoResult]) -> None:
    _, result = demo
    assert len(result.written) == 2 * len(result.emails)
    suffixes = sorted(path.suffix for path in result.written)
    assert suffixes.count(".html") == suffixes.count(".txt") == len(result.emails)
    acme_alert = next(p for p in result.written if p.name.startswith("grant-acme") and "operator_alert" in p.name)
    assert "acme.example" in acme_alert.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# The webhook over HTTP


def test_challenge_over_http(stack: RunningStack) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{stack.webhook_url}?challenge=abc123", timeout=5) as response:  # noqa: S310
        assert response.status == 200
        assert response.read() == b"abc123"
        assert response.headers["Content-Type"].startswith("text/plain")


def test_unsigned_webhook_is_refused_and_enqueues_nothing(stack: RunningStack) -> None:
    body = json.dumps(
        v3_notification("grant.expired", grant_id="grant-unsigned", provider="google", email="u@x.example", occurred=0)
    ).encode()
    status, _ = post(stack.webhook_url, body, {"Content-Type": "application/json", "X-Nylas-Signature": "0" * 64})
    assert status == 401
    assert stack.wait_until_drained(timeout=10)
    status, _ = get_json(f"{stack.api_url}/accounts/grant-unsigned")
    assert status == 404


# ---------------------------------------------------------------------------------------------
# The operator CLI against the stack


def test_cli_diagnose_is_a_dry_run_that_prints_the_steps(stack: RunningStack) -> None:
    sent_before = len(stack.outbox.snapshot())
    _, before = get_json(f"{stack.api_url}/accounts/grant-acme-1")
    code, output = run_cli("diagnose", "grant-acme-1")
    assert code == 0
    assert "1. [" in output
    assert "Verdict: admin_disconnected" in output
    assert "Dry run: nothing was recorded and no email was sent." in output
    _, after = get_json(f"{stack.api_url}/accounts/grant-acme-1")
    assert len(after["verdicts"]) == len(before["verdicts"])
    assert len(stack.outbox.snapshot()) == sent_before


def test_cli_diagnose_v2_account(stack: RunningStack) -> None:
    code, output = run_cli("diagnose", "--v2", "acct-v2-cancelled")
    assert code == 0
    assert "Verdict: app_revoked" in output


def test_cli_verdicts_and_domain(stack: RunningStack) -> None:
    code, output = run_cli("verdicts", "grant-yahoo")
    assert code == 0
    assert "Account grant-yahoo: broken" in output
    assert "password_changed" in output
    assert "reconnect to i***@yahoo.com" in output
    code, output = run_cli("domain", "acme.example")
    assert code == 0
    assert "admin_disconnected" in output
    assert "grant-acme-3" in output


def test_cli_unknown_account_says_so(stack: RunningStack, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli("verdicts", "grant-never-seen")
    assert code == 2
    assert "No events or verdicts for account grant-never-seen" in capsys.readouterr().err


def test_python_m_account_doctor_cli_entry_point(stack: RunningStack) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'shared'}{os.pathsep}{ROOT}"}
    completed = subprocess.run(
        [sys.executable, "-m", "account_doctor_cli", "verdicts", "grant-ms-90d", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["latest_verdict"]["cause"] == "microsoft_token_expired"


def test_poison_message_reaches_the_dlq_and_redrive_brings_it_back(stack: RunningStack) -> None:
    """Nylas keeps rejecting one grant: after maxReceiveCount receives the queue's redrive policy
    moves it to the DLQ; once fixed, `redrive` puts it back and it is diagnosed."""
    now = time.time()
    stack.simulator.add_grant(
        Grant("grant-poison", "pat.poison@gmail.com", "google", "invalid", int(now - 60 * 86400), int(now - 40 * 86400))
    )
    stack.simulator.inject_fault("grant-poison", 401, times=10_000)
    for poller in stack.pollers:
        poller.visibility_timeout = 1
    try:
        body = json.dumps(
            v3_notification(
                "grant.expired",
                grant_id="grant-poison",
                provider="google",
                email="pat.poison@gmail.com",
                occurred=now,
                grant_updated_at=int(now - 40 * 86400),
            )
        ).encode()
        assert post_signed(stack, body, "webhook_secret")[0] == 200
        sqs = boto3.client("sqs")
        assert _wait_for(lambda: _visible(sqs, stack.dlq_url) == 1, timeout=60), "the message never reached the DLQ"
        assert stack.wait_until_drained(timeout=10)
        status, _ = get_json(f"{stack.api_url}/accounts/grant-poison")
        assert status == 404 or _.get("latest_verdict") is None

        stack.simulator.faults.pop("grant-poison")
        code, output = run_cli("redrive")
        assert code == 0
        assert "Redrove 1 message from the dead-letter queue" in output
        assert _visible(sqs, stack.dlq_url) == 0
        assert stack.wait_until_drained(timeout=30)
        status, account = get_json(f"{stack.api_url}/accounts/grant-poison")
        assert status == 200
        assert account["latest_verdict"]["cause"] == "oauth_revoked"
        assert len(stack.outbox.to("pat.poison@gmail.com")) == 1
    finally:
        for poller in stack.pollers:
            poller.visibility_timeout = stack.options.visibility_timeout


def _visible(sqs: object, url: str) -> int:
    attributes = sqs.get_queue_attributes(  # type: ignore[attr-defined]
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def _wait_for(condition: object, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.25)
    return False


def test_env_local_json_points_sam_local_at_make_serve(stack: RunningStack) -> None:
    """events/env.local.json is `make serve`'s environment for every function: nothing missing, nothing stale."""
    from local_stack.__main__ import SERVE_AWS_PORT, SERVE_NYLAS_PORT, sam_env_vars

    expected = json.loads(
        json.dumps(sam_env_vars(stack))
        .replace(stack.moto.url, f"http://127.0.0.1:{SERVE_AWS_PORT}")
        .replace(stack.simulator.url, f"http://127.0.0.1:{SERVE_NYLAS_PORT}")
    )
    committed = json.loads((ROOT / "events" / "env.local.json").read_text(encoding="utf-8"))
    assert committed == expected


def test_the_demo_fails_when_a_verdict_differs(stack: RunningStack, tmp_path: Path) -> None:
    """`make demo` is a check: a scenario whose verdict is not the expected one fails the run."""
    yahoo = next(s for s in SCENARIOS if s.account_id == "grant-yahoo")
    wrong = dataclasses.replace(
        yahoo, account_id="grant-yahoo-again", email="ivan.again@yahoo.com", expected_cause="oauth_revoked"
    )
    result = run_demo(stack, out_dir=tmp_path, scenarios=[wrong], report=lambda _line: None)
    assert not result.ok
    assert result.outcomes[0].cause == "password_changed"
    assert "cause password_changed, expected oauth_revoked" in result.outcomes[0].problems
