"""The bench's DynamoDB request units (bench/capacity.py) follow DynamoDB's billing rules, call by call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from bench.capacity import CapacityMeter, Units
from local_stack.template import ProvisionedStack

KB = 1024


@pytest.fixture
def metered(aws: ProvisionedStack) -> Iterator[tuple[Any, CapacityMeter, str, str]]:
    """A DynamoDB client whose every call is charged to its operation's name."""
    meter = CapacityMeter()
    client = boto3.client("dynamodb")

    def label(params: dict[str, Any], model: Any, **_: Any) -> None:
        meter.charge_to(model.name, model.name, params)

    client.meta.events.register("before-parameter-build.dynamodb", label)
    with meter.metering():
        yield client, meter, aws.physical["EventsTable"], aws.physical["NotificationsTable"]


def _event(sk: str, padding: int, **extra: Any) -> dict[str, Any]:
    """An event item of about `padding` bytes (moto's size: attribute names and values)."""
    return {"account_id": {"S": "a"}, "sk": {"S": sk}, "padding": {"S": "x" * padding}, **extra}


def test_a_write_costs_a_unit_per_kilobyte_of_the_larger_item(metered: tuple[Any, CapacityMeter, str, str]) -> None:
    client, meter, events, _ = metered
    client.put_item(TableName=events, Item=_event("1", 2 * KB + 10))  # 3 KB, rounded up
    client.update_item(
        TableName=events,
        Key={"account_id": {"S": "a"}, "sk": {"S": "1"}},
        UpdateExpression="REMOVE padding",
    )  # the item before it is the larger: 3 KB again
    client.delete_item(TableName=events, Key={"account_id": {"S": "a"}, "sk": {"S": "1"}})  # a small item: 1

    assert meter.units["PutItem"] == Units(write=3)
    assert meter.units["UpdateItem"] == Units(write=3)
    assert meter.units["DeleteItem"] == Units(write=1)


def test_a_failed_conditional_write_is_charged_too(metered: tuple[Any, CapacityMeter, str, str]) -> None:
    client, meter, events, _ = metered
    client.put_item(TableName=events, Item=_event("1", 10))
    with pytest.raises(client.exceptions.ConditionalCheckFailedException):
        client.put_item(TableName=events, Item=_event("1", 10), ConditionExpression="attribute_not_exists(sk)")

    assert meter.units["PutItem"] == Units(write=2)


def test_a_write_that_changes_an_index_entry_writes_the_index_too(
    metered: tuple[Any, CapacityMeter, str, str],
) -> None:
    client, meter, events, _ = metered
    indexed = {"failure_domain": {"S": "acme.example"}, "occurred_at": {"S": "2024-11-19T10:00:00Z"}}
    client.put_item(TableName=events, Item=_event("1", 10, **indexed))  # table 1 + DomainFailures 1
    client.update_item(
        TableName=events,
        Key={"account_id": {"S": "a"}, "sk": {"S": "1"}},
        UpdateExpression="SET failure_domain = :other",
        ExpressionAttributeValues={":other": {"S": "globex.example"}},
    )  # table 1 + the entry moves: delete 1, put 1
    client.update_item(
        TableName=events,
        Key={"account_id": {"S": "a"}, "sk": {"S": "1"}},
        UpdateExpression="SET padding = :more",
        ExpressionAttributeValues={":more": {"S": "y"}},
    )  # table 1; padding is not projected into any index: 0

    assert meter.units["PutItem"] == Units(write=2)
    assert meter.units["UpdateItem"] == Units(write=3 + 1)


def test_a_transaction_costs_twice_a_condition_check_included(metered: tuple[Any, CapacityMeter, str, str]) -> None:
    client, meter, events, notifications = metered
    client.put_item(TableName=events, Item=_event("guard", 10))
    client.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": notifications, "Item": {"pk": {"S": "n"}, "body": {"S": "x" * (KB + 1)}}}},
            {
                "ConditionCheck": {
                    "TableName": events,
                    "Key": {"account_id": {"S": "a"}, "sk": {"S": "guard"}},
                    "ConditionExpression": "attribute_exists(sk)",
                }
            },
        ]
    )

    assert meter.units["TransactWriteItems"] == Units(write=2 * 2 + 2 * 1)


def test_reads_cost_a_unit_per_4_kilobytes_half_when_eventually_consistent(
    metered: tuple[Any, CapacityMeter, str, str],
) -> None:
    client, meter, events, _ = metered
    for sk in ("1", "2", "3"):
        client.put_item(TableName=events, Item=_event(sk, 3 * KB))
    key = {"account_id": {"S": "a"}, "sk": {"S": "1"}}
    client.get_item(TableName=events, Key=key, ConsistentRead=True)  # 1 block, strongly consistent
    client.get_item(TableName=events, Key={**key, "sk": {"S": "missing"}})  # not found: still half a unit
    client.batch_get_item(RequestItems={events: {"Keys": [key, {**key, "sk": {"S": "2"}}]}})  # each on its own
    # Three 3 KB items examined, the filter keeping none: 9 KB, rounded once to 3 blocks.
    client.query(
        TableName=events,
        KeyConditionExpression="account_id = :a",
        FilterExpression="attribute_exists(nothing)",
        ExpressionAttributeValues={":a": {"S": "a"}},
        ConsistentRead=True,
    )

    assert meter.units["GetItem"] == Units(read=1 + 0.5)
    assert meter.units["BatchGetItem"] == Units(read=0.5 + 0.5)
    assert meter.units["Query"] == Units(read=3)
