"""What the sweep remembers between runs about its inputs and clocks (EventsTable, SPEC §3d).

Two items, under keys no grant id can take (`#` is not in Nylas ids):
- `#watch#feed` / `feed`: the webhook feed's last known status (healthy | unhealthy), when it changed, and the
  latest check (its status, `unknown` included, its time and destinations) for `GET /health`.
- `#watch#client_secret` / `microsoft`: the expiry date watched and the nearest alert threshold already sent.
A change is claimed with a conditional write on what was read, so two overlapping runs alert once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from account_doctor.stores.dynamo import Table

_FEED = {"account_id": "#watch#feed", "sk": "feed"}
_SECRET = {"account_id": "#watch#client_secret", "sk": "microsoft"}


@dataclass(frozen=True)
class StoredFeed:
    status: str | None  # the last known healthy | unhealthy; None before the first known check
    checked_at: str | None
    check_status: str | None  # the latest check's status, unknown included
    destinations: list[dict[str, Any]]


class WatchStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def feed(self) -> StoredFeed | None:
        item = self._table.get(_FEED)
        if item is None:
            return None
        return StoredFeed(
            status=item.get("status"),
            checked_at=item.get("checked_at"),
            check_status=item.get("check_status"),
            destinations=list(item.get("destinations") or []),
        )

    def record_feed_check(
        self,
        *,
        previous: str | None,
        status: str,
        checked_at: str,
        destinations: list[dict[str, Any]] | None,
        changed: bool,
    ) -> bool:
        """Records a check. With `changed`, also the new status, on the condition that the stored one is still
        `previous`: False when another run claimed the change first (it sends the alert, this one does not)."""
        values: dict[str, Any] = {":checked_at": checked_at, ":check_status": status}
        sets = ["checked_at = :checked_at", "check_status = :check_status"]
        names: dict[str, str] = {}
        if destinations is not None:
            sets.append("destinations = :destinations")
            values[":destinations"] = destinations
        condition = None
        if changed:
            names["#status"] = "status"
            sets += ["#status = :status", "changed_at = :checked_at"]
            values[":status"] = status
            if previous is None:
                condition = "attribute_not_exists(#status)"
            else:
                condition = "#status = :previous"
                values[":previous"] = previous
        updated = self._table.update(
            _FEED, "SET " + ", ".join(sets), values=values, names=names or None, condition=condition
        )
        return updated is not None

    def undo_feed_change(self, *, status: str, previous: str | None) -> None:
        """Gives a claimed change back (its alert could not be sent), so the next run alerts again."""
        if previous is None:
            self._table.update(
                _FEED, "REMOVE #status", names={"#status": "status"}, values={":s": status}, condition="#status = :s"
            )
        else:
            self._table.update(
                _FEED,
                "SET #status = :previous",
                names={"#status": "status"},
                values={":previous": previous, ":s": status},
                condition="#status = :s",
            )

    def claim_secret_alert(self, expires_on: str, threshold: int) -> bool:
        """Claims the alert of `threshold` days before `expires_on`: False when it, or a nearer one, was sent.
        A new expiry date (the secret was rotated) starts its thresholds afresh."""
        updated = self._table.update(
            _SECRET,
            "SET expires_on = :expires_on, alerted_days = :threshold",
            values={":expires_on": expires_on, ":threshold": threshold},
            condition="attribute_not_exists(alerted_days) OR expires_on <> :expires_on OR alerted_days > :threshold",
        )
        return updated is not None

    def undo_secret_alert(self, expires_on: str, threshold: int, before: int | None) -> None:
        condition = "expires_on = :expires_on AND alerted_days = :threshold"
        values: dict[str, Any] = {":expires_on": expires_on, ":threshold": threshold}
        if before is None:
            self._table.update(_SECRET, "REMOVE alerted_days", values=values, condition=condition)
        else:
            self._table.update(
                _SECRET, "SET alerted_days = :before", values={**values, ":before": before}, condition=condition
            )

    def secret_alerted(self) -> tuple[str, int] | None:
        item = self._table.get(_SECRET)
        if not item or "alerted_days" not in item:
            return None
        return str(item["expires_on"]), int(item["alerted_days"])
