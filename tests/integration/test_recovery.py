"""Recovery episodes on moto (SPEC §4c, §6): how a broken account comes back, what the app hears, what is counted.

The service runs with its real stores and notifier (Nylas from memory, SES recorded), as in test_incidents;
every assertion is about what the app's backend receives on the bus or what the report shows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest

from account_doctor.delivery import DeliveryRecorder
from account_doctor.episodes import Recovery
from account_doctor.events_out import PublishError
from account_doctor.models import AccountEvent, iso
from account_doctor.recovery_report import RecoveryReport
from account_doctor.reminders import DueReminder, ReminderRun, Reminders, enqueue_due
from account_doctor.stores.dynamo import Table, dynamodb_client
from account_doctor.stores.episodes import EpisodeRecords
from account_doctor.stores.events import EventHistory
from account_doctor.stores.incidents import IncidentKey
from account_doctor.stores.ledger import NotificationLedger
from local_stack.payloads import load_handler
from local_stack.template import default_parameters, load_template
from tests.fakes import FakeNylas
from tests.integration.test_events_out import errors
from tests.integration.test_incidents import START, Harness, _call
from tests.integration.test_sweep import _evaluate

pytestmark = pytest.mark.usefixtures("aws")


@dataclass
class Recovering:
    harness: Harness
    episodes: EpisodeRecords
    history: EventHistory
    nylas: FakeNylas

    @property
    def service(self):  # type: ignore[no-untyped-def]
        return self.harness.service

    def fail(self, account: str, email: str, *, hours: float = 0, provider: str = "google", n: int = 1) -> AccountEvent:
        event = AccountEvent(
            f"fail-{account}-{n}", "v3", "grant.expired", account, iso(START + timedelta(hours=hours)), provider, email
        )
        self.service.record(event)
        self.harness.diagnose(event)
        return event

    def back(
        self,
        account: str,
        *,
        hours: float,
        trigger: str = "grant.updated",
        email: str | None = None,
        provider: str = "google",
    ) -> AccountEvent:
        event = AccountEvent(
            f"back-{account}-{hours}", "v3", trigger, account, iso(START + timedelta(hours=hours)), provider, email
        )
        self.service.record(event)
        return event

    def recovered(self) -> list[dict[str, object]]:
        return self.harness.publisher.of_type("AccountRecovered")

    def report(self, days: int = 30) -> dict[str, object]:
        clock = self.harness.clock
        return RecoveryReport(self.episodes, clock=lambda: clock[0]).report(days)

    def broken(self) -> list[str]:
        return [str(item["account_id"]) for item in self.history.broken_accounts(100).items]


@pytest.fixture
def recovering(harness: Harness) -> Recovering:
    table = Table(harness.settings.events_table, dynamodb_client())
    episodes = EpisodeRecords(table)
    nylas = FakeNylas(created_at=iso(START - timedelta(days=40)))
    harness.service = replace(
        harness.service,
        nylas=nylas,
        recovery=Recovery(episodes, harness.publisher, clock=lambda: harness.clock[0], reminder_hours=(48, 168)),
    )
    return Recovering(harness, episodes, EventHistory(table), nylas)


def _cause(report: dict[str, object], cause: str) -> dict[str, object]:
    rows = [row for row in report["causes"] if row["cause"] == cause]  # type: ignore[attr-defined]
    assert len(rows) == 1, report
    return rows[0]  # type: ignore[no-any-return]


def test_a_reauthenticated_account_is_announced_once_and_counted_in_the_report(recovering: Recovering) -> None:
    recovering.fail("grant-1", "ann@acme.io")
    assert recovering.harness.outbox.kinds("ann@acme.io") == ["reconnect"]
    assert recovering.broken() == ["grant-1"]
    back = recovering.back("grant-1", hours=5)
    recovering.service.record(back)  # redelivered: nothing twice
    (event,) = recovering.recovered()
    assert event == {
        "account_id": "grant-1",
        "email": "ann@acme.io",
        "provider": "google",
        "domain": "acme.io",
        "failed_at": iso(START),
        "recovered_at": iso(START + timedelta(hours=5)),
        "time_to_recover_seconds": 5 * 3600,
        "recovered_by": "reauthentication",
        "replaced_by": None,
        "cause": "oauth_revoked",
        "incident_id": None,
        "emails_sent": 1,
        "data_gap": False,
        "gap_from": None,
        "gap_to": None,
    }
    assert recovering.broken() == []
    recovering.harness.clock[0] = START + timedelta(days=1)
    report = recovering.report()
    assert _cause(report, "oauth_revoked") == {
        "cause": "oauth_revoked",
        "failures": 1,
        "recovered": 1,
        "recovered_by": {"reauthentication": 1, "healed": 0, "replaced": 0, "sweep": 0},
        "still_broken": 0,
        "removed": 0,
        "emailed": 1,
        "reminded": 0,
        "clicked": 0,
        "median_hours_to_recover": 8,
        "p90_hours_to_recover": 8,
        "recovered_within_72h": 1,
    }
    assert report["broken_now"] == 0
    # Failures by the day the episode began, recoveries by the day it ended (START + 5 h may be the next day).
    daily = {row["date"]: (row["failures"], row["recovered"]) for row in report["daily"]}  # type: ignore[attr-defined]
    assert {day: counts for day, counts in daily.items() if counts != (0, 0)} == (
        {iso(START)[:10]: (1, 1)}
        if iso(START)[:10] == iso(START + timedelta(hours=5))[:10]
        else {iso(START)[:10]: (1, 0), iso(START + timedelta(hours=5))[:10]: (0, 1)}
    )


def test_a_v3_account_back_after_72_hours_tells_the_app_to_resync_the_gap(recovering: Recovering) -> None:
    recovering.fail("grant-1", "ann@acme.io")
    recovering.back("grant-1", hours=80)
    (event,) = recovering.recovered()
    assert (event["data_gap"], event["gap_from"], event["gap_to"]) == (
        True,
        iso(START),
        iso(START + timedelta(hours=80)),
    )
    assert errors("account_recovered", event) == []
    assert any("gap_from" in e for e in errors("account_recovered", {**event, "gap_from": None}))


def test_an_account_nylas_reports_valid_at_diagnosis_heals_and_leaves_the_broken_list(
    recovering: Recovering,
) -> None:
    recovering.nylas.recovered.add("grant-1")
    recovering.fail("grant-1", "ann@acme.io")
    (event,) = recovering.recovered()
    assert (event["recovered_by"], event["cause"], event["emails_sent"]) == ("healed", "recovered", 0)
    assert recovering.broken() == []
    row = _cause(recovering.report(), "recovered")
    assert (row["failures"], row["recovered"], row["recovered_by"]["healed"]) == (1, 1, 1)  # type: ignore[index]


def test_a_blip_that_ends_within_the_grace_period_is_counted_as_such(recovering: Recovering) -> None:
    failure = AccountEvent("fail-1", "v3", "grant.expired", "grant-1", iso(START), "google", "ann@acme.io")
    recovering.service.record(failure)
    recovering.back("grant-1", hours=0.01)  # before the diagnosis
    recovering.harness.diagnose(failure)
    (event,) = recovering.recovered()
    assert (event["recovered_by"], event["cause"]) == ("reauthentication", "recovered")
    row = _cause(recovering.report(), "recovered")
    assert (row["failures"], row["recovered"], row["still_broken"]) == (1, 1, 0)
    assert recovering.harness.outbox.kinds("ann@acme.io") == []


def test_a_new_grant_with_the_same_address_replaces_the_broken_one(recovering: Recovering) -> None:
    recovering.fail("grant-old", "Ann@Acme.io")
    recovering.fail("grant-other", "bob@acme.io", n=2)
    recovering.back("grant-new", hours=2, trigger="grant.created", email="ann@ACME.io", provider="gmail")
    (event,) = recovering.recovered()
    assert (event["account_id"], event["recovered_by"], event["replaced_by"]) == ("grant-old", "replaced", "grant-new")
    assert recovering.broken() == ["grant-other"]
    assert _cause(recovering.report(), "oauth_revoked")["recovered_by"]["replaced"] == 1  # type: ignore[index]
    api = load_handler("accounts_api")
    statuses = {
        account: _call(api, "GET", f"/accounts/{account}", "/accounts/{account_id}", {"account_id": account})[1][
            "status"
        ]
        for account in ("grant-old", "grant-other")
    }
    assert statuses == {"grant-old": "healthy", "grant-other": "broken"}


def test_a_grant_created_without_an_address_replaces_nothing(recovering: Recovering) -> None:
    recovering.fail("grant-old", "ann@acme.io")
    recovering.back("grant-new", hours=2, trigger="grant.created", email=None)
    assert recovering.recovered() == []
    assert recovering.broken() == ["grant-old"]


def test_an_announcement_that_did_not_reach_the_bus_is_published_by_the_retry_only(recovering: Recovering) -> None:
    recovering.fail("grant-1", "ann@acme.io")
    recovering.harness.publisher.failures = 1
    back = AccountEvent("back-1", "v3", "grant.updated", "grant-1", iso(START + timedelta(hours=1)), "google")
    with pytest.raises(PublishError):
        recovering.service.record(back)
    assert recovering.recovered() == []
    recovering.service.record(back)  # the queue's retry
    recovering.service.record(back)  # and a redelivery after it
    assert [e["account_id"] for e in recovering.recovered()] == ["grant-1"]
    assert _cause(recovering.report(), "oauth_revoked")["recovered"] == 1


def test_a_revision_moves_the_episode_to_its_new_cause(recovering: Recovering) -> None:
    for n in range(3):
        recovering.fail(f"grant-{n}", f"user{n}@globex.com", hours=n * 0.05, n=n)
    report = recovering.report()
    assert [(row["cause"], row["failures"], row["emailed"]) for row in report["causes"]] == [  # type: ignore[attr-defined]
        ("admin_disconnected", 3, 3)
    ]
    assert report["broken_now"] == 3


def test_racing_writers_and_redeliveries_count_every_episode_once(recovering: Recovering) -> None:
    accounts = [f"grant-{n}" for n in range(12)]
    for n, account in enumerate(accounts):
        recovering.fail(account, f"user{n}@example{n}.org", hours=n * 0.5, n=n)  # apart: no connector outage
    errors: list[BaseException] = []

    def recover(account: str) -> None:
        back = AccountEvent(
            f"back-{account}", "v3", "grant.updated", account, iso(START + timedelta(hours=9)), "google"
        )
        try:
            for _ in range(3):  # the same recovery delivered three times, on racing workers
                recovering.service.record(back)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=recover, args=(a,)) for a in accounts for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # Every account announced; a redelivery racing the first attempt's publish may announce it again
    # (EventBridge has no deduplication: consumers dedupe on account_id + failed_at), but counts once.
    assert {e["account_id"] for e in recovering.recovered()} == set(accounts)
    totals = recovering.report()["totals"]
    assert (totals["failures"], totals["recovered"], totals["emailed"], totals["still_broken"]) == (12, 12, 12, 0)  # type: ignore[index]
    assert recovering.report()["broken_now"] == 0


@pytest.mark.parametrize("days", ["0", "91", "a week", "-3", "1.5"])
def test_a_report_span_outside_1_to_90_days_is_a_400_naming_the_range(recovering: Recovering, days: str) -> None:
    status, body = _call(
        load_handler("accounts_api"), "GET", "/reports/recovery", "/reports/recovery", query={"days": days}
    )
    assert (status, body) == (400, {"message": "days must be a whole number from 1 to 90"})


def test_the_report_api_answers_from_the_aggregates(recovering: Recovering) -> None:
    recovering.fail("grant-1", "ann@acme.io")
    recovering.back("grant-1", hours=30)
    recovering.fail("grant-2", "bob@acme.io", hours=2, n=2)
    api = load_handler("accounts_api")
    status, body = _call(api, "GET", "/reports/recovery", "/reports/recovery", query={"days": "7"})
    assert status == 200, body
    assert len(body["daily"]) == 7
    assert body["until"] > body["since"]
    (row,) = body["causes"]
    assert (row["cause"], row["failures"], row["recovered"], row["still_broken"]) == ("oauth_revoked", 2, 1, 1)
    assert (row["median_hours_to_recover"], row["recovered_within_72h"]) == (48, 1)
    assert body["broken_now"] == 1
    assert _call(api, "GET", "/reports/recovery", "/reports/recovery")[1]["since"] < body["since"]  # default 30 days


# ---------------------------------------------------------------------------------------------
# Reminders (SPEC §5): found through the due index by the scheduled run, sent once by the diagnosis function


@dataclass
class Reminding:
    recovering: Recovering
    reminders: Reminders
    sent: list[DueReminder]

    def run(self, hours_after_start: float) -> ReminderRun:
        """The sweep's scheduled run at that time; what it enqueues is sent (twice: a redelivery)."""
        now = START + timedelta(hours=hours_after_start)
        self.recovering.harness.clock[0] = now
        run = enqueue_due(self.recovering.episodes, self.sent.append, now)
        for due in self.sent:
            self.reminders.send(due)
        self.sent.clear()
        return run


@pytest.fixture
def reminding(recovering: Recovering) -> Reminding:
    service = recovering.service
    reminders = Reminders(
        recovery=service.recovery,
        latest_verdict=service.verdicts.latest,
        connector_incident_open=lambda through: service.incidents.is_open(IncidentKey("connector", through)),
        notifier=service.notifier,
        clock=lambda: recovering.harness.clock[0],
    )
    return Reminding(recovering, reminders, [])


def test_a_customer_still_broken_gets_one_reminder_per_entry_with_the_deadline_while_it_lies_ahead(
    reminding: Reminding,
) -> None:
    outbox = reminding.recovering.harness.outbox
    reminding.recovering.fail("grant-1", "ann@acme.io")  # emailed at START + 2 min
    assert reminding.run(40).enqueued == 0
    assert reminding.run(48.1).enqueued == 1
    assert reminding.run(48.5).enqueued == 0  # the next run reads only what came due since
    assert outbox.kinds("ann@acme.io") == ["reconnect", "reminder"]
    first = outbox.to("ann@acme.io")[1]
    assert "still disconnected" in first.subject
    assert f"since {START.day} {START:%B %Y}" in first.text
    deadline_at = START + timedelta(hours=72)
    assert f"Reconnect before {deadline_at:%A} {deadline_at.day} {deadline_at:%B %Y, %H:%M} UTC" in first.text
    assert reminding.run(168.1).enqueued == 1
    second = outbox.to("ann@acme.io")[2]
    assert "Reconnect before" not in second.text  # 72 h have passed
    assert reminding.run(400).enqueued == 0  # nothing beyond ReminderHours
    assert len(outbox.to("ann@acme.io")) == 3
    verdict = reminding.recovering.service.verdicts.latest("grant-1")
    assert verdict is not None
    assert [(n.kind, n.sequence) for n in verdict.notifications] == [
        ("reconnect", None),
        ("reminder", 1),
        ("reminder", 2),
    ]
    row = _cause(reminding.recovering.report(), "oauth_revoked")
    assert (row["emailed"], row["reminded"]) == (1, 1)  # episodes, not emails


def test_two_overlapping_runs_send_one_reminder(reminding: Reminding) -> None:
    reminding.recovering.fail("grant-1", "ann@acme.io")
    now = START + timedelta(hours=49)
    reminding.recovering.harness.clock[0] = now
    first: list[DueReminder] = []
    second: list[DueReminder] = []
    enqueue_due(reminding.recovering.episodes, first.append, now)
    enqueue_due(reminding.recovering.episodes, second.append, now)
    for due in first + second + first:
        reminding.reminders.send(due)
    assert reminding.recovering.harness.outbox.kinds("ann@acme.io") == ["reconnect", "reminder"]


def test_no_reminder_after_recovery_nor_to_a_bounced_address(reminding: Reminding) -> None:
    reminding.recovering.fail("grant-1", "ann@acme.io")
    reminding.recovering.fail("grant-2", "bob@acme.io", n=2, hours=0.5)
    reminding.recovering.back("grant-1", hours=10)
    service = reminding.recovering.service
    verdict = service.verdicts.latest("grant-2")
    assert verdict is not None
    bounced = [replace(n, status="bounced", reason="OnAccountSuppressionList") for n in verdict.notifications]
    service.verdicts.set_notifications(verdict, bounced)
    assert reminding.run(49).enqueued == 2  # found, then skipped: counted, never an error
    assert reminding.recovering.harness.outbox.kinds("ann@acme.io") == ["reconnect"]
    assert reminding.recovering.harness.outbox.kinds("bob@acme.io") == ["reconnect"]


def test_operator_only_causes_get_no_reminder(reminding: Reminding) -> None:
    event = AccountEvent("fail-1", "v3", "grant.deleted", "grant-1", iso(START), "google", "ann@acme.io")
    reminding.recovering.service.record(event)
    failure = AccountEvent(
        "fail-2", "v3", "grant.expired", "grant-1", iso(START + timedelta(minutes=1)), "google", "ann@acme.io"
    )
    reminding.recovering.service.record(failure)
    assert reminding.recovering.harness.diagnose(failure) == "app_revoked"
    assert reminding.run(49).due == 0  # the operator was told; the customer never had an email to repeat


def test_a_reminder_run_reads_the_due_reminders_not_the_open_episodes(reminding: Reminding) -> None:
    for n in range(30):
        reminding.recovering.fail(f"grant-{n}", f"user{n}@example{n}.org", hours=n, n=n)
    reminding.run(47)  # nothing due yet: the watermark starts here
    run = reminding.run(50.1)  # the first three accounts' reminders came due
    assert (run.due, run.enqueued) == (3, 3)
    assert run.items_read <= 3 * run.due + 1


def test_an_address_on_the_suppression_list_is_a_hard_bounce_and_gets_nothing_more(reminding: Reminding) -> None:
    recovering = reminding.recovering
    harness = recovering.harness
    recovering.fail("grant-1", "ann@acme.io")
    (sent,) = harness.outbox.to("ann@acme.io")
    verdict = harness.service.verdicts.latest("grant-1")
    assert verdict is not None
    client = dynamodb_client()
    ledger = NotificationLedger(
        Table(harness.settings.notifications_table, client), verdicts=Table(harness.settings.verdicts_table, client)
    )
    suppressed = {
        "detail-type": "Email Bounced",
        "source": "aws.ses",
        "detail": {
            "eventType": "Bounce",
            "bounce": {
                "bounceType": "Permanent",
                "bounceSubType": "OnAccountSuppressionList",
                "bouncedRecipients": [{"emailAddress": "ann@acme.io", "action": "failed", "status": "5.1.1"}],
                "timestamp": iso(START + timedelta(minutes=3)),
            },
            "mail": {"messageId": verdict.notifications[0].message_id, "timestamp": iso(START + timedelta(minutes=2))},
        },
    }
    outcome = DeliveryRecorder(ledger, None, harness.settings).handle(suppressed)
    assert (outcome.status, outcome.operator_alerted) == ("bounced", True)  # a hard bounce, like any other
    assert reminding.run(49).enqueued == 1  # found due, and skipped: the address bounced
    recovering.back("grant-1", hours=60)
    recovering.fail("grant-1", "ann@acme.io", hours=100, n=2)  # a new episode, days later
    assert harness.outbox.to("ann@acme.io") == [sent]  # nothing more, reminders included
    latest = harness.service.verdicts.latest("grant-1")
    assert latest is not None
    (refused,) = [n for n in latest.notifications if n.kind == "reconnect"]
    assert (refused.status, refused.reason) == (
        "rejected",
        "not sent: SES reported this address as a hard bounce or a complaint before",
    )


# ---------------------------------------------------------------------------------------------
# EmailTracking (SPEC §5): opens and clicks on the notification, `clicked` in the report


@pytest.mark.parametrize(
    ("tracking", "types"),
    [
        ("off", ["DELIVERY", "BOUNCE", "COMPLAINT", "REJECT"]),
        ("clicks", ["DELIVERY", "BOUNCE", "COMPLAINT", "REJECT", "CLICK"]),
        ("opens_and_clicks", ["DELIVERY", "BOUNCE", "COMPLAINT", "REJECT", "OPEN", "CLICK"]),
    ],
)
def test_email_tracking_subscribes_the_configuration_set_to_clicks_and_opens(tracking: str, types: list[str]) -> None:
    template = load_template()
    parameters = {**default_parameters(template), "EmailTracking": tracking}
    conditions: dict[str, bool] = {}
    for name, definition in template["Conditions"].items():
        conditions[name] = bool(_evaluate(definition, parameters, conditions))
    destination = template["Resources"]["EmailFeedbackDestination"]["Properties"]["EventDestination"]
    assert _evaluate(destination["MatchingEventTypes"], parameters, conditions) == types
    rule = template["Resources"]["SesEventsRule"]["Properties"]["EventPattern"]
    assert {"Email Opened", "Email Clicked"} <= set(rule["detail-type"])


def _engaged(kind: str, message_id: str, at: str) -> dict[str, object]:
    detail_type, field = ("Email Clicked", "click") if kind == "Click" else ("Email Opened", "open")
    return {
        "detail-type": detail_type,
        "source": "aws.ses",
        "detail": {
            "eventType": kind,
            field: {"timestamp": at, "link": "https://app.example.com/reconnect"},
            "mail": {"messageId": message_id, "timestamp": at},
        },
    }


def test_a_click_is_on_the_notification_and_counts_the_episode_clicked_once(recovering: Recovering) -> None:
    harness = recovering.harness
    recovering.fail("grant-1", "ann@acme.io")
    verdict = harness.service.verdicts.latest("grant-1")
    assert verdict is not None
    message_id = str(verdict.notifications[0].message_id)
    client = dynamodb_client()
    ledger = NotificationLedger(
        Table(harness.settings.notifications_table, client), verdicts=Table(harness.settings.verdicts_table, client)
    )
    assert harness.service.recovery is not None
    recorder = DeliveryRecorder(ledger, None, harness.settings, clicked=harness.service.recovery.email_clicked)
    opened, clicked = iso(START + timedelta(minutes=30)), iso(START + timedelta(minutes=31))
    recorder.handle(_engaged("Open", message_id, opened))
    recorder.handle(_engaged("Click", message_id, clicked))
    recorder.handle(_engaged("Click", message_id, iso(START + timedelta(hours=2))))  # clicked again
    (notification,) = [n for n in harness.service.verdicts.latest("grant-1").notifications if n.kind == "reconnect"]  # type: ignore[union-attr]
    assert (notification.status, notification.opened_at, notification.clicked_at) == ("sent", opened, clicked)
    assert _cause(recovering.report(), "oauth_revoked")["clicked"] == 1


def _account(account: str) -> dict[str, object]:
    status, answer = _call(
        load_handler("accounts_api"), "GET", f"/accounts/{account}", "/accounts/{account_id}", {"account_id": account}
    )
    assert status == 200, answer
    return answer  # type: ignore[no-any-return]


def test_the_account_answer_shows_its_open_episode_with_its_emails(recovering: Recovering) -> None:
    recovering.fail("grant-1", "ann@acme.io")

    answer = _account("grant-1")

    assert answer["status"] == "broken"
    assert answer["episodes"] == [
        {
            "failed_at": iso(START),
            "cause": "oauth_revoked",
            "incident_id": None,
            "emails_sent": 1,
            "reminders_sent": 0,
            "recovered_at": None,
            "recovered_by": None,
            "replaced_by": None,
        }
    ]


def test_the_account_answer_shows_how_its_last_episode_ended(recovering: Recovering) -> None:
    recovering.fail("grant-old", "ann@acme.io")
    recovering.back("grant-new", hours=2, trigger="grant.created", email="ann@acme.io")
    assert _account("grant-old")["episodes"] == [
        {
            "failed_at": iso(START),
            "cause": "oauth_revoked",
            "incident_id": None,
            "emails_sent": 1,
            "reminders_sent": 0,
            "recovered_at": iso(START + timedelta(hours=2)),
            "recovered_by": "replaced",
            "replaced_by": "grant-new",
        }
    ]
    # It breaks again: the new open episode first, the ended one after it.
    recovering.fail("grant-old", "ann@acme.io", hours=30, n=2)

    episodes = _account("grant-old")["episodes"]

    assert [(e["failed_at"], e["recovered_by"]) for e in episodes] == [  # type: ignore[index]
        (iso(START + timedelta(hours=30)), None),
        (iso(START), "replaced"),
    ]


def test_a_told_verdict_is_recorded_announced_by_its_episode_write_so_a_late_redelivery_publishes_nothing_again(
    recovering: Recovering,
) -> None:
    event = recovering.fail("grant-1", "ann@acme.io")
    recovering.back("grant-1", hours=5)
    recovering.service.diagnose(event)  # redelivered after the recovery (its idempotency record gone)
    published = recovering.harness.publisher.of_type("Verdict")
    assert [(v["account_id"], v["cause"]) for v in published] == [("grant-1", "oauth_revoked")]
