"""The reconciliation sweep (SPEC §3b): broken grants and accounts whose failure webhook never came.

Webhooks get lost (an endpoint down longer than Nylas retries, a disabled webhook, grants that broke
before the deployment), so the sweep looks: it lists what Nylas reports broken and, for each account
whose history holds no failure since its last recovery, enqueues the failure event the webhook would
have sent. Deciding is pure (`missed_failure`); listing, the history lookups and the queue are
passed in, so a run can be driven against the simulator, `responses` or moto alike.

Nothing is ever enqueued twice: an event's id is derived from the account and the failure's time, so
a run that is cut short (Nylas still answering 429 after the retries, the function's time running out)
is simply redone by the next scheduled run, and whatever the first run enqueued is by then in the
history (its `record` message is not delayed) or, at worst, deduplicated on event_id by the diagnosis.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from account_doctor.episodes import EpisodeEnd, Recovery
from account_doctor.events_out import publisher_for
from account_doctor.incidents import MemberRecovery
from account_doctor.models import AccountEvent, AccountState, iso, parse_iso
from account_doctor.nylas import ListedAccount, NylasClient, NylasUnavailable
from account_doctor.ports import KnownEvent
from account_doctor.queue import DiagnosisQueue, ReminderQueue
from account_doctor.reminders import ReminderRun, enqueue_due
from account_doctor.settings import SweepSettings
from account_doctor.stores.dynamo import Table, dynamodb_client
from account_doctor.stores.episodes import EpisodeRecords
from account_doctor.stores.events import EventHistory
from account_doctor.stores.incidents import IncidentStore

SOURCE = "sweep"
# The webhook trigger each broken status stands for (SPEC §3b).
TRIGGERS: Mapping[tuple[str, str], str] = {
    ("v3", "invalid"): "grant.expired",
    ("v2", "invalid"): "account.invalid",
    ("v2", "stopped"): "account.stopped",
}
# A page is not started with less time left than twice the slowest page so far (its Nylas call with any
# retries, its lookups and sends), nor with less than this: a run stops between pages, never inside one.
MIN_TIME_MARGIN_SECONDS = 5.0
# History lookups of a page run on this many threads (boto3 clients are thread-safe): a first sweep of an
# application with tens of thousands of broken grants stays well inside the function's timeout.
LOOKUP_THREADS = 8


Clock = Callable[[], datetime]
LatestEvents = Callable[[Sequence[str]], Mapping[str, KnownEvent | None]]


def sweep_event_id(account_id: str, occurred_at: str) -> str:
    """The same on every run for the same failure, so a failure found twice is enqueued once."""
    digest = hashlib.sha256(f"{account_id}\n{occurred_at}".encode()).hexdigest()
    return f"sweep-{digest[:32]}"


def missed_failure(account: ListedAccount, latest: KnownEvent | None, now: datetime) -> AccountEvent | None:
    """The failure event to enqueue for a broken account, or None when its history already holds the failure.

    A latest stored event that is a failure means the failure is known (its webhook came, or an earlier
    sweep found it). Otherwise — no history, or the account recovered since — the failure is missed.
    It happened when Nylas last changed the grant (`updated_at`), unless that time is unknown (v2), lies
    in the future, or is not after the stored recovery: then the failure is dated now, since an event dated
    before the recovery would be diagnosed `recovered` and the broken account never looked at again.
    """
    trigger = TRIGGERS.get((account.api_version, account.status))
    if trigger is None:
        return None
    if latest is not None and latest.kind == "failure":
        return None
    now_text = iso(now)
    occurred_at = account.updated_at
    if occurred_at is None or occurred_at > now_text or (latest is not None and occurred_at <= latest.occurred_at):
        occurred_at = now_text
    return AccountEvent(
        event_id=sweep_event_id(account.account_id, occurred_at),
        api_version=account.api_version,
        trigger=trigger,
        account_id=account.account_id,
        occurred_at=occurred_at,
        provider=account.provider,
        email=account.email,
        # Not the grant's updated_at: for a broken grant that is the moment it broke, and rules 4a/4b would
        # read it as a consent or token refresh. The diagnosis reads the grant's own dates from Nylas.
        grant_updated_at=None,
        source=SOURCE,
    )


def is_too_old_to_notify(event: AccountEvent, now: datetime, days: int) -> bool:
    """A failure the sweep found more than `days` (SweepNotifyDays) ago: diagnosed and recorded, no customer emailed.

    The diagnosis applies this before any customer email; a first sweep on an old application so does
    not write to customers who left long ago. Webhook events are never too old here.
    """
    if event.source != SOURCE:
        return False
    return parse_iso(event.occurred_at) < now.astimezone(UTC) - timedelta(days=days)


@dataclass
class SweepSummary:
    """One run, as its summary log line and return value report it."""

    listed: int = 0  # broken grants and accounts Nylas listed
    already_known: int = 0  # their failure is in the history
    enqueued: int = 0  # missed failures, enqueued (MissedFailuresFound)
    too_old_to_notify: int = 0  # of those, older than SweepNotifyDays: no customer email
    pages: int = 0  # list requests answered
    recovered: int = 0  # on the broken list, not listed by Nylas, and valid: episode ended (recovered_by sweep)
    removed: int = 0  # on the broken list, and gone from Nylas (404): episode ended as removed
    complete: bool = True
    stopped: str | None = None  # why the run stopped early; the next run resumes
    missed: list[str] = field(default_factory=list)  # account ids enqueued (the first 20, for the log)
    # What ended the run when it was not Nylas being unavailable: the handler raises it after logging.
    error: Exception | None = field(default=None, repr=False, compare=False)
    seen: set[str] = field(default_factory=set, repr=False, compare=False)

    def line(self) -> str:
        text = (
            f"sweep: {self.listed} broken listed, {self.already_known} already known, {self.enqueued} enqueued "
            f"({self.too_old_to_notify} too old to notify), {self.pages} pages"
        )
        if self.recovered or self.removed:
            text += f"; {self.recovered} found recovered, {self.removed} found gone"
        return text if self.complete else f"{text}; stopped early: {self.stopped}"

    def to_dict(self) -> dict[str, object]:
        return {key: value for key, value in asdict(self).items() if key not in ("error", "seen")}


class Sweep:
    def __init__(
        self,
        *,
        latest_events: LatestEvents,
        enqueue: Callable[[Sequence[AccountEvent]], object],
        notify_days: int,
        clock: Clock = lambda: datetime.now(UTC),
        grant_updated_at: Callable[[str], str | None] | None = None,
        close_unlisted: Callable[[set[str], SweepSummary], None] | None = None,
    ) -> None:
        self._latest_events = latest_events
        self._enqueue = enqueue
        self._notify_days = notify_days
        self._clock = clock
        # A listing row without `updated_at`: the failure's age comes from the grant as the diagnosis reads it.
        self._grant_updated_at = grant_updated_at
        # After a complete listing: the broken accounts Nylas no longer lists are looked up (SPEC §3b).
        self._close_unlisted = close_unlisted

    def run(
        self, sources: Iterable[Iterator[list[ListedAccount]]], *, seconds_left: Callable[[], float] | None = None
    ) -> SweepSummary:
        """Lists every page of every source, enqueuing each page's missed failures before the next page.

        Enqueuing page by page makes progress even when a later page is refused: the next run skips what
        this one enqueued. Nylas still refusing after the retries (429, 5xx, timeouts) ends the run early;
        anything else (rejected credentials, AWS failures) also ends it, kept in `error` for the caller
        to raise once the summary is logged.
        """
        summary = SweepSummary()
        slowest = 0.0
        try:
            for source in sources:
                started = time.monotonic()
                for page in source:  # the page's Nylas call happens here, timed with the rest of it
                    summary.pages += 1
                    self._page(page, summary)
                    slowest = max(slowest, time.monotonic() - started)
                    if seconds_left is not None and seconds_left() < max(MIN_TIME_MARGIN_SECONDS, 2 * slowest):
                        summary.complete, summary.stopped = False, "the function's time is running out"
                        return summary
                    started = time.monotonic()
            if self._close_unlisted is not None:
                # Only after every page: an account missing from an unfinished listing may still be broken.
                self._close_unlisted(summary.seen, summary)
        except NylasUnavailable as error:
            summary.complete, summary.stopped = False, f"Nylas is unavailable ({error})"
        except Exception as error:  # kept in `error`, raised by the caller after logging
            summary.complete, summary.stopped, summary.error = False, f"{type(error).__name__}: {error}", error
        return summary

    def _page(self, page: Sequence[ListedAccount], summary: SweepSummary) -> None:
        now = self._clock()
        # An account listed again in the same run (offset paging over a list that changed meanwhile) is
        # handled once: its first event may not be in the history yet.
        fresh = [account for account in page if account.account_id not in summary.seen]
        summary.seen.update(account.account_id for account in fresh)
        latest = self._latest_events([account.account_id for account in fresh])
        events: list[AccountEvent] = []
        for account in fresh:
            known = latest.get(account.account_id)
            if (
                self._grant_updated_at is not None
                and account.api_version == "v3"
                and account.updated_at is None
                and (known is None or known.kind != "failure")
            ):
                # Never dated "now" alone: a first sweep must not email a customer who left months ago.
                account = replace(account, updated_at=self._grant_updated_at(account.account_id))
            event = missed_failure(account, known, now)
            summary.listed += 1
            if event is None:
                summary.already_known += 1
                continue
            events.append(event)
        if not events:
            return
        self._enqueue(events)
        summary.enqueued += len(events)
        summary.too_old_to_notify += sum(is_too_old_to_notify(e, now, self._notify_days) for e in events)
        summary.missed.extend(e.account_id for e in events[: max(0, 20 - len(summary.missed))])


def latest_events_of(
    from_states: Callable[[Sequence[str]], Mapping[str, KnownEvent]],
    latest_event: Callable[[str], KnownEvent | None],
    *,
    threads: int = LOOKUP_THREADS,
) -> LatestEvents:
    """Each account's latest event from its state item (`from_states`, a batch read); an account without one
    (never seen, or whose history was recorded before state items existed) from its events, on a few threads."""
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="history")

    def lookup(account_ids: Sequence[str]) -> Mapping[str, KnownEvent | None]:
        unique = list(dict.fromkeys(account_ids))
        found: dict[str, KnownEvent | None] = dict(from_states(unique))
        rest = [account_id for account_id in unique if account_id not in found]
        found.update(zip(rest, executor.map(latest_event, rest), strict=True))
        return found

    return lookup


@dataclass(frozen=True)
class UnlistedCloser:
    """The sweep closes what it can see (SPEC §3b): an account on the broken list that a complete listing no
    longer shows broken is looked up once; `valid` ends its episode (`recovered_by: sweep`), a 404 ends it
    as removed. Each ended account leaves the broken list, so it is not looked up again. A recovered account is
    marked on its open incidents (SPEC §4c); a removed one did not recover and is not."""

    broken_accounts: Callable[[], Iterable[tuple[str, str]]]  # (account id, api version) on the broken list
    account_state: Callable[[str, str], AccountState]  # Nylas's answer for (account id, api version)
    looked_up: Callable[..., EpisodeEnd | None]  # Recovery.account_looked_up
    versions: Callable[[], frozenset[str]]  # the API versions the listing covered (v2 only when configured)
    recovered: Callable[[AccountEvent], object] = lambda event: None  # MemberRecovery: marks its incidents

    def __call__(self, listed: set[str], summary: SweepSummary) -> None:
        run = f"sweep-{iso(datetime.now(UTC))}"  # names this run on the episodes it ends
        versions = self.versions()
        for account_id, api_version in self.broken_accounts():
            if account_id in listed or api_version not in versions:
                continue
            state = self.account_state(account_id, api_version)
            if not (state.healthy or not state.exists):
                continue
            end = self.looked_up(account_id, valid=state.healthy, gone=not state.exists, run=run)
            if end is None:
                continue
            if end.recovered:
                self.recovered(end.as_recovery_event())
                summary.recovered += 1
            else:
                summary.removed += 1


def broken_list(
    pages: Callable[[int, str | None], Any], page_size: int = 100
) -> Callable[[], Iterator[tuple[str, str]]]:
    """Every (account id, api version) on the broken list, page after page (`EventHistory.broken_accounts`)."""

    def every() -> Iterator[tuple[str, str]]:
        cursor: str | None = None
        while True:
            page = pages(page_size, cursor)
            for item in page.items:
                yield str(item["account_id"]), str(item.get("api_version") or "v3")
            if page.next is None:
                return
            cursor = page.next

    return every


@dataclass(frozen=True)
class ScheduledSweep:
    """What one SweepFunction run does: the sweep over every broken account Nylas lists now."""

    sweep: Sweep
    nylas: NylasClient
    # The reminders that came due since the last run, enqueued for the diagnosis function (SPEC §5).
    reminders: Callable[[datetime], ReminderRun] | None = None

    def run(self, *, seconds_left: Callable[[], float] | None = None) -> SweepSummary:
        return self.sweep.run(self._sources(), seconds_left=seconds_left)

    def remind(self, now: datetime) -> ReminderRun:
        return self.reminders(now) if self.reminders is not None else ReminderRun()

    def _sources(self) -> Iterator[Iterator[list[ListedAccount]]]:
        """v3 grants, then v2 accounts when the secret holds v2 credentials; lazily, so a failure is the run's."""
        yield self.nylas.invalid_grants()
        if self.nylas.v2_configured():
            yield self.nylas.broken_v2_accounts()


def build_sweep(settings: SweepSettings) -> ScheduledSweep:
    """The sweep a SweepFunction cold start builds: Nylas, the history's latest events, the queue, and the
    episodes it closes and reminds of."""
    table = Table(settings.events_table, dynamodb_client())
    history = EventHistory(table)
    episodes = EpisodeRecords(table)
    nylas = NylasClient(settings)
    queue = DiagnosisQueue(boto3.client("sqs"), settings.diagnosis_queue_url, settings.grace_seconds)
    publisher = publisher_for(settings.event_bus_name)
    recovery = Recovery(episodes, publisher)
    incidents = IncidentStore(Table(settings.incidents_table, table.client))
    reminder_queue = ReminderQueue(settings.diagnosis_queue_url)

    def account_state(account_id: str, api_version: str) -> AccountState:
        return nylas.v2_account(account_id) if api_version == "v2" else nylas.grant(account_id)

    sweep = Sweep(
        latest_events=latest_events_of(history.latest_from_states, history.latest_event),
        enqueue=queue.enqueue,
        notify_days=settings.sweep_notify_days,
        grant_updated_at=lambda grant_id: nylas.grant(grant_id).updated_at,
        close_unlisted=UnlistedCloser(
            broken_accounts=broken_list(history.broken_accounts),
            account_state=account_state,
            looked_up=recovery.account_looked_up,
            versions=lambda: frozenset({"v3", "v2"} if nylas.v2_configured() else {"v3"}),
            # No at-risk list: an account found valid is not a new consent.
            recovered=MemberRecovery(incidents, history, publisher),
        ),
    )
    return ScheduledSweep(sweep, nylas, reminders=lambda now: enqueue_due(episodes, reminder_queue.send, now))
