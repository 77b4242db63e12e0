"""The never-twice ledger in NotificationsTable: what was sent for which event, cooldowns and domain incidents.

Items (pk, TTL on expires_at):
- `email#{event_id}#{audience}`: the intent to send, written with a conditional put before calling SES
  (status `pending`, a short lease) and marked `sent` with the message id afterwards. Keyed by audience
  rather than kind so that an event re-diagnosed differently on a retry still emails each person once.
- `cooldown#{account_id}`: the event that used the account's customer email for the cooldown.
- `incident#{cause}#{domain}`: the event that alerted the operator for a domain incident; every later
  failure of the incident pushes its end further out.
The event that owns a cooldown or an incident passes its gate again, so a retry is not blocked by itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from account_doctor.models import Notification, NotificationKind, iso
from account_doctor.notifications.audience import Audience

# A sender holds an intent this long; longer than DiagnosisFunction's timeout (60 s), shorter than
# the queue's visibility timeout (360 s), so a crashed attempt's retry is never blocked by it.
LEASE_SECONDS = 120
# Intent records outlive every redelivery: queue retention (4 days) plus the DLQ's (14 days).
EMAIL_RECORD_DAYS = 30


class NotificationInProgress(RuntimeError):
    """Another invocation is sending this email right now; the record is retried later and finds it sent."""


def _is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


class NotificationLedger:
    def __init__(self, table_name: str, client: Any, *, namespace: str = "") -> None:
        self._table = table_name
        self._client = client
        # dry-run records live apart, so rehearsing never holds back a real email.
        self._namespace = namespace

    def _key(self, *parts: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": self._namespace + "#".join(parts)}}

    # --- the per-event intent records ---

    def sent(self, event_id: str, audience: Audience) -> Notification | None:
        """What was already sent to this audience for this event, if anything."""
        item = self._client.get_item(
            TableName=self._table, Key=self._key("email", event_id, audience), ConsistentRead=True
        ).get("Item")
        return _notification(item) if item and item.get("status", {}).get("S") == "sent" else None

    def begin(
        self, event_id: str, audience: Audience, kind: NotificationKind, to: str, now: datetime
    ) -> Notification | None:
        """Records the intent to send and takes its lease. Returns the notification if it turns out sent.

        Raises NotificationInProgress while another invocation holds the lease.
        """
        key = self._key("email", event_id, audience)
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **key,
                    "status": {"S": "pending"},
                    "kind": {"S": kind},
                    "to": {"S": to},
                    "event_id": {"S": event_id},
                    "lease_until": {"N": str(_epoch(now) + LEASE_SECONDS)},
                    "created_at": {"S": iso(now)},
                    "expires_at": {"N": str(_epoch(now + timedelta(days=EMAIL_RECORD_DAYS)))},
                },
                ConditionExpression="attribute_not_exists(pk) OR (#status = :pending AND lease_until < :now)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":pending": {"S": "pending"}, ":now": {"N": str(_epoch(now))}},
            )
        except ClientError as error:
            if not _is_conditional_failure(error):
                raise
            already = self.sent(event_id, audience)
            if already is not None:
                return already
            raise NotificationInProgress(
                f"the {kind} email of event {event_id} is being sent by another invocation; retry later"
            ) from error
        return None

    def mark_sent(
        self, event_id: str, audience: Audience, kind: NotificationKind, to: str, message_id: str, now: datetime
    ) -> Notification:
        self._client.update_item(
            TableName=self._table,
            Key=self._key("email", event_id, audience),
            UpdateExpression="SET #status = :sent, message_id = :message_id, sent_at = :sent_at REMOVE lease_until",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":sent": {"S": "sent"},
                ":message_id": {"S": message_id},
                ":sent_at": {"S": iso(now)},
            },
        )
        return Notification(kind=kind, to=to, message_id=message_id, sent_at=iso(now))

    def release(self, event_id: str, audience: Audience) -> None:
        """Gives the lease back after a failed send, so the retry need not wait for it to lapse."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key("email", event_id, audience),
                UpdateExpression="SET lease_until = :zero",
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":zero": {"N": "0"}, ":pending": {"S": "pending"}},
            )
        except ClientError as error:
            if not _is_conditional_failure(error):
                raise

    # --- the gates: cooldowns and domain incidents ---

    def claim_cooldown(self, account_id: str, event_id: str, now: datetime, hours: int) -> bool:
        """True when this event may send the account's customer email (no other event did within `hours`)."""
        if hours <= 0:
            return True
        return self._claim(self._key("cooldown", account_id), event_id, now, now + timedelta(hours=hours))

    def claim_incident(self, cause: str, domain: str, event_id: str, now: datetime, window: timedelta) -> bool:
        """True when this event opens a new incident of the domain (its operator alert goes out).

        An incident lasts while failures keep coming less than `window` apart: each one extends it.
        """
        key = self._key("incident", cause, domain)
        if self._claim(key, event_id, now, now + window):
            return True
        try:
            self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET expires_at = :until, last_event_id = :event_id",
                ConditionExpression="expires_at < :until",
                ExpressionAttributeValues={
                    ":until": {"N": str(_epoch(now + window))},
                    ":event_id": {"S": event_id},
                },
            )
        except ClientError as error:
            if not _is_conditional_failure(error):
                raise
        return False

    def _claim(self, key: dict[str, dict[str, str]], event_id: str, now: datetime, until: datetime) -> bool:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **key,
                    "event_id": {"S": event_id},
                    "claimed_at": {"S": iso(now)},
                    "expires_at": {"N": str(_epoch(until))},
                },
                # TTL deletes lazily: an expired item still exists until DynamoDB gets round to it.
                ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now OR event_id = :event_id",
                ExpressionAttributeValues={":now": {"N": str(_epoch(now))}, ":event_id": {"S": event_id}},
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True


def _notification(item: dict[str, Any]) -> Notification:
    return Notification(
        kind=item["kind"]["S"],
        to=item["to"]["S"],
        message_id=item.get("message_id", {}).get("S"),
        sent_at=item.get("sent_at", {}).get("S"),
    )
