"""The one DynamoDB helper every store stands on: conditional writes, paged queries, plain values.

A boto3 *client* (thread-safe, unlike resources), because a batch's records are processed on several
threads at once. AWS error codes become domain answers here and nowhere else: a failed condition is
`False` from `put_once`/`put`/`delete`, None from `update`, and `ConditionsFailed` (saying which writes) from
`transact`, never a `ClientError` a store has to pick apart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypedDict, cast

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from typing_extensions import Unpack

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

_NOT_OURS = "next is not a cursor this API returned; pass the `next` value of the previous page"
# A page ends at a key of the table and at most one index: never more attributes than their two keys name.
_MAX_KEY_ATTRIBUTES = 4
# BatchGetItem reads at most this many keys per call; BatchWriteItem writes at most this many items.
_BATCH_GET_LIMIT = 100
_BATCH_WRITE_LIMIT = 25
_MAX_UNPROCESSED_RETRIES = 8


class Expression(TypedDict, total=False):
    """What a write says beyond its item or key: its condition, and the values and names its expressions use."""

    condition: str | None
    values: Mapping[str, Any] | None
    names: Mapping[str, str] | None


class InvalidCursor(ValueError):
    """A `next` cursor that this service did not hand out (or for another list)."""


@dataclass(frozen=True)
class Page:
    """One page of a query: plain items, the cursor of the next page (None at the end), and items read."""

    items: list[dict[str, Any]]
    next: str | None
    read: int


class ConditionsFailed(Exception):
    """A transaction wrote nothing because the conditions of these writes (positions in its list) did not hold."""

    def __init__(self, failed: frozenset[int]) -> None:
        super().__init__(f"the conditions of writes {sorted(failed)} did not hold; nothing was written")
        self.failed = failed


def is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _failed_conditions(error: ClientError) -> frozenset[int] | None:
    """The writes whose condition cancelled a transaction; None when something else did (a conflict with a
    concurrent transaction, throttling), which the caller's retry must see as the error it is."""
    reasons = [str(r.get("Code")) for r in cast(Any, error.response).get("CancellationReasons", [])]
    if not reasons or any(code not in ("None", "ConditionalCheckFailed") for code in reasons):
        return None
    return frozenset(n for n, code in enumerate(reasons) if code == "ConditionalCheckFailed")


def _only_conflicts(error: ClientError) -> bool:
    reasons = [str(r.get("Code")) for r in cast(Any, error.response).get("CancellationReasons", [])]
    return bool(reasons) and all(code in ("None", "TransactionConflict") for code in reasons)


def shard_of(text: str, shards: int) -> int:
    """The shard (0 … shards-1) a key spreads to: stable across processes, unlike hash()."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % shards


def dynamodb_client() -> DynamoDBClient:
    return boto3.client("dynamodb")


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute values in DynamoDB's typed form; None attributes are left out (a sparse index key stays absent)."""
    return {key: _serializer.serialize(_decimals(value)) for key, value in values.items() if value is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python values: numbers as int or float, never Decimal."""
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


class Table:
    """One table, spoken to in plain values."""

    def __init__(self, name: str, client: DynamoDBClient | None = None) -> None:
        self.name = name
        self.client: DynamoDBClient = client or dynamodb_client()

    def put_once(self, item: Mapping[str, Any], key: str) -> bool:
        """Writes the item unless one with its key exists (`key` = the sort or partition key name); False then."""
        try:
            self.client.put_item(
                TableName=self.name, Item=to_item(item), ConditionExpression=f"attribute_not_exists({key})"
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def put(self, item: Mapping[str, Any], **spec: Unpack[Expression]) -> bool:
        """Writes the item; with a condition, False when it does not hold."""
        try:
            self.client.put_item(**self._request("Item", item, **spec))
        except ClientError as error:
            if spec.get("condition") and is_conditional_failure(error):
                return False
            raise
        return True

    def delete(self, key: Mapping[str, Any], *, condition: str, values: Mapping[str, Any]) -> bool:
        """Deletes the item when the condition holds; False when it does not."""
        try:
            self.client.delete_item(
                TableName=self.name,
                Key=to_item(key),
                ConditionExpression=condition,
                ExpressionAttributeValues=to_item(values),
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def transact(self, writes: Sequence[Mapping[str, Any]], *, conflicts: int = 0) -> None:
        """Writes all of `writes` (made by put_write, update_write, check) or none of them.

        Raises ConditionsFailed with the positions whose condition failed; any other cancellation is raised as
        DynamoDB's error, for the caller's retry. `conflicts`: how many times a transaction cancelled only by
        concurrent transactions on the same items (racing writers of one counter) is tried again first.
        """
        for attempt in range(conflicts + 1):
            try:
                self.client.transact_write_items(TransactItems=cast(Any, list(writes)))
                return
            except ClientError as error:
                failed = _failed_conditions(error)
                if failed is not None:
                    raise ConditionsFailed(failed) from None
                if attempt == conflicts or not _only_conflicts(error):
                    raise

    def put_write(self, item: Mapping[str, Any], **spec: Unpack[Expression]) -> dict[str, Any]:
        """A Put of this table, as one write of a transaction."""
        return {"Put": self._request("Item", item, **spec)}

    def update_write(self, key: Mapping[str, Any], expression: str, **spec: Unpack[Expression]) -> dict[str, Any]:
        """An Update of this table, as one write of a transaction."""
        return {"Update": {**self._request("Key", key, **spec), "UpdateExpression": expression}}

    def check(
        self, key: Mapping[str, Any], condition: str, *, values: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A ConditionCheck of this table: a transaction (of this table's or another's) writes only if it holds."""
        return {"ConditionCheck": self._request("Key", key, condition=condition, values=values)}

    def _request(self, field: str, attributes: Mapping[str, Any], **spec: Unpack[Expression]) -> dict[str, Any]:
        request: dict[str, Any] = {"TableName": self.name, field: to_item(attributes)}
        if spec.get("condition"):
            request["ConditionExpression"] = spec["condition"]
        if spec.get("values"):
            request["ExpressionAttributeValues"] = to_item(spec["values"] or {})
        if spec.get("names"):
            request["ExpressionAttributeNames"] = dict(spec["names"] or {})
        return request

    def get(self, key: Mapping[str, Any], *, consistent: bool = True) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.name, Key=to_item(key), ConsistentRead=consistent).get("Item")
        return from_item(item) if item else None

    def get_many(self, keys: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The items of these keys that exist (BatchGetItem, retrying what DynamoDB leaves unprocessed)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), _BATCH_GET_LIMIT):
            pending: dict[str, Any] = {
                self.name: {"Keys": [to_item(k) for k in keys[start : start + _BATCH_GET_LIMIT]]}
            }
            while pending:
                response = self.client.batch_get_item(RequestItems=pending)
                found.extend(from_item(item) for item in response.get("Responses", {}).get(self.name, []))
                pending = dict(response.get("UnprocessedKeys") or {})
        return found

    def put_many(self, items: Sequence[Mapping[str, Any]]) -> int:
        """Writes the items, 25 per BatchWriteItem, retrying what DynamoDB leaves unprocessed; returns the calls."""
        calls = 0
        for start in range(0, len(items), _BATCH_WRITE_LIMIT):
            pending: dict[str, Any] = {
                self.name: [
                    {"PutRequest": {"Item": to_item(item)}} for item in items[start : start + _BATCH_WRITE_LIMIT]
                ]
            }
            for attempt in range(_MAX_UNPROCESSED_RETRIES + 1):
                if attempt:
                    # DynamoDB leaves items unprocessed when throttled: back off before asking again.
                    time.sleep(min(0.05 * 2**attempt, 1.0))
                calls += 1
                response = self.client.batch_write_item(RequestItems=pending)
                pending = dict(response.get("UnprocessedItems") or {})
                if not pending:
                    break
            else:
                raise RuntimeError(f"DynamoDB left items unprocessed in {self.name} after retries")
        return calls

    def update(self, key: Mapping[str, Any], expression: str, **spec: Unpack[Expression]) -> dict[str, Any] | None:
        """Applies an update expression; returns the item as it is afterwards, or None when the condition failed."""
        request = {**self._request("Key", key, **spec), "UpdateExpression": expression, "ReturnValues": "ALL_NEW"}
        try:
            response = self.client.update_item(**request)
        except ClientError as error:
            if spec.get("condition") and is_conditional_failure(error):
                return None
            raise
        return from_item(response.get("Attributes", {}))

    def query(self, *, limit: int | None = None, cursor: str | None = None, **request: Any) -> Page:
        """One page of a query (up to `limit` items), resuming after `cursor`."""
        request["TableName"] = self.name
        if cursor:
            request["ExclusiveStartKey"] = decode_cursor(cursor)
        if "ExpressionAttributeValues" in request:
            request["ExpressionAttributeValues"] = to_item(request["ExpressionAttributeValues"])
        items: list[dict[str, Any]] = []
        read = 0
        while True:
            if limit is not None:
                request["Limit"] = limit - len(items)
            try:
                page = self.client.query(**request)
            except ClientError as error:
                # A forged or foreign cursor names a key outside this query.
                if cursor and error.response.get("Error", {}).get("Code") == "ValidationException":
                    raise InvalidCursor(
                        "next does not belong to this list; pass the `next` value of its previous page"
                    ) from error
                raise
            read += int(page.get("ScannedCount", len(page.get("Items", []))))
            items.extend(from_item(item) for item in page.get("Items", []))
            last = page.get("LastEvaluatedKey")
            if not last:
                return Page(items, None, read)
            if limit is not None and len(items) >= limit:
                return Page(items, encode_cursor(last), read)
            request["ExclusiveStartKey"] = last

    def newest_first(
        self, key_name: str, key: str, *, index: str | None = None, limit: int, cursor: str | None = None
    ) -> Page:
        """One page of the items under one partition key (of the table or an index), the highest sort key first."""
        request: dict[str, Any] = {"IndexName": index} if index else {}
        return self.query(
            limit=limit,
            cursor=cursor,
            KeyConditionExpression="#key = :key",
            ExpressionAttributeNames={"#key": key_name},
            ExpressionAttributeValues={":key": key},
            ScanIndexForward=False,
            **request,
        )

    def query_all(self, **request: Any) -> Iterator[dict[str, Any]]:
        """Every item of a query, page after page."""
        cursor: str | None = None
        while True:
            page = self.query(cursor=cursor, limit=1000, **dict(request))
            yield from page.items
            if page.next is None:
                return
            cursor = page.next


def encode_token(value: Any) -> str:
    """An opaque `next` cursor: base64url of the JSON of where the next page starts."""
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as error:
        raise InvalidCursor(
            "next is not a cursor this API returned; pass the `next` value of the previous page"
        ) from error


def encode_cursor(last_key: Mapping[str, Any]) -> str:
    """The cursor of a page that ends at DynamoDB's LastEvaluatedKey."""
    return encode_token(last_key)


def decode_cursor(cursor: str) -> dict[str, Any]:
    """The ExclusiveStartKey a cursor holds, refused unless it has the shape of a key this store handed out.

    The cursor comes back from the caller: anything boto3 would refuse (ParamValidationError) or misread
    must be an InvalidCursor here, the caller's mistake, not an AWS failure.
    """
    decoded = decode_token(cursor)
    if (
        not isinstance(decoded, dict)
        or not 0 < len(decoded) <= _MAX_KEY_ATTRIBUTES
        or not all(_is_key_value(value) for value in decoded.values())
    ):
        raise InvalidCursor(_NOT_OURS)
    return decoded


def _is_key_value(value: Any) -> bool:
    """A key attribute in DynamoDB's typed form: this service's keys are strings and numbers."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, text),) = value.items()
    if kind == "S":
        return isinstance(text, str) and text != ""
    if kind != "N" or not isinstance(text, str):
        return False
    try:
        return Decimal(text).is_finite()
    except InvalidOperation:
        return False


def shard_position(cursor: str | None, shards: int) -> tuple[int, str | None]:
    """Where a list read shard after shard resumes: its cursor is `<shard>:<that shard's cursor>`."""
    if not cursor:
        return 0, None
    shard, separator, inner = cursor.partition(":")
    # isdecimal alone takes other scripts' digits ("٣"); isdigit even takes "²", which int() refuses.
    if not separator or not (shard.isascii() and shard.isdecimal()) or int(shard) >= shards:
        raise InvalidCursor(_NOT_OURS)
    return int(shard), inner or None


def _decimals(value: Any) -> Any:
    """Floats become Decimals, as DynamoDB numbers must be."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {key: _decimals(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_decimals(inner) for inner in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(inner) for inner in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(inner) for inner in value)
    return value
