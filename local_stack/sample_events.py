"""Writes the webhook's sample API Gateway events (events/webhook-*.json), signed with the test secret.

    python -m local_stack.sample_events            # regenerate events/ with local_stack.payloads.TEST_SECRET

Deterministic (fixed ids, times and gzip header), so regenerating changes nothing unless this file did.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from account_doctor.webhook import MAX_BODY_BYTES
from local_stack.payloads import SAMPLE_TIME as NOW
from local_stack.payloads import TEST_SECRET, json_body, signed_webhook_event, v2_delta, v3_notification, webhook_event

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"

GRANT_ID = "e1f4c2a0-7d1b-4c8e-9a57-3b6f0d2e8c11"
V2_ACCOUNT_ID = "5tgncdmczat02216u7d6uypyi"


def v3_grant(trigger: str, event_id: str, **grant: Any) -> bytes:
    """The sample grant's notification: a Google grant last authenticated 7 days before the sample time."""
    fields = {"grant_updated_at": NOW - 7 * 86400, **grant}
    grant_id = fields.pop("grant_id", GRANT_ID)
    return json_body(
        v3_notification(
            trigger,
            grant_id=grant_id,
            provider="google",
            email="jane.doe@acme-corp.com",
            occurred=NOW,
            event_id=event_id,
            **fields,
        )
    )


def v2(*deltas: dict[str, Any]) -> bytes:
    return json_body({"deltas": list(deltas)})


def delta(trigger: str, account_id: str = V2_ACCOUNT_ID, date: int = NOW) -> dict[str, Any]:
    return v2_delta(trigger, account_id=account_id, occurred=date)


def sample_events(secret: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Every webhook case of SPEC §2, by file name."""
    v3_key, v2_key = secret["webhook_secret"], secret["client_secret"]
    expired = v3_grant("grant.expired", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a01", code=25009)
    compressed = gzip.compress(v3_grant("grant.expired", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a02", code=25009), mtime=0)
    # Seven failures and a recovery: 15 messages, more than one SendMessageBatch can carry.
    burst = [delta("account.invalid", f"burstaccount{n}", NOW + n) for n in range(7)]
    padding = "x" * MAX_BODY_BYTES
    oversized = v3_grant("grant.expired", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a03", padding=padding)
    malformed = b'{"specversion":"1.0","type":"grant.expired",'
    return {
        "webhook-challenge.json": webhook_event("GET", query={"challenge": "3bd1b2ee-6c23-4f0c-8d4c-challenge"}),
        "webhook-challenge-missing.json": webhook_event("GET"),
        "webhook-v3-grant-expired.json": signed_webhook_event(expired, v3_key),
        "webhook-v3-grant-expired-gzip.json": signed_webhook_event(
            compressed, v3_key, headers={"Content-Encoding": "gzip"}, base64_encoded=True
        ),
        "webhook-v3-grant-deleted.json": signed_webhook_event(
            v3_grant("grant.deleted", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a04"), v3_key
        ),
        "webhook-v3-grant-updated.json": signed_webhook_event(
            v3_grant("grant.updated", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a05", reauthentication_flag=True),
            v3_key,
            header="x-nylas-signature",
        ),
        "webhook-v3-grant-updated-settings.json": signed_webhook_event(
            v3_grant("grant.updated", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a06", reauthentication_flag=False),
            v3_key,
        ),
        "webhook-v3-grant-created.json": signed_webhook_event(
            v3_grant("grant.created", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a07", grant_updated_at=NOW),
            v3_key,
        ),
        "webhook-v3-message-created.json": signed_webhook_event(
            json_body(
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
        "webhook-v2-account-invalid.json": signed_webhook_event(v2(delta("account.invalid")), v2_key),
        "webhook-v2-account-stopped.json": signed_webhook_event(
            v2(delta("account.stopped")), v2_key, header="X-NYLAS-SIGNATURE"
        ),
        # API Gateway may hand any body over base64-encoded; the signature covers the decoded bytes.
        "webhook-v2-account-running.json": signed_webhook_event(
            v2(delta("account.running", date=NOW + 300)), v2_key, base64_encoded=True
        ),
        "webhook-v2-multi-delta.json": signed_webhook_event(
            json_body(
                {
                    "deltas": [
                        delta("account.invalid", "v2accountone"),
                        delta("account.sync_error", "v2accounttwo"),
                        {"date": NOW, "object": "message", "type": "message.created", "object_data": {"id": "m1"}},
                        delta("account.connected", "v2accountthree"),
                    ]
                }
            ),
            v2_key,
        ),
        "webhook-v2-burst.json": signed_webhook_event(
            v2(*burst, delta("account.running", "burstaccount0", NOW + 60)), v2_key
        ),
        "webhook-bad-signature.json": signed_webhook_event(expired, "not-the-webhook-secret"),
        "webhook-missing-signature.json": webhook_event(
            "POST", body=expired, headers={"Content-Type": "application/json"}
        ),
        "webhook-v2-signed-with-v3-secret.json": signed_webhook_event(v2(delta("account.invalid")), v3_key),
        "webhook-oversized.json": signed_webhook_event(oversized, v3_key),
        "webhook-malformed-json.json": signed_webhook_event(malformed, v3_key),
        "webhook-v3-missing-grant-id.json": signed_webhook_event(
            v3_grant("grant.expired", "d7a5e4c3-0b21-4a77-9f1e-1c2d3e4f5a09", grant_id=None), v3_key
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
    for path in write_events(EVENTS_DIR, TEST_SECRET):
        print(path.relative_to(EVENTS_DIR.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
