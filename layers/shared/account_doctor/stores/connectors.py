"""Connector counters (EventsTable): how many failures went through each Nylas connector, when (rule 1b).

Rule 1b asks two questions of every failure, whatever the size of the incident around it: how many accounts
of this connector failed within DomainBurstMinutes, from how many email domains, and how many usually fail in
such a window. Both are answered from counters, never by reading the failures themselves:

- `#connector#{connector}#{shard}` / `burst#{5-minute bucket}`: the failures of one bucket (atomic ADD) and
  up to DOMAIN_SLOTS of their email domains, one attribute per slot (`SET d{slot} = :domain`, the slot a
  hash of the domain), so an item stays under 2 KB however many domains fail. Two domains sharing a slot in
  the same bucket count once: with 3 domains the count is exact 95 % of the time, with 4 or more the
  3-domain test of rule 1b is met with near certainty.
- `#connector#{connector}#{shard}` / `hour#{hour}`: the failures of one hour, the baseline.

Why it holds when 1,000 failures a second go through one connector: each failure updates the counters of its
own shard (a hash of the account id), and carries the same shard in its ConnectorFailures index key
(`index_key`), so the writes spread over SHARDS partitions instead of one hot key,
and the counters are written in the transaction that counts the failure (EventHistory.count_failure, once its
diagnosis found a broken grant), conditioned on the event not counted yet, so no failure is counted twice.
A burst window of 2 × 15 minutes reads 7 buckets × SHARDS items in one BatchGetItem; the baseline (read only
once a burst reaches ConnectorOutageThreshold) one query per shard.

The buckets round the burst window out to whole 5 minutes (at most 5 minutes wider on each side), and
failures are counted per event: an account failing twice within the window counts twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from account_doctor.models import iso, parse_iso
from account_doctor.stores import dynamo
from account_doctor.stores.dynamo import Table

SHARDS = 4
DOMAIN_SLOTS = 64
BUCKET = timedelta(minutes=5)
_PREFIX = "#connector#"
_BURST = "burst#"
_HOUR = "hour#"


@dataclass(frozen=True)
class Burst:
    """A connector's failures in a window: how many, and the email domains they came from."""

    failures: int
    domains: frozenset[str]


def _partition(failure_connector: str, shard: int) -> str:
    return f"{_PREFIX}{failure_connector}#{shard}"


def shard_of(account_id: str) -> int:
    """The shard of an account's failures: its counters and its ConnectorFailures index key."""
    return dynamo.shard_of(account_id, SHARDS)


def index_key(failure_connector: str, shard: int) -> str:
    """The ConnectorFailures index key of a shard (`google#2`): a connector's failures over SHARDS partitions."""
    return f"{failure_connector}#{shard}"


def _bucket_start(at: datetime) -> datetime:
    return at.replace(minute=at.minute - at.minute % 5, second=0, microsecond=0)


def bucket_of(instant: str) -> str:
    """The 5-minute bucket an instant falls in: 2026-11-22T08:35."""
    return iso(_bucket_start(parse_iso(instant)))[:16]


def hour_of(instant: str) -> str:
    return instant[:13]  # 2026-11-22T08


class ConnectorCounters:
    def __init__(self, table: Table) -> None:
        self._table = table

    def increments(
        self, failure_connector: str, account_id: str, occurred_at: str, domain: str | None, expires: int
    ) -> list[dict[str, Any]]:
        """The two counter updates of one failure, for the transaction that records it."""
        key = _partition(failure_connector, shard_of(account_id))
        burst_expression = "ADD failures :one SET expires_at = :expires"
        names: dict[str, str] = {}
        values: dict[str, Any] = {":one": 1, ":expires": expires}
        if domain:
            burst_expression += ", #slot = :domain"
            names["#slot"] = f"d{dynamo.shard_of(domain, DOMAIN_SLOTS)}"
            values[":domain"] = domain
        return [
            self._update(key, _BURST + bucket_of(occurred_at), burst_expression, values, names),
            self._update(key, _HOUR + hour_of(occurred_at), "ADD failures :one SET expires_at = :expires", values),
        ]

    def _update(
        self, key: str, sk: str, expression: str, values: dict[str, Any], names: dict[str, str] | None = None
    ) -> dict[str, Any]:
        used = {name: value for name, value in values.items() if name in expression}
        return self._table.update_write({"account_id": key, "sk": sk}, expression, values=used, names=names)

    def burst(self, failure_connector: str, start: str, end: str) -> Burst:
        """The connector's failures in the 5-minute buckets covering [start, end], from one BatchGetItem."""
        buckets = []
        at, last = _bucket_start(parse_iso(start)), parse_iso(end)
        while at <= last:
            buckets.append(iso(at)[:16])
            at += BUCKET
        keys = [
            {"account_id": _partition(failure_connector, shard), "sk": _BURST + bucket}
            for shard in range(SHARDS)
            for bucket in buckets
        ]
        items = self._table.get_many(keys)
        return Burst(
            failures=sum(int(item.get("failures", 0)) for item in items),
            domains=frozenset(
                str(value) for item in items for name, value in item.items() if name[:1] == "d" and name[1:].isdigit()
            ),
        )

    def usual(self, failure_connector: str, start: str, end: str, window: timedelta) -> float:
        """The connector's usual failures in a window as long as `window`, from its hourly counts in [start, end).

        Hours that overlap the current burst are left out by the caller's `end`, so a burst never counts
        towards its own baseline. No history: 0.
        """
        counted = 0
        for shard in range(SHARDS):
            for item in self._table.query_all(
                KeyConditionExpression="account_id = :key AND sk BETWEEN :start AND :end",
                ExpressionAttributeValues={
                    ":key": _partition(failure_connector, shard),
                    ":start": _HOUR + hour_of(start),
                    ":end": _HOUR + hour_of(end),
                },
            ):
                if item["sk"] < _HOUR + hour_of(end):
                    counted += int(item.get("failures", 0))
        hours = max((parse_iso(end) - parse_iso(start)) / timedelta(hours=1), 1.0)
        return counted / hours * (window / timedelta(hours=1))
