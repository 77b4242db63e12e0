"""The event history (EventsTable): every account event, each account's current state, and connector counters.

Items (partition `account_id`, sort `sk`):
- `{occurred_at}#{event_id}`: one account event, written once. A failure counts toward clusters only once its
  diagnosis confirmed a grant that exists and is broken (`count_failure`; a 404 grant the app deleted, or one
  working again, never counts): then organisation-domain failures get `failure_domain` and failures of a
  known connector `failure_connector` (sharded: `google#2`): two sparse indexes (DomainFailures,
  ConnectorFailures) answer "who else failed around then" reading only those failures. A domain index key
  takes one organisation's failures (Nylas notices them over minutes: tens a second for the largest); a
  connector's can take every customer's at once, hence its shards.
- `state`: the account's current state (latest event, email, provider) and its open recovery episode
  (`episode_*`, `broken_address`: begun here by its first failure, ended in `stores/episodes.py`). A broken
  account also carries `broken` = one of BROKEN_SHARDS shard keys, indexed by BrokenAccounts (sorted by
  `since`): the "what is broken right now" list is a key query, and 1,000 failures a second spread over
  several index partitions.
- account_id `#connector#{connector}#{shard}`: the connector counters of rule 1b (`stores/connectors.py`).
An event and its state change are written in one transaction, so a redelivered event (whose put fails its
condition) changes nothing; a failure's index keys and connector counts are written in another, once (its
`counted` flag is the condition), so a repeated diagnosis never counts it twice.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from account_doctor.addresses import email_domain, is_free_mail
from account_doctor.episodes import address_key
from account_doctor.models import AccountEvent, event_key, parse_iso
from account_doctor.providers import connector
from account_doctor.stores import connectors
from account_doctor.stores.census import CensusAggregates
from account_doctor.stores.connectors import ConnectorCounters
from account_doctor.stores.dynamo import (
    ConditionsFailed,
    InvalidCursor,
    Page,
    Table,
    decode_token,
    encode_cursor,
    encode_token,
    shard_of,
    to_item,
)

# Events are kept longer than any window that reads them: 30 days for "recurring", DomainWindowDays
# for clusters, and 90 days + for the Microsoft token rule's last re-authentication.
EVENT_RETENTION_DAYS = 180
STATE_SK = "state"
BROKEN_SHARDS = 8


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


def _expires(event: AccountEvent) -> int:
    """Kept EVENT_RETENTION_DAYS from when it was recorded: a failure the sweep finds long after it happened
    must not expire at once (and be found again at every sweep)."""
    recorded_from = max(parse_iso(event.occurred_at), datetime.now(UTC))
    return int((recorded_from + timedelta(days=EVENT_RETENTION_DAYS)).timestamp())


def broken_shard(account_id: str) -> str:
    return f"broken#{shard_of(account_id, BROKEN_SHARDS)}"


class EventHistory:
    def __init__(self, table: Table) -> None:
        self._table = table
        self.connectors = ConnectorCounters(table)
        # How many mailboxes each domain has, as the daily grant census counted them (rule 2b).
        self.census = CensusAggregates(table)

    # Writing ---------------------------------------------------------------------------------

    def put_event(self, event: AccountEvent) -> bool:
        """Stores the event once, with the account's new state and its connector's counts; False if known."""
        kind = event.kind
        domain = email_domain(event.email)
        expires = _expires(event)
        item: dict[str, Any] = {
            "account_id": event.account_id,
            "sk": event_key(event.occurred_at, event.event_id),
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
        put = self._table.put_write(item, condition="attribute_not_exists(sk)")
        state = self._state_update(event, domain)
        try:
            self._table.transact([put, state])
        except ConditionsFailed as refused:
            if 0 in refused.failed:
                return False  # already recorded: a redelivery
            # Only the state refused (a conflict with another write at the same time is raised by `transact`,
            # for the retry: writing the event without its state would leave the account's state, and the
            # broken list, behind for good): a newer event is already the account's latest (an out-of-order
            # delivery).
            self._table.transact([put])
        return True

    def count_failure(self, event: AccountEvent) -> bool:
        """Counts a recorded failure toward its organisation domain's and its connector's clusters, once: its
        index keys and connector counters, in one transaction conditioned on the event not counted yet.
        False when it already was (a repeated diagnosis). The event's address and provider are the ones its
        diagnosis established (Nylas's)."""
        domain = email_domain(event.email)
        failure_connector = connector(event.provider)
        expression = "SET counted = :yes"
        values: dict[str, Any] = {":yes": True}
        if domain and not is_free_mail(domain):
            expression += ", failure_domain = :domain"
            values[":domain"] = domain
        if failure_connector:
            expression += ", failure_connector = :connector"
            values[":connector"] = connectors.index_key(failure_connector, connectors.shard_of(event.account_id))
        writes = [
            self._table.update_write(
                {"account_id": event.account_id, "sk": event_key(event.occurred_at, event.event_id)},
                expression,
                values=values,
                condition="attribute_exists(sk) AND attribute_not_exists(counted)",
            )
        ]
        if failure_connector:
            writes += self.connectors.increments(
                failure_connector, event.account_id, event.occurred_at, domain, _expires(event)
            )
        try:
            self._table.transact(writes)
        except ConditionsFailed as refused:
            if 0 in refused.failed:
                return False
            raise  # pragma: no cover - the counters carry no condition
        return True

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
            # A failure while already broken keeps the time it broke, and the episode it began (SPEC §4c).
            expression += (
                ", broken = :shard, since = if_not_exists(since, :at)"
                ", episode_id = if_not_exists(episode_id, :event_id)"
                ", episode_failed_at = if_not_exists(episode_failed_at, :at)"
            )
            address = address_key(event.provider, event.email)
            if address:
                # Where a new grant with the same address finds this broken account (BrokenByAddress).
                values[":address"] = address
                expression += ", broken_address = :address"
        else:
            expression += " REMOVE broken, since"
        return self._table.update_write(
            {"account_id": event.account_id, "sk": STATE_SK},
            expression,
            values=values,
            names=names,
            condition="attribute_not_exists(latest_at) OR latest_at <= :at",
        )

    # Reading one account ----------------------------------------------------------------------

    def account_events(self, account_id: str, since: str) -> list[AccountEvent]:
        """This account's events from `since` on, oldest first."""
        items = self._table.query_all(
            KeyConditionExpression="account_id = :account AND sk BETWEEN :since AND :end",
            ExpressionAttributeValues={":account": account_id, ":since": since, ":end": "9"},
            ConsistentRead=True,
        )
        return [AccountEvent.from_dict(item) for item in items]

    def history_page(self, account_id: str, limit: int, cursor: str | None = None) -> Page:
        """One page of this account's events, newest first (its state item excluded)."""
        return self._table.query(
            limit=limit,
            cursor=cursor,
            KeyConditionExpression="account_id = :account AND sk < :state",
            ExpressionAttributeValues={":account": account_id, ":state": STATE_SK},
            ScanIndexForward=False,
        )

    def latest_event(self, account_id: str) -> AccountEvent | None:
        page = self._table.query(
            limit=1,
            KeyConditionExpression="account_id = :account AND sk < :state",
            ExpressionAttributeValues={":account": account_id, ":state": STATE_SK},
            ScanIndexForward=False,
        )
        return AccountEvent.from_dict(page.items[0]) if page.items else None

    def latest_failure(self, account_id: str) -> AccountEvent | None:
        """The account's latest failure event (the one the CLI re-diagnoses)."""
        for item in self._table.query_all(
            KeyConditionExpression="account_id = :account AND sk < :state",
            ExpressionAttributeValues={":account": account_id, ":state": STATE_SK},
            ScanIndexForward=False,
        ):
            event = AccountEvent.from_dict(item)
            if event.kind == "failure":
                return event
        return None

    def latest_from_states(self, account_ids: Sequence[str]) -> dict[str, AccountEvent]:
        """The latest event of each account that has a state item, read from those items 100 at a time."""
        keys = [{"account_id": account_id, "sk": STATE_SK} for account_id in dict.fromkeys(account_ids)]
        return {
            str(state["account_id"]): AccountEvent(
                event_id=str(state["latest_event_id"]),
                api_version=state.get("api_version") or "v3",
                trigger=str(state["latest_trigger"]),
                account_id=str(state["account_id"]),
                occurred_at=str(state["latest_at"]),
                provider=state.get("provider"),
                email=state.get("email"),
            )
            for state in self._table.get_many(keys)
            if state.get("latest_at")
        }

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
        """Failures through one connector in [start, end], reading only those failures: the members an opening
        connector incident revises (rule 1b itself counts from `connectors`, reading O(1) items)."""
        shards = [
            self._cluster(
                "ConnectorFailures", "failure_connector", connectors.index_key(failure_connector, n), start, end
            )
            for n in range(connectors.SHARDS)
        ]
        failures = sorted((f for shard in shards for f in shard.failures), key=lambda f: f[1])
        return Cluster(tuple(failures), sum(shard.items_read for shard in shards))

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

    def broken_accounts(self, limit: int, cursor: str | None = None) -> Page:
        """Accounts whose latest event is a failure, newest first: each shard's page, merged by `since`."""
        positions = unpack_positions(cursor) if cursor else dict.fromkeys(_SHARDS)
        pages = {
            shard: self._table.newest_first(
                "broken", f"broken#{shard}", index="BrokenAccounts", limit=limit, cursor=start
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
    if not all(value is None or isinstance(value, str) for value in positions.values()):
        raise InvalidCursor("next is not a cursor of this list; pass the `next` value of the previous page")
    return dict(positions)
