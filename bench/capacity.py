"""DynamoDB's read and write request units for the calls a bench makes to moto in-process, by DynamoDB's billing rules.

moto answers ReturnConsumedCapacity with a constant per call (1 unit, or 0.5 for a read) and an empty list
for a transaction, whatever the items' sizes: not what DynamoDB bills. So the meter prices each call from
the items moto holds, as DynamoDB's on-demand mode does:
- a write: one WRU per KB (rounded up) of the larger of the item before and after, a failed conditional
  write included; twice that in a transaction, a ConditionCheck too. Each global secondary index whose entry
  the write changes costs one write of the entry's size more (two when the entry's index key changes).
- a read: one RRU per 4 KB (rounded up) strongly consistent, half eventually consistent; an item not found
  still costs one block. A GetItem or each key of a BatchGetItem is rounded on its own; a Query sums the sizes
  of the items it examined (before any filter or projection; on an index, the projected entries) and rounds
  the page once.
Sizes are moto's (`Item.size()`: attribute names and values, without DynamoDB's few bytes per type), so a
unit boundary can fall a little differently than DynamoDB's. Every unit is charged to the call the bench
is counting (`charge_to`), so the figures stand next to the call counts.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

from local_stack import moto_fast

WRITE_BLOCK = 1024
_QUERY_SIGNATURE = inspect.signature(moto_fast._ORIGINAL_QUERY)  # moto's own, whatever is installed
READ_BLOCK = 4096


@dataclass
class Units:
    read: float = 0.0  # read request units
    write: float = 0.0  # write request units

    def __add__(self, other: Units) -> Units:
        return Units(self.read + other.read, self.write + other.write)


def _blocks(size: int, block: int) -> int:
    return max(1, math.ceil(size / block))


@dataclass(frozen=True)
class _Written:
    """An item as a write found or left it: its size, and its entry in each index that holds it."""

    size: int
    entries: Mapping[str, tuple[tuple[Any, ...], tuple[Any, ...], int]]  # index -> (index key, entry, size)


def _written(table: Table, item: Item | None) -> _Written | None:
    if item is None:
        return None
    entries = {}
    for index in table.global_indexes or []:
        keys = [key["AttributeName"] for key in index.schema]
        if all(name in item.attrs for name in keys):
            entry = index.project(item)
            entries[index.name] = (
                tuple(_plain(item.attrs[name]) for name in keys),
                tuple(sorted((name, _plain(value)) for name, value in entry.attrs.items())),
                entry.size(),
            )
    return _Written(item.size(), entries)


def _plain(value: DynamoType) -> Any:
    return repr(value.to_json())  # hashable, and equal exactly when the stored values are


def write_units(before: _Written | None, after: _Written | None, *, transactional: bool) -> float:
    """What one item write costs: the table's units, and each index entry it changed."""
    size = max(before.size if before else 0, after.size if after else 0)
    units = float(_blocks(size, WRITE_BLOCK) * (2 if transactional else 1))
    for index in set(before.entries if before else {}) | set(after.entries if after else {}):
        old = before.entries.get(index) if before else None
        new = after.entries.get(index) if after else None
        if old == new:
            continue
        if old and new and old[0] != new[0]:  # the entry moves: a delete and a put
            units += _blocks(old[2], WRITE_BLOCK) + _blocks(new[2], WRITE_BLOCK)
        else:
            units += _blocks((new or old)[2], WRITE_BLOCK)  # type: ignore[index]
    return units


class CapacityMeter:
    """Prices every DynamoDB call moto answers in this process while `metering`; `charge_to` names the call."""

    def __init__(self) -> None:
        self.units: defaultdict[Any, Units] = defaultdict(Units)
        self._local = threading.local()

    def charge_to(self, call: Any, operation: str, params: Mapping[str, Any]) -> None:
        """Units moto spends on this thread from now on go to `call` (the bench's label for this request)."""
        self._local.call = call
        self._local.operation = operation
        # The tables this request reads strongly consistently (moto's get_item is not told).
        if operation == "BatchGetItem":
            requested = params.get("RequestItems", {})
            self._local.consistent = {table for table, keys in requested.items() if keys.get("ConsistentRead")}
        else:
            self._local.consistent = {params["TableName"]} if params.get("ConsistentRead") else set()

    def _charge(self, units: Units) -> None:
        self.units[getattr(self._local, "call", None)] += units

    def _operation(self) -> str:
        return str(getattr(self._local, "operation", ""))

    def _depth(self) -> int:
        return int(getattr(self._local, "depth", 0))

    @contextmanager
    def _inside(self) -> Iterator[None]:
        """Reads and writes moto makes on behalf of a call already priced are not priced again."""
        self._local.depth = self._depth() + 1
        try:
            yield
        finally:
            self._local.depth -= 1

    @contextmanager
    def metering(self) -> Iterator[CapacityMeter]:
        originals: dict[tuple[type, str], Callable[..., Any]] = {
            (DynamoDBBackend, name): getattr(DynamoDBBackend, name)
            for name in ("put_item", "update_item", "delete_item", "get_item", "transact_write_items")
        }
        originals[(Table, "query")] = Table.query
        meter = self

        def write(name: str) -> Callable[..., Any]:
            original = originals[(DynamoDBBackend, name)]

            def priced(backend: DynamoDBBackend, table_name: str, attributes: dict[str, Any], *a: Any, **k: Any) -> Any:
                if meter._depth() > getattr(meter._local, "transaction", 0):
                    return original(backend, table_name, attributes, *a, **k)
                table = backend.get_table(table_name)
                before = _written(table, moto_fast.stored_item(table, attributes))
                with meter._inside():
                    try:
                        return original(backend, table_name, attributes, *a, **k)
                    finally:
                        after = _written(table, moto_fast.stored_item(table, attributes))
                        transactional = bool(getattr(meter._local, "transaction", 0))
                        meter._charge(Units(write=write_units(before, after, transactional=transactional)))

            return priced

        def get_item(backend: DynamoDBBackend, table_name: str, keys: dict[str, Any], *a: Any, **k: Any) -> Any:
            found = originals[(DynamoDBBackend, "get_item")](backend, table_name, keys, *a, **k)
            # moto also reads an item to answer a write (its old values): that read is part of the write.
            if meter._depth() == 0 and meter._operation() in ("GetItem", "BatchGetItem"):
                stored = moto_fast.stored_item(backend.get_table(table_name), keys)
                consistent = table_name in getattr(meter._local, "consistent", ())
                blocks = _blocks(stored.size() if stored else 0, READ_BLOCK)
                meter._charge(Units(read=blocks * (1.0 if consistent else 0.5)))
            return found

        def transact_write_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> Any:
            for entry in transact_items:
                if "ConditionCheck" in entry:  # checked, not written: priced as a transactional write of the item
                    check = entry["ConditionCheck"]
                    table = backend.get_table(check["TableName"])
                    stored = moto_fast.stored_item(table, check["Key"])
                    meter._charge(Units(write=2.0 * _blocks(stored.size() if stored else 0, WRITE_BLOCK)))
            meter._local.transaction = meter._depth() + 1
            try:
                with meter._inside():
                    return originals[(DynamoDBBackend, "transact_write_items")](backend, transact_items)
            finally:
                meter._local.transaction = 0

        def query(table: Table, *a: Any, **k: Any) -> Any:
            original = originals[(Table, "query")]
            if meter._depth() == 0:
                # The items examined: the same page without its filter and projection (moto applies both
                # after it has read the page, as DynamoDB does).
                unfiltered = _QUERY_SIGNATURE.bind(table, *a, **k)
                unfiltered.arguments.update(filter_expression=None, projection_expressions=None)
                examined, _, _ = original(*unfiltered.args, **unfiltered.kwargs)
                consistent = bool(unfiltered.arguments.get("consistent_read"))
                blocks = _blocks(sum(item.size() for item in examined), READ_BLOCK)
                meter._charge(Units(read=blocks * (1.0 if consistent else 0.5)))
            return original(table, *a, **k)

        patched: dict[tuple[type, str], Callable[..., Any]] = {
            **{(DynamoDBBackend, name): write(name) for name in ("put_item", "update_item", "delete_item")},
            (DynamoDBBackend, "get_item"): get_item,
            (DynamoDBBackend, "transact_write_items"): transact_write_items,
            (Table, "query"): query,
        }
        for (owner, name), function in patched.items():
            setattr(owner, name, function)
        try:
            yield self
        finally:
            for (owner, name), function in originals.items():
                setattr(owner, name, function)
