"""Every events/webhook-*.json through the real handler, against the template's queue and secret in moto."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from local_stack.sample_events import write_events
from local_stack.template import LocalStack
from tests.conftest import EVENTS_DIR, TEST_SECRET, FakeLambdaContext, load_event, load_handler

GRANT = "e1f4c2a0-7d1b-4c8e-9a57-3b6f0d2e8c11"
V2_ACCOUNT = "5tgncdmczat02216u7d6uypyi"
AT = "2024-11-19T07:06:40Z"  # the events' time, 1732000000
WEEK_BEFORE = "2024-11-12T07:06:40Z"


def v3(trigger: str, event_id: str, grant_updated_at: str = WEEK_BEFORE) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "api_version": "v3",
        "trigger": trigger,
        "account_id": GRANT,
        "occurred_at": AT,
        "provider": "google",
        "email": "jane.doe@acme-corp.com",
        "grant_updated_at": grant_updated_at,
    }


def v2(trigger: str, account_id: str = V2_ACCOUNT, date: int = 1732000000, occurred_at: str = AT) -> dict[str, Any]:
    digest = hashlib.sha256(f"{trigger}\n{account_id}\n{date}".encode()).hexdigest()[:32]
    return {
        "event_id": f"v2-{digest}",
        "api_version": "v2",
        "trigger": trigger,
        "account_id": account_id,
        "occurred_at": occurred_at,
        "provider": None,
        "email": None,
        "grant_updated_at": None,
    }


def failure(body: dict[str, Any]) -> list[tuple[dict[str, Any], str, bool]]:
    """(body, stage, delayed): a failure is recorded at once and diagnosed after the grace period."""
    return [(body, "record", False), (body, "diagnose", True)]


def recorded(body: dict[str, Any]) -> list[tuple[dict[str, Any], str, bool]]:
    return [(body, "record", False)]


def burst_time(n: int) -> str:
    return f"2024-11-19T07:06:{40 + n}Z"


# file -> (status, response body check, expected messages in send order, SendMessageBatch calls)
CASES: dict[str, tuple[int, Any, list[tuple[dict[str, Any], str, bool]], int]] = {
    "webhook-challenge.json": (200, "3bd1b2ee-6c23-4f0c-8d4c-challenge", [], 0),
    "webhook-challenge-missing.json": (400, "challenge", [], 0),
    "webhook-v3-grant-expired.json": (
        200,
        {"accepted": 1, "ignored": 0},
        failure(v3("grant.expired", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a01")),
        1,
    ),
    "webhook-v3-grant-expired-gzip.json": (
        200,
        {"accepted": 1, "ignored": 0},
        failure(v3("grant.expired", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a02")),
        1,
    ),
    "webhook-v3-grant-deleted.json": (
        200,
        {"accepted": 1, "ignored": 0},
        recorded(v3("grant.deleted", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a04")),
        1,
    ),
    "webhook-v3-grant-updated.json": (
        200,
        {"accepted": 1, "ignored": 0},
        recorded(v3("grant.updated", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a05")),
        1,
    ),
    "webhook-v3-grant-updated-settings.json": (200, {"accepted": 0, "ignored": 1}, [], 0),
    "webhook-v3-grant-created.json": (
        200,
        {"accepted": 1, "ignored": 0},
        recorded(v3("grant.created", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a07", grant_updated_at=AT)),
        1,
    ),
    "webhook-v3-message-created.json": (200, {"accepted": 0, "ignored": 1}, [], 0),
    "webhook-v2-account-invalid.json": (200, {"accepted": 1, "ignored": 0}, failure(v2("account.invalid")), 1),
    "webhook-v2-account-stopped.json": (200, {"accepted": 1, "ignored": 0}, failure(v2("account.stopped")), 1),
    "webhook-v2-account-running.json": (
        200,
        {"accepted": 1, "ignored": 0},
        recorded(v2("account.running", date=1732000300, occurred_at="2024-11-19T07:11:40Z")),
        1,
    ),
    "webhook-v2-multi-delta.json": (
        200,
        {"accepted": 3, "ignored": 1},
        failure(v2("account.invalid", "v2accountone"))
        + failure(v2("account.sync_error", "v2accounttwo"))
        + recorded(v2("account.connected", "v2accountthree")),
        1,
    ),
    "webhook-v2-burst.json": (
        200,
        {"accepted": 8, "ignored": 0},
        [
            message
            for n in range(7)
            for message in failure(v2("account.invalid", f"burstaccount{n}", 1732000000 + n, burst_time(n)))
        ]
        + recorded(v2("account.running", "burstaccount0", 1732000060, "2024-11-19T07:07:40Z")),
        2,  # 15 messages: SQS takes at most 10 per batch
    ),
    "webhook-bad-signature.json": (401, "does not match", [], 0),
    "webhook-missing-signature.json": (401, "missing X-Nylas-Signature", [], 0),
    "webhook-v2-signed-with-v3-secret.json": (401, "client_secret", [], 0),
    "webhook-oversized.json": (413, "262144 bytes", [], 0),
    "webhook-malformed-json.json": (400, "not valid JSON", [], 0),
    "webhook-v3-missing-grant-id.json": (400, "data.object.grant_id", [], 0),
}


def test_every_webhook_event_file_has_a_case() -> None:
    assert sorted(p.name for p in EVENTS_DIR.glob("webhook-*.json")) == sorted(CASES)


def test_committed_events_are_what_the_generator_writes(tmp_path: Path) -> None:
    """events/ can be regenerated (python -m local_stack.sample_events) and is signed with TEST_SECRET."""
    for path in write_events(tmp_path, TEST_SECRET):
        assert path.read_text(encoding="utf-8") == (EVENTS_DIR / path.name).read_text(encoding="utf-8"), path.name


class SentBatches:
    """Records every SendMessageBatch the handler's own SQS client makes (the delayed ones cannot be received yet)."""

    def __init__(self, handler: ModuleType) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        handler.sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", self._record)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(list(params["Entries"]))

    @property
    def entries(self) -> list[dict[str, Any]]:
        return [entry for call in self.calls for entry in call]


def drain(stack: LocalStack) -> list[tuple[dict[str, Any], str]]:
    """Every message visible on the diagnosis queue now, as (body, stage)."""
    url = stack.physical["DiagnosisQueue"]
    sqs = boto3.client("sqs", region_name="us-east-1")
    received = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get(
            "Messages", []
        )
        if not batch:
            return received
        for message in batch:
            received.append((json.loads(message["Body"]), message["MessageAttributes"]["stage"]["StringValue"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def delayed_count(stack: LocalStack) -> int:
    sqs = boto3.client("sqs", region_name="us-east-1")
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.physical["DiagnosisQueue"], AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesDelayed"])


def key(item: tuple[dict[str, Any], str]) -> str:
    return json.dumps(item, sort_keys=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_webhook_event(name: str, aws: LocalStack, lambda_context: FakeLambdaContext) -> None:
    status, expected_body, expected_messages, expected_calls = CASES[name]
    grace = int(aws.parameters["GraceSeconds"])
    handler = load_handler("webhook")
    sent = SentBatches(handler)

    response = handler.lambda_handler(load_event(name), lambda_context)

    assert response["statusCode"] == status
    if isinstance(expected_body, dict):
        assert response["headers"]["Content-Type"] == "application/json"
        assert json.loads(response["body"]) == expected_body
    elif status == 200:  # the challenge: exactly the value, as plain text
        assert response["headers"]["Content-Type"] == "text/plain"
        assert response["body"] == expected_body
    else:
        assert expected_body in json.loads(response["body"])["message"]

    assert len(sent.calls) == expected_calls
    assert all(len(call) <= 10 for call in sent.calls)
    assert [
        (
            json.loads(e["MessageBody"]),
            e["MessageAttributes"]["stage"]["StringValue"],
            e["DelaySeconds"],
        )
        for e in sent.entries
    ] == [(body, stage, grace if delayed else 0) for body, stage, delayed in expected_messages]
    # What actually landed: the immediate copies are on the queue now, the diagnose copies are delayed.
    assert Counter(map(key, drain(aws))) == Counter(
        key((body, stage)) for body, stage, delayed in expected_messages if not delayed
    )
    assert delayed_count(aws) == sum(1 for *_, delayed in expected_messages if delayed)


def test_a_nylas_retry_enqueues_the_same_event_ids(aws: LocalStack, lambda_context: FakeLambdaContext) -> None:
    handler = load_handler("webhook")
    sent = SentBatches(handler)
    for _ in range(2):
        assert handler.lambda_handler(load_event("webhook-v2-multi-delta.json"), lambda_context)["statusCode"] == 200
    first, second = ([json.loads(e["MessageBody"])["event_id"] for e in call] for call in sent.calls)
    assert first == second


def test_sqs_unavailable_answers_503_so_nylas_retries(aws: LocalStack, lambda_context: FakeLambdaContext) -> None:
    handler = load_handler("webhook")
    handler.sqs.delete_queue(QueueUrl=aws.physical["DiagnosisQueue"])

    response = handler.lambda_handler(load_event("webhook-v3-grant-expired.json"), lambda_context)

    assert response["statusCode"] == 503
    assert "retry" in json.loads(response["body"])["message"]


def test_partial_batch_failure_is_not_claimed_as_success(aws: LocalStack, lambda_context: FakeLambdaContext) -> None:
    """The burst needs two batches; the first lands, the second is partly refused: Nylas must retry the POST."""
    handler = load_handler("webhook")
    with Stubber(handler.sqs) as stub:
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [{"Id": f"{i}", "MessageId": f"m{i}", "MD5OfMessageBody": "x"} for i in range(10)],
                "Failed": [],
            },
        )
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [{"Id": "5-record", "MessageId": "m", "MD5OfMessageBody": "x"}],
                "Failed": [{"Id": "5-diagnose", "SenderFault": False, "Code": "InternalError"}],
            },
        )
        response = handler.lambda_handler(load_event("webhook-v2-burst.json"), lambda_context)
        stub.assert_no_pending_responses()

    assert response["statusCode"] == 503
    assert json.loads(response["body"]) == {"message": "could not enqueue the events; retry later"}


def test_logs_mask_email_and_carry_the_event_id(aws: LocalStack, lambda_context: FakeLambdaContext) -> None:
    handler = load_handler("webhook")
    stream = io.StringIO()
    handler.logger.registered_handler.setStream(stream)
    handler.lambda_handler(load_event("webhook-v3-grant-expired.json"), lambda_context)
    out = stream.getvalue()
    assert "jane.doe@acme-corp.com" not in out
    assert TEST_SECRET["webhook_secret"] not in out
    logs = [json.loads(line) for line in out.splitlines() if line.startswith('{"level"')]
    accepted = next(line for line in logs if line["message"] == "webhook accepted")
    assert accepted["correlation_id"] == "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a01"
    assert accepted["events"][0]["email"] == "j***@acme-corp.com"
