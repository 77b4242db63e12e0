"""Writes the webhook's sample API Gateway events (events/webhook-*.json), signed with the test secret.

    python -m local_stack.sample_events            # regenerate events/ with tests/conftest.py's TEST_SECRET

Deterministic (fixed ids, times and gzip header), so regenerating changes nothing unless this file did.
"""

from __future__ import annotations

import base64
import gzip
import importlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from account_doctor.webhook import MAX_BODY_BYTES, sign

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"

NOW = 1732000000  # 2024-11-19T07:06:40Z
GRANT_ID = "e1f4c2a0-7d1b-4c8e-9a57-3b6f0d2e8c11"
V2_ACCOUNT_ID = "5tgncdmczat02216u7d6uypyi"


def v3_grant(trigger: str, event_id: str, **grant: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": trigger,
        "source": "/nylas/system",
        "id": event_id,
        "time": NOW,
        "webhook_delivery_attempt": 1,
        "data": {
            "application_id": "ad410018-d306-43f9-8361-fa5d7b2172e0",
            "object": {
                "grant_id": GRANT_ID,
                "integration_id": "2a3b1c4d-0000-4000-8000-00000000abcd",
                "provider": "google",
                "email": "jane.doe@acme-corp.com",
                "grant_updated_at": NOW - 7 * 86400,
                **grant,
            },
        },
    }


def v2_delta(trigger: str, account_id: str = V2_ACCOUNT_ID, date: int = NOW) -> dict[str, Any]:
    return {
        "date": date,
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


def to_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def api_event(
    method: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """An API Gateway REST (v1) Lambda proxy event for /webhook, as `sam local invoke -e` takes it."""
    all_headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "User-Agent": "Nylas", **(headers or {})}
    text = None if body is None else (base64.b64encode(body).decode("ascii") if base64_encoded else body.decode())
    return {
        "resource": "/webhook",
        "path": "/webhook",
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {name: [value] for name, value in all_headers.items()},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/webhook",
            "httpMethod": method,
            "path": "/v1/webhook",
            "stage": "v1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "accountId": "123456789012",
            "apiId": "abc123",
            "protocol": "HTTP/1.1",
            "identity": {"sourceIp": "34.223.146.200", "userAgent": "Nylas"},
            "requestTimeEpoch": NOW * 1000,
        },
        "body": text,
        "isBase64Encoded": base64_encoded,
    }


def signed_post(body: bytes, secret: str, *, header: str = "X-Nylas-Signature", **options: Any) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", header: sign(body, secret), **options.pop("headers", {})}
    return api_event("POST", body=body, headers=headers, **options)


def sample_events(secret: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Every webhook case of SPEC §2, by file name."""
    v3_key, v2_key = secret["webhook_secret"], secret["client_secret"]
    expired = to_bytes(v3_grant("grant.expired", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a01", code=25009))
    compressed = gzip.compress(
        to_bytes(v3_grant("grant.expired", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a02", code=25009)), mtime=0
    )
    # Seven failures and a recovery: 15 messages, more than one SendMessageBatch can carry.
    burst = [v2_delta("account.invalid", f"burstaccount{n}", NOW + n) for n in range(7)]
    padding = "x" * MAX_BODY_BYTES
    oversized = to_bytes(v3_grant("grant.expired", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a03", padding=padding))
    malformed = b'{"specversion":"1.0","type":"grant.expired",'
    return {
        "webhook-challenge.json": api_event("GET", query={"challenge": "3bd1b2ee-6c23-4f0c-8d4c-challenge"}),
        "webhook-challenge-missing.json": api_event("GET"),
        "webhook-v3-grant-expired.json": signed_post(expired, v3_key),
        "webhook-v3-grant-expired-gzip.json": signed_post(
            compressed, v3_key, headers={"Content-Encoding": "gzip"}, base64_encoded=True
        ),
        "webhook-v3-grant-deleted.json": signed_post(
            to_bytes(v3_grant("grant.deleted", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a04")), v3_key
        ),
        "webhook-v3-grant-updated.json": signed_post(
            to_bytes(v3_grant("grant.updated", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a05", reauthentication_flag=True)),
            v3_key,
            header="x-nylas-signature",
        ),
        "webhook-v3-grant-updated-settings.json": signed_post(
            to_bytes(v3_grant("grant.updated", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a06", reauthentication_flag=False)),
            v3_key,
        ),
        "webhook-v3-grant-created.json": signed_post(
            to_bytes(v3_grant("grant.created", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a07", grant_updated_at=NOW)),
            v3_key,
        ),
        "webhook-v3-message-created.json": signed_post(
            to_bytes(
                {
                    "specversion": "1.0",
                    "type": "message.created",
                    "source": "/google/emails/realtime",
                    "id": "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a08",
                    "time": NOW,
                    "data": {"application_id": "app", "object": {"id": "msg-1", "grant_id": GRANT_ID}},
                }
            ),
            v3_key,
        ),
        "webhook-v2-account-invalid.json": signed_post(to_bytes({"deltas": [v2_delta("account.invalid")]}), v2_key),
        "webhook-v2-account-stopped.json": signed_post(
            to_bytes({"deltas": [v2_delta("account.stopped")]}), v2_key, header="X-NYLAS-SIGNATURE"
        ),
        # API Gateway may hand any body over base64-encoded; the signature covers the decoded bytes.
        "webhook-v2-account-running.json": signed_post(
            to_bytes({"deltas": [v2_delta("account.running", date=NOW + 300)]}), v2_key, base64_encoded=True
        ),
        "webhook-v2-multi-delta.json": signed_post(
            to_bytes(
                {
                    "deltas": [
                        v2_delta("account.invalid", "v2accountone"),
                        v2_delta("account.sync_error", "v2accounttwo"),
                        {"date": NOW, "object": "message", "type": "message.created", "object_data": {"id": "m1"}},
                        v2_delta("account.connected", "v2accountthree"),
                    ]
                }
            ),
            v2_key,
        ),
        "webhook-v2-burst.json": signed_post(
            to_bytes({"deltas": [*burst, v2_delta("account.running", "burstaccount0", NOW + 60)]}), v2_key
        ),
        "webhook-bad-signature.json": signed_post(expired, "not-the-webhook-secret"),
        "webhook-missing-signature.json": api_event("POST", body=expired, headers={"Content-Type": "application/json"}),
        "webhook-v2-signed-with-v3-secret.json": signed_post(
            to_bytes({"deltas": [v2_delta("account.invalid")]}), v3_key
        ),
        "webhook-oversized.json": signed_post(oversized, v3_key),
        "webhook-malformed-json.json": signed_post(malformed, v3_key),
        "webhook-v3-missing-grant-id.json": signed_post(
            to_bytes(v3_grant("grant.expired", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a09", grant_id=None)), v3_key
        ),
    }


def write_events(directory: Path, secret: Mapping[str, str]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, event in sample_events(secret).items():
        path = directory / name
        path.write_text(json.dumps(event, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


def main() -> int:
    # The test secret lives with the tests, which invoke every one of these events.
    # Imported by name so type-checking local_stack does not pull in the test suite.
    sys.path.insert(0, str(EVENTS_DIR.parent))
    test_secret: Mapping[str, str] = importlib.import_module("tests.conftest").TEST_SECRET
    for path in write_events(EVENTS_DIR, test_secret):
        print(path.relative_to(EVENTS_DIR.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
