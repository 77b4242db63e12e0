"""The never-twice ledger (NotificationsTable): what was sent for which event, and each account's cooldown.

Items (pk, TTL on expires_at):
- `email#{event_id}#{audience}`: the intent to send, written with a condition before calling SES (status
  `pending`, a short lease), then its outcome (`sent`, `dry_run` or `rejected`) with the message id. Keyed by
  audience rather than kind so that an event re-diagnosed differently on a retry still emails each person once.
- `cooldown#{account_id}`: the event that used the account's customer email for the cooldown. Claimed in the
  same transaction as the intent, so a customer email costs one write before SES and one after.
- `message#{message_id}`: which notification an SES message is, for the delivery feedback (bounces,
  complaints, deliveries) SES publishes through the configuration set.
- `address#{address}` (lower-cased, no TTL): an address SES reported as a hard bounce or a complaint; every
  customer email's intent checks it in its transaction, so none goes to it again.
The event that owns a cooldown passes it again, so a retry is not blocked by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from account_doctor.models import DeliveredNotification, Notification, NotificationKind, iso
from account_doctor.stores.dynamo import ConditionsFailed, Table

# A sender holds an intent this long; longer than DiagnosisFunction's timeout (60 s), shorter than
# the queue's visibility timeout (360 s), so a crashed attempt's retry is never blocked by it.
LEASE_SECONDS = 120
# Intent records outlive every redelivery: queue retention (4 days) plus the DLQ's (14 days).
EMAIL_RECORD_DAYS = 30
FINAL_STATUSES = frozenset({"sent", "dry_run", "rejected", "delivered", "bounced", "complained"})

# "unreachable": SES reported the address as a hard bounce (the suppression list's included) or a complaint.
Begun = Literal["go", "cooling_down", "unreachable"]


class NotificationInProgress(RuntimeError):
    """Another invocation is sending this email right now; the record is retried later and finds it sent."""


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


class NotificationLedger:
    def __init__(self, table: Table, *, namespace: str = "", verdicts: Table | None = None) -> None:
        self._table = table
        # Delivery feedback also updates the notification on its verdict.
        self._verdicts = verdicts
        # dry-run records live apart, so rehearsing never holds back a real email.
        self._namespace = namespace

    def _key(self, *parts: str) -> dict[str, str]:
        return {"pk": self._namespace + "#".join(parts)}

    def sent(self, event_id: str, audience: str) -> Notification | None:
        """What became of this audience's email for this event, if it went out (or was refused for good)."""
        item = self._table.get(self._key("email", event_id, audience))
        return _notification(item) if item and item.get("status") in FINAL_STATUSES else None

    def begin(
        self,
        event_id: str,
        audience: str,
        kind: NotificationKind,
        to: str,
        now: datetime,
        *,
        cooldown: tuple[str, int] | None = None,
    ) -> Notification | Begun:
        """Records the intent to send (and claims the account's cooldown): "go", or why not.

        Returns the notification when an earlier attempt already sent it; "cooling_down" when another event
        emailed this customer within the cooldown. Raises NotificationInProgress while another invocation
        holds the lease.
        """
        intent = {
            **self._key("email", event_id, audience),
            "status": "pending",
            "kind": kind,
            "to": to,
            "event_id": event_id,
            "lease_until": _seconds(now) + LEASE_SECONDS,
            "created_at": iso(now),
            "expires_at": _seconds(now + timedelta(days=EMAIL_RECORD_DAYS)),
        }
        writes: list[dict[str, Any]] = [
            self._table.put_write(
                intent,
                condition="attribute_not_exists(pk) OR (#status = :pending AND lease_until < :now)",
                values={":pending": "pending", ":now": _seconds(now)},
                names={"#status": "status"},
            )
        ]
        if cooldown is not None and cooldown[1] > 0:
            account_id, hours = cooldown
            claim = {
                **self._key("cooldown", account_id),
                "event_id": event_id,
                "claimed_at": iso(now),
                "expires_at": _seconds(now + timedelta(hours=hours)),
            }
            # TTL deletes lazily: an expired item still exists until DynamoDB gets round to it.
            writes.append(
                self._table.put_write(
                    claim,
                    condition="attribute_not_exists(pk) OR expires_at <= :now OR event_id = :event_id",
                    values={":now": _seconds(now), ":event_id": event_id},
                )
            )
        blocked: int | None = None
        if audience.startswith("customer"):
            # Checked in the same transaction: a customer's email costs no extra call to honour the block.
            blocked = len(writes)
            writes.append(self._table.check(self._address_key(to), "attribute_not_exists(pk)"))
        try:
            self._table.transact(writes)
        except ConditionsFailed as refused:
            if 0 in refused.failed:
                already = self.sent(event_id, audience)
                if already is not None:
                    return already
                raise NotificationInProgress(
                    f"the {kind} email of event {event_id} is being sent by another invocation; retry later"
                ) from refused
            if blocked is not None and blocked in refused.failed:
                return "unreachable"
            return "cooling_down"
        return "go"

    def _address_key(self, address: str) -> dict[str, str]:
        return self._key("address", address.strip().lower())

    def block_address(self, address: str, reason: str | None, at: str) -> None:
        """No customer email goes to this address again (SPEC §5): SES reported a hard bounce, the suppression
        list's `OnAccountSuppressionList` included, or a complaint. Kept until an operator deletes the item."""
        self._table.update(
            self._address_key(address),
            "SET blocked_at = if_not_exists(blocked_at, :at), reason = :reason",
            values={":at": at, ":reason": reason or "hard bounce or complaint"},
        )

    def complete(
        self,
        event_id: str,
        audience: str,
        notification: Notification,
        also: Sequence[dict[str, Any]] = (),
        *,
        verdict: tuple[str, str, int] | None = None,
    ) -> None:
        """Records what became of the email, the SES message's pointer, and the caller's writes, at once."""
        writes: list[dict[str, Any]] = [
            self._table.update_write(
                self._key("email", event_id, audience),
                "SET #status = :status, message_id = :message_id, sent_at = :sent_at, reason = :reason "
                "REMOVE lease_until",
                names={"#status": "status"},
                values={
                    ":status": notification.status,
                    ":message_id": notification.message_id or "",
                    ":sent_at": notification.sent_at or "",
                    ":reason": notification.reason or "",
                },
            )
        ]
        if notification.message_id and notification.status == "sent":
            writes.append(
                self._table.put_write(
                    {
                        **self._key("message", notification.message_id),
                        "event_id": event_id,
                        "audience": audience,
                        "kind": notification.kind,
                        "to": notification.to,
                        # Where the notification sits on its verdict: (account_id, sort key, position).
                        "account_id": verdict[0] if verdict else None,
                        "verdict_sk": verdict[1] if verdict else None,
                        "position": verdict[2] if verdict else None,
                        "expires_at": _seconds(datetime.fromisoformat(notification.sent_at.replace("Z", "+00:00")))
                        + EMAIL_RECORD_DAYS * 86400
                        if notification.sent_at
                        else None,
                    }
                )
            )
        self._table.transact([*writes, *also])

    def give_back(self, event_id: str, audience: str, *, cooldown_account: str | None = None) -> None:
        """After a failed send: the lease goes back (the retry need not wait), and so does the cooldown."""
        self._table.update(
            self._key("email", event_id, audience),
            "SET lease_until = :zero",
            values={":zero": 0, ":pending": "pending"},
            names={"#status": "status"},
            condition="#status = :pending",
        )
        if cooldown_account:
            self.free_cooldown(cooldown_account, event_id)

    def free_cooldown(self, account_id: str, event_id: str) -> None:
        """A rejected email did not reach the customer: the cooldown stays free for the next genuine failure."""
        self._table.delete(
            self._key("cooldown", account_id), condition="event_id = :event_id", values={":event_id": event_id}
        )

    # --- SES delivery feedback (account_doctor.delivery.DeliveryLedger) ---

    def record_delivery(
        self, message_id: str, status: str, reason: str | None, at: str
    ) -> DeliveredNotification | None:
        """Records SES's word on a sent email, on the ledger and on its verdict; `delivered` never hides a bounce."""
        item = self.message(message_id)
        if item is None:
            return None
        current = item.get("delivery_status")
        if (current in ("bounced", "complained", "rejected") and status == "delivered") or current == status:
            return _delivered(message_id, item, str(current), item.get("delivery_reason"))
        key = self._key("message", message_id)
        writes: list[dict[str, Any]] = [
            self._table.update_write(
                key,
                "SET delivery_status = :status, delivery_reason = :reason, delivery_at = :at",
                values={":status": status, ":reason": reason or "", ":at": at},
            ),
            self._table.update_write(
                self._key("email", str(item["event_id"]), str(item["audience"])),
                "SET #status = :status, reason = :reason",
                names={"#status": "status"},
                values={":status": status, ":reason": reason or ""},
            ),
        ]
        if self._verdicts is not None and item.get("verdict_sk") and item.get("position") is not None:
            position = int(item["position"])
            writes.append(
                self._verdicts.update_write(
                    {"account_id": item["account_id"], "sk": item["verdict_sk"]},
                    f"SET notifications[{position}].#status = :status, notifications[{position}].reason = :reason",
                    condition=f"notifications[{position}].message_id = :message_id",
                    names={"#status": "status"},
                    values={":status": status, ":reason": reason or "", ":message_id": message_id},
                )
            )
        try:
            self._table.transact(writes)
        except ConditionsFailed:
            # The verdict no longer lists this message where it was (rewritten since): record on the ledger only.
            self._table.transact(writes[:2])
        return _delivered(message_id, item, status, reason)

    def record_engagement(
        self, message_id: str, engagement: Literal["opened", "clicked"], at: str
    ) -> tuple[DeliveredNotification, bool] | None:
        """Records the first open or click of a sent email (`opened_at`/`clicked_at`) on the ledger and on its
        verdict's notification, the status left as delivery made it; whether this was the first. None when no
        notification of ours has that SES message id."""
        item = self.message(message_id)
        if item is None:
            return None
        found = _delivered(message_id, item, str(item.get("delivery_status") or "sent"), item.get("delivery_reason"))
        field_name = f"{engagement}_at"
        writes: list[dict[str, Any]] = [
            self._table.update_write(
                self._key("message", message_id),
                f"SET {field_name} = :at",
                condition=f"attribute_not_exists({field_name})",
                values={":at": at},
            )
        ]
        if self._verdicts is not None and item.get("verdict_sk") and item.get("position") is not None:
            position = int(item["position"])
            writes.append(
                self._verdicts.update_write(
                    {"account_id": item["account_id"], "sk": item["verdict_sk"]},
                    f"SET notifications[{position}].{field_name} = :at",
                    condition=f"notifications[{position}].message_id = :message_id",
                    values={":at": at, ":message_id": message_id},
                )
            )
        try:
            self._table.transact(writes)
        except ConditionsFailed as refused:
            if 0 in refused.failed:
                return found, False  # opened or clicked before: SES reports every open and click
            # The verdict no longer lists this message where it was (rewritten since): the ledger only.
            self._table.transact(writes[:1])
        return found, True

    def claim_delivery_alert(self, message_id: str, at: str) -> bool:
        return (
            self._table.update(
                self._key("message", message_id),
                "SET alert_claimed_at = :at",
                values={":at": at},
                condition="attribute_exists(pk) AND attribute_not_exists(alert_claimed_at)",
            )
            is not None
        )

    def release_delivery_alert(self, message_id: str) -> None:
        self._table.update(
            self._key("message", message_id), "REMOVE alert_claimed_at", condition="attribute_exists(pk)"
        )

    def message(self, message_id: str) -> dict[str, Any] | None:
        """Which event and audience an SES message belongs to (SES delivery feedback)."""
        return self._table.get(self._key("message", message_id))


def _notification(item: dict[str, Any]) -> Notification:
    return Notification(
        kind=item["kind"],
        to=item["to"],
        status=item["status"],
        message_id=item.get("message_id") or None,
        sent_at=item.get("sent_at") or None,
        reason=item.get("reason") or None,
    )


def _delivered(message_id: str, item: dict[str, Any], status: str, reason: str | None) -> DeliveredNotification:
    return DeliveredNotification(
        message_id=message_id,
        event_id=str(item["event_id"]),
        account_id=str(item.get("account_id") or ""),
        kind=item["kind"],
        to=str(item["to"]),
        status=cast(Any, status),
        reason=reason or None,
    )
