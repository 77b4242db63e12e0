"""moto without the costs that grow with its tables and queues: the same answers, at a cost AWS's would have.

Under `make load` the tables grow with every event and the queue holds thousands of messages; three costs
that AWS does not have grew with them, and took most of the load test's CPU (py-spy):
- TransactWriteItems backs up every table it names (a deep copy of all its items) to roll a cancelled
  transaction back. Here it deep-copies only the items it names, and a cancelled one puts exactly those
  back: the same all-or-nothing answer, at the cost of the items written.
- Query sorts every item of the table (Python-level comparisons) and then walks them for the partition
  asked for, on the table and on an index alike. Here moto's own query runs on a view of the table
  holding only the candidates: the table's partition, or, for an index, the items whose index hash key
  attributes hold the queried string values (a superset for other types, which moto then filters as
  before). moto sorts, pages, filters and counts them as it always does, so every answer is the same.
- SQS computes every attribute of a queue, its approximate message counts included (a walk of all its
  messages, reading the clock for each), whenever it reads any one: for each message it sends, each
  message it receives (to read the retention period), and three times per attribute a
  GetQueueAttributes names. Here a queue's attributes are computed once per request, and the clock
  is read with time.time() (what moto's datetime arithmetic computes, without the datetimes).

Installed by the local stack's moto server (`install`), for the life of the process: every answer stays
what moto gives, so a test in the same process that uses `mock_aws` sees the same results.
"""

from __future__ import annotations

import copy
import inspect
import threading
import time
import types
from collections.abc import Iterator, Mapping
from typing import Any

import moto.dynamodb.models as moto_dynamodb
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.sqs import models as moto_sqs
from moto.sqs.models import Queue, SQSBackend

# (table name, hash key, range key or None) -> the item before the transaction, None if there was none.
Journal = dict[tuple[str, DynamoType, DynamoType | None], Item | None]

_ORIGINAL_TRANSACT = DynamoDBBackend.transact_write_items
_ORIGINAL_QUERY = Table.query
_ORIGINAL_QUEUE_ATTRIBUTES = Queue.attributes
_ORIGINAL_UNIX_TIME = getattr(moto_sqs, "unix_time")  # noqa: B009 - moto imports it from moto.core.utils
_ORIGINAL_UNIX_TIME_MILLIS = getattr(moto_sqs, "unix_time_millis")  # noqa: B009
# The SQS requests that read a queue's attributes (send_message_batch and receive_message through them).
_SQS_REQUESTS = ("send_message", "receive_message", "get_queue_attributes")
_QUERY_SIGNATURE = inspect.signature(_ORIGINAL_QUERY)
_install_lock = threading.Lock()


class _TablesUncopied(types.ModuleType):
    """moto's `copy` module as its DynamoDB backend sees it: a Table's deep copy is the table itself."""

    copy = staticmethod(copy.copy)

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _key(table: Table, attributes: Mapping[str, Any]) -> tuple[DynamoType, DynamoType | None] | None:
    """The item's primary key in moto's terms; None when the request lacks it (moto then rejects it)."""
    if table.hash_key_attr not in attributes:
        return None
    range_attr = table.range_key_attr
    if range_attr is not None and range_attr not in attributes:
        return None
    return DynamoType(attributes[table.hash_key_attr]), DynamoType(attributes[range_attr]) if range_attr else None


def stored_item(table: Table, attributes: Mapping[str, Any]) -> Item | None:
    """The item of moto's table with the key these attributes hold (an item's or a key's), without side effects."""
    key = _key(table, attributes)
    return None if key is None else _stored(table, *key)


def _stored(table: Table, hash_key: DynamoType, range_key: DynamoType | None) -> Item | None:
    # Read without table.get_item: on a table with a range key its defaultdict would gain an empty entry.
    found = table.items.get(hash_key)
    if range_key is None:
        return found if isinstance(found, Item) else None
    return found.get(range_key) if isinstance(found, dict) else None


def journal_of(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> Journal:
    """A deep copy of every item the transaction names, as it is before the transaction runs."""
    journal: Journal = {}
    for entry in transact_items:
        for operation in entry.values():
            table = backend.tables.get(operation.get("TableName", ""))
            if table is None:
                continue
            key = _key(table, operation["Item"] if "Item" in operation else operation.get("Key", {}))
            if key is not None and (table.name, *key) not in journal:
                journal[(table.name, *key)] = copy.deepcopy(_stored(table, *key))
    return journal


def roll_back(backend: DynamoDBBackend, journal: Journal) -> None:
    """Every journaled item as it was: written back, or removed if the transaction created it."""
    for (table_name, hash_key, range_key), before in journal.items():
        table = backend.tables[table_name]
        if range_key is None:
            if before is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = before  # type: ignore[assignment]  # no range key: an Item
        elif before is None:
            table.items.get(hash_key, {}).pop(range_key, None)
        else:
            table.items[hash_key][range_key] = before


def journaled_transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """moto's TransactWriteItems, rolled back from the journal instead of from copies of whole tables."""
    journal = journal_of(self, transact_items)
    try:
        _ORIGINAL_TRANSACT(self, transact_items)
    except Exception:
        roll_back(self, journal)
        raise


def _candidates(
    table: Table, hash_key: DynamoType | None, index_name: str | None, conditions: list[tuple[str, DynamoType]]
) -> list[Item] | None:
    """The items a query can return, without sorting the table; None when only moto's own walk will do."""
    if index_name is None:
        if hash_key is None or hash_key.type != "S":  # a lookup by a string is exact; numbers are left to moto
            return None
        partition = table.items.get(hash_key)
        if partition is None:
            return []
        return list(partition.values()) if table.range_key_attr else [partition]  # type: ignore[list-item]
    exact = [(name, value.value) for name, value in conditions if value.type == "S"]
    if not exact:
        return None
    return [
        item
        for item in _unsorted_items(table)
        if all((v := item.attrs.get(name)) is not None and v.type == "S" and v.value == s for name, s in exact)
    ]


def _unsorted_items(table: Table) -> Iterator[Item]:
    for partition in table.items.values():
        if table.range_key_attr:
            yield from partition.values()
        else:
            yield partition  # type: ignore[misc]  # no range key: the partition is the item


def partition_query(self: Table, *args: Any, **kwargs: Any) -> Any:
    """moto's Table.query, on a view of the table that holds only the items the query can return."""
    called = _QUERY_SIGNATURE.bind(self, *args, **kwargs).arguments
    candidates = _candidates(
        self, called.get("hash_key"), called.get("index_name"), called.get("hash_key_conditions") or []
    )
    if candidates is None:
        return _ORIGINAL_QUERY(self, *args, **kwargs)
    view = copy.copy(self)  # a shallow copy: the same items, indexes and settings; a query only reads
    view.all_items = lambda: candidates  # type: ignore[method-assign]
    return _ORIGINAL_QUERY(view, *args, **kwargs)


class _RequestScope(threading.local):
    """The attributes of each queue one SQS request has read so far (None outside a request)."""

    attributes: dict[int, dict[str, Any]] | None = None


_scope = _RequestScope()


def _queue_attributes(queue: Queue) -> dict[str, Any]:
    """moto's Queue.attributes, computed once per request: within one, a second reading is the first's."""
    cache = _scope.attributes
    if cache is None:
        computed: dict[str, Any] = _ORIGINAL_QUEUE_ATTRIBUTES.fget(queue)  # type: ignore[attr-defined]
        return computed
    if id(queue) not in cache:
        cache[id(queue)] = _ORIGINAL_QUEUE_ATTRIBUTES.fget(queue)  # type: ignore[attr-defined]
    return cache[id(queue)]


def _one_request(method: Any) -> Any:
    """The SQS backend's method, its queue attributes read once; a call inside another shares the outer's."""

    def scoped(*args: Any, **kwargs: Any) -> Any:
        if _scope.attributes is not None:
            return method(*args, **kwargs)
        _scope.attributes = {}
        try:
            return method(*args, **kwargs)
        finally:
            _scope.attributes = None

    scoped.__wrapped__ = method  # type: ignore[attr-defined]
    return scoped


def _unix_time(dt: Any = None) -> float:
    return time.time() if dt is None else float(_ORIGINAL_UNIX_TIME(dt))


def _unix_time_millis(dt: Any = None) -> float:
    return time.time() * 1000.0 if dt is None else float(_ORIGINAL_UNIX_TIME_MILLIS(dt))


def _patches() -> list[tuple[Any, str, Any]]:
    """(owner, attribute, the fast version) of every change `install` makes to moto."""
    return [
        # moto's own rollback then restores each table to itself (a no-op); the journal does the work.
        (moto_dynamodb, "copy", _TablesUncopied("copy")),
        (DynamoDBBackend, "transact_write_items", journaled_transact_write_items),
        (Table, "query", partition_query),
        (Queue, "attributes", property(_queue_attributes)),
        *((SQSBackend, name, _one_request(getattr(SQSBackend, name))) for name in _SQS_REQUESTS),
        (moto_sqs, "unix_time", _unix_time),
        (moto_sqs, "unix_time_millis", _unix_time_millis),
    ]


_installed: list[tuple[Any, str, Any]] = []  # (owner, attribute, moto's own) while installed


def installed() -> bool:
    return bool(_installed)


def install() -> None:
    """From now on, in this process, moto's transactions journal their items, queries read their partition and
    SQS reads a queue's attributes once per request."""
    with _install_lock:
        if _installed:
            return
        for owner, name, fast in _patches():
            _installed.append((owner, name, inspect.getattr_static(owner, name)))
            setattr(owner, name, fast)


def uninstall() -> None:
    """moto as released again: for tests of the fast path, which leave other tests the moto they expect."""
    with _install_lock:
        while _installed:
            owner, name, original = _installed.pop()
            setattr(owner, name, original)
