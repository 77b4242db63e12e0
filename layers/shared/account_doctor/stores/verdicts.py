"""The verdicts (VerdictsTable): one per diagnosed failure event, plus its revisions, newest first per account.

Items: partition `account_id`, sort `{occurred_at}#{event_id}` (a revision: `…#rev#{diagnosed_at}`, so it
sorts right after what it revises and comes first when read newest first). The ByDomain index projects only
what a domain's verdict list shows, so a verdict write copies a few hundred bytes onto the domain's key
instead of the whole verdict: 1,000 member verdicts a second of one domain stay within one index partition's
write capacity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from account_doctor.models import Notification, Verdict, event_key, revision_key
from account_doctor.stores.dynamo import ConditionsFailed, Page, Table

# What GET /domains/{domain} shows of each verdict (and so what the ByDomain index projects).
DOMAIN_VERDICT_FIELDS = (
    "event_id",
    "account_id",
    "occurred_at",
    "diagnosed_at",
    "email",
    "cause",
    "confidence",
    "summary",
    "incident_id",
    "superseded",
)
_VERDICT_FIELDS = frozenset(Verdict.__dataclass_fields__)


class ChangedMeanwhile(Exception):
    """A condition a verdict was stored on (e.g. that no incident opened for its keys) no longer held: nothing
    was written, and the verdict must be made again from what is there now."""


class VerdictStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def put(self, verdict: Verdict, *, provided: Sequence[dict[str, Any]] = ()) -> bool:
        """Stores the verdict unless this event (or this revision) already has one; False when it had.

        `provided`: ConditionCheck items of other tables that must hold too, in one transaction; when one
        does not, nothing is written and ChangedMeanwhile is raised.
        """
        if not provided:
            return self._table.put_once({**verdict.to_dict(), "sk": verdict.key}, key="sk")
        put = self._table.put_write({**verdict.to_dict(), "sk": verdict.key}, condition="attribute_not_exists(sk)")
        try:
            self._table.transact([put, *provided])
        except ConditionsFailed as refused:
            if 0 in refused.failed:
                return False
            raise ChangedMeanwhile(f"event {verdict.event_id}: {verdict.cause} no longer holds") from None
        return True

    def latest_for_event(self, account_id: str, occurred_at: str, event_id: str) -> Verdict | None:
        """The event's current verdict: its latest revision, or the original."""
        # The original's key up to its revisions' (`…#rev#{diagnosed_at}`; "~" sorts after any timestamp).
        # Not begins_with: that also matches another event of the same second whose id extends this one
        # (evt-1, evt-10), which sorts after this event's revisions and would come back first.
        page = self._table.query(
            KeyConditionExpression="account_id = :account AND sk BETWEEN :event AND :last_revision",
            ExpressionAttributeValues={
                ":account": account_id,
                ":event": event_key(occurred_at, event_id),
                ":last_revision": revision_key(occurred_at, event_id, "~"),
            },
            ScanIndexForward=False,
            ConsistentRead=True,
        )
        mine = [item for item in page.items if item.get("event_id") == event_id]
        return verdict_from(mine[0]) if mine else None

    def latest(self, account_id: str) -> Verdict | None:
        newest = self.newest(account_id, 1)
        return newest[0] if newest else None

    def newest(self, account_id: str, count: int) -> list[Verdict]:
        """The account's `count` newest verdicts (a revision before what it revises)."""
        return page_verdicts(self.account_verdicts(account_id, limit=count))

    def announced(self, verdict: Verdict) -> bool:
        """Whether the verdict was put on the bus (`mark_announced` after a successful publish)."""
        # A key query (the function's grant reads verdicts by Query only).
        page = self._table.query(
            KeyConditionExpression="account_id = :account AND sk = :sk",
            ExpressionAttributeValues={":account": verdict.account_id, ":sk": verdict.key},
            ConsistentRead=True,
        )
        return any(item.get("announced") for item in page.items)

    def mark_announced(self, verdict: Verdict) -> None:
        self._table.update(
            {"account_id": verdict.account_id, "sk": verdict.key},
            "SET announced = :yes",
            values={":yes": True},
            condition="attribute_exists(sk)",
        )

    def set_notifications(self, verdict: Verdict, notifications: list[Notification]) -> None:
        self._table.update(
            {"account_id": verdict.account_id, "sk": verdict.key},
            "SET notifications = :notifications",
            values={":notifications": [asdict(n) for n in notifications]},
            condition="attribute_exists(sk)",
        )

    def notifications_write(self, verdict: Verdict, notifications: list[Notification]) -> dict[str, Any]:
        """set_notifications as one write of a transaction (the ledger records an email and its verdict at once)."""
        return self._table.update_write(
            {"account_id": verdict.account_id, "sk": verdict.key},
            "SET notifications = :notifications",
            values={":notifications": [asdict(n) for n in notifications]},
            condition="attribute_exists(sk)",
        )

    def revise(self, earlier: Verdict, revision: Verdict) -> bool:
        """Stores the revision and marks the earlier verdict superseded; False when this revision exists."""
        stored = self.put(revision)
        self._table.update(
            {"account_id": earlier.account_id, "sk": earlier.key},
            "SET superseded = :yes",
            values={":yes": True},
            condition="attribute_exists(sk)",
        )
        return stored

    def account_verdicts(self, account_id: str, limit: int, cursor: str | None = None) -> Page:
        """This account's verdicts, newest first (a revision before what it revises)."""
        return self._table.newest_first("account_id", account_id, limit=limit, cursor=cursor)

    def domain_verdicts(self, domain: str, limit: int, cursor: str | None = None) -> Page:
        """The domain's verdicts, newest first, as ByDomain projects them (DOMAIN_VERDICT_FIELDS)."""
        return self._table.newest_first("domain", domain, index="ByDomain", limit=limit, cursor=cursor)


def page_verdicts(page: Page) -> list[Verdict]:
    return [verdict_from(item) for item in page.items]


def verdict_from(item: dict[str, Any]) -> Verdict:
    data = {key: item.get(key) for key in _VERDICT_FIELDS}
    data["actions"] = list(item.get("actions") or [])
    data["steps"] = list(item.get("steps") or [])
    data["notifications"] = list(item.get("notifications") or [])
    data["evidence"] = dict(item.get("evidence") or {})
    data["recurring"] = bool(item.get("recurring"))
    data["superseded"] = bool(item.get("superseded"))
    return Verdict.from_dict(data)
