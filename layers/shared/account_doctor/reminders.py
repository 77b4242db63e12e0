"""Reminders (SPEC §5): a customer whose mailbox is still broken after each of `ReminderHours` hears again, once.

When an episode's first customer email goes out, one due item per entry of ReminderHours is written beside
the episode (`stores/episodes.py`, in the transaction that counts the episode `emailed`), so a scheduled run
reads only what is due since its last run (an index keyed by due time, and a watermark), never the open
episodes. The run only enqueues each due reminder; the diagnosis function sends it through the notifier,
whose ledger entry per (failure event, reminder entry) makes two overlapping runs send one email.

Every "never" of the spec is decided here, at send time, by `why_not`: the episode ended, the account's
connector incident is open, the address bounced (hard), complained or was rejected, the cause is the
operator's only, the verdict or address is gone. A skipped reminder is counted, never an error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from account_doctor.addresses import mask_email
from account_doctor.episodes import REPLAY_WINDOW, Episode, Recovery
from account_doctor.models import Notification, Occasion, ReminderEntry, Verdict, iso, parse_iso
from account_doctor.notifications.audience import CUSTOMER_EMAIL, is_deliverable
from account_doctor.providers import connector
from account_doctor.tally import tally

logger = Logger(child=True)

# What a customer's earlier email coming back as one of these means: this address gets nothing more.
UNREACHABLE = frozenset({"rejected", "bounced", "complained"})
# A run that has not happened for a while (the sweep off, then on again) does not send reminders this late.
MAX_LATENESS = timedelta(days=7)
# How long a warm function trusts its answer to "is this connector's incident open".
INCIDENT_CACHE_SECONDS = 60.0


class InvalidReminderHours(ValueError):
    """ReminderHours is not a comma-separated list of whole hours."""


def reminder_hours(text: str) -> tuple[int, ...]:
    """`48,168` → (48, 168); empty: no reminders. Sorted, each once, every entry at least 1 hour."""
    if not text.strip():
        return ()
    try:
        hours = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise InvalidReminderHours(
            f"ReminderHours must be whole hours separated by commas, e.g. 48,168; got {text!r}"
        ) from None
    if hours[0] < 1:
        raise InvalidReminderHours(f"ReminderHours entries must be at least 1 hour; got {text!r}")
    return tuple(hours)


def is_due(due_at: str, now: datetime) -> bool:
    """Due from its time on, until MAX_LATENESS after it."""
    due = parse_iso(due_at)
    return due <= now < due + MAX_LATENESS


def deadline(api_version: str, failed_at: str, now: datetime) -> str | None:
    """The v3 deadline a reminder names while it lies ahead: reconnect before failed_at + 72 h and Nylas
    replays what was missed. None for v2, or once it has passed."""
    line = parse_iso(failed_at) + REPLAY_WINDOW
    return iso(line) if api_version == "v3" and now < line else None


def why_not(
    due: DueReminder, episode: Episode | None, verdict: Verdict | None, *, connector_incident_open: bool
) -> str | None:
    """Why this reminder must not go out (SPEC §5's "never"), or None when it should."""
    if episode is None or episode.episode_id != due.episode_id:
        return "episode_ended"
    if verdict is None or verdict.occurred_at < episode.failed_at:
        return "verdict_gone"
    if CUSTOMER_EMAIL.get(verdict.cause) is None:
        return "operator_only"
    if not is_deliverable(verdict.email):
        return "address_gone"
    if _unreachable(verdict.email or "", verdict.notifications):
        return "address_unreachable"
    if connector_incident_open:
        return "connector_incident_open"
    return None


def _unreachable(address: str, notifications: Iterable[Notification]) -> bool:
    return any(n.to.lower() == address.lower() and n.status in UNREACHABLE for n in notifications)


@dataclass(frozen=True)
class DueReminder:
    """One reminder entry of one episode, as the due index holds it and the queue carries it."""

    account_id: str
    episode_id: str
    sequence: int
    due_at: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, body: str) -> DueReminder:
        value = json.loads(body)
        if not isinstance(value, dict):
            raise ValueError("a reminder message is a JSON object")
        return cls(
            account_id=str(value["account_id"]),
            episode_id=str(value["episode_id"]),
            sequence=int(value["sequence"]),
            due_at=str(value["due_at"]),
        )


# The scheduled run --------------------------------------------------------------------------------------


class DueIndex(Protocol):
    def due(self, after: str, until: str) -> tuple[list[DueReminder], int]:
        """The reminders due in (after, until], and the items read."""
        ...

    def watermark(self) -> str | None:
        """Until when the previous run looked."""
        ...

    def advance_watermark(self, until: str) -> None: ...


@dataclass
class ReminderRun:
    """One run's summary: found due, enqueued, and the items it read."""

    due: int = 0
    enqueued: int = 0
    items_read: int = 0


def enqueue_due(index: DueIndex, send: Callable[[DueReminder], object], now: datetime) -> ReminderRun:
    """Enqueues every reminder due since the last run (O(due) items read), then moves the watermark.

    Enqueued before the watermark moves: a run cut short enqueues its reminders again next time, and the
    ledger keeps that to one email each.
    """
    until = iso(now)
    after = index.watermark() or iso(now - MAX_LATENESS)
    found, read = index.due(after, until)
    run = ReminderRun(due=len(found), items_read=read + 1)
    for reminder in found:
        if is_due(reminder.due_at, now):
            send(reminder)
            run.enqueued += 1
    index.advance_watermark(until)
    return run


# Sending, in the diagnosis function --------------------------------------------------------------------


class ReminderNotifier(Protocol):
    def notify(self, verdict: Verdict, occasion: Occasion | None = None) -> list[Notification]: ...


@dataclass(frozen=True)
class Reminders:
    """Sends one due reminder, or counts why not."""

    recovery: Recovery
    latest_verdict: Callable[[str], Verdict | None]
    connector_incident_open: Callable[[str], bool]
    notifier: ReminderNotifier
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _incidents: dict[str, tuple[float, bool]] = field(default_factory=dict, repr=False, compare=False)

    def send(self, due: DueReminder) -> str:
        """'sent', or the reason it was skipped."""
        episode = self.recovery.store.current(due.account_id)
        verdict = self.latest_verdict(due.account_id) if episode is not None else None
        through = connector(verdict.provider) if verdict is not None else None
        skipped = why_not(
            due,
            episode,
            verdict,
            connector_incident_open=through is not None and verdict is not None and self._incident_open(through),
        )
        log: dict[str, Any] = {"sequence": due.sequence, "due_at": due.due_at}
        if skipped is not None or episode is None or verdict is None:
            tally.count("RemindersSkipped", "reason", skipped or "episode_ended")
            logger.info("reminder skipped", extra={**log, "reason": skipped})
            return skipped or "episode_ended"
        now = self.clock()
        entry = ReminderEntry(
            sequence=due.sequence,
            failed_at=episode.failed_at,
            deadline=deadline(verdict.api_version, episode.failed_at, now),
        )
        before = _reminders_out(verdict.notifications)
        notifications = self.notifier.notify(verdict, Occasion(reminder=entry))
        self.recovery.verdict_stored(replace(verdict, notifications=notifications), episode=episode)
        sent = _reminders_out(notifications) > before
        if sent:
            tally.count("RemindersSent")
        logger.info("reminder sent" if sent else "reminder not sent", extra={**log, "email": mask_email(verdict.email)})
        return "sent" if sent else "not_sent"

    def _incident_open(self, through: str) -> bool:
        """Asked once a minute per connector: a warm function sending a run's reminders reads the pointer
        once, not once per reminder (a minute late is well inside "within an hour of its being due")."""
        now = time.monotonic()
        known = self._incidents.get(through)
        if known is None or now - known[0] > INCIDENT_CACHE_SECONDS:
            known = (now, self.connector_incident_open(through))
            self._incidents[through] = known
        return known[1]


def _reminders_out(notifications: Iterable[Notification]) -> int:
    return sum(1 for n in notifications if n.kind == "reminder" and n.status in ("sent", "dry_run", "delivered"))
