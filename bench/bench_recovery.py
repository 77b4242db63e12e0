"""Recovery (SPEC §9 Recovery bar), counted not timed: the items DynamoDB reads, as it charges them.

- The report (`GET /reports/recovery?days=30`) for 100,000 accounts' episodes against 1,000 (target ratio
  ≤ 1.1): it reads the day-and-shard aggregates only. The aggregates are written directly, as the episode
  store's counters would hold them after that many episodes (diagnosing 100,000 failures would take an
  hour on moto and measure nothing more: the report never reads an episode).
- A reminder run with 10,000 open episodes of which 10 are due (target: ≤ 3 × due + 5 items): the run's
  watermark and due-index query, and each due reminder's send (its episode, its latest verdict, and its
  connector's incident pointer, which a warm function asks once a minute). The 10 due episodes are real
  (recorded, diagnosed, emailed by the service); the other 9,990 open episodes' reminders are written into
  the due index for later.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.client import BaseClient
from moto import mock_aws

from account_doctor.consumer import DiagnosisService
from account_doctor.diagnosis import diagnose
from account_doctor.episodes import RECOVERED_BY, Recovery, bucket_of
from account_doctor.models import AccountEvent, IncidentKey, iso
from account_doctor.notifications.notifier import EmailNotifier
from account_doctor.recovery_report import RecoveryReport
from account_doctor.reminders import Reminders, enqueue_due
from account_doctor.settings import get_settings
from account_doctor.stores.dynamo import Table, dynamodb_client, to_item
from account_doctor.stores.episodes import SHARDS, EpisodeRecords, counter_name, report_key, shard_of
from account_doctor.stores.events import EventHistory
from account_doctor.stores.incidents import IncidentStore
from account_doctor.stores.ledger import NotificationLedger
from account_doctor.stores.verdicts import VerdictStore
from bench.environment import quiet_environment, use_function_settings
from bench.figures import Figure
from local_stack.payloads import TEST_SECRET
from local_stack.template import provision
from tests.fakes import FakeNylas, RecordingPublisher

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# How causes are spread among broken accounts (a typical mix: most are customers' own revocations).
CAUSE_WEIGHTS = {
    "oauth_revoked": 40,
    "password_changed": 20,
    "admin_disconnected": 8,
    "admin_session_policy": 4,
    "recovered": 10,
    "google_testing_mode": 5,
    "microsoft_token_expired": 5,
    "sync_stopped": 4,
    "unknown": 4,
}


@contextmanager
def _stack() -> Iterator[None]:
    with quiet_environment(), mock_aws():
        use_function_settings(provision(secret=TEST_SECRET, parameters={"NotificationMode": "dry-run"}))
        yield


@contextmanager
def _items_read() -> Iterator[list[int]]:
    """Items DynamoDB reads in the block, as it charges them (as bench_incidents counts): each Query's
    ScannedCount, every key a GetItem or BatchGetItem asks for (found or not)."""
    counted = [0]
    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def counting(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        response = original(client, operation, params)
        if operation == "Query":
            counted[0] += int(response.get("ScannedCount", response.get("Count", 0)))
        elif operation == "GetItem":
            counted[0] += 1
        elif operation == "BatchGetItem":
            counted[0] += sum(len(request["Keys"]) for request in params["RequestItems"].values())
        return response

    setattr(BaseClient, "_make_api_call", counting)  # noqa: B010
    try:
        yield counted
    finally:
        setattr(BaseClient, "_make_api_call", original)  # noqa: B010


def _aggregates(accounts: int) -> dict[tuple[str, str], Counter[str]]:
    """What the episode store's counters hold after `accounts` episodes over the last 30 days (70 % ended)."""
    rng = random.Random(accounts)
    causes, weights = zip(*CAUSE_WEIGHTS.items(), strict=True)
    items: dict[tuple[str, str], Counter[str]] = {}
    for n in range(accounts):
        account = f"grant-{n}"
        began = NOW - timedelta(days=rng.uniform(0, 29))
        cause = rng.choices(causes, weights)[0]
        day = iso(began)[:10]
        began_on = items.setdefault((report_key(account, day)["account_id"], day), Counter())
        began_on[counter_name(cause, "failures")] += 1
        if rng.random() < 0.7:
            seconds = rng.expovariate(1 / (30 * 3600))
            ended = min(began + timedelta(seconds=seconds), NOW)
            way = rng.choice(RECOVERED_BY)
            for name in ("recovered", f"by_{way}", f"ttr_{bucket_of(seconds)}"):
                began_on[counter_name(cause, name)] += 1
            end_day = iso(ended)[:10]
            items.setdefault((report_key(account, end_day)["account_id"], end_day), Counter())[
                counter_name(cause, "ended")
            ] += 1
    return items


def report_items_read(accounts: int) -> int:
    with _stack():
        settings = get_settings()
        client = dynamodb_client()
        for (partition, day), counts in _aggregates(accounts).items():
            client.put_item(
                TableName=settings.events_table, Item=to_item({"account_id": partition, "sk": day, **counts})
            )
        report = RecoveryReport(EpisodeRecords(Table(settings.events_table, client)), clock=lambda: NOW)
        with _items_read() as read:
            answer = report.report(30)
        assert answer["totals"]["failures"] == accounts, answer["totals"]
        return read[0]


def reminder_run_items_read(open_episodes: int, due: int) -> tuple[int, int]:
    """Items read by one reminder run and its sends, and how many reminders it sent."""
    with _stack():
        settings = get_settings()
        client = dynamodb_client()
        events = Table(settings.events_table, client)
        verdicts = VerdictStore(Table(settings.verdicts_table, client))
        incidents = IncidentStore(Table(settings.incidents_table, client))
        episodes = EpisodeRecords(events)
        clock = [NOW - timedelta(hours=50)]
        recovery = Recovery(episodes, RecordingPublisher(), clock=lambda: clock[0], reminder_hours=(48,))
        notifier = EmailNotifier(
            settings,
            ledger=NotificationLedger(Table(settings.notifications_table, client)),
            mailer=None,
            reconnect_link=lambda verdict: "https://app.example.com/reconnect",
            verdicts=verdicts,
            clock=lambda: clock[0],
        )
        _diagnose_due(settings, events, (verdicts, incidents), notifier, recovery, clock, due)
        _later_reminders(client, settings.events_table, open_episodes - due)
        episodes.advance_watermark(iso(NOW - timedelta(hours=4)))  # the previous run
        clock[0] = NOW
        reminders = Reminders(
            recovery=recovery,
            latest_verdict=verdicts.latest,
            connector_incident_open=lambda through: incidents.is_open(IncidentKey("connector", through)),
            notifier=notifier,
            clock=lambda: NOW,
        )
        outcomes: list[str] = []
        with _items_read() as read:
            enqueue_due(episodes, lambda reminder: outcomes.append(reminders.send(reminder)), NOW)
        assert outcomes == ["sent"] * due, outcomes
        return read[0], len(outcomes)


def _diagnose_due(
    settings: Any,
    events: Table,
    stores: tuple[VerdictStore, IncidentStore],
    notifier: EmailNotifier,
    recovery: Recovery,
    clock: list[datetime],
    due: int,
) -> None:
    """`due` real episodes, each failed and emailed 48 h and some minutes before NOW: their reminders are due."""
    verdicts, incidents = stores
    service = DiagnosisService(
        history=EventHistory(events),
        verdicts=verdicts,
        incidents=incidents,
        nylas=FakeNylas(),
        notifier=notifier,
        publisher=RecordingPublisher(),
        policy=settings.policy,
        procedure=diagnose,
        sweep_notify_days=settings.sweep_notify_days,
        recovery=recovery,
        clock=lambda: clock[0],
    )
    for n in range(due):
        failed = NOW - timedelta(hours=50, minutes=n * 10)
        clock[0] = failed + timedelta(minutes=2)
        event = AccountEvent(
            f"evt-{n}", "v3", "grant.expired", f"due-{n}", iso(failed), "yahoo", f"user{n}@org{n}.example"
        )
        service.record(event)
        service.diagnose(event, first_delivery=True)


def _later_reminders(client: Any, table: str, count: int) -> None:
    """The due-index items of `count` other open episodes, due over the next week."""
    rng = random.Random(count)
    requests = []
    for n in range(count):
        account = f"open-{n}"
        due_at = iso(NOW + timedelta(minutes=rng.uniform(1, 7 * 24 * 60)))
        item = {
            "account_id": f"#reminders#{shard_of(account)}",
            "sk": f"{due_at}#{account}#1",
            "reminder_for": account,
            "episode_id": f"evt-{account}",
            "sequence": 1,
            "due_at": due_at,
        }
        requests.append({"PutRequest": {"Item": to_item(item)}})
    for start in range(0, len(requests), 25):
        client.batch_write_item(RequestItems={table: requests[start : start + 25]})


def run(full: bool = False) -> list[Figure]:
    """Counts only, so the same in a quick and a full run (`full` is for the timed benches)."""
    small = report_items_read(1_000)
    large = report_items_read(100_000)
    read, due = reminder_run_items_read(10_000, 10)
    return [
        Figure(
            name="recovery report (30 days), items read for 100,000 accounts' episodes",
            measured=large,
            reference=small,
            unit="items",
            target_ratio=1.1,
            reference_name="1,000 accounts' episodes",
            details=f"{SHARDS} shards x 30 days of aggregates; no episode, account or verdict is read",
        ),
        Figure(
            name="reminder run with 10,000 open episodes and 10 due, items read",
            measured=read,
            reference=3 * due + 5,
            unit="items",
            target_ratio=1.0,
            reference_name="3 x due + 5",
            details="watermark + due-index query; per reminder its episode and verdict; the incident pointer once",
        ),
    ]
