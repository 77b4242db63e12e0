"""Episodes and the recovery report's aggregates (EventsTable), every count an atomic ADD made once.

Items (partition `account_id`, sort `sk`):
- `state` (the account's state item, `stores/events.py`): the open episode, `episode_*`, begun by the first
  failure after healthy; `broken_address` (connector#address) while it is open, indexed by BrokenByAddress
  so a new grant finds the broken account it replaces with one key query; `last_episode`, how the latest
  ended one went, written by its end, so the account's answer shows both with the one read of its state.
- `#recovery#{shard}` / `{day}`: per cause (`{cause}:{counter}` attributes), what the episodes that began that
  day came to (failures, recovered by each way, removed, emailed, reminded, clicked, within 72 h, a
  time-to-recover histogram `ttr_{bucket}`) and `ended`, the episodes of that cause that ended that day.
  `open` beside them counts the open episodes. Sharded by account: an outage's thousands of ends a second
  spread over SHARDS partitions, and the report reads SHARDS × days items however many accounts there are
  (one item per day and shard, every cause on it: a small application reads as many as a large one).
- `#reminders#{shard}` / `{due_at}#{account_id}#{sequence}`: the due index of reminders (SPEC §5), one item
  per entry of ReminderHours, written with the episode's first customer email; `#reminders#watermark` holds
  until when the last scheduled run looked, so a run reads only what came due since.
- `#ended#{ended_by}` / `{account_id}`: what one event ended (kept a while) and whether its `AccountRecovered`
  reached the bus, so a retry publishes again one that did not, and only that one.

Each change of an episode is one transaction, conditioned on the state item still holding that episode
(and its cause or flags as read): a redelivered message or a racing writer fails the condition and counts
nothing.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from account_doctor.episodes import Episode, EpisodeEnd
from account_doctor.models import Verdict, parse_iso
from account_doctor.reminders import DueReminder
from account_doctor.stores.dynamo import ConditionsFailed, Table

STATE_SK = "state"
SHARDS = 4
OPEN_SK = "open"
_REPORT = "#recovery#"
_ENDED = "#ended#"
_DUE = "#reminders#"
_WATERMARK = {"account_id": "#reminders#watermark", "sk": "watermark"}
# Kept past the report's longest span (90 days) with room to compare a year.
AGGREGATE_DAYS = 400
ENDED_RECORD_DAYS = 14
# How often an episode change cancelled only by concurrent writers of the same counters is tried.
_CONFLICT_RETRIES = 5
_EPISODE_ATTRIBUTES = (
    "episode_id",
    "episode_failed_at",
    "episode_cause",
    "episode_verdict_at",
    "episode_incident_id",
    "episode_emails",
    "episode_emailed",
    "episode_reminded",
    "episode_clicked",
    "broken_address",
)


def shard_of(account_id: str) -> int:
    return hashlib.sha256(account_id.encode()).digest()[0] % SHARDS


def episode_of(state: Mapping[str, Any] | None) -> Episode | None:
    """The open episode a state item holds, if any."""
    if not state or not state.get("episode_id"):
        return None
    return Episode(
        account_id=str(state["account_id"]),
        episode_id=str(state["episode_id"]),
        failed_at=str(state["episode_failed_at"]),
        api_version=str(state.get("api_version") or "v3"),
        email=state.get("email"),
        provider=state.get("provider"),
        domain=state.get("domain"),
        cause=state.get("episode_cause"),
        verdict_at=state.get("episode_verdict_at"),
        incident_id=state.get("episode_incident_id"),
        emails=frozenset(state.get("episode_emails") or ()),
        emailed=bool(state.get("episode_emailed")),
        reminded=bool(state.get("episode_reminded")),
        clicked=bool(state.get("episode_clicked")),
    )


def episodes_of(state: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The account's episodes as the read API answers them (SPEC §4c): the open one, then the last ended."""
    shown: list[dict[str, Any]] = []
    episode = episode_of(state)
    if episode is not None:
        shown.append({**_shown(episode), "recovered_at": None, "recovered_by": None, "replaced_by": None})
    if state and state.get("last_episode"):
        last = dict(state["last_episode"])
        # DynamoDB hands its numbers back as Decimal; the answer is JSON.
        shown.append({**last, "emails_sent": int(last["emails_sent"]), "reminders_sent": int(last["reminders_sent"])})
    return shown


def _shown(episode: Episode) -> dict[str, Any]:
    return {
        "failed_at": episode.failed_at,
        "cause": episode.cause,
        "incident_id": episode.incident_id,
        # Customer emails of the episode, reminders included (SPEC §4c `emails_sent`).
        "emails_sent": len(episode.emails),
        "reminders_sent": sum(1 for e in episode.emails if e.startswith("reminder#")),
    }


def _last_episode(end: EpisodeEnd) -> dict[str, Any]:
    """What the state item keeps of an ended episode: its open fields and how it ended."""
    return {
        **_shown(end.episode),
        "cause": end.episode.counted_cause,
        "recovered_at": end.recovered_at,
        "recovered_by": end.ending,
        "replaced_by": end.replaced_by,
    }


def _seconds_from_now(days: int) -> int:
    return int((datetime.now(UTC) + timedelta(days=days)).timestamp())


class EpisodeRecords:
    """The episode store over the events table (implements `episodes.EpisodeStore`)."""

    def __init__(self, table: Table) -> None:
        self._table = table

    # Reading ----------------------------------------------------------------------------------

    def current(self, account_id: str) -> Episode | None:
        return episode_of(self._table.get({"account_id": account_id, "sk": STATE_SK}))

    def broken_with_address(self, key: str) -> Sequence[str]:
        items = self._table.query_all(
            IndexName="BrokenByAddress",
            KeyConditionExpression="broken_address = :key",
            ExpressionAttributeValues={":key": key},
        )
        return [str(item["account_id"]) for item in items]

    def ends_by(self, ended_by: str) -> Sequence[EpisodeEnd]:
        items = self._table.query_all(
            KeyConditionExpression="account_id = :key",
            ExpressionAttributeValues={":key": _ENDED + ended_by},
            ConsistentRead=True,
        )
        return [_end_of(item) for item in items if not item.get("published")]

    def published(self, end: EpisodeEnd) -> None:
        self._table.update(
            {"account_id": _ENDED + end.ended_by, "sk": end.episode.account_id},
            "SET published = :true",
            values={":true": True},
        )

    def aggregates(self, since_day: str, until_day: str) -> tuple[list[dict[str, Any]], int]:
        """Every day's aggregate item (each shard's) in [since_day, until_day], and items read."""
        return self._every_shard(_REPORT, since_day, until_day)

    def open_episodes(self) -> int:
        """How many episodes are open now (diagnosed and not ended): the `open` counter of every shard."""
        items = self._table.get_many([{"account_id": f"{_REPORT}{shard}", "sk": OPEN_SK} for shard in range(SHARDS)])
        return sum(int(item.get("open", 0)) for item in items)

    # Writing ----------------------------------------------------------------------------------

    def first_verdict(self, verdict: Verdict, emails: frozenset[str], reminders: Sequence[tuple[int, str]]) -> bool:
        """One transaction for the usual case, so a customer-emailed failure costs the episode one call: the
        verdict is of the failure that began the episode (its event id is the episode's) and the first."""
        episode = Episode(verdict.account_id, episode_id=verdict.event_id, failed_at=verdict.occurred_at)
        values: dict[str, Any] = {":id": episode.episode_id, ":cause": verdict.cause, ":verdict_at": verdict.key}
        sets = ["episode_cause = :cause", "episode_verdict_at = :verdict_at"]
        condition = "episode_id = :id AND episode_failed_at = :failed_at AND attribute_not_exists(episode_cause)"
        values[":failed_at"] = episode.failed_at
        if verdict.incident_id:
            values[":incident"] = verdict.incident_id
            sets.append("episode_incident_id = :incident")
        counted: Counter[tuple[str, str]] = Counter({(verdict.cause, "failures"): 1})
        expression_add = ""
        due: list[dict[str, Any]] = []
        if emails:
            values[":emails"], values[":true"] = set(emails), True
            expression_add = " ADD episode_emails :emails"
            if any(not e.startswith("reminder#") for e in emails):
                sets.append("episode_emailed = :true")
                counted[(verdict.cause, "emailed")] += 1
                due = [self._put_due(episode, n, at) for n, at in reminders]
        state = self._state_update(episode.account_id, "SET " + ", ".join(sets) + expression_add, condition, values)
        counts = replace(episode, cause=verdict.cause)
        return self._transact(
            [
                state,
                self._add(report_key(episode.account_id, OPEN_SK), {"open": 1}),
                *self._report_updates(counts, counted),
                *due,
            ]
        )

    def set_cause(self, episode: Episode, verdict: Verdict) -> bool:
        values: dict[str, Any] = {
            ":id": episode.episode_id,
            ":cause": verdict.cause,
            ":verdict_at": verdict.key,
        }
        expression = "SET episode_cause = :cause, episode_verdict_at = :verdict_at"
        if verdict.incident_id:
            values[":incident"] = verdict.incident_id
            expression += ", episode_incident_id = :incident"
        moved: Counter[tuple[str, str]] = Counter()
        if episode.cause is None:
            condition = "episode_id = :id AND attribute_not_exists(episode_cause)"
            moved[(verdict.cause, "failures")] += 1
            opened = [self._add(report_key(episode.account_id, OPEN_SK), {"open": 1})]
        else:
            # A later verdict of the episode names another cause (a revision, a second failure): its counts
            # move with it, so the report shows each episode under its latest cause.
            condition = "episode_id = :id AND episode_cause = :old AND episode_verdict_at < :verdict_at"
            values[":old"] = episode.cause
            for name, counted in (("failures", True), *self._flags(episode)):
                if counted:
                    moved[(episode.cause, name)] -= 1
                    moved[(verdict.cause, name)] += 1
            opened = []
        state = self._state_update(episode.account_id, expression, condition, values)
        return self._transact([state, *opened, *self._report_updates(episode, moved)])

    def add_emails(self, episode: Episode, emails: frozenset[str], reminders: Sequence[tuple[int, str]] = ()) -> bool:
        values: dict[str, Any] = {":id": episode.episode_id, ":emails": set(emails)}
        expression = "ADD episode_emails :emails"
        condition = "episode_id = :id"
        counted: Counter[tuple[str, str]] = Counter()
        flags = []
        if not episode.emailed and any(not e.startswith("reminder#") for e in emails):
            flags.append("episode_emailed")
            counted[(episode.counted_cause, "emailed")] += 1
        if not episode.reminded and any(e.startswith("reminder#") for e in emails):
            flags.append("episode_reminded")
            counted[(episode.counted_cause, "reminded")] += 1
        if flags:
            values[":true"] = True
            expression += " SET " + ", ".join(f"{flag} = :true" for flag in flags)
            condition += "".join(f" AND attribute_not_exists({flag})" for flag in flags)
        due = [self._put_due(episode, n, at) for n, at in reminders] if "episode_emailed" in flags else []
        state = self._state_update(episode.account_id, expression, condition, values)
        return self._transact([state, *self._report_updates(episode, counted), *due])

    def _put_due(self, episode: Episode, sequence: int, due_at: str) -> dict[str, Any]:
        """A reminder entry in the due index, written once with the episode's first customer email."""
        item = {
            "account_id": f"{_DUE}{shard_of(episode.account_id)}",
            "sk": f"{due_at}#{episode.account_id}#{sequence}",
            "reminder_for": episode.account_id,
            "episode_id": episode.episode_id,
            "sequence": sequence,
            "due_at": due_at,
            "expires_at": int((parse_iso(due_at) + timedelta(days=ENDED_RECORD_DAYS)).timestamp()),
        }
        return self._table.put_write(item)

    # The due index (reminders) ----------------------------------------------------------------

    def due(self, after: str, until: str) -> tuple[list[DueReminder], int]:
        """Reminders due in (after, until], every shard: reads the due ones only."""
        items, read = self._every_shard(_DUE, after + "#~", until + "#~")
        found = [
            DueReminder(str(i["reminder_for"]), str(i["episode_id"]), int(i["sequence"]), str(i["due_at"]))
            for i in items
        ]
        return sorted(found, key=lambda r: r.due_at), read

    def _every_shard(self, prefix: str, start: str, end: str) -> tuple[list[dict[str, Any]], int]:
        """The items of every shard of a sharded partition with a sort key in [start, end], and items read."""
        found: list[dict[str, Any]] = []
        read = 0
        for shard in range(SHARDS):
            cursor: str | None = None
            while True:
                page = self._table.query(
                    cursor=cursor,
                    limit=1000,
                    KeyConditionExpression="account_id = :key AND sk BETWEEN :start AND :end",
                    ExpressionAttributeValues={":key": f"{prefix}{shard}", ":start": start, ":end": end},
                )
                found.extend(page.items)
                read += page.read
                if page.next is None:
                    break
                cursor = page.next
        return found, read

    def watermark(self) -> str | None:
        item = self._table.get(_WATERMARK)
        return str(item["until"]) if item else None

    def advance_watermark(self, until: str) -> None:
        """Moves forward only: a slower overlapping run never sets it back."""
        self._table.update(
            _WATERMARK,
            "SET #until = :until",
            names={"#until": "until"},
            values={":until": until},
            condition="attribute_not_exists(#until) OR #until < :until",
        )

    def mark_clicked(self, episode: Episode) -> bool:
        """The episode's first click on one of its emails (SES click tracking), counted once."""
        if episode.clicked:
            return False
        state = self._state_update(
            episode.account_id,
            "SET episode_clicked = :true",
            "episode_id = :id AND attribute_not_exists(episode_clicked)",
            {":id": episode.episode_id, ":true": True},
        )
        return self._transact([state, *self._report_updates(episode, Counter({(episode.counted_cause, "clicked"): 1}))])

    def end(self, end: EpisodeEnd) -> bool:
        episode = end.episode
        removed = list(_EPISODE_ATTRIBUTES)
        if end.ending != "reauthentication":
            # The account's latest event is still a failure, yet it works (or is gone): off the broken list.
            removed += ["broken", "since"]
        state = self._state_update(
            episode.account_id,
            "REMOVE " + ", ".join(removed) + " SET last_episode = :last",
            "episode_id = :id",
            {":id": episode.episode_id, ":last": _last_episode(end)},
        )
        counted: Counter[tuple[str, str]] = Counter()
        for name, added in end.counts().items():
            counted[(episode.counted_cause, name)] += added
        if episode.cause is None:
            counted[(episode.counted_cause, "failures")] += 1  # a blip: counted when it ends
        ended_on: Counter[tuple[str, str]] = Counter()
        if end.recovered:
            ended_on[(episode.counted_cause, "ended")] += 1
        writes = [
            state,
            self._put_ended(end),
            *self._report_updates(episode, counted, ended_on=(end.day, ended_on)),
        ]
        if episode.cause is not None:
            writes.append(self._add(report_key(episode.account_id, OPEN_SK), {"open": -1}))
        return self._transact(writes)

    # Items ------------------------------------------------------------------------------------

    def _transact(self, writes: Sequence[Mapping[str, Any]]) -> bool:
        """One episode change: False (nothing written) when its conditions no longer hold, a racing writer or a
        redelivery having changed the episode first. Conflicts with racing writers of a counter are retried."""
        try:
            self._table.transact(writes, conflicts=_CONFLICT_RETRIES)
        except ConditionsFailed:
            return False
        return True

    @staticmethod
    def _flags(episode: Episode) -> tuple[tuple[str, bool], ...]:
        return (("emailed", episode.emailed), ("reminded", episode.reminded), ("clicked", episode.clicked))

    def _state_update(
        self, account_id: str, expression: str, condition: str, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        return self._table.update_write(
            {"account_id": account_id, "sk": STATE_SK}, expression, condition=condition, values=values
        )

    def _put_ended(self, end: EpisodeEnd) -> dict[str, Any]:
        episode = asdict(end.episode)
        episode["emails"] = sorted(end.episode.emails)
        item = {
            "account_id": _ENDED + end.ended_by,
            "sk": end.episode.account_id,
            "episode": episode,
            "ending": end.ending,
            "recovered_at": end.recovered_at,
            "replaced_by": end.replaced_by,
            "expires_at": _seconds_from_now(ENDED_RECORD_DAYS),
        }
        return self._table.put_write(item)

    def _report_updates(
        self,
        episode: Episode,
        counted: Counter[tuple[str, str]],
        *,
        ended_on: tuple[str, Counter[tuple[str, str]]] | None = None,
    ) -> list[dict[str, Any]]:
        """One ADD per aggregate item touched (a transaction may not name an item twice)."""
        per_item: dict[str, dict[str, int]] = {}
        for (cause, name), added in counted.items():
            if added:
                per_item.setdefault(episode.day, {})[counter_name(cause, name)] = added
        if ended_on is not None:
            day, counts = ended_on
            for (cause, name), added in counts.items():
                per_item.setdefault(day, {})[counter_name(cause, name)] = added
        return [self._add(report_key(episode.account_id, sk), adds) for sk, adds in sorted(per_item.items())]

    def _add(self, key: dict[str, str], adds: Mapping[str, int]) -> dict[str, Any]:
        names = {f"#a{n}": name for n, name in enumerate(adds)}
        values: dict[str, Any] = {f":a{n}": added for n, added in enumerate(adds.values())}
        values[":expires"] = _seconds_from_now(AGGREGATE_DAYS)
        expression = "ADD " + ", ".join(f"#a{n} :a{n}" for n in range(len(adds))) + " SET expires_at = :expires"
        return self._table.update_write(key, expression, names=names, values=values)


def counter_name(cause: str, name: str) -> str:
    """The attribute of one counter of one cause on a day's aggregate item: `oauth_revoked:failures`."""
    return f"{cause}:{name}"


def report_key(account_id: str, sk: str) -> dict[str, str]:
    """The aggregate item of this account's shard."""
    return {"account_id": f"{_REPORT}{shard_of(account_id)}", "sk": sk}


def _end_of(item: Mapping[str, Any]) -> EpisodeEnd:
    stored = dict(item["episode"])
    stored["emails"] = frozenset(stored.get("emails") or ())
    episode = Episode(**stored)
    return EpisodeEnd(
        episode=episode,
        ending=item["ending"],
        recovered_at=str(item["recovered_at"]),
        ended_by=str(item["account_id"])[len(_ENDED) :],
        replaced_by=item.get("replaced_by"),
    )
