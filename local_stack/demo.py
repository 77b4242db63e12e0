"""`make demo`: every scenario of SPEC §4 through the running local stack, checked against its expected verdict.

Posts each scenario's signed webhooks over HTTP, lets the diagnosis drain the queue, reads the
verdicts back through the read API, writes every email SES accepted under out/, and reports a
table. Any scenario whose verdict or emails differ from what it expects makes the run fail.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from account_doctor.addresses import mask_email
from local_stack.aws import SentEmail
from local_stack.scenarios import SCENARIOS, Scenario, expected_operator_alerts, load_simulator, webhooks
from local_stack.stack import RunningStack

Report = Callable[[str], None]


@dataclass
class Outcome:
    scenario: Scenario
    cause: str | None
    notifications: list[dict[str, Any]]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class DemoResult:
    outcomes: list[Outcome]
    emails: list[SentEmail]
    written: list[Path]
    problems: list[str]  # run-wide problems (queue not drained, operator alert count, …)

    @property
    def ok(self) -> bool:
        return not self.problems and all(outcome.ok for outcome in self.outcomes)


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def post_signed(stack: RunningStack, body: bytes, secret_key: str) -> tuple[int, bytes]:
    """POSTs a webhook to the local API signed the way Nylas signs it."""
    from account_doctor.webhook import sign

    signature = sign(body, stack.secret(secret_key))
    return post(stack.webhook_url, body, {"Content-Type": "application/json", "X-Nylas-Signature": signature})


def run_demo(
    stack: RunningStack,
    *,
    out_dir: Path,
    scenarios: Iterable[Scenario] = SCENARIOS,
    report: Report = print,
    drain_timeout: float = 40,
) -> DemoResult:
    scenarios = list(scenarios)
    problems: list[str] = []
    load_simulator(stack.simulator, scenarios)
    already_sent = len(stack.outbox.snapshot())  # only this run's emails count
    report(f"Posting {len(scenarios)} scenarios' webhooks to {stack.webhook_url} …")
    for webhook in webhooks(scenarios):
        status, answer = post_signed(stack, webhook.body, webhook.signed_with)
        if status != 200:
            problems.append(f"webhook for {', '.join(webhook.accounts)} answered {status}: {answer[:200]!r}")
    report(f"Waiting for the diagnosis to drain the queue (grace period {stack.options.grace_seconds} s) …")
    if not stack.wait_until_drained(timeout=drain_timeout):
        problems.append(f"the queue did not drain within {drain_timeout:.0f} s (see the function log)")
    outcomes = [_outcome(stack, scenario) for scenario in scenarios]
    emails = stack.outbox.snapshot()[already_sent:]
    _check_emails(outcomes, emails, stack.resources.parameters["OperatorEmail"], problems, scenarios)
    written = write_emails(emails, outcomes, out_dir)
    return DemoResult(outcomes=outcomes, emails=emails, written=written, problems=problems)


def _outcome(stack: RunningStack, scenario: Scenario) -> Outcome:
    status, body = get_json(f"{stack.api_url}/accounts/{scenario.account_id}")
    if status != 200 or not body.get("latest_verdict"):
        return Outcome(scenario, None, [], [f"no verdict (GET /accounts/{scenario.account_id} answered {status})"])
    verdict = body["latest_verdict"]
    outcome = Outcome(scenario, verdict.get("cause"), list(verdict.get("notifications") or []))
    if outcome.cause != scenario.expected_cause:
        outcome.problems.append(f"cause {outcome.cause}, expected {scenario.expected_cause}")
    customer_kinds = [n["kind"] for n in outcome.notifications if n.get("kind") != "operator_alert"]
    expected_kinds = [scenario.customer_email] if scenario.customer_email else []
    if customer_kinds != expected_kinds:
        outcome.problems.append(f"customer emails {customer_kinds or 'none'}, expected {expected_kinds or 'none'}")
    return outcome


def _check_emails(
    outcomes: list[Outcome], emails: list[SentEmail], operator: str, problems: list[str], scenarios: list[Scenario]
) -> None:
    for outcome in outcomes:
        received = [e for e in emails if outcome.scenario.email in e.recipients]
        expected = 1 if outcome.scenario.customer_email else 0
        # A revised member's reconnect email came before the one its revision sent (checked on the verdict).
        allowed = {expected, expected + 1} if outcome.scenario.may_be_revised else {expected}
        if len(received) not in allowed:
            outcome.problems.append(f"{len(received)} emails reached the customer, expected {expected}")
    alerts = [e for e in emails if operator in e.recipients]
    if len(alerts) != expected_operator_alerts(scenarios):
        problems.append(f"{len(alerts)} operator alerts sent, expected {expected_operator_alerts(scenarios)}")
    for sent in emails:
        if not sent.text.strip() or not sent.html.strip():
            problems.append(f"email {sent.subject!r} lacks a text or an HTML part")


def write_emails(emails: list[SentEmail], outcomes: list[Outcome], out_dir: Path) -> list[Path]:
    """out/<account>-<kind>.html and .txt for every email SES accepted, named after the verdict that sent it."""
    by_message_id = {
        n.get("message_id"): (o.scenario.account_id, str(n.get("kind")))
        for o in outcomes
        for n in o.notifications
        if n.get("message_id")
    }
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    written: list[Path] = []
    for index, sent in enumerate(emails, start=1):
        account, kind = by_message_id.get(sent.message_id, (f"email-{index}", "unmatched"))
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{account}-{kind}")
        for suffix, content in ((".html", sent.html), (".txt", sent.text)):
            path = out_dir / f"{stem}{suffix}"
            path.write_text(content, encoding="utf-8")
            written.append(path)
    return written


def verdict_table(outcomes: list[Outcome], operator: str) -> str:
    rows = [("", "account", "api", "provider", "cause", "emailed")]
    for outcome in outcomes:
        emailed = []
        for notification in outcome.notifications:
            who = "operator" if notification.get("to") == operator else mask_email(notification.get("to")) or "?"
            emailed.append(f"{notification.get('kind')} → {who}")
        rows.append(
            (
                "✓" if outcome.ok else "✗",
                outcome.scenario.account_id,
                outcome.scenario.api_version,
                outcome.scenario.provider,
                outcome.cause or "—",
                ", ".join(emailed) or "nobody",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
