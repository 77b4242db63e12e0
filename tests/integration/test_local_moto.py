"""The local stack's faster moto transactions (local_stack/moto_dynamodb.py) answer as DynamoDB does: all or nothing."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local_stack import moto_dynamodb
from local_stack.template import ProvisionedStack


@pytest.fixture
def tables(aws: ProvisionedStack) -> tuple[Any, str, str]:
    moto_dynamodb.install()
    client = boto3.client("dynamodb")
    events, notifications = aws.physical["EventsTable"], aws.physical["NotificationsTable"]
    client.put_item(TableName=events, Item={"account_id": {"S": "a"}, "sk": {"S": "kept"}, "n": {"N": "1"}})
    client.put_item(TableName=notifications, Item={"pk": {"S": "counted"}, "count": {"N": "1"}})
    client.put_item(TableName=notifications, Item={"pk": {"S": "deleted"}})
    return client, events, notifications


def _transaction(events: str, notifications: str, *, guard: str) -> list[dict[str, Any]]:
    """A put of a new item, an update and a delete of existing ones, and a check of `guard`'s existence."""
    return [
        {"Put": {"TableName": events, "Item": {"account_id": {"S": "a"}, "sk": {"S": "new"}}}},
        {
            "Update": {
                "TableName": notifications,
                "Key": {"pk": {"S": "counted"}},
                "UpdateExpression": "ADD #count :one",
                "ExpressionAttributeNames": {"#count": "count"},
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
        {"Delete": {"TableName": notifications, "Key": {"pk": {"S": "deleted"}}}},
        {
            "ConditionCheck": {
                "TableName": events,
                "Key": {"account_id": {"S": "a"}, "sk": {"S": guard}},
                "ConditionExpression": "attribute_exists(account_id)",
            }
        },
    ]


def _state(client: Any, events: str, notifications: str) -> dict[str, Any]:
    def get(table: str, key: dict[str, Any]) -> Any:
        return client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

    return {
        "new": get(events, {"account_id": {"S": "a"}, "sk": {"S": "new"}}),
        "kept": get(events, {"account_id": {"S": "a"}, "sk": {"S": "kept"}}),
        "counted": get(notifications, {"pk": {"S": "counted"}}),
        "deleted": get(notifications, {"pk": {"S": "deleted"}}),
    }


def test_a_cancelled_transaction_changes_nothing(tables: tuple[Any, str, str]) -> None:
    client, events, notifications = tables
    before = _state(client, events, notifications)

    with pytest.raises(ClientError) as cancelled:
        client.transact_write_items(TransactItems=_transaction(events, notifications, guard="missing"))

    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [reason["Code"] for reason in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "ConditionalCheckFailed"]
    assert _state(client, events, notifications) == before
    assert before["deleted"] is not None
    assert before["new"] is None


def test_a_transaction_that_passes_writes_every_item(tables: tuple[Any, str, str]) -> None:
    client, events, notifications = tables

    client.transact_write_items(TransactItems=_transaction(events, notifications, guard="kept"))

    after = _state(client, events, notifications)
    assert after["new"] == {"account_id": {"S": "a"}, "sk": {"S": "new"}}
    assert after["counted"]["count"] == {"N": "2"}
    assert after["deleted"] is None


def test_a_transaction_naming_one_item_twice_is_rejected_and_changes_nothing(tables: tuple[Any, str, str]) -> None:
    client, events, notifications = tables
    before = _state(client, events, notifications)
    twice = _transaction(events, notifications, guard="kept")
    twice.append({"Delete": {"TableName": events, "Key": {"account_id": {"S": "a"}, "sk": {"S": "new"}}}})

    with pytest.raises(ClientError) as rejected:
        client.transact_write_items(TransactItems=twice)

    assert rejected.value.response["Error"]["Code"] == "ValidationException"
    assert _state(client, events, notifications) == before
