"""The reconciliation sweep's decisions (SPEC §3b), row by row: which broken accounts are missed failures."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from account_doctor.models import AccountEvent
from account_doctor.nylas import ListedAccount, NylasConfigError, NylasUnavailable
from account_doctor.sweep import (
    KnownEvent,
    Sweep,
    SweepSummary,
    is_too_old_to_notify,
    latest_events_of,
    missed_failure,
    sweep_event_id,
)

NOW = datetime(2024, 11, 19, 7, 6, 40, tzinfo=UTC)


def at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(**delta: float) -> str:
    return at(NOW - timedelta(**delta))


@dataclass(frozen=True)
class Stored:
    kind: str
    occurred_at: str


GRANT = ListedAccount("g-1", "v3", "invalid", provider="google", email="ana@example.com", updated_at=ago(hours=3))
V2_INVALID = ListedAccount("a-1", "v2", "invalid", provider="imap", email="bo@example.com")
V2_STOPPED = replace(V2_INVALID, status="stopped")

# id: (listed account, latest stored event, expected (trigger, occurred_at) or None when nothing is enqueued)
CASES: dict[str, tuple[ListedAccount, Stored | None, tuple[str, str] | None]] = {
    "v3-no-history-dated-by-updated_at": (GRANT, None, ("grant.expired", ago(hours=3))),
    "v3-latest-is-its-failure": (GRANT, Stored("failure", ago(hours=3)), None),
    "v3-latest-is-an-older-failure": (GRANT, Stored("failure", ago(days=40)), None),
    "v3-recovered-then-broke-again": (GRANT, Stored("recovery", ago(days=2)), ("grant.expired", ago(hours=3))),
    "v3-updated_at-not-after-the-recovery-dated-now": (
        GRANT,
        Stored("recovery", ago(hours=1)),
        ("grant.expired", at(NOW)),
    ),
    "v3-removed-then-listed": (GRANT, Stored("removal", ago(days=2)), ("grant.expired", ago(hours=3))),
    "v3-updated_at-unknown-dated-now": (replace(GRANT, updated_at=None), None, ("grant.expired", at(NOW))),
    "v3-updated_at-in-the-future-dated-now": (
        replace(GRANT, updated_at=ago(hours=-2)),
        None,
        ("grant.expired", at(NOW)),
    ),
    "v3-valid-grant-never": (replace(GRANT, status="valid"), None, None),
    "v2-invalid": (V2_INVALID, None, ("account.invalid", at(NOW))),
    "v2-stopped": (V2_STOPPED, Stored("recovery", ago(days=1)), ("account.stopped", at(NOW))),
    "v2-stopped-already-failed": (V2_STOPPED, Stored("failure", ago(days=1)), None),
    "v2-sync-error-not-listed-as-broken": (replace(V2_INVALID, status="sync-error"), None, None),
}


@pytest.mark.parametrize(("account", "latest", "expected"), CASES.values(), ids=CASES.keys())
def test_missed_failure(account: ListedAccount, latest: Stored | None, expected: tuple[str, str] | None) -> None:
    event = missed_failure(account, latest, NOW)
    if expected is None:
        assert event is None
        return
    trigger, occurred_at = expected
    assert event == AccountEvent(
        event_id=sweep_event_id(account.account_id, occurred_at),
        api_version=account.api_version,
        trigger=trigger,
        account_id=account.account_id,
        occurred_at=occurred_at,
        provider=account.provider,
        email=account.email,
        grant_updated_at=None,
        source="sweep",
    )


def test_the_event_id_is_the_same_on_every_run_and_differs_per_failure() -> None:
    assert sweep_event_id("g-1", ago(hours=3)) == sweep_event_id("g-1", ago(hours=3))
    assert sweep_event_id("g-1", ago(hours=3)) != sweep_event_id("g-1", ago(hours=4))
    assert sweep_event_id("g-1", ago(hours=3)) != sweep_event_id("g-2", ago(hours=3))
    assert sweep_event_id("g-1", ago(hours=3)).startswith("sweep-")
    assert len(sweep_event_id("g-1", ago(hours=3))) == len("sweep-") + 32


def sweep_event(occurred_at: str, source: str | None = "sweep") -> AccountEvent:
    return AccountEvent("e-1", "v3", "grant.expired", "g-1", occurred_at, source=source)


# id: (event, SweepNotifyDays, too old to notify)
TOO_OLD: dict[str, tuple[AccountEvent, int, bool]] = {
    "sweep-30-days-old": (sweep_event(ago(days=30)), 7, True),
    "sweep-just-over": (sweep_event(ago(days=7, seconds=1)), 7, True),
    "sweep-just-under": (sweep_event(ago(days=6, hours=23)), 7, False),
    "sweep-found-today": (sweep_event(ago(hours=2)), 7, False),
    "sweep-zero-days-means-only-fresh-ones": (sweep_event(ago(minutes=1)), 0, True),
    "webhook-event-never": (sweep_event(ago(days=30), source=None), 7, False),
}


@pytest.mark.parametrize(("event", "days", "too_old"), TOO_OLD.values(), ids=TOO_OLD.keys())
def test_is_too_old_to_notify(event: AccountEvent, days: int, too_old: bool) -> None:
    assert is_too_old_to_notify(event, NOW, days) is too_old


# --- A run ------------------------------------------------------------------------------------------------------


class FakeHistory:
    def __init__(self, known: Mapping[str, Stored] | None = None) -> None:
        self.known = dict(known or {})
        self.lookups: list[list[str]] = []

    def __call__(self, account_ids: Sequence[str]) -> Mapping[str, KnownEvent | None]:
        self.lookups.append(list(account_ids))
        return {account_id: self.known.get(account_id) for account_id in account_ids}


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[list[AccountEvent]] = []

    def __call__(self, events: Sequence[AccountEvent]) -> int:
        self.sent.append(list(events))
        return 2 * len(events)


def grants(*ids: str, updated_at: str = ago(hours=3)) -> list[ListedAccount]:
    return [replace(GRANT, account_id=grant_id, updated_at=updated_at) for grant_id in ids]


def pages(*listed: list[ListedAccount], then: Exception | None = None) -> Iterator[list[ListedAccount]]:
    yield from listed
    if then is not None:
        raise then


def run(
    history: FakeHistory,
    queue: FakeQueue,
    *sources: Iterator[list[ListedAccount]],
    seconds_left: Callable[[], float] | None = None,
) -> SweepSummary:
    sweep = Sweep(latest_events=history, enqueue=queue, notify_days=7, clock=lambda: NOW)
    return sweep.run(sources, seconds_left=seconds_left)


def test_each_page_is_looked_up_and_enqueued_before_the_next_one() -> None:
    history, queue = FakeHistory({"g-2": Stored("failure", ago(hours=3))}), FakeQueue()
    summary = run(history, queue, pages(grants("g-1", "g-2"), grants("g-3", updated_at=ago(days=30))))
    assert history.lookups == [["g-1", "g-2"], ["g-3"]]
    assert [[e.account_id for e in batch] for batch in queue.sent] == [["g-1"], ["g-3"]]
    assert (summary.listed, summary.already_known, summary.enqueued, summary.too_old_to_notify) == (3, 1, 2, 1)
    assert (summary.pages, summary.complete) == (2, True)
    assert summary.line() == "sweep: 3 broken listed, 1 already known, 2 enqueued (1 too old to notify), 2 pages"


def test_an_account_listed_twice_in_one_run_is_enqueued_once() -> None:
    queue = FakeQueue()
    summary = run(FakeHistory(), queue, pages(grants("g-1", "g-2"), grants("g-2", "g-3")))
    assert [e.account_id for batch in queue.sent for e in batch] == ["g-1", "g-2", "g-3"]
    assert summary.listed == 3


def test_nylas_unavailable_ends_the_run_quietly_keeping_what_was_enqueued() -> None:
    queue = FakeQueue()
    summary = run(FakeHistory(), queue, pages(grants("g-1"), then=NylasUnavailable("Nylas answered 429")))
    assert (summary.complete, summary.enqueued, summary.error) == (False, 1, None)
    assert summary.stopped == "Nylas is unavailable (Nylas answered 429)"
    assert summary.line().endswith("; stopped early: Nylas is unavailable (Nylas answered 429)")


def test_rejected_credentials_end_the_run_and_are_handed_back_to_raise() -> None:
    error = NylasConfigError("Nylas answered 401: check api_key")
    summary = run(FakeHistory(), FakeQueue(), pages(then=error), pages(grants("g-9")))
    assert (summary.complete, summary.error, summary.listed) == (False, error, 0)
    assert "error" not in summary.to_dict()


def test_the_run_stops_between_pages_when_time_runs_out() -> None:
    left = iter([120.0, 3.0, 100.0])
    summary = run(
        FakeHistory(), FakeQueue(), pages(grants("g-1"), grants("g-2"), grants("g-3")), seconds_left=lambda: next(left)
    )
    assert (summary.pages, summary.enqueued, summary.complete) == (2, 2, False)
    assert summary.stopped == "the function's time is running out"


def test_latest_events_come_from_state_items_and_only_accounts_without_one_are_looked_up() -> None:
    looked_up: list[str] = []
    states = {"known": Stored("failure", ago(hours=3))}

    def from_states(account_ids: Sequence[str]) -> Mapping[str, KnownEvent]:
        assert list(account_ids) == ["known", "old-history", "new"]  # each account once, in one batch
        return {a: states[a] for a in account_ids if a in states}

    def latest_event(account_id: str) -> KnownEvent | None:
        looked_up.append(account_id)
        return Stored("recovery", ago(days=2)) if account_id == "old-history" else None

    latest = latest_events_of(from_states, latest_event, threads=2)(["known", "old-history", "new", "known"])
    assert latest == {"known": states["known"], "old-history": Stored("recovery", ago(days=2)), "new": None}
    assert sorted(looked_up) == ["new", "old-history"]
