"""The local stack's faster moto (local_stack/moto_fast.py) answers as moto does: tables, indexes, queues."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local_stack import moto_fast
from local_stack.template import ProvisionedStack


@pytest.fixture(autouse=True)
def _fast_moto_in_this_module_only() -> Iterator[None]:
    """Each test here starts with the fast path installed; the tests after them get moto as it was."""
    was_installed = moto_fast.installed()
    moto_fast.install()
    yield
    if was_installed:
        moto_fast.install()
    else:
        moto_fast.uninstall()


@pytest.fixture
def tables(aws: ProvisionedStack) -> tuple[Any, str, str]:
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


def _query_answers(client: Any, events: str) -> list[dict[str, Any]]:
    """Every page of a few queries: on the table and an index, ranged, reversed, filtered, paged, counted."""
    queries: list[dict[str, Any]] = [
        {"KeyConditionExpression": "account_id = :a", "ExpressionAttributeValues": {":a": {"S": "acct-3"}}},
        {
            "KeyConditionExpression": "account_id = :a AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":a": {"S": "acct-1"},
                ":low": {"S": "2024-11-19T10:02"},
                ":high": {"S": "z"},
            },
            "ScanIndexForward": False,
            "Limit": 2,
        },
        {"KeyConditionExpression": "account_id = :a", "ExpressionAttributeValues": {":a": {"S": "nobody"}}},
        {
            "IndexName": "DomainFailures",
            "KeyConditionExpression": "failure_domain = :d AND occurred_at >= :since",
            "ExpressionAttributeValues": {":d": {"S": "acme.example"}, ":since": {"S": "2024-11-19T10:03"}},
            "Limit": 3,
        },
        {
            "IndexName": "DomainFailures",
            "KeyConditionExpression": "failure_domain = :d",
            "FilterExpression": "begins_with(email, :who)",
            "ExpressionAttributeValues": {":d": {"S": "acme.example"}, ":who": {"S": "user1"}},
            "Select": "COUNT",
        },
    ]
    answers = []
    for query in queries:
        request: dict[str, Any] = {"TableName": events, **query}
        while True:
            page = client.query(**request)
            page.pop("ResponseMetadata")
            answers.append(page)
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return answers


def test_queries_answer_as_moto_does_without_the_fast_path(tables: tuple[Any, str, str]) -> None:
    client, events, _ = tables
    for n in range(40):
        client.put_item(
            TableName=events,
            Item={
                "account_id": {"S": f"acct-{n % 5}"},
                "sk": {"S": f"2024-11-19T10:{n:02d}:00Z#e{n}"},
                "occurred_at": {"S": f"2024-11-19T10:{n:02d}:00Z"},
                "email": {"S": f"user{n}@acme.example"},
                # Every third failure is another domain's; every seventh has none (the index is sparse).
                **({} if n % 7 == 0 else {"failure_domain": {"S": "acme.example" if n % 3 else "globex.example"}}),
            },
        )

    fast = _query_answers(client, events)
    moto_fast.uninstall()
    walked = _query_answers(client, events)

    assert fast == walked
    assert [page["Count"] for page in fast][:2] == [8, 2]  # the queries found what they ask for


@pytest.mark.parametrize("path", ["fast", "moto"])
def test_queues_answer_as_moto_does_without_the_fast_path(aws: ProvisionedStack, path: str) -> None:
    if path == "moto":
        moto_fast.uninstall()
    sqs = boto3.client("sqs")
    queue = aws.physical["DiagnosisQueue"]
    sqs.send_message_batch(
        QueueUrl=queue,
        Entries=[
            {"Id": "now", "MessageBody": "now"},
            {"Id": "soon", "MessageBody": "soon"},
            {"Id": "later", "MessageBody": "later", "DelaySeconds": 600},
        ],
    )

    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=300)["Messages"]
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=received[0]["ReceiptHandle"])
    again = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    counts = sqs.get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]

    assert sorted(m["Body"] for m in received) == ["now", "soon"]
    assert again == []  # one deleted, one in flight, one delayed
    assert counts == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "1",
        "ApproximateNumberOfMessagesDelayed": "1",
    }
