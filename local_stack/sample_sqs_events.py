"""DiagnosisQueue scenarios, one per cause of SPEC §4, and the events/sqs-*.json / api-*.json files made from them.

A scenario is the failure on the queue, what Nylas answers about the account, and the events
already in the history (the neighbours of a domain cluster, earlier failures). Tests, the
benchmark and `python -m local_stack.sample_sqs_events` (which rewrites events/) share them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from account_doctor.models import STAGE_ATTRIBUTE, AccountEvent, Cause, Stage, iso, parse_iso

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:account-doctor-DiagnosisQueue"
FAILED_AT = "2024-11-19T10:00:00Z"


@dataclass(frozen=True)
class NylasAnswer:
    """What Nylas says about one account: a v3 grant (404 when gone) or a v2 account."""

    exists: bool = True
    status: str = "invalid"
    provider: str = "google"
    email: str = "user@example.com"
    billing_state: str = "paid"
    created_at: str = "2024-01-10T08:00:00Z"
    updated_at: str = "2024-11-19T10:00:00Z"
    inbox_count: int | None = None


@dataclass(frozen=True)
class Scenario:
    cause: Cause
    event: AccountEvent
    nylas: NylasAnswer
    history: tuple[AccountEvent, ...] = field(default=())


def _at(offset: timedelta) -> str:
    return iso(parse_iso(FAILED_AT) + offset)


def _v3(cause: str, provider: str, email: str, grant_updated_at: str | None = None, **changes: Any) -> AccountEvent:
    return AccountEvent(
        event_id=changes.pop("event_id", f"evt-{cause}"),
        api_version="v3",
        trigger=changes.pop("trigger", "grant.expired"),
        account_id=changes.pop("account_id", f"grant-{cause}"),
        occurred_at=changes.pop("occurred_at", FAILED_AT),
        provider=provider,
        email=email,
        grant_updated_at=grant_updated_at,
    )


def _v2(cause: str, trigger: str) -> AccountEvent:
    # v2 deltas carry no address or provider: Nylas's account endpoint supplies them.
    return AccountEvent(
        event_id=f"evt-{cause}", api_version="v2", trigger=trigger, account_id=f"acct-{cause}", occurred_at=FAILED_AT
    )


def _neighbours(domain: str, provider: str, offsets: Iterable[timedelta]) -> tuple[AccountEvent, ...]:
    return tuple(
        _v3(
            f"neighbour-{domain}-{index}",
            provider,
            f"colleague{index}@{domain}",
            account_id=f"grant-{domain}-{index}",
            occurred_at=_at(-offset),
        )
        for index, offset in enumerate(offsets, start=1)
    )


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "recovered",
        _v3("recovered", "google", "ana@acme.example", _at(-timedelta(days=20))),
        NylasAnswer(status="valid", email="ana@acme.example"),
    ),
    Scenario(
        "app_revoked",
        _v3("app_revoked", "google", "ben@acme.example", _at(-timedelta(days=20))),
        NylasAnswer(exists=False),
    ),
    Scenario(
        "admin_disconnected",
        _v3("admin_disconnected", "microsoft", "cara@burst.example", _at(-timedelta(days=20))),
        NylasAnswer(provider="microsoft", email="cara@burst.example"),
        _neighbours("burst.example", "microsoft", (timedelta(minutes=3), timedelta(minutes=6))),
    ),
    Scenario(
        "admin_session_policy",
        _v3("admin_session_policy", "google", "dan@policy.example", _at(-timedelta(days=20))),
        NylasAnswer(email="dan@policy.example"),
        _neighbours("policy.example", "google", (timedelta(days=2), timedelta(days=5))),
    ),
    Scenario(
        "eas_sparse_inbox",
        _v3("eas_sparse_inbox", "ews", "eve@exchange.example"),
        NylasAnswer(provider="ews", email="eve@exchange.example", inbox_count=1),
    ),
    Scenario(
        "imap_sync_errors",
        _v2("imap_sync_errors", "account.sync_error"),
        NylasAnswer(status="stopped", provider="imap", email="fay@imap.example"),
    ),
    Scenario(
        "password_changed",
        _v2("password_changed", "account.invalid"),
        NylasAnswer(status="invalid", provider="yahoo", email="gus@yahoo.com"),
    ),
    Scenario(
        "google_testing_mode",
        _v3("google_testing_mode", "google", "hal@startup.example", _at(-timedelta(days=7, hours=1))),
        NylasAnswer(email="hal@startup.example", created_at=_at(-timedelta(days=30))),
    ),
    Scenario(
        "microsoft_token_expired",
        _v3("microsoft_token_expired", "microsoft", "ivy@old.example", _at(-timedelta(days=95))),
        NylasAnswer(provider="microsoft", email="ivy@old.example", created_at=_at(-timedelta(days=200))),
    ),
    Scenario(
        "sync_stopped",
        _v2("sync_stopped", "account.stopped"),
        NylasAnswer(status="stopped", provider="gmail", email="jo@gmail.com"),
    ),
    Scenario(
        "oauth_revoked",
        _v3("oauth_revoked", "google", "kim@shop.example", _at(-timedelta(days=20))),
        NylasAnswer(email="kim@shop.example", created_at=_at(-timedelta(days=60))),
    ),
    Scenario(
        "unknown",
        _v3("unknown", "zimbra", "lee@zimbra.example"),
        NylasAnswer(provider="zimbra", email="lee@zimbra.example"),
    ),
)


def scenario(cause: str) -> Scenario:
    return next(s for s in SCENARIOS if s.cause == cause)


def nylas_v3_grant(answer: NylasAnswer, grant_id: str) -> dict[str, Any]:
    """The body of v3 GET /v3/grants/{id} for this answer."""
    return {
        "request_id": f"req-{grant_id}",
        "data": {
            "id": grant_id,
            "grant_status": answer.status,
            "provider": answer.provider,
            "email": answer.email,
            "created_at": int(parse_iso(answer.created_at).timestamp()),
            "updated_at": int(parse_iso(answer.updated_at).timestamp()),
        },
    }


def nylas_v3_folders(answer: NylasAnswer) -> dict[str, Any]:
    return {
        "request_id": "req-folders",
        "data": [
            {"id": "sent", "name": "Sent Items", "total_count": 12},
            {"id": "inbox", "name": "Inbox", "attributes": ["\\Inbox"], "total_count": answer.inbox_count},
        ],
    }


def nylas_v2_account(answer: NylasAnswer, account_id: str) -> dict[str, Any]:
    """The body of v2 GET /a/{client_id}/accounts/{id} for this answer."""
    return {
        "id": account_id,
        "account_id": account_id,
        "object": "account",
        "email_address": answer.email,
        "provider": answer.provider,
        "sync_state": answer.status,
        "billing_state": answer.billing_state,
    }


def sqs_record(event: AccountEvent, stage: Stage, *, receive_count: int = 1) -> dict[str, Any]:
    """One DiagnosisQueue message as Lambda's SQS event source delivers it."""
    sent = int(parse_iso(event.occurred_at).timestamp() * 1000)
    return {
        "messageId": f"{event.event_id}-{stage}",
        "receiptHandle": f"receipt-{event.event_id}-{stage}",
        "body": event.to_json(),
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(sent),
            "SenderId": "AROAEXAMPLE:account-doctor-WebhookFunction",
            "ApproximateFirstReceiveTimestamp": str(sent + 120_000 if stage == "diagnose" else sent),
        },
        "messageAttributes": {
            STAGE_ATTRIBUTE: {
                "stringValue": stage,
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
        },
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "us-east-1",
    }


def sqs_batch(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": list(records)}


def scenario_batch(s: Scenario) -> dict[str, Any]:
    """The record and diagnose copies of the scenario's failure (in production minutes apart)."""
    return sqs_batch([sqs_record(s.event, "record"), sqs_record(s.event, "diagnose")])


def history_batch(s: Scenario) -> dict[str, Any]:
    return sqs_batch(sqs_record(event, "record") for event in s.history)


def api_event(path: str, resource: str, parameters: dict[str, str]) -> dict[str, Any]:
    """An IAM-authenticated API Gateway (REST) GET, as `sam local invoke` and Lambda deliver it."""
    return {
        "resource": resource,
        "path": path,
        "httpMethod": "GET",
        "headers": {"Accept": "application/json", "Host": "abc123.execute-api.us-east-1.amazonaws.com"},
        "multiValueHeaders": {"Accept": ["application/json"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": "GET",
            "path": f"/v1{path}",
            "stage": "v1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "accountId": "123456789012",
            "apiId": "abc123",
            "identity": {
                "userArn": "arn:aws:iam::123456789012:user/operator",
                "caller": "AIDAEXAMPLE",
                "accessKey": "AKIAEXAMPLE",
                "sourceIp": "203.0.113.7",
            },
            "requestTimeEpoch": 1732010400000,
        },
        "body": None,
        "isBase64Encoded": False,
    }


def sample_files() -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for s in SCENARIOS:
        files[f"sqs-{s.cause.replace('_', '-')}.json"] = scenario_batch(s)
        if s.history:
            files[f"sqs-{s.cause.replace('_', '-')}-history.json"] = history_batch(s)
    mixed = [scenario(cause) for cause in ("oauth_revoked", "password_changed", "google_testing_mode", "unknown")]
    files["sqs-mixed-batch.json"] = sqs_batch(
        [sqs_record(s.event, "record") for s in mixed] + [sqs_record(s.event, "diagnose") for s in mixed]
    )
    account = scenario("oauth_revoked").event.account_id
    files["api-get-account.json"] = api_event(f"/accounts/{account}", "/accounts/{account_id}", {"account_id": account})
    files["api-get-account-unknown.json"] = api_event(
        "/accounts/grant-never-seen", "/accounts/{account_id}", {"account_id": "grant-never-seen"}
    )
    files["api-get-domain.json"] = api_event("/domains/burst.example", "/domains/{domain}", {"domain": "burst.example"})
    files["api-get-domain-invalid.json"] = api_event(
        "/domains/-not-a-domain-", "/domains/{domain}", {"domain": "-not-a-domain-"}
    )
    return files


def write(directory: Path = EVENTS_DIR) -> list[Path]:
    directory.mkdir(exist_ok=True)
    written = []
    for name, content in sample_files().items():
        path = directory / name
        path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        print(path.relative_to(EVENTS_DIR.parent))
