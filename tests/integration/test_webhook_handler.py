"""Every events/webhook-*.json through the real handler, against the template's queue and secret in moto.

The sample events are dated 2024-11-19 (local_stack.payloads.SAMPLE_TIME) and the webhook acknowledges
account events older than WebhookMaxAgeHours without enqueueing them (SPEC §2), so the handler under
test runs at the events' own time: its `clock` is set to REPLAY_AT.
"""

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
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from account_doctor.credentials import FAILURE_MAX_AGE_SECONDS, WebhookKeySource
from account_doctor.settings import WebhookSettings, get_settings
from local_stack.payloads import SAMPLE_TIME as NOW
from local_stack.payloads import (
    TEST_SECRET,
    FakeLambdaContext,
    json_body,
    load_handler,
    signed_webhook_event,
    v2_delta,
    v3_notification,
    webhook_event,
)
from local_stack.sample_events import write_events
from local_stack.template import ProvisionedStack
from tests.conftest import EVENTS_DIR, load_event

# Ten minutes after the sample events' time: every one of them (dated NOW to NOW + 300 s) is fresh.
REPLAY_AT = NOW + 600

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
    """Records every message the handler's own SQS client sends, by SendMessageBatch or SendMessage.

    Recorded as the client is asked to send (the delayed ones cannot be received yet), each call as its
    list of entries: a SendMessage counts as a call of one entry.
    """

    def __init__(self, handler: ModuleType) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        events = handler.sqs.meta.events
        events.register("provide-client-params.sqs.SendMessageBatch", self._record_batch)
        events.register("provide-client-params.sqs.SendMessage", self._record_one)

    def _record_batch(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(list(params["Entries"]))

    def _record_one(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append([{key: value for key, value in params.items() if key != "QueueUrl"}])

    @property
    def entries(self) -> list[dict[str, Any]]:
        return [entry for call in self.calls for entry in call]


def use_webhook_environment(stack: ProvisionedStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """WebhookFunction's own environment: its NYLAS_SECRET_NAME names NylasWebhookSecret, not the API keys'.

    The `aws` fixture sets every function's variables at once, where the diagnosis's secret name wins.
    """
    for name, value in stack.function_environment("WebhookFunction").items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    assert get_settings(WebhookSettings).nylas_secret_name == stack.physical["NylasWebhookSecret"]


def cold_webhook(stack: ProvisionedStack, monkeypatch: pytest.MonkeyPatch, *, now: float = REPLAY_AT) -> ModuleType:
    """A cold-started WebhookFunction with its own environment, whose clock reads `now`."""
    use_webhook_environment(stack, monkeypatch)
    handler = load_handler("webhook")
    handler.intake.clock = lambda: now
    return handler


@pytest.fixture
def webhook_environment(aws: ProvisionedStack, monkeypatch: pytest.MonkeyPatch) -> ProvisionedStack:
    use_webhook_environment(aws, monkeypatch)
    return aws


@pytest.fixture
def webhook_handler(aws: ProvisionedStack, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The WebhookFunction at the sample events' time (REPLAY_AT)."""
    return cold_webhook(aws, monkeypatch)


def drain(stack: ProvisionedStack) -> list[tuple[dict[str, Any], str]]:
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


def delayed_count(stack: ProvisionedStack) -> int:
    sqs = boto3.client("sqs", region_name="us-east-1")
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.physical["DiagnosisQueue"], AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesDelayed"])


def key(item: tuple[dict[str, Any], str]) -> str:
    return json.dumps(item, sort_keys=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_webhook_event(
    name: str, aws: ProvisionedStack, webhook_handler: ModuleType, lambda_context: FakeLambdaContext
) -> None:
    status, expected_body, expected_messages, expected_calls = CASES[name]
    grace = int(aws.parameters["GraceSeconds"])
    handler = webhook_handler
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


def test_a_nylas_retry_enqueues_the_same_event_ids(
    webhook_handler: ModuleType, lambda_context: FakeLambdaContext
) -> None:
    handler = webhook_handler
    sent = SentBatches(handler)
    for _ in range(2):
        assert handler.lambda_handler(load_event("webhook-v2-multi-delta.json"), lambda_context)["statusCode"] == 200
    first, second = ([json.loads(e["MessageBody"])["event_id"] for e in call] for call in sent.calls)
    assert first == second


def test_sqs_unavailable_answers_503_so_nylas_retries(
    aws: ProvisionedStack, webhook_handler: ModuleType, lambda_context: FakeLambdaContext
) -> None:
    handler = webhook_handler
    handler.sqs.delete_queue(QueueUrl=aws.physical["DiagnosisQueue"])

    response = handler.lambda_handler(load_event("webhook-v3-grant-expired.json"), lambda_context)

    assert response["statusCode"] == 503
    assert "retry" in json.loads(response["body"])["message"]


def test_partial_batch_failure_is_not_claimed_as_success(
    webhook_handler: ModuleType, lambda_context: FakeLambdaContext
) -> None:
    """The burst needs two batches; the first lands, the second is partly refused: Nylas must retry the POST."""
    handler = webhook_handler
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


def test_logs_mask_email_and_carry_the_event_id(webhook_handler: ModuleType, lambda_context: FakeLambdaContext) -> None:
    handler = webhook_handler
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


# --- the secret unavailable (SPEC §2): 401 unsigned, 503 signed, one read per failure period -------------
class SecretReads:
    """Counts the GetSecretValue calls Powertools makes; while `throttled`, each is refused as throttled."""

    def __init__(self) -> None:
        self.count = 0
        self.throttled = False

    def __call__(self, **_: Any) -> None:
        self.count += 1
        if self.throttled:  # what the client raises once botocore's own retries are used up
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetSecretValue")


@pytest.fixture
def secret_reads(webhook_environment: ProvisionedStack, monkeypatch: pytest.MonkeyPatch) -> SecretReads:
    reads = SecretReads()
    client = boto3.client("secretsmanager")
    client.meta.events.register("before-call.secrets-manager.GetSecretValue", reads)
    monkeypatch.setitem(DEFAULT_PROVIDERS, "secrets", SecretsProvider(boto3_client=client))
    return reads


def _delete(name: str, reads: SecretReads) -> None:
    boto3.client("secretsmanager").delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


def _never_set(name: str, reads: SecretReads) -> None:
    """As a fresh deployment leaves it: the stack creates the secret without a value (template.yaml)."""
    secretsmanager = boto3.client("secretsmanager")
    secretsmanager.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    secretsmanager.create_secret(Name=name)


def _throttle(name: str, reads: SecretReads) -> None:
    reads.throttled = True


def _not_json(name: str, reads: SecretReads) -> None:
    boto3.client("secretsmanager").put_secret_value(SecretId=name, SecretString="webhook_secret=abc")


def _not_an_object(name: str, reads: SecretReads) -> None:
    boto3.client("secretsmanager").put_secret_value(SecretId=name, SecretString='["abc"]')


def _repair(name: str, reads: SecretReads) -> None:
    reads.throttled = False
    secretsmanager = boto3.client("secretsmanager")
    value = json.dumps({"webhook_secret": TEST_SECRET["webhook_secret"], "client_secret": TEST_SECRET["client_secret"]})
    try:
        secretsmanager.put_secret_value(SecretId=name, SecretString=value)
    except secretsmanager.exceptions.ResourceNotFoundException:
        secretsmanager.create_secret(Name=name, SecretString=value)


SECRET_FAULTS = {
    "deleted": _delete,
    "never-set": _never_set,
    "throttled": _throttle,
    "not-json": _not_json,
    "json-not-an-object": _not_an_object,
}


@pytest.mark.parametrize("fault", sorted(SECRET_FAULTS))
def test_an_unreadable_secret_answers_401_unsigned_and_503_signed(
    fault: str,
    webhook_handler: ModuleType,
    secret_reads: SecretReads,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    handler = webhook_handler
    name = get_settings(WebhookSettings).nylas_secret_name
    elapsed = [0.0]  # seconds since the first failed read, on the key source's own clock
    handler.intake.keys = WebhookKeySource(name, clock=lambda: elapsed[0])
    sent = SentBatches(handler)
    SECRET_FAULTS[fault](name, secret_reads)

    def status(file: str) -> int:
        code: int = handler.lambda_handler(load_event(file), lambda_context)["statusCode"]
        return code

    assert status("webhook-missing-signature.json") == 401
    assert secret_reads.count == 0  # refused before the secret is read
    response = handler.lambda_handler(load_event("webhook-v3-grant-expired.json"), lambda_context)
    assert response["statusCode"] == 503  # Nylas retries; never a 500 or 502
    assert "retry later" in json.loads(response["body"])["message"]
    assert secret_reads.count == 1

    elapsed[0] = FAILURE_MAX_AGE_SECONDS - 0.1  # within the failure's max age: answered without a read
    assert status("webhook-v3-grant-expired.json") == 503
    assert status("webhook-v2-account-invalid.json") == 503
    assert status("webhook-missing-signature.json") == 401
    assert status("webhook-challenge.json") == 200  # the challenge needs no secret
    assert secret_reads.count == 1
    assert sent.calls == []
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert sum(blob.get("WebhookSecretUnavailable", [0])[0] for blob in metrics) == 3

    _repair(name, secret_reads)  # the operator fixes it: picked up on the first request after the max age
    elapsed[0] = FAILURE_MAX_AGE_SECONDS
    assert status("webhook-v3-grant-expired.json") == 200
    assert secret_reads.count == 2
    assert len(sent.calls) == 1


def test_the_webhook_reads_only_its_own_secret(
    aws: ProvisionedStack, webhook_handler: ModuleType, secret_reads: SecretReads, lambda_context: FakeLambdaContext
) -> None:
    """The API credentials' secret can be gone entirely: the webhook never needs it (SPEC §7)."""
    boto3.client("secretsmanager").delete_secret(SecretId=aws.physical["NylasSecret"], ForceDeleteWithoutRecovery=True)
    _repair(aws.physical["NylasWebhookSecret"], secret_reads)  # only webhook_secret and client_secret in it
    for name in ("webhook-v3-grant-expired.json", "webhook-v2-account-invalid.json"):
        assert webhook_handler.lambda_handler(load_event(name), lambda_context)["statusCode"] == 200


# --- stale or implausible events (SPEC §2): acknowledged, not enqueued, counted ----------------------------
def max_age_seconds(stack: ProvisionedStack) -> int:
    return int(stack.parameters["WebhookMaxAgeHours"]) * 3600


STALE_FILES = ["webhook-v3-grant-expired.json", "webhook-v3-grant-expired-gzip.json", "webhook-v2-account-invalid.json"]


@pytest.mark.parametrize("file", STALE_FILES)
@pytest.mark.parametrize(
    ("case", "seconds_after_the_event"),
    [("replayed-after-the-max-age", "max_age+1"), ("dated-over-15-minutes-ahead", "-901")],
)
def test_a_stale_signed_webhook_changes_nothing(
    file: str,
    case: str,
    seconds_after_the_event: str,
    aws: ProvisionedStack,
    webhook_handler: ModuleType,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    offset = max_age_seconds(aws) + 1 if seconds_after_the_event == "max_age+1" else int(seconds_after_the_event)
    webhook_handler.intake.clock = lambda: NOW + offset
    sent = SentBatches(webhook_handler)

    response = webhook_handler.lambda_handler(load_event(file), lambda_context)

    assert response["statusCode"] == 200  # acknowledged: Nylas stops retrying it
    assert json.loads(response["body"]) == {"accepted": 0, "ignored": 0, "stale": 1}
    assert sent.calls == []
    assert drain(aws) == []
    assert delayed_count(aws) == 0
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert sum(blob.get("StaleWebhooks", [0])[0] for blob in metrics) == 1


@pytest.mark.parametrize(
    ("case", "seconds_after_the_event"),
    [("exactly-the-max-age", "max_age"), ("exactly-15-minutes-ahead", "-900"), ("at-once", "0")],
)
def test_events_at_the_limits_are_accepted(
    case: str,
    seconds_after_the_event: str,
    aws: ProvisionedStack,
    webhook_handler: ModuleType,
    lambda_context: FakeLambdaContext,
) -> None:
    offset = max_age_seconds(aws) if seconds_after_the_event == "max_age" else int(seconds_after_the_event)
    webhook_handler.intake.clock = lambda: NOW + offset
    sent = SentBatches(webhook_handler)
    response = webhook_handler.lambda_handler(load_event("webhook-v3-grant-expired.json"), lambda_context)
    assert json.loads(response["body"]) == {"accepted": 1, "ignored": 0}
    assert len(sent.entries) == 2  # record + diagnose


def test_a_multi_delta_post_enqueues_only_its_fresh_deltas(
    aws: ProvisionedStack, webhook_handler: ModuleType, lambda_context: FakeLambdaContext
) -> None:
    old = REPLAY_AT - max_age_seconds(aws) - 60
    body = json_body(
        {
            "deltas": [
                v2_delta("account.invalid", account_id="replayedaccount", occurred=old),
                v2_delta("account.stopped", account_id="freshaccount", occurred=REPLAY_AT - 60),
            ]
        }
    )
    sent = SentBatches(webhook_handler)

    response = webhook_handler.lambda_handler(signed_webhook_event(body, TEST_SECRET["client_secret"]), lambda_context)

    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"accepted": 1, "ignored": 0, "stale": 1}
    assert len(sent.calls) == 1
    assert [(json.loads(e["MessageBody"])["account_id"], e["DelaySeconds"] > 0) for e in sent.entries] == [
        ("freshaccount", False),
        ("freshaccount", True),
    ]


# --- hostile but signed input: a 4xx that enqueues nothing, never a 5xx ---------------------------------------
HUGE = 10**400  # valid JSON; beyond any float, so math.isfinite raises OverflowError


def _expired(**changes: Any) -> bytes:
    notification = v3_notification(
        "grant.expired", grant_id="g1", provider="google", email="a@b.io", occurred=REPLAY_AT
    )
    grant = {**notification["data"]["object"], **changes.pop("grant", {})}
    return json_body({**notification, "data": {**notification["data"], "object": grant}, **changes})


@pytest.mark.parametrize(
    ("body", "secret"),
    [
        (_expired(time=HUGE), "webhook_secret"),
        (_expired(grant={"grant_updated_at": HUGE}), "webhook_secret"),
        (
            json_body(
                {"deltas": [{**v2_delta("account.invalid", account_id="acc1", occurred=REPLAY_AT), "date": HUGE}]}
            ),
            "client_secret",
        ),
    ],
    ids=["v3-time", "v3-grant-updated-at", "v2-date"],
)
def test_a_signed_timestamp_beyond_any_float_is_a_400(
    body: bytes, secret: str, webhook_handler: ModuleType, lambda_context: FakeLambdaContext
) -> None:
    sent = SentBatches(webhook_handler)
    response = webhook_handler.lambda_handler(signed_webhook_event(body, TEST_SECRET[secret]), lambda_context)
    assert response["statusCode"] == 400
    assert "Unix timestamp" in json.loads(response["body"])["message"]
    assert sent.calls == []


def test_copies_of_a_delta_are_enqueued_once_and_too_many_deltas_are_a_413(
    webhook_handler: ModuleType, lambda_context: FakeLambdaContext
) -> None:
    failure = v2_delta("account.invalid", account_id="acc1", occurred=REPLAY_AT - 60)
    sent = SentBatches(webhook_handler)
    response = webhook_handler.lambda_handler(
        signed_webhook_event(json_body({"deltas": [failure] * 50}), TEST_SECRET["client_secret"]), lambda_context
    )
    assert json.loads(response["body"]) == {"accepted": 1, "ignored": 0}
    assert len(sent.entries) == 2  # one record, one diagnose: not 100 messages
    flood = [v2_delta("account.invalid", account_id=f"acc{n}", occurred=REPLAY_AT - 60) for n in range(101)]
    response = webhook_handler.lambda_handler(
        signed_webhook_event(json_body({"deltas": flood}), TEST_SECRET["client_secret"]), lambda_context
    )
    assert response["statusCode"] == 413
    assert "at most 100 deltas" in json.loads(response["body"])["message"]
    assert len(sent.entries) == 2


def test_the_challenge_answer_is_never_sniffed_and_is_capped(
    webhook_handler: ModuleType, lambda_context: FakeLambdaContext
) -> None:
    answer = webhook_handler.lambda_handler(webhook_event("GET", query={"challenge": "<b>hi</b>"}), lambda_context)
    assert (answer["statusCode"], answer["body"]) == (200, "<b>hi</b>")
    assert answer["headers"] == {"Content-Type": "text/plain", "X-Content-Type-Options": "nosniff"}
    long = webhook_handler.lambda_handler(webhook_event("GET", query={"challenge": "c" * 5000}), lambda_context)
    assert long["statusCode"] == 400
    assert "at most 1024 characters" in json.loads(long["body"])["message"]


def test_an_ignored_notification_with_a_forged_id_is_refused_before_it_reaches_the_logs(
    webhook_handler: ModuleType, lambda_context: FakeLambdaContext
) -> None:
    stream = io.StringIO()
    webhook_handler.logger.registered_handler.setStream(stream)
    body = json_body(
        {"specversion": "1.0", "type": "message.created", "id": "x\r\n" + "y" * 100_000, "time": REPLAY_AT}
    )
    response = webhook_handler.lambda_handler(signed_webhook_event(body, TEST_SECRET["webhook_secret"]), lambda_context)
    assert response["statusCode"] == 400
    assert "yyyy" not in stream.getvalue()
