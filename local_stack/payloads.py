"""One builder per payload shape the functions receive or read: Nylas's answers and webhooks, API Gateway, SQS, Lambda.

Tests, the local stack, the benchmark and events/ all build their payloads here, so a shape is
written once and cannot drift between them. Developer tooling: nothing here ships in the layer.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from account_doctor.models import RELEASE_STAGE, STAGE_ATTRIBUTE, AccountEvent, Release, Stage, parse_iso
from account_doctor.webhook import sign

ROOT = Path(__file__).resolve().parent.parent

# The Nylas credentials of the tests and the local stack. events/ is signed with them (events/README.md),
# so `sam local invoke -e events/…` against `make serve` and a signed curl example verify alike.
TEST_SECRET = {
    "webhook_secret": "test-webhook-secret",
    "api_key": "nyk_test_api_key",
    "client_id": "test-client-id",
    "client_secret": "test-client-secret",
    "redirect_uri": "https://app.example.com/nylas/callback",
}

ACCOUNT = "123456789012"
REGION = "us-east-1"
SAMPLE_TIME = 1732000000  # 2024-11-19T07:06:40Z: the fixed moment of the sample events
SAMPLE_REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
APPLICATION_ID = "ad410018-d306-43f9-8361-fa5d7b2172e0"
INTEGRATION_ID = "2a3b1c4d-0000-4000-8000-00000000abcd"
# Where Nylas sends webhooks from (the first of its published US webhook IPs).
NYLAS_SOURCE_IP = "34.223.146.200"


# Nylas API answers (SPEC §3).


# The triggers README's deploy steps subscribe a v3 webhook destination to.
V3_WEBHOOK_TRIGGERS = ("grant.created", "grant.updated", "grant.deleted", "grant.expired")


def nylas_v3_webhook(
    webhook_id: str,
    *,
    status: str = "active",
    trigger_types: tuple[str, ...] = V3_WEBHOOK_TRIGGERS,
    webhook_url: str = "https://abc123.execute-api.us-east-1.amazonaws.com/v1/webhook",
) -> dict[str, Any]:
    """A webhook destination as v3 `GET /v3/webhooks` lists it (one item of the answer's `data`)."""
    return {
        "id": webhook_id,
        "description": "Account Doctor",
        "trigger_types": list(trigger_types),
        "webhook_url": webhook_url,
        "status": status,
        "notification_email_addresses": ["operators@example.com"],
        "status_updated_at": 1732000000,
        "created_at": 1731000000,
        "updated_at": 1732000000,
        "compressed_delivery": False,
    }


def nylas_v3_grant(
    grant_id: str,
    *,
    status: str = "valid",
    provider: str = "google",
    email: str = "user@example.com",
    created_at: int = 0,
    updated_at: int = 0,
) -> dict[str, Any]:
    """A grant as v3 `GET /v3/grants/{id}` describes it (the answer's `data`)."""
    return {
        "id": grant_id,
        "grant_status": status,
        "provider": provider,
        "email": email,
        "scope": [],
        "created_at": created_at,
        "updated_at": updated_at,
        "provider_user_id": grant_id,
        "settings": {},
        "ip": "203.0.113.10",
        "state": "",
        "user_agent": "Mozilla/5.0",
    }


def nylas_v3_folders(grant_id: str, folders: Iterable[tuple[str, int | None]]) -> list[dict[str, Any]]:
    """A grant's folders as v3 `GET /v3/grants/{id}/folders` lists them, from (name, total_count)."""
    return [
        {
            "id": f"{grant_id}-folder-{index}",
            "grant_id": grant_id,
            "object": "folder",
            "name": name,
            "attributes": ["\\Inbox"] if name.lower() == "inbox" else [],
            "total_count": total,
            "unread_count": 0,
            "system_folder": True,
        }
        for index, (name, total) in enumerate(folders)
    ]


def nylas_v3_answer(data: dict[str, Any] | list[dict[str, Any]], *, request_id: str | None = None) -> dict[str, Any]:
    """The v3 envelope: one object, or a list with its (here always last) page cursor."""
    answer: dict[str, Any] = {"request_id": request_id or str(uuid.uuid4()), "data": data}
    if isinstance(data, list):
        answer["next_cursor"] = None
    return answer


def nylas_v3_error(kind: str, message: str, *, request_id: str | None = None) -> dict[str, Any]:
    """A v3 error answer, e.g. `not_found_error` with a 404."""
    return {"request_id": request_id or str(uuid.uuid4()), "error": {"type": kind, "message": message}}


def nylas_v2_account(
    account_id: str,
    *,
    sync_state: str = "running",
    billing_state: str = "paid",
    provider: str = "imap",
    email: str = "user@example.com",
) -> dict[str, Any]:
    """An account as the v2 management endpoint `GET /a/{client_id}/accounts/{id}` describes it."""
    return {
        "account_id": account_id,
        "id": account_id,
        "namespace_id": account_id,
        "email": email,
        "provider": provider,
        "sync_state": sync_state,
        "billing_state": billing_state,
        "trial": False,
    }


def nylas_v2_error(kind: str, message: str) -> dict[str, Any]:
    """A v2 error answer, e.g. `invalid_request_error` with a 404."""
    return {"message": message, "type": kind}


# Nylas webhooks (SPEC §2).


def v3_notification(
    trigger: str,
    *,
    grant_id: str | None,
    provider: str,
    email: str,
    occurred: float,
    event_id: str | None = None,
    **grant_fields: Any,
) -> dict[str, Any]:
    """A v3 grant notification (CloudEvents) as Nylas posts it; `grant_fields` complete `data.object`."""
    return {
        "specversion": "1.0",
        "type": trigger,
        "source": "/nylas/system",
        "id": event_id or str(uuid.uuid4()),
        "time": int(occurred),
        "webhook_delivery_attempt": 1,
        "data": {
            "application_id": APPLICATION_ID,
            "object": {
                "grant_id": grant_id,
                "integration_id": INTEGRATION_ID,
                "provider": provider,
                "email": email,
                **grant_fields,
            },
        },
    }


def v2_delta(trigger: str, *, account_id: str, occurred: float) -> dict[str, Any]:
    """One delta of a v2 webhook (a POST carries `{"deltas": [...]}`): v2 names the account, nothing more."""
    return {
        "date": int(occurred),
        "object": "account",
        "type": trigger,
        "object_data": {
            "namespace_id": f"ns-{account_id}",
            "account_id": account_id,
            "object": "account",
            "attributes": None,
            "id": account_id,
            "metadata": None,
        },
    }


def json_body(payload: Mapping[str, Any]) -> bytes:
    """The compact JSON bytes Nylas sends (and signs)."""
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


# API Gateway REST (v1 payload) proxy events.


def api_gateway_event(
    method: str,
    path: str,
    *,
    resource: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
    headers: Iterable[tuple[str, str]] = (),
    query: Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
    base64_encoded: bool = False,
    identity: Mapping[str, Any] | None = None,
    source_ip: str = "127.0.0.1",
    request_id: str = SAMPLE_REQUEST_ID,
    request_time_ms: int = SAMPLE_TIME * 1000,
    api_id: str = "abc123",
    stage: str = "v1",
) -> dict[str, Any]:
    """The event API Gateway hands a Lambda proxy integration for one request (headers and query as pairs).

    `base64_encoded`: the body arrives base64-encoded, as API Gateway hands over binary or compressed bodies.
    """
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        single_headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    multi_query: dict[str, list[str]] = {}
    for name, value in query:
        multi_query.setdefault(name, []).append(value)
    text = None
    if body:
        text = base64.b64encode(body).decode("ascii") if base64_encoded else body.decode("utf-8")
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": request_id,
            "accountId": ACCOUNT,
            "apiId": api_id,
            "protocol": "HTTP/1.1",
            "identity": dict(identity)
            if identity is not None
            else {"sourceIp": source_ip, "userAgent": single_headers.get("User-Agent")},
            "requestTimeEpoch": request_time_ms,
        },
        "body": text,
        "isBase64Encoded": bool(text) and base64_encoded,
    }


def webhook_event(
    method: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """A request from Nylas to `/webhook`: the challenge GET or a notification POST."""
    all_headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "User-Agent": "Nylas", **(headers or {})}
    return api_gateway_event(
        method,
        "/webhook",
        headers=all_headers.items(),
        query=(query or {}).items(),
        body=body,
        base64_encoded=base64_encoded,
        source_ip=NYLAS_SOURCE_IP,
    )


def signed_webhook_event(
    body: bytes,
    secret: str,
    *,
    header: str = "X-Nylas-Signature",
    headers: Mapping[str, str] | None = None,
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """A notification POST signed as Nylas signs it (HMAC-SHA256 of the raw body), under `header`."""
    signed = {"Content-Type": "application/json", header: sign(body, secret), **(headers or {})}
    return webhook_event("POST", body=body, headers=signed, base64_encoded=base64_encoded)


def read_api_event(
    path: str,
    resource: str,
    path_parameters: Mapping[str, str] | None = None,
    *,
    method: str = "GET",
    query: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """An IAM-authenticated request to the read API, e.g. ("/accounts/g-1", "/accounts/{account_id}", {…})."""
    return api_gateway_event(
        method,
        path,
        resource=resource,
        path_parameters=path_parameters,
        query=query,
        headers=[("Accept", "application/json"), ("Host", "abc123.execute-api.us-east-1.amazonaws.com")],
        identity={
            "userArn": f"arn:aws:iam::{ACCOUNT}:user/operator",
            "caller": "AIDAEXAMPLE",
            "accessKey": "AKIAEXAMPLE",
            "sourceIp": "203.0.113.7",
        },
        request_time_ms=1732010400000,
    )


# SQS event source.


def sqs_record(
    *,
    message_id: str,
    receipt_handle: str,
    body: str,
    attributes: Mapping[str, str],
    message_attributes: Mapping[str, Mapping[str, str]],
    queue_arn: str,
    md5_of_body: str | None = None,
) -> dict[str, Any]:
    """One record of the event Lambda's SQS event source delivers; message attributes in the SQS API's form."""
    return {
        "messageId": message_id,
        "receiptHandle": receipt_handle,
        "body": body,
        "attributes": dict(attributes),
        "messageAttributes": {
            name: {
                **({"stringValue": value["StringValue"]} if "StringValue" in value else {}),
                **({"binaryValue": value["BinaryValue"]} if "BinaryValue" in value else {}),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in message_attributes.items()
        },
        "md5OfBody": md5_of_body or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }


def sqs_event(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": list(records)}


DIAGNOSIS_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:account-doctor-DiagnosisQueue"
RELEASE_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:account-doctor-ReleaseQueue"


def diagnosis_record(event: AccountEvent, stage: Stage, *, receive_count: int = 1) -> dict[str, Any]:
    """One DiagnosisQueue message (the webhook's `record` or `diagnose` copy of an event), as Lambda delivers it."""
    sent = int(parse_iso(event.occurred_at).timestamp() * 1000)
    return sqs_record(
        message_id=f"{event.event_id}-{stage}",
        receipt_handle=f"receipt-{event.event_id}-{stage}",
        body=event.to_json(),
        attributes={
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(sent),
            "SenderId": "AROAEXAMPLE:account-doctor-WebhookFunction",
            # The diagnose copy is delayed by GraceSeconds (120 by default).
            "ApproximateFirstReceiveTimestamp": str(sent + 120_000 if stage == "diagnose" else sent),
        },
        message_attributes={STAGE_ATTRIBUTE: {"DataType": "String", "StringValue": stage}},
        queue_arn=DIAGNOSIS_QUEUE_ARN,
    )


def release_record(request: Release, *, sent_ms: int = SAMPLE_TIME * 1000) -> dict[str, Any]:
    """One ReleaseQueue message asking to release a page of an incident's held emails (sent by the read API)."""
    return sqs_record(
        message_id=f"release-{request.incident_id}",
        receipt_handle=f"receipt-release-{request.incident_id}",
        body=request.to_json(),
        attributes={
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(sent_ms),
            "SenderId": "AROAEXAMPLE:account-doctor-AccountsApiFunction",
            "ApproximateFirstReceiveTimestamp": str(sent_ms),
        },
        message_attributes={STAGE_ATTRIBUTE: {"DataType": "String", "StringValue": RELEASE_STAGE}},
        queue_arn=RELEASE_QUEUE_ARN,
    )


# Lambda.


class FakeLambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    def __init__(self, function_name: str = "account-doctor-test", timeout_seconds: int = 60) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_module(path: Path, name: str) -> ModuleType:
    """Imports a handler file afresh under a unique module name (every handler module is called app)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_handler(function: str) -> ModuleType:
    """functions/<function>/app.py, cold-started: its module-level clients built with the current environment."""
    return load_module(ROOT / "functions" / function / "app.py", f"handler_{function}")
