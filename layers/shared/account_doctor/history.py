"""The event history and the verdicts in DynamoDB: key-based reads and idempotent writes only, never a Scan.

A boto3 *client* (thread-safe, unlike resources), because a batch's records are processed
on several threads at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from account_doctor.accounts import email_domain, is_free_mail
from account_doctor.models import AccountEvent, EventKind, Notification, Verdict, event_kind, parse_iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

# Events are kept longer than any window that reads them: 30 days for "recurring", DomainWindowDays
# for clusters, and 90 days + for the Microsoft token rule's last re-authentication.
EVENT_RETENTION_DAYS = 180

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class StoredEvent:
    """One account event as the history holds it."""

    event_id: str
    account_id: str
    trigger: str
    kind: EventKind
    occurred_at: str


@dataclass(frozen=True)
class DomainCluster:
    """A domain's failures between two instants, as (account id, occurred_at), and what the query read."""

    failures: tuple[tuple[str, str], ...]
    items_read: int

    @property
    def accounts(self) -> frozenset[str]:
        return frozenset(account for account, _ in self.failures)

    def accounts_between(self, start: str, end: str) -> frozenset[str]:
        return frozenset(account for account, at in self.failures if start <= at <= end)


def sort_key(occurred_at: str, event_id: str) -> str:
    """Events and verdicts sort by time, and the event id makes the key unique and deterministic."""
    return f"{occurred_at}#{event_id}"


class History:
    def __init__(self, events_table: str, verdicts_table: str, *, client: DynamoDBClient | None = None) -> None:
        self._events_table = events_table
        self._verdicts_table = verdicts_table
        self._client: DynamoDBClient = client or boto3.client("dynamodb")

    # Events -----------------------------------------------------------------------------------

    def put_event(self, event: AccountEvent) -> bool:
        """Stores the event once; False when it was already there (a redelivered message)."""
        kind = event.kind
        domain = email_domain(event.email)
        expires = parse_iso(event.occurred_at) + timedelta(days=EVENT_RETENTION_DAYS)
        item: dict[str, Any] = {
            "account_id": event.account_id,
            "sk": sort_key(event.occurred_at, event.event_id),
            "event_id": event.event_id,
            "api_version": event.api_version,
            "trigger": event.trigger,
            "kind": kind,
            "occurred_at": event.occurred_at,
            "provider": event.provider,
            "email": event.email,
            "grant_updated_at": event.grant_updated_at,
            "domain": domain,
            "expires_at": int(expires.timestamp()),
        }
        # Sparse index: only organisation-domain failures carry failure_domain, so a cluster
        # query reads that domain's failures and nothing else.
        if kind == "failure" and domain and not is_free_mail(domain):
            item["failure_domain"] = domain
        return self._put_once(self._events_table, item)

    def account_events(self, account_id: str, since: str) -> list[StoredEvent]:
        """This account's events from `since` on, oldest first."""
        items = self._query(
            TableName=self._events_table,
            KeyConditionExpression="account_id = :account AND sk >= :since",
            ExpressionAttributeValues=_values({":account": account_id, ":since": since}),
            ConsistentRead=True,
        )
        return [_stored_event(item) for item, _ in items]

    def latest_event(self, account_id: str) -> StoredEvent | None:
        items = self._query(
            TableName=self._events_table,
            KeyConditionExpression="account_id = :account",
            ExpressionAttributeValues=_values({":account": account_id}),
            ScanIndexForward=False,
            Limit=1,
        )
        for item, _ in items:
            return _stored_event(item)
        return None

    def recovery_after(self, account_id: str, occurred_at: str) -> str | None:
        """When this account first recovered after `occurred_at`, if it has."""
        for event in self.account_events(account_id, since=occurred_at):
            if event.kind == "recovery" and event.occurred_at > occurred_at:
                return event.occurred_at
        return None

    def domain_failures(self, domain: str, start: str, end: str) -> DomainCluster:
        """Distinct accounts of `domain` that failed in [start, end], reading only those failures."""
        failures: list[tuple[str, str]] = []
        read = 0
        for item, scanned in self._query(
            TableName=self._events_table,
            IndexName="DomainFailures",
            KeyConditionExpression="failure_domain = :domain AND occurred_at BETWEEN :start AND :end",
            ExpressionAttributeValues=_values({":domain": domain, ":start": start, ":end": end}),
            ProjectionExpression="account_id, occurred_at",
        ):
            failures.append((str(item["account_id"]), str(item["occurred_at"])))
            read += scanned
        return DomainCluster(failures=tuple(failures), items_read=read)

    # Verdicts ---------------------------------------------------------------------------------

    def put_verdict(self, verdict: Verdict) -> bool:
        """Stores the verdict unless this event already has one; False when it had."""
        return self._put_once(self._verdicts_table, _verdict_item(verdict))

    def get_verdict(self, account_id: str, occurred_at: str, event_id: str) -> Verdict | None:
        response = self._client.get_item(
            TableName=self._verdicts_table,
            Key=_values({"account_id": account_id, "sk": sort_key(occurred_at, event_id)}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _verdict(_plain(item)) if item else None

    def set_notifications(self, verdict: Verdict, notifications: list[Notification]) -> None:
        self._client.update_item(
            TableName=self._verdicts_table,
            Key=_values({"account_id": verdict.account_id, "sk": sort_key(verdict.occurred_at, verdict.event_id)}),
            UpdateExpression="SET notifications = :notifications",
            ConditionExpression="attribute_exists(sk)",
            ExpressionAttributeValues=_values({":notifications": [asdict(n) for n in notifications]}),
        )

    def account_verdicts(self, account_id: str, limit: int = 50) -> list[Verdict]:
        """This account's verdicts, newest first."""
        items = self._query(
            TableName=self._verdicts_table,
            KeyConditionExpression="account_id = :account",
            ExpressionAttributeValues=_values({":account": account_id}),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_verdict(item) for item, _ in _take(items, limit)]

    def domain_verdicts(self, domain: str, since: str = "", limit: int = 50) -> list[Verdict]:
        """The domain's latest verdicts (of events from `since` on), newest first (GSI ByDomain)."""
        condition, values = "#domain = :domain", {":domain": domain}
        if since:
            condition, values = condition + " AND sk >= :since", {**values, ":since": since}
        items = self._query(
            TableName=self._verdicts_table,
            IndexName="ByDomain",
            KeyConditionExpression=condition,
            ExpressionAttributeNames={"#domain": "domain"},
            ExpressionAttributeValues=_values(values),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_verdict(item) for item, _ in _take(items, limit)]

    # Plumbing ---------------------------------------------------------------------------------

    def _put_once(self, table: str, item: dict[str, Any]) -> bool:
        try:
            self._client.put_item(
                TableName=table,
                Item={key: _serializer.serialize(value) for key, value in item.items() if value is not None},
                ConditionExpression="attribute_not_exists(sk)",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _query(self, **request: Any) -> Iterator[tuple[dict[str, Any], int]]:
        """Every item of a paginated query, each with how many items its page read (on its first item)."""
        while True:
            page = self._client.query(**request)
            scanned = int(page.get("ScannedCount", len(page.get("Items", []))))
            for index, item in enumerate(page.get("Items", [])):
                yield _plain(item), scanned if index == 0 else 0
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            request["ExclusiveStartKey"] = last


def _stored_event(item: Mapping[str, Any]) -> StoredEvent:
    return StoredEvent(
        event_id=str(item["event_id"]),
        account_id=str(item["account_id"]),
        trigger=str(item["trigger"]),
        kind=event_kind(str(item["trigger"])),
        occurred_at=str(item["occurred_at"]),
    )


def _take(items: Iterator[tuple[dict[str, Any], int]], limit: int) -> Iterator[tuple[dict[str, Any], int]]:
    for count, entry in enumerate(items):
        if count >= limit:
            return
        yield entry


def _values(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in values.items()}


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _undecimal(_deserializer.deserialize(value)) for key, value in item.items()}


def _undecimal(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _undecimal(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_undecimal(inner) for inner in value]
    return value


def _verdict_item(verdict: Verdict) -> dict[str, Any]:
    item = verdict.to_dict()
    item["sk"] = sort_key(verdict.occurred_at, verdict.event_id)
    # None values inside nested maps are fine for DynamoDB; top-level ones are dropped by _put_once
    # (the ByDomain key above all: a verdict without a domain is simply not in that index).
    return item


_VERDICT_FIELDS = frozenset(Verdict.__dataclass_fields__)


def _verdict(item: Mapping[str, Any]) -> Verdict:
    data = {key: item.get(key) for key in _VERDICT_FIELDS}
    data["actions"] = list(item.get("actions") or [])
    data["steps"] = list(item.get("steps") or [])
    data["notifications"] = list(item.get("notifications") or [])
    data["evidence"] = dict(item.get("evidence") or {})
    data["recurring"] = bool(item.get("recurring"))
    return Verdict.from_dict(data)
