"""The sweep on the local stack: SweepFunction invoked in-process, as its EventBridge schedule would (SPEC §3b).

`make demo` calls `run_sweep` after the webhook scenarios: every broken grant or account the simulator
holds whose failure is not in the history yet (MISSED_WEBHOOK in local_stack/scenarios.py) is enqueued,
and the running queue pollers diagnose it like any webhook's failure. `run_feed_act` then shows a failing
webhook destination noticed (SPEC §3d).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from account_doctor.models import from_epoch
from local_stack.payloads import ACCOUNT, REGION, SAMPLE_TIME

if TYPE_CHECKING:
    from local_stack.stack import RunningStack

SWEEP_FUNCTION = "SweepFunction"
SAMPLE_EVENT_ID = "5e0c2b7a-3f4d-4b8e-9c1a-6d7e8f901234"


def scheduled_event(*, at: float = SAMPLE_TIME, event_id: str = SAMPLE_EVENT_ID) -> dict[str, Any]:
    """The event an EventBridge schedule rule delivers to its Lambda target (events/sweep-scheduled.json)."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": from_epoch(at),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/account-doctor-SweepSchedule"],
        "detail": {},
    }


def run_sweep(stack: RunningStack) -> dict[str, Any]:
    """One sweep run against the running stack; its summary: listed, already_known, enqueued, too_old_to_notify, …"""
    summary: dict[str, Any] = stack.functions[SWEEP_FUNCTION].invoke(
        scheduled_event(at=time.time(), event_id=str(uuid.uuid4()))
    )
    return summary


def run_feed_act(stack: RunningStack, report: Callable[[str], None]) -> tuple[list[str], list[str]]:
    """The webhook feed dying silently, noticed (SPEC §3d): the simulator's destination turns `failing`, the next
    sweep run alerts the operator once and GET /health shows it; re-enabled, the run after says so. (lines,
    problems)"""
    from local_stack.demo import get_json
    from local_stack.simulator import DEFAULT_WEBHOOK_ID

    lines: list[str] = []
    problems: list[str] = []
    operator = stack.resources.parameters["OperatorEmail"]
    report("The webhook feed: Nylas marks the destination failing; the sweep notices …")
    before = len(stack.outbox.to(operator))
    stack.simulator.add_webhook(DEFAULT_WEBHOOK_ID, status="failing")
    run_sweep(stack)
    run_sweep(stack)  # still failing: no second alert
    alerts = [sent.subject for sent in stack.outbox.to(operator)[before:]]
    lines.append(f"  feed failing, two sweep runs: {len(alerts)} operator alert: {alerts[0] if alerts else 'none'}")
    if len(alerts) != 1 or "not delivering failures" not in alerts[0]:
        problems.append(f"a failing webhook destination gave {alerts or 'no alert'}, expected one alert")
    status, health = get_json(f"{stack.api_url}/health")
    feed = health.get("webhook_feed", {}) if status == 200 else {}
    counted = ", ".join(
        f"{c['connector']} {c['connected']} connected / {c['broken']} broken"
        for c in health.get("connectors", [])
        if c.get("connected") is not None
    )
    lines.append(f"  GET /health: webhook_feed {feed.get('status')}; census: {counted or 'none'}")
    if feed.get("status") != "unhealthy":
        problems.append(f"GET /health answered {status} with webhook_feed {feed.get('status')}, expected unhealthy")
    stack.simulator.add_webhook(DEFAULT_WEBHOOK_ID, status="active")
    run_sweep(stack)
    healthy = [sent.subject for sent in stack.outbox.to(operator)[before + len(alerts) :]]
    lines.append(f"  re-enabled: {healthy[0] if healthy else 'no alert'}")
    if len(healthy) != 1 or "healthy again" not in healthy[0]:
        problems.append(f"the re-enabled feed gave {healthy or 'no alert'}, expected one 'healthy again' alert")
    return lines, problems


def run_at_risk_act(stack: RunningStack, report: Callable[[str], None]) -> tuple[list[str], list[str]]:
    """Testing mode before it bites (SPEC §3d): two customers connect Google accounts while the demo's
    testing_mode incident is open; GET /incidents/{id} lists them at risk, soonest first. (lines, problems)"""
    from local_stack.demo import get_json, post_signed
    from local_stack.payloads import json_body, v3_notification
    from local_stack.simulator import Grant

    lines: list[str] = []
    problems: list[str] = []
    report("Testing mode before it bites: new Google grants while the testing_mode incident is open …")
    status, listed = get_json(f"{stack.api_url}/incidents?status=open")
    testing = [i for i in (listed.get("incidents") or []) if i.get("kind") == "testing_mode"] if status == 200 else []
    if not testing:
        return lines, [f"no open testing_mode incident to show (GET /incidents answered {status})"]
    now = time.time()
    for n, hours_ago in enumerate((30, 2)):
        grant = Grant(f"grant-gmail-new-{n}", f"new.user{n}@gmail.com", "google", "valid", int(now - hours_ago * 3600))
        stack.simulator.add_grant(grant)
        created = v3_notification(
            "grant.created", grant_id=grant.grant_id, provider="google", email=grant.email, occurred=grant.created_at
        )
        answered, _ = post_signed(stack, json_body(created), "webhook_secret")
        if answered != 200:
            problems.append(f"the grant.created webhook of {grant.grant_id} answered {answered}")
    stack.wait_until_drained(timeout=40)
    incident_id = testing[0]["incident_id"]
    status, incident = get_json(f"{stack.api_url}/incidents/{incident_id}")
    at_risk = (incident.get("at_risk_accounts") or []) if status == 200 else []
    lines.append(f"  {incident_id}: at_risk {incident.get('at_risk') if status == 200 else status}")
    lines.extend(f"    {grant['account_id']} expires {grant['expires_at']}" for grant in at_risk)
    if [grant["account_id"] for grant in at_risk] != ["grant-gmail-new-0", "grant-gmail-new-1"]:
        problems.append(f"the testing_mode incident lists {at_risk} at risk, expected the two new grants")
    return lines, problems
