"""Recovery episodes (SPEC §4c): how an account's broken spell ends, what that announces, and what it counts.

An episode runs from an account's first failure after being healthy to the moment it works again. It
begins where the failure is recorded (the account's state item, `stores/events.py`), and everything
after is decided here: which verdict gives it its cause, which event ends it and how (`ENDINGS`), whether
a new grant replaces a broken one, the `AccountRecovered` event, the report's buckets and percentiles.
The decisions are pure functions; `Recovery` applies them over the episode store and the event bus, and
the consumer hands it each stored verdict and each recorded recovery event in one place.

Every write is conditional on the episode it is about (the state item's `episode_id`), so a redelivered
message, a retry or two racing writers end an episode once and count it once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from aws_lambda_powertools import Logger

from account_doctor.addresses import mask_email
from account_doctor.models import AccountEvent, Cause, Notification, Verdict, iso, parse_iso
from account_doctor.providers import connector
from account_doctor.tally import tally

logger = Logger(child=True)

RecoveredBy = Literal["reauthentication", "healed", "replaced", "sweep"]
# How an episode can end: recovered one of four ways, or the account is gone (the sweep's 404).
Ending = Literal["reauthentication", "healed", "replaced", "sweep", "removed"]
RECOVERED_BY: tuple[RecoveredBy, ...] = ("reauthentication", "healed", "replaced", "sweep")

# Nylas replays missed notifications only after a re-authentication within this long of the failure.
REPLAY_WINDOW = timedelta(hours=72)
# Upper bounds (hours) of the time-to-recover histogram's buckets (SPEC §6); beyond the last: no bound.
BUCKET_HOURS: tuple[int, ...] = (1, 2, 4, 8, 12, 24, 48, 72, 168, 336, 720)
OVER = "over"
# The customer emails an episode counts (operator alerts are not the customer's).
CUSTOMER_KINDS = frozenset({"reconnect", "admin_contact", "outage_notice", "reminder"})
# What a customer email counts as once it left: SES accepted it (or dry-run rendered it), or it arrived.
DELIVERED = frozenset({"sent", "dry_run", "delivered"})
# An episode that ends before any verdict gave it a cause (a blip within the grace period) is counted
# under the cause its verdict will have: rule 0's.
BLIP_CAUSE: Cause = "recovered"
# How often a verdict's episode update is tried again when a racing writer changed the episode first.
_ATTEMPTS = 3


# Pure decisions ---------------------------------------------------------------------------------------


def bucket_of(seconds: float) -> str:
    """The histogram bucket of a time to recover: the first upper bound it does not exceed, else `over`."""
    for bound in BUCKET_HOURS:
        if seconds <= bound * 3600:
            return str(bound)
    return OVER


def percentile_hours(histogram: Mapping[str, int], fraction: float) -> int | None:
    """Nearest-rank percentile of the histogram's times, as its bucket's upper bound in hours (None beyond
    the last bucket, or without any recovered episode)."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for bound in (*(str(b) for b in BUCKET_HOURS), OVER):
        seen += histogram.get(bound, 0)
        if seen >= rank:
            return None if bound == OVER else int(bound)
    return None  # pragma: no cover - the loop reaches `over` with every count


def data_gap(api_version: str, failed_at: str, recovered_at: str) -> tuple[bool, str | None, str | None]:
    """(data_gap, gap_from, gap_to): a v3 account back more than 72 h after it failed missed notifications
    Nylas will not replay; the app re-syncs that span through the API."""
    gap = api_version == "v3" and parse_iso(recovered_at) - parse_iso(failed_at) > REPLAY_WINDOW
    return (True, failed_at, recovered_at) if gap else (False, None, None)


def address_key(provider: str | None, email: str | None) -> str | None:
    """The key a broken account is found by when a new grant may replace it: connector and address, the
    address compared case-insensitively. None when either is unknown (nothing can replace it then)."""
    through = connector(provider)
    if not through or not email or "@" not in email:
        return None
    return f"{through}#{email.strip().lower()}"


def replaces(new: AccountEvent, broken: Episode) -> bool:
    """Whether a new grant (v2: a new account) ends a broken account's episode as `replaced` (SPEC §4c): the
    customer reconnected through a flow that made a new grant, with the same address and connector."""
    if new.trigger not in ("grant.created", "account.connected") or new.account_id == broken.account_id:
        return False
    key = address_key(new.provider, new.email)
    return key is not None and key == address_key(broken.provider, broken.email) and broken.failed_at <= new.occurred_at


def ending_of_event(event: AccountEvent) -> Ending | None:
    """How a recovery event of the account itself ends its episode: every recovery trigger the webhook
    passes on is a re-authentication (grant.updated carries the flag, grant.created the same grant id,
    v2 account.running/connected)."""
    return "reauthentication" if event.kind == "recovery" else None


def customer_emails(notifications: Iterable[Notification]) -> frozenset[str]:
    """The customer emails that went out, each named once however often a retry reports it."""
    return frozenset(
        f"{n.kind}#{n.sent_at or ''}#{n.message_id or ''}"
        for n in notifications
        if n.kind in CUSTOMER_KINDS and n.status in DELIVERED
    )


def first_email_at(emails: Iterable[str]) -> str | None:
    """When the first of these customer emails (not a reminder) went out: reminders count from it."""
    times = [key.split("#")[1] for key in emails if not key.startswith("reminder#") and key.split("#")[1]]
    return min(times) if times else None


def schedule(first_at: str | None, hours: Sequence[int]) -> list[tuple[int, str]]:
    """(sequence, due_at) of each reminder entry: hours after the episode's first customer email."""
    if first_at is None:
        return []
    start = parse_iso(first_at)
    return [(n, iso(start + timedelta(hours=h))) for n, h in enumerate(hours, start=1)]


# The episode and its end -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Episode:
    """An account's open episode, as its state item holds it."""

    account_id: str
    episode_id: str  # the id of the failure event that began it
    failed_at: str
    api_version: str = "v3"
    email: str | None = None
    provider: str | None = None
    domain: str | None = None
    cause: Cause | None = None  # from the episode's latest verdict; None before its first
    verdict_at: str | None = None  # which verdict gave the cause (its key), so an older one cannot overwrite it
    incident_id: str | None = None
    emails: frozenset[str] = frozenset()
    emailed: bool = False
    reminded: bool = False
    clicked: bool = False

    @property
    def day(self) -> str:
        """The day the episode began: the report counts it there."""
        return self.failed_at[:10]

    @property
    def counted_cause(self) -> Cause:
        return self.cause or BLIP_CAUSE


@dataclass(frozen=True)
class EpisodeEnd:
    """How and when an episode ended, and the `AccountRecovered` event it announces (SPEC §4c, §6b)."""

    episode: Episode
    ending: Ending
    recovered_at: str
    ended_by: str  # the event (or sweep run) that ended it, so a retry finds its own ending again
    replaced_by: str | None = None

    @property
    def seconds(self) -> int:
        return max(0, int((parse_iso(self.recovered_at) - parse_iso(self.episode.failed_at)).total_seconds()))

    @property
    def recovered(self) -> bool:
        """A removed account left the broken list but did not recover: it announces nothing."""
        return self.ending != "removed"

    @property
    def day(self) -> str:
        return self.recovered_at[:10]

    def detail(self) -> dict[str, Any]:
        """The `AccountRecovered` detail: every field of SPEC §4c."""
        episode = self.episode
        gap, gap_from, gap_to = data_gap(episode.api_version, episode.failed_at, self.recovered_at)
        return {
            "account_id": episode.account_id,
            "email": episode.email,
            "provider": episode.provider,
            "domain": episode.domain,
            "failed_at": episode.failed_at,
            "recovered_at": self.recovered_at,
            "time_to_recover_seconds": self.seconds,
            "recovered_by": self.ending,
            "replaced_by": self.replaced_by,
            "cause": episode.counted_cause,
            "incident_id": episode.incident_id,
            "emails_sent": len(episode.emails),
            "data_gap": gap,
            "gap_from": gap_from,
            "gap_to": gap_to,
        }

    def as_recovery_event(self) -> AccountEvent:
        """The end as the recovery its account's incidents count (SPEC §4c: an ended episode is marked on its
        incidents), for an end that came without a recovery event of the account's own."""
        episode = self.episode
        if episode.api_version == "v2":
            return AccountEvent(self.ended_by, "v2", "account.running", episode.account_id, self.recovered_at)
        return AccountEvent(self.ended_by, "v3", "grant.updated", episode.account_id, self.recovered_at)

    def counts(self) -> dict[str, int]:
        """What the end adds to the report's counters of the day the episode began."""
        if not self.recovered:
            return {"removed": 1}
        added = {"recovered": 1, f"by_{self.ending}": 1, f"ttr_{bucket_of(self.seconds)}": 1}
        if self.seconds <= REPLAY_WINDOW.total_seconds():
            added["within_72h"] = 1
        return added


def episode_end(episode: Episode, ending: Ending, at: str, ended_by: str, replaced_by: str | None = None) -> EpisodeEnd:
    # An end dated before the failure (clocks of two sources) still counts, as an instant recovery.
    return EpisodeEnd(episode, ending, max(at, episode.failed_at), ended_by, replaced_by)


# Orchestration over the store and the bus ---------------------------------------------------------------


class EpisodeStore(Protocol):
    """Where episodes and the report's aggregates are kept (`stores/episodes.py`)."""

    def current(self, account_id: str) -> Episode | None:
        """The account's open episode (a consistent read of its state item)."""
        ...

    def broken_with_address(self, key: str) -> Sequence[str]:
        """The accounts with an open episode under this connector-and-address key."""
        ...

    def first_verdict(self, verdict: Verdict, emails: frozenset[str], reminders: Sequence[tuple[int, str]]) -> bool:
        """For the verdict of the failure that began the episode, before any other: its cause, its customer
        emails and reminders, in one write. False (nothing written) when the episode is not in that state."""
        ...

    def set_cause(self, episode: Episode, verdict: Verdict) -> bool:
        """Gives the episode the verdict's cause (counting its failure the first time, moving its counts
        to the new cause afterwards); False when the episode changed meanwhile."""
        ...

    def add_emails(self, episode: Episode, emails: frozenset[str], reminders: Sequence[tuple[int, str]] = ()) -> bool:
        """Names customer emails of the episode (counting it `emailed`/`reminded` the first time); with its first
        customer email, its reminders (sequence, due_at) go into the due index."""
        ...

    def end(self, end: EpisodeEnd) -> bool:
        """Ends the episode and counts the end, once; False when it had already ended."""
        ...

    def mark_clicked(self, episode: Episode) -> bool:
        """Counts the episode `clicked` (its first click only)."""
        ...

    def ends_by(self, ended_by: str) -> Sequence[EpisodeEnd]:
        """The ends this event (or sweep run) made whose event is not known to have reached the bus."""
        ...

    def published(self, end: EpisodeEnd) -> None:
        """Notes that the end's `AccountRecovered` reached the bus."""
        ...


class RecoveryPublisher(Protocol):
    def publish_recovery(self, recovered: Mapping[str, Any]) -> None: ...


Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Recovery:
    """Applies the episode decisions: the consumer hands it each stored verdict and recorded recovery."""

    store: EpisodeStore
    publisher: RecoveryPublisher
    clock: Clock = lambda: datetime.now(UTC)
    # ReminderHours (SPEC §5): hours after the episode's first customer email; empty = no reminders.
    reminder_hours: tuple[int, ...] = ()

    def verdict_stored(self, verdict: Verdict, *, episode: Episode | None = None) -> EpisodeEnd | None:
        """A verdict of the account's open episode gives it its cause, counts its customer emails, and a
        `recovered` verdict (rule 0: Nylas says it works again) ends it as `healed` (that end is returned).
        `episode`: the account's open episode when the caller has just read it."""
        if episode is None and verdict.cause != "recovered":
            emails = customer_emails(verdict.notifications)
            if self.store.first_verdict(verdict, emails, schedule(first_email_at(emails), self.reminder_hours)):
                return None  # the usual case, in one write: the episode's first failure and first verdict
        episode = episode or self.store.current(verdict.account_id)
        if episode is None or verdict.occurred_at < episode.failed_at:
            if verdict.cause == "recovered":
                self._publish_again(verdict.event_id)
            return None  # a verdict of an episode that already ended, or of an older one
        if verdict.cause == "recovered":
            healed = episode_end(episode, "healed", verdict.diagnosed_at, ended_by=verdict.event_id)
            return healed if self._end(healed) else None
        for _ in range(_ATTEMPTS):
            if episode.cause != verdict.cause and (episode.verdict_at or "") < verdict.key:
                if not self.store.set_cause(episode, verdict):
                    episode = self.store.current(verdict.account_id)  # changed meanwhile: read it again
                    if episode is None:
                        return None
                    continue
                episode = replace(episode, cause=verdict.cause, verdict_at=verdict.key)
            emails = customer_emails(verdict.notifications)
            reminders = [] if episode.emailed else schedule(first_email_at(emails), self.reminder_hours)
            if not emails - episode.emails or self.store.add_emails(episode, emails, reminders):
                return None
            episode = self.store.current(verdict.account_id)
            if episode is None:
                return None
        return None

    def recovery_recorded(self, event: AccountEvent) -> list[EpisodeEnd]:
        """A recovery event ends its own account's episode (re-authentication) and, for a new grant, the
        episode of any broken account it replaces (those ends are returned). Safe to repeat: a redelivery ends
        nothing twice, and publishes again what an earlier attempt ended (its event may not have reached the
        bus)."""
        ending = ending_of_event(event)
        if ending is None:
            return []
        replaced: list[EpisodeEnd] = []
        done = self._publish_again(event.event_id)
        episode = None if event.account_id in done else self.store.current(event.account_id)
        if episode is not None and episode.failed_at <= event.occurred_at:
            self._end(episode_end(episode, ending, event.occurred_at, ended_by=event.event_id))
        key = address_key(event.provider, event.email)
        if key is None:
            return replaced  # a grant.created without an address replaces nothing
        for account_id in self.store.broken_with_address(key):
            if account_id == event.account_id or account_id in done:
                continue
            broken = self.store.current(account_id)
            if broken is not None and replaces(event, broken):
                end = episode_end(broken, "replaced", event.occurred_at, event.event_id, replaced_by=event.account_id)
                if self._end(end):
                    replaced.append(end)
        return replaced

    def email_clicked(self, account_id: str) -> None:
        """The customer clicked a link in one of the account's emails (EmailTracking): its open episode counts
        as clicked in the report, once."""
        episode = self.store.current(account_id)
        if episode is not None:
            self.store.mark_clicked(episode)

    def account_looked_up(self, account_id: str, *, valid: bool, gone: bool, run: str) -> EpisodeEnd | None:
        """The sweep saw an account it had not listed broken: valid ends its episode (`sweep`), gone
        (404) ends it as removed. `run` names the sweep run that ended it."""
        episode = self.store.current(account_id)
        if episode is None or not (valid or gone):
            return None
        end = episode_end(episode, "sweep" if valid else "removed", iso(self.clock()), ended_by=run)
        return end if self._end(end) else None

    def _end(self, end: EpisodeEnd) -> bool:
        if not self.store.end(end):
            return False  # another writer ended it first, and announced it
        tally.count("Recoveries", "recovered_by", end.ending)
        logger.info(
            "episode ended",
            extra={
                "recovered_by": end.ending,
                "seconds": end.seconds,
                "email": mask_email(end.episode.email),
                "replaced_by": end.replaced_by,
            },
        )
        self._publish(end)
        return True

    def _publish_again(self, ended_by: str) -> set[str]:
        """The accounts whose episode this event already ended (a retry); an event that did not reach the bus
        then is published now."""
        ends = self.store.ends_by(ended_by)
        for end in ends:
            self._publish(end)
        return {end.episode.account_id for end in ends}

    def _publish(self, end: EpisodeEnd) -> None:
        if end.recovered:
            self.publisher.publish_recovery(end.detail())
            self.store.published(end)
