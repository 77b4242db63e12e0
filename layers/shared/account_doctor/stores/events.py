"""The event history (EventsTable): every account event, each account's current state, and connector counters.

Items (partition `account_id`, sort `sk`):
- `{occurred_at}#{event_id}`: one account event, written once. Organisation-domain failures carry
  `failure_domain` and failures of a known connector carry `failure_connector`: two sparse indexes
  (DomainFailures, ConnectorFailures) answer "who else failed around then" reading only those failures.
- `state`: the account's current state (latest event, email, provider). A broken account also carries
  `broken` = one of BROKEN_SHARDS shard keys, indexed by BrokenAccounts (sorted by `since`): the "what is
  broken right now" list is a key query, and 1,000 failures a second spread over several index partitions.
- account_id `#connector#{connector}`, sk `{hour}`: the connector's failures per hour (atomic ADD), the
  baseline of rule 1b.
An event, its state change and its hourly count are written in one transaction, so a redelivered event
(whose put fails its condition) changes nothing and is never counted twice.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from botocore.exceptions import ClientError

from account_doctor.addresses import email_domain, is_free_mail
from account_doctor.models import AccountEvent, EventKind, event_kind, iso, parse_iso
from account_doctor.providers import connector
from account_doctor.stores.dynamo import InvalidCursor, Page, Table, decode_token, encode_cursor, encode_token, to_item

# Events are kept longer than any window that reads them: 30 days for "recurring", DomainWindowDays
# for clusters, and 90 days + for the Microsoft token rule's last re-authentication.
EVENT_RETENTION_DAYS = 180
STATE_SK = "state"
BROKEN_SHARDS = 8
_COUNTER_PREFIX = "#connector#"


@dataclass(frozen=True)
class StoredEvent:
    """One account event as the history holds it."""

    event_id: str
    account_id: str
    trigger: str
    kind: EventKind
    occurred_at: str
    email: str | None = None
    provider: str | None = None
    api_version: str | None = None
    grant_updated_at: str | None = None


@dataclass(frozen=True)
class Cluster:
    """Failures of a domain or connector between two instants: (account id, occurred_at, domain, email), items read."""

    failures: tuple[tuple[str, str, str | None, str | None], ...]
    items_read: int

    @property
    def accounts(self) -> frozenset[str]:
        return frozenset(account for account, _, _, _ in self.failures)

    def accounts_between(self, start: str, end: str) -> frozenset[str]:
        return frozenset(account for account, at, _, _ in self.failures if start <= at <= end)

    def emails(self) -> dict[str, str | None]:
        return {account: email for account, _, _, email in self.failures}

    def domains_between(self, start: str, end: str) -> frozenset[str]:
        return frozenset(domain for _, at, domain, _ in self.failures if start <= at <= end and domain)


def sort_key(occurred_at: str, event_id: str) -> str:
    """Events and verdicts sort by time, and the event id makes the key unique and deterministic."""
    return f"{occurred_at}#{event_id}"


def hour_of(instant: str) -> str:
    return instant[:13]  # 2026-11-22T08


def broken_shard(account_id: str) -> str:
    digest = hashlib.sha256(account_id.encode()).digest()
    return f"broken#{digest[0] % BROKEN_SHARDS}"


class EventHistory:
    def __init__(self, table: Table) -> None:
        self._table = table

    # Writing ---------------------------------------------------------------------------------

    def put_event(self, event: AccountEvent) -> bool:
        """Stores the event once, with the account's new state and the connector's hourly count; False if known."""
        kind = event.kind
        domain = email_domain(event.email)
        # Kept EVENT_RETENTION_DAYS from when it was recorded: a failure the sweep finds long after it happened
        # must not expire at once (and be found again at every sweep).
        recorded_from = max(parse_iso(event.occurred_at), datetime.now(UTC))
        expires = int((recorded_from + timedelta(days=EVENT_RETENTION_DAYS)).timestamp())
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
            "source": event.source,
            "domain": domain,
            "expires_at": expires,
        }
        failure_connector = connector(event.provider) if kind == "failure" else None
        if kind == "failure" and domain and not is_free_mail(domain):
            item["failure_domain"] = domain
        if failure_connector:
            item["failure_connector"] = failure_connector
        writes: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table.name,
                    "Item": to_item(item),
                    "ConditionExpression": "attribute_not_exists(sk)",
                }
            }
        ]
        if failure_connector:
            writes.append(self._hourly_count(failure_connector, event.occurred_at, expires))
        state = self._state_update(event, domain)
        try:
            self._table.client.transact_write_items(TransactItems=cast(Any, [*writes, state]))
        except ClientError as error:
            reasons = [r.get("Code") for r in cast(Any, error.response).get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False  # already recorded: a redelivery
            if not reasons or reasons[-1] != "ConditionalCheckFailed" or any(r != "None" for r in reasons[:-1]):
                # E.g. TransactionConflict with another failure counted in the same hour: nothing was written,
                # and the record is retried; writing the event without its state would leave the account's
                # state (and the broken list) behind for good.
                raise
            # Only the state refused: a newer event is already the account's latest (an out-of-order delivery).
            self._table.client.transact_write_items(TransactItems=cast(Any, writes))
        return True

    def _hourly_count(self, failure_connector: str, occurred_at: str, expires: int) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self._table.name,
                "Key": to_item({"account_id": _COUNTER_PREFIX + failure_connector, "sk": hour_of(occurred_at)}),
                "UpdateExpression": "ADD failures :one SET expires_at = :expires",
                "ExpressionAttributeValues": to_item({":one": 1, ":expires": expires}),
            }
        }

    def _state_update(self, event: AccountEvent, domain: str | None) -> dict[str, Any]:
        """The account's state follows its latest event; a late older event leaves it (the condition)."""
        broken = event.kind == "failure"
        values: dict[str, Any] = {
            ":at": event.occurred_at,
            ":trigger": event.trigger,
            ":kind": event.kind,
            ":event_id": event.event_id,
            ":api_version": event.api_version,
        }
        expression = (
            "SET latest_at = :at, latest_trigger = :trigger, latest_kind = :kind, latest_event_id = :event_id, "
            "api_version = :api_version"
        )
        names: dict[str, str] = {}
        for name, value in (("email", event.email), ("provider", event.provider), ("domain", domain)):
            if value:
                values[f":{name}"] = value
                names[f"#{name}"] = name  # `domain` is a reserved word
                expression += f", #{name} = :{name}"
        if broken:
            values[":shard"] = broken_shard(event.account_id)
            # A failure while already broken keeps the time it broke.
            expression += ", broken = :shard, since = if_not_exists(since, :at)"
        else:
            expression += " REMOVE broken, since"
        return {
            "Update": {
                "TableName": self._table.name,
                "Key": to_item({"account_id": event.account_id, "sk": STATE_SK}),
                "UpdateExpression": expression,
                "ConditionExpression": "attribute_not_exists(latest_at) OR latest_at <= :at",
                "ExpressionAttributeValues": to_item(values),
                **({"ExpressionAttributeNames": names} if names else {}),
            }
        }

    # Reading one account ----------------------------------------------------------------------

    def account_events(self, account_id: str, since: str) -> list[StoredEvent]:
        """This account's events from `since` on, oldest first."""
        items = self._table.query_all(
            KeyConditionExpression="account_id = :account AND sk BETWEEN :since AND :end",
            ExpressionAttributeValues={":account": account_id, ":since": since, ":end": "9"},
            ConsistentRead=True,
        )
        return [_stored_event(item) for item in items]

    def latest_event(self, account_id: str) -> StoredEvent | None:
        page = self._table.query(
            limit=1,
            KeyConditionExpression="account_id = :account AND sk < :state",
            ExpressionAttributeValues={":account": account_id, ":state": STATE_SK},
            ScanIndexForward=False,
        )
        return _stored_event(page.items[0]) if page.items else None

    def latest_failure(self, account_id: str) -> StoredEvent | None:
        """The account's latest failure event (the one the CLI re-diagnoses)."""
        for item in self._table.query_all(
            KeyConditionExpression="account_id = :account AND sk < :state",
            ExpressionAttributeValues={":account": account_id, ":state": STATE_SK},
            ScanIndexForward=False,
        ):
            event = _stored_event(item)
            if event.kind == "failure":
                return event
        return None

    def state(self, account_id: str) -> dict[str, Any] | None:
        return self._table.get({"account_id": account_id, "sk": STATE_SK}, consistent=False)

    def recovery_after(self, account_id: str, occurred_at: str) -> str | None:
        """When this account first recovered after `occurred_at`, if it has."""
        for event in self.account_events(account_id, since=occurred_at):
            if event.kind == "recovery" and event.occurred_at > occurred_at:
                return event.occurred_at
        return None

    # Reading many accounts --------------------------------------------------------------------

    def domain_failures(self, domain: str, start: str, end: str) -> Cluster:
        """Failures of an organisation domain in [start, end], reading only those failures."""
        return self._cluster("DomainFailures", "failure_domain", domain, start, end)

    def connector_failures(self, failure_connector: str, start: str, end: str) -> Cluster:
        """Failures through one connector in [start, end] (rule 1b), reading only those failures."""
        return self._cluster("ConnectorFailures", "failure_connector", failure_connector, start, end)

    def _cluster(self, index: str, attribute: str, key: str, start: str, end: str) -> Cluster:
        failures: list[tuple[str, str, str | None, str | None]] = []
        read = 0
        cursor: str | None = None
        while True:
            page = self._table.query(
                cursor=cursor,
                limit=1000,
                IndexName=index,
                KeyConditionExpression=f"{attribute} = :key AND occurred_at BETWEEN :start AND :end",
                ExpressionAttributeValues={":key": key, ":start": start, ":end": end},
            )
            failures.extend(
                (str(i["account_id"]), str(i["occurred_at"]), i.get("domain"), i.get("email")) for i in page.items
            )
            read += page.read
            if page.next is None:
                return Cluster(tuple(failures), read)
            cursor = page.next

    def usual_connector_failures(self, failure_connector: str, start: str, end: str, burst: timedelta) -> float:
        """The connector's usual failures in a window as long as `burst`, from its hourly counts in [start, end).

        Hours that overlap the current burst are left out by the caller's `end`, so a burst never counts
        towards its own baseline. No history: 0.
        """
        page = self._table.query(
            KeyConditionExpression="account_id = :key AND sk BETWEEN :start AND :end",
            ExpressionAttributeValues={
                ":key": _COUNTER_PREFIX + failure_connector,
                ":start": hour_of(start),
                ":end": hour_of(end),
            },
        )
        counted = [int(item.get("failures", 0)) for item in page.items if item["sk"] < hour_of(end)]
        hours = max((parse_iso(end) - parse_iso(start)) / timedelta(hours=1), 1.0)
        return sum(counted) / hours * (burst / timedelta(hours=1))

    def broken_accounts(self, limit: int, cursor: str | None = None) -> Page:
        """Accounts whose latest event is a failure, newest first: each shard's page, merged by `since`."""
        positions = unpack_positions(cursor) if cursor else dict.fromkeys(_SHARDS)
        pages = {
            shard: self._table.query(
                limit=limit,
                cursor=start,
                IndexName="BrokenAccounts",
                KeyConditionExpression="broken = :shard",
                ExpressionAttributeValues={":shard": f"broken#{shard}"},
                ScanIndexForward=False,
            )
            for shard, start in positions.items()
            if start != _DONE
        }
        merged = heapq.merge(
            *([(shard, item) for item in page.items] for shard, page in pages.items()),
            key=lambda pair: str(pair[1].get("since", "")),
            reverse=True,
        )
        taken = list(itertools.islice(merged, limit))
        following = dict(positions)
        for shard, page in pages.items():
            mine = [item for owner, item in taken if owner == shard]
            if len(mine) == len(page.items):
                following[shard] = page.next or _DONE
            elif mine:
                last = mine[-1]
                following[shard] = encode_cursor(to_item({k: last[k] for k in ("account_id", "sk", "broken", "since")}))
        more = any(position != _DONE for position in following.values())
        return Page(
            [item for _, item in taken],
            pack_positions(following) if more else None,
            sum(p.read for p in pages.values()),
        )


_SHARDS = tuple(str(shard) for shard in range(BROKEN_SHARDS))
_DONE = "done"


def pack_positions(positions: dict[str, str | None]) -> str:
    """One cursor for a list merged from several shards: where each shard's next page starts."""
    return encode_token(positions)


def unpack_positions(cursor: str) -> dict[str, str | None]:
    positions = decode_token(cursor)
    if not isinstance(positions, dict) or set(positions) != set(_SHARDS):
        raise InvalidCursor("next is not a cursor of this list; pass the `next` value of the previous page")
    return {shard: value if isinstance(value, str) else None for shard, value in positions.items()}


def _stored_event(item: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        event_id=str(item["event_id"]),
        account_id=str(item["account_id"]),
        trigger=str(item["trigger"]),
        kind=event_kind(str(item["trigger"])),
        occurred_at=str(item["occurred_at"]),
        email=item.get("email"),
        provider=item.get("provider"),
        api_version=item.get("api_version"),
        grant_updated_at=item.get("grant_updated_at"),
    )


def events_of(items: Iterable[StoredEvent], kind: EventKind) -> list[StoredEvent]:
    return [event for event in items if event.kind == kind]


def now_iso(clock: datetime) -> str:
    return iso(clock)
