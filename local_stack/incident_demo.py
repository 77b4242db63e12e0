"""The demo's second act (SPEC §8): incidents arriving over minutes, a connector outage and its release,
a missed webhook found by the sweep, and the EventBridge events the run produced.

Each wave of webhooks is posted and drained before the next, as Nylas's health checks spread an incident
over minutes: the early members are diagnosed alone, and revised when the incident opens.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from local_stack.demo import get_json, post_signed
from local_stack.scenarios import MISSED_WEBHOOK, Scenario, load_simulator, webhooks
from local_stack.stack import RunningStack

Report = Callable[[str], None]


@dataclass
class Act:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _member(account_id: str, email: str, provider: str, minutes_ago: float, *, days_ago: float) -> Scenario:
    """An incident member; each incident is played at its own hour of the past days (webhooks delayed but
    well within WebhookMaxAgeHours), so the first act's failures are not in its burst window."""
    return Scenario(
        account_id,
        "v3",
        provider,
        email,
        "grant.expired",
        "oauth_revoked",
        "incident member",
        customer_email="reconnect",
        authenticated_days_ago=40,
        failed_days_ago=days_ago + minutes_ago / 1440,
    )


DOMAIN_WAVES = [
    [_member("grant-initech-1", "peter@initech.com", "google", 9, days_ago=2)],
    [_member("grant-initech-2", "samir@initech.com", "google", 5, days_ago=2)],
    [_member("grant-initech-3", "michael@initech.com", "google", 1, days_ago=2)],
]
OUTAGE_WAVES = [
    [_member(f"grant-ms-{n}", f"it{n}@tenant{n}.example", "microsoft", 8 - n * 0.5, days_ago=1) for n in range(9)],
    [_member(f"grant-ms-{n}", f"it{n}@tenant{n}.example", "microsoft", 2, days_ago=1) for n in range(9, 12)],
]


def _play(stack: RunningStack, waves: list[list[Scenario]], act: Act, report: Report) -> None:
    for wave in waves:
        load_simulator(stack.simulator, wave)
        for webhook in webhooks(wave):
            status, answer = post_signed(stack, webhook.body, webhook.signed_with)
            if status != 200:
                act.problems.append(f"webhook for {', '.join(webhook.accounts)} answered {status}: {answer[:120]!r}")
        if not stack.wait_until_drained(timeout=40):
            act.problems.append("the queue did not drain within 40 s")


def _history(stack: RunningStack, account_id: str) -> list[dict[str, object]]:
    status, body = get_json(f"{stack.api_url}/accounts/{account_id}")
    return list(body.get("verdicts", [])) if status == 200 else []


def _post(url: str) -> tuple[int, object]:
    request = urllib.request.Request(url, data=b"", method="POST")  # noqa: S310 - the local stack's own URL
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        import json

        return response.status, json.loads(response.read() or b"{}")


def seed_incidents(stack: RunningStack, report: Report) -> Act:
    """The second act's two incidents, left open: initech.com's domain incident and the Microsoft connector outage
    with its customer emails still held (for `make serve` and the console's browser tests to release)."""
    act = Act()
    report("Seeding the incidents: three initech.com mailboxes, then 12 Microsoft tenants (emails held) …")
    _play(stack, DOMAIN_WAVES, act, report)
    _play(stack, OUTAGE_WAVES, act, report)
    return act


def run_incidents(stack: RunningStack, report: Report) -> Act:
    act = Act()
    operator = stack.resources.parameters["OperatorEmail"]
    alerts_before = len(stack.outbox.to(operator))

    report("Incident 1: three initech.com mailboxes fail minutes apart (the administrator disconnected the app) …")
    _play(stack, DOMAIN_WAVES, act, report)
    for scenario in (s for wave in DOMAIN_WAVES for s in wave):
        verdicts = _history(stack, scenario.account_id)
        chain = " → ".join(f"{v['cause']}{' (revised)' if v.get('revises') else ''}" for v in reversed(verdicts))
        emails = [e for e in stack.outbox.snapshot() if scenario.email in e.recipients]
        act.lines.append(
            f"  {scenario.account_id:<18} {chain:<50} emails: {', '.join(_kind(e.subject) for e in emails) or 'none'}"
        )
        if not verdicts or verdicts[0]["cause"] != "admin_disconnected":
            act.problems.append(f"{scenario.account_id}: latest verdict is not admin_disconnected")

    report("Incident 2: the app's Microsoft connector breaks: 12 tenants fail within minutes …")
    _play(stack, OUTAGE_WAVES, act, report)
    status, listing = get_json(f"{stack.api_url}/incidents?status=open")
    outage = (
        next((i for i in listing.get("incidents", []) if i.get("kind") == "connector"), None) if status == 200 else None
    )
    if outage is None:
        act.problems.append("no open connector incident after the Microsoft outage")
        return act
    act.lines.append(
        f"  incident {outage['incident_id']}: {outage['accounts']} accounts, {outage['domains']} domains, "
        f"{outage['held_emails']} customer emails held"
    )
    report(f"Releasing {outage['incident_id']} (POST /incidents/…/release) once the connector is fixed …")
    code, _ = _post(f"{stack.api_url}/incidents/{outage['incident_id']}/release")
    if code != 200:
        act.problems.append(f"release answered {code}")
    stack.wait_until_drained(timeout=40)
    for scenario in (s for wave in OUTAGE_WAVES for s in wave):
        emails = [e for e in stack.outbox.snapshot() if scenario.email in e.recipients]
        if len(emails) not in (1, 2):
            act.problems.append(
                f"{scenario.account_id}: {len(emails)} emails, expected a reconnect (and an outage notice)"
            )
    alerts = len(stack.outbox.to(operator)) - alerts_before
    act.lines.append(f"  operator alerts for both incidents: {alerts}")
    if alerts != 2:
        act.problems.append(f"{alerts} operator alerts for two incidents, expected 2")
    return act


def _kind(subject: str) -> str:
    lowered = subject.lower()
    if "administrator" in lowered:
        return "admin-contact"
    if "our side" in lowered or "no action" in lowered or "outage" in lowered:
        return "outage notice"
    return "reconnect"


def run_sweep_act(stack: RunningStack, report: Report) -> Act:
    from local_stack.sweep_demo import run_at_risk_act, run_feed_act, run_sweep

    act = Act()
    report("A grant whose webhook never came: the reconciliation sweep looks …")
    load_simulator(stack.simulator, [MISSED_WEBHOOK])
    summary = run_sweep(stack)
    stack.wait_until_drained(timeout=40)
    verdicts = _history(stack, MISSED_WEBHOOK.account_id)
    cause = verdicts[0]["cause"] if verdicts else None
    act.lines.append(f"  sweep: {summary}")
    act.lines.append(f"  {MISSED_WEBHOOK.account_id}: {cause or 'no verdict'}")
    if cause != MISSED_WEBHOOK.expected_cause:
        act.problems.append(f"the missed webhook's grant got {cause}, expected {MISSED_WEBHOOK.expected_cause}")
    for shown in (run_feed_act, run_at_risk_act):
        lines, problems = shown(stack, report)
        act.lines.extend(lines)
        act.problems.extend(problems)
    return act


def run_events_act(stack: RunningStack) -> Act:
    from local_stack.bus import captured_events, events_table

    act = Act()
    events = captured_events(stack)
    act.lines.append(events_table(events))
    kinds = {str(e.get("detail-type")) for e in events}
    for wanted in ("Verdict", "IncidentOpened"):
        if wanted not in kinds:
            act.problems.append(f"no {wanted} event reached the bus")
    return act


def run_second_act(stack: RunningStack, report: Report) -> Act:
    whole = Act()
    started = time.monotonic()
    from local_stack.recovery_demo import run_recovery_act

    for act in (
        run_incidents(stack, report),
        run_sweep_act(stack, report),
        run_events_act(stack),
        run_recovery_act(stack, report),
    ):
        whole.lines.extend(act.lines)
        whole.problems.extend(act.problems)
    whole.lines.append(f"  (incidents, sweep, events and recovery in {time.monotonic() - started:.1f} s)")
    return whole
