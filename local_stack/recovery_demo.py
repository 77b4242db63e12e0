"""The demo's third act (SPEC §4c, §5, §6): a mailbox back, not only a verdict.

A broken account reconnects (its `AccountRecovered` event printed), another is replaced by a new grant
with the same address, a third is still broken when its first reminder comes due, and the recovery report
is printed at the end as `account-doctor report` shows it. The reminder run is the sweep's, asked as of
49 hours after the customer's email (the stack's clock is the wall clock: the run takes `now` as a value,
as the scheduled function gives it the time of its invocation); the diagnosis function then sends it.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from account_doctor.queue import ReminderQueue
from account_doctor.reminders import enqueue_due
from account_doctor.stores.dynamo import Table
from account_doctor.stores.episodes import EpisodeRecords
from account_doctor_cli.commands import write_report
from local_stack.bus import captured_events
from local_stack.demo import get_json, post_signed
from local_stack.incident_demo import Act, _play
from local_stack.payloads import json_body, v3_notification
from local_stack.scenarios import Scenario, v3_recovery
from local_stack.stack import RunningStack

Report = Callable[[str], None]


def _broken(account_id: str, provider: str, email: str, cause: str, hours_ago: float) -> Scenario:
    return Scenario(
        account_id,
        "v3",
        provider,
        email,
        "grant.expired",
        cause,
        "recovery act",
        customer_email="reconnect",
        authenticated_days_ago=40,
        failed_days_ago=hours_ago / 24,
    )


RECONNECTS = _broken("grant-rosa", "google", "rosa@umbrella.example", "oauth_revoked", hours_ago=3)
REPLACED = _broken("grant-ravi-old", "microsoft", "Ravi@Wayne.example", "oauth_revoked", hours_ago=5)
NEW_GRANT = "grant-ravi-new"
REMINDED = _broken("grant-lena", "google", "lena@stark.example", "oauth_revoked", hours_ago=1)
# When the reminder run is asked to look: after the first entry of ReminderHours (48 h) has come due.
REMINDER_RUN_AFTER = timedelta(hours=49)


def run_recovery_act(stack: RunningStack, report: Report) -> Act:
    act = Act()
    captured_events(stack)  # only this act's events from here on
    report("Recovery: three accounts break; one reconnects, one reconnects as a new grant, one does nothing …")
    _play(stack, [[RECONNECTS, REPLACED, REMINDED]], act, report)

    stack.simulator.grants[RECONNECTS.account_id].grant_status = "valid"
    post_signed(stack, json_body(v3_recovery(RECONNECTS, occurred=time.time())), "webhook_secret")
    created = v3_notification(
        "grant.created",
        grant_id=NEW_GRANT,
        provider=REPLACED.provider,
        email="ravi@wayne.example",
        occurred=time.time(),
    )
    post_signed(stack, json_body(created), "webhook_secret")
    if not stack.wait_until_drained(timeout=40):
        act.problems.append("the queue did not drain after the recoveries")

    report("The sweep's reminder run, as it runs 49 hours after the customers were emailed …")
    episodes = EpisodeRecords(Table(stack.resources.physical["EventsTable"]))
    run = enqueue_due(episodes, ReminderQueue(stack.queue_url).send, datetime.now(UTC) + REMINDER_RUN_AFTER)
    if not stack.wait_until_drained(timeout=40):
        act.problems.append("the queue did not drain after the reminder run")

    recovered = [e["detail"] for e in captured_events(stack) if e.get("detail-type") == "AccountRecovered"]
    for detail in recovered:
        act.lines.append(f"  AccountRecovered {json.dumps(_shown(detail), separators=(', ', ': '))}")
    ways = {str(d["account_id"]): (d["recovered_by"], d.get("replaced_by")) for d in recovered}
    if ways.get(RECONNECTS.account_id) != ("reauthentication", None):
        act.problems.append(f"{RECONNECTS.account_id} was not announced as re-authenticated: {ways}")
    if ways.get(REPLACED.account_id) != ("replaced", NEW_GRANT):
        act.problems.append(f"{REPLACED.account_id} was not announced as replaced by {NEW_GRANT}: {ways}")
    if REMINDED.account_id in ways:
        act.problems.append(f"{REMINDED.account_id} never recovered, yet was announced")

    reminders = [e for e in stack.outbox.to(REMINDED.email) if "still disconnected" in e.subject]
    act.lines.append(
        f"  reminder run: {run.due} due, {run.enqueued} enqueued, {run.items_read} items read; "
        f"{REMINDED.account_id} got {len(reminders)} reminder(s)" + (f": {reminders[0].subject!r}" if reminders else "")
    )
    if len(reminders) != 1:
        act.problems.append(f"{REMINDED.account_id} got {len(reminders)} reminders, expected 1")
    for scenario in (RECONNECTS, REPLACED):
        if any("still disconnected" in e.subject for e in stack.outbox.to(scenario.email)):
            act.problems.append(f"{scenario.account_id} was reminded after it recovered")

    status, answer = get_json(f"{stack.api_url}/reports/recovery?days=7")
    if status != 200:
        act.problems.append(f"GET /reports/recovery answered {status}")
        return act
    printed = io.StringIO()
    write_report(answer, printed)
    act.lines.append("  $ account-doctor report --days 7")
    act.lines.extend(f"  {line}" for line in printed.getvalue().rstrip().splitlines())
    return act


def _shown(detail: dict[str, Any]) -> dict[str, Any]:
    """The fields an app's backend acts on, in the event's own words (the address is the customer's)."""
    keys = ("account_id", "recovered_by", "replaced_by", "cause", "time_to_recover_seconds", "emails_sent", "data_gap")
    return {key: detail.get(key) for key in keys}
