"""Events out (SPEC §6b): verdicts and incident changes on the stack's EventBridge bus, and their JSON Schemas.

The bus comes from template.yaml (the `aws` fixture); a rule on it delivers to a queue, as the local
stack captures it, so every assertion is about the event a subscriber of the bus would receive.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import boto3
import jsonschema
import pytest
from botocore.stub import Stubber

from account_doctor.addresses import email_domain, is_free_mail
from account_doctor.diagnosis import diagnose
from account_doctor.episodes import RECOVERED_BY
from account_doctor.events_out import (
    MAX_DETAIL_BYTES,
    EventPublisher,
    NoPublisher,
    PublishError,
    incident_detail,
    publisher_for,
    verdict_detail,
)
from account_doctor.models import (
    CAUSES,
    AccountEvent,
    AccountState,
    Evidence,
    Notification,
    NotificationKind,
    NotificationStatus,
    Policy,
    Verdict,
    iso,
)
from account_doctor.providers import auth_method, connector
from local_stack.bus import BusCapture, capture_bus, drain, events_table
from local_stack.template import ProvisionedStack
from tests.fakes import RecordingPublisher

SCHEMAS = Path(__file__).resolve().parents[2] / "events" / "schemas"
FAILED_AT = datetime(2024, 11, 19, 7, 6, 40, tzinfo=UTC)


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def errors(name: str, detail: dict[str, Any]) -> list[str]:
    """Every way the detail breaks its schema (empty: it validates)."""
    validator = jsonschema.Draft202012Validator(schema(name), format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(detail)]


# ---------------------------------------------------------------------------------------------
# Verdicts as the procedure produces them


def evidence(
    *,
    provider: str | None = "google",
    email: str = "alice@acme.example",
    trigger: str = "grant.expired",
    api_version: Any = "v3",
    **overrides: Any,
) -> Evidence:
    """A v3 Google grant of an organisation domain, signed in 30 days before it expired, unless told otherwise."""
    domain = email_domain(email)
    signed_in = iso(FAILED_AT - timedelta(days=30))
    base = Evidence(
        event=AccountEvent(
            event_id="evt-1",
            api_version=api_version,
            trigger=trigger,
            account_id="grant-1",
            occurred_at=iso(FAILED_AT),
            provider=provider,
            email=email,
        ),
        state=AccountState(exists=True, status="invalid", provider=provider, email=email, created_at=signed_in),
        provider=provider,
        email=email,
        domain=domain,
        auth_method=auth_method(provider),
        free_mail=domain is not None and is_free_mail(domain),
        recovered_at=None,
        removed_by_app=False,
        failures_last_30_days=1,
        consents=(signed_in,),
        last_refreshed_at=None,
        domain_burst_accounts=1,
        domain_window_accounts=1,
        connector=connector(provider),
    )
    return replace(base, **overrides)


def verdict_record(e: Evidence, **extra: Any) -> dict[str, Any]:
    """The stored verdict record of a diagnosis, built as the diagnosis service builds it."""
    diagnosis = diagnose(e, Policy())
    verdict = Verdict(
        event_id=e.event.event_id,
        account_id=e.event.account_id,
        api_version=e.event.api_version,
        trigger=e.event.trigger,
        occurred_at=e.event.occurred_at,
        diagnosed_at=iso(FAILED_AT + timedelta(minutes=2)),
        email=e.email,
        domain=e.domain,
        provider=e.provider,
        auth_method=e.auth_method,
        cause=diagnosis.cause,
        confidence=diagnosis.confidence,
        summary=diagnosis.summary,
        actions=list(diagnosis.actions),
        steps=list(diagnosis.steps),
        evidence=e.to_dict(),
        recurring=diagnosis.recurring,
        notifications=[
            Notification(
                kind="reconnect",
                to=e.email or "customer@example.com",
                status="sent",
                message_id="0100018d-msg",
                sent_at=iso(FAILED_AT + timedelta(minutes=2)),
            )
        ],
    )
    return {**verdict.to_dict(), **extra}


# One real verdict per kind of outcome: by itself, incidents, password, OAuth, nothing known.
PROCEDURE_CASES = [
    pytest.param(evidence(recovered_at=iso(FAILED_AT + timedelta(minutes=1))), "recovered", id="rule 0 recovered"),
    pytest.param(
        evidence(connector_burst_accounts=12, connector_burst_domains=5, connector_usual_failures=0.5),
        "connector_outage",
        id="rule 1b connector_outage",
    ),
    pytest.param(
        evidence(domain_burst_accounts=3, domain_window_accounts=3), "admin_disconnected", id="rule 2a domain burst"
    ),
    pytest.param(
        evidence(provider="imap", trigger="account.invalid", api_version="v2"),
        "password_changed",
        id="rule 3c password_changed",
    ),
    pytest.param(
        evidence(consents=(iso(FAILED_AT - timedelta(days=7)),)), "google_testing_mode", id="rule 4a testing mode"
    ),
    pytest.param(evidence(provider=None), "unknown", id="rule 5 unknown"),
]


@pytest.mark.parametrize(("e", "cause"), PROCEDURE_CASES)
def test_the_verdict_schema_accepts_every_verdict_the_procedure_produces(e: Evidence, cause: str) -> None:
    record = verdict_record(e)

    assert record["cause"] == cause
    assert errors("verdict", verdict_detail(record)) == []


def test_the_verdict_schema_accepts_a_revision_in_an_incident() -> None:
    revision = verdict_record(
        evidence(domain_burst_accounts=3, domain_window_accounts=3),
        incident_id="inc-acme",
        revises=iso(FAILED_AT + timedelta(minutes=1)),
        revision_reason="3 accounts of acme.example failed within 15 minutes: the administrator disconnected the app",
        superseded=False,
    )

    assert errors("verdict", verdict_detail(revision)) == []


def test_the_schemas_name_exactly_the_spec_vocabulary() -> None:
    verdict = schema("verdict")
    notification = verdict["$defs"]["notification"]["properties"]

    assert verdict["properties"]["cause"]["enum"] == list(CAUSES)
    assert notification["kind"]["enum"] == list(get_args(NotificationKind))
    assert notification["status"]["enum"] == list(get_args(NotificationStatus))
    assert set(schema("incident")["required"]) == set(incident()) - {"members"}
    recovered = schema("account_recovered")
    assert recovered["properties"]["cause"]["enum"] == list(CAUSES)
    assert recovered["properties"]["recovered_by"]["enum"] == list(RECOVERED_BY)
    for name in ("verdict", "incident", "account_recovered"):
        jsonschema.Draft202012Validator.check_schema(schema(name))


@pytest.mark.parametrize(
    ("name", "change", "problem"),
    [
        pytest.param("verdict", {"cause": "admin"}, "'admin' is not one of", id="verdict unknown cause"),
        pytest.param("verdict", {"cause": None}, "None is not one of", id="verdict without cause"),
        pytest.param("verdict", {"occurred_at": "19/11/2024"}, "does not match", id="verdict date not ISO"),
        pytest.param("verdict", {"steps": None}, "None is not of type 'array'", id="verdict steps not a list"),
        pytest.param("verdict", {"truncated": True}, "should not be valid", id="truncated but evidence kept"),
        pytest.param("incident", {"kind": "org"}, "'org' is not one of", id="incident unknown kind"),
        pytest.param("incident", {"accounts": "3"}, "is not of type 'integer'", id="incident count as text"),
        pytest.param("incident", {"members": []}, "should not be valid", id="incident with members"),
    ],
)
def test_the_schemas_reject_a_detail_that_breaks_the_contract(name: str, change: dict[str, Any], problem: str) -> None:
    valid = verdict_detail(verdict_record(evidence())) if name == "verdict" else incident_detail(incident())
    assert errors(name, valid) == []

    broken = {**valid, **change}

    assert any(problem in message for message in errors(name, broken)), errors(name, broken)


def test_a_verdict_without_steps_must_say_it_was_truncated() -> None:
    record = verdict_record(evidence())
    del record["steps"]

    assert any("'steps' is a required property" in message for message in errors("verdict", record))


# ---------------------------------------------------------------------------------------------
# On the bus


def incident(**changes: Any) -> dict[str, Any]:
    """A stored domain incident as the store reads it back, members included."""
    return {
        "incident_id": "inc-acme",
        "kind": "domain",
        "key": "acme.example",
        "cause": "admin_disconnected",
        "status": "open",
        "accounts": Decimal(3),
        "domains": Decimal(1),
        "opened_at": iso(FAILED_AT),
        "last_failure_at": iso(FAILED_AT + timedelta(minutes=4)),
        "resolved_at": None,
        "held_emails": Decimal(0),
        "members": [
            {"account_id": f"grant-{n}", "email": f"user{n}@acme.example", "latest_cause": "admin_disconnected"}
            for n in (1, 2, 3)
        ],
        **changes,
    }


@pytest.fixture
def bus(aws: ProvisionedStack) -> BusCapture:
    return capture_bus(aws)


@pytest.fixture
def publisher(aws: ProvisionedStack) -> EventPublisher:
    # The bus the functions are told about (template.yaml's EVENT_BUS_NAME), not a name the test picks.
    return EventPublisher(os.environ["EVENT_BUS_NAME"])


def test_a_verdict_arrives_on_the_bus_as_the_stored_record(bus: BusCapture, publisher: EventPublisher) -> None:
    record = verdict_record(evidence(domain_burst_accounts=3, domain_window_accounts=3), incident_id="inc-acme")

    publisher.publish_verdict(record)

    (event,) = drain(bus)
    assert event["source"] == "account-doctor"
    assert event["detail-type"] == "Verdict"
    # The stored record, and the copy of its free text escaped for Slack (template.yaml's Slack rules).
    stored, slack = {**event["detail"]}, event["detail"]["slack"]
    del stored["slack"]
    assert stored == json.loads(json.dumps(record))
    assert slack == {key: record[key] for key in ("account_id", "provider", "domain", "summary")}
    assert event["detail"]["cause"] == "admin_disconnected"
    assert "truncated" not in event["detail"]
    assert errors("verdict", event["detail"]) == []


def test_numbers_read_back_from_dynamodb_go_out_as_json_numbers(bus: BusCapture, publisher: EventPublisher) -> None:
    record = verdict_record(evidence())
    record["evidence"] = {
        **record["evidence"],
        "domain_burst_accounts": Decimal(3),
        "connector_usual_failures": Decimal("0.5"),
    }

    publisher.publish_verdict(record)

    (event,) = drain(bus)
    assert event["detail"]["evidence"]["domain_burst_accounts"] == 3
    assert isinstance(event["detail"]["evidence"]["domain_burst_accounts"], int)
    assert event["detail"]["evidence"]["connector_usual_failures"] == 0.5


def test_incident_changes_arrive_without_their_members(bus: BusCapture, publisher: EventPublisher) -> None:
    publisher.publish_incident("IncidentOpened", incident())
    publisher.publish_incident(
        "IncidentResolved", incident(status="resolved", resolved_at=iso(FAILED_AT + timedelta(hours=3)))
    )

    events = drain(bus)
    assert sorted(event["detail-type"] for event in events) == ["IncidentOpened", "IncidentResolved"]
    for event in events:
        assert event["source"] == "account-doctor"
        assert "members" not in event["detail"]
        assert event["detail"]["accounts"] == 3
        assert errors("incident", event["detail"]) == []
    resolved = next(event["detail"] for event in events if event["detail-type"] == "IncidentResolved")
    assert resolved["status"] == "resolved"
    assert resolved["resolved_at"] == iso(FAILED_AT + timedelta(hours=3))


def test_an_oversized_verdict_goes_out_without_evidence_and_steps(bus: BusCapture, publisher: EventPublisher) -> None:
    record = verdict_record(evidence())
    # A provider error text or a long history can make the evidence larger than one event may be.
    record["evidence"] = {**record["evidence"], "provider_error": "x" * 300_000}

    publisher.publish_verdict(record)

    (event,) = drain(bus)
    detail = event["detail"]
    assert detail["truncated"] is True
    assert "evidence" not in detail
    assert "steps" not in detail
    assert detail["cause"] == record["cause"]
    assert detail["summary"] == record["summary"]
    assert len(json.dumps(detail).encode()) <= MAX_DETAIL_BYTES
    assert errors("verdict", detail) == []


def test_a_verdict_too_large_even_without_evidence_is_refused() -> None:
    record = {**verdict_record(evidence()), "summary": "x" * 300_000}
    client = boto3.client("events", region_name="us-east-1")

    with Stubber(client) as stubber, pytest.raises(PublishError, match="over the limit"):
        EventPublisher("bus", client).publish_verdict(record)
    stubber.assert_no_pending_responses()  # nothing was put


def test_a_failed_entry_raises_publish_error() -> None:
    client = boto3.client("events", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_response(
            "put_events",
            {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}]},
        )
        with pytest.raises(PublishError, match="InternalFailure: try again") as raised:
            EventPublisher("account-doctor-events", client).publish_verdict(verdict_record(evidence()))
    assert raised.value.detail_type == "Verdict"


def test_an_aws_error_raises_publish_error() -> None:
    client = boto3.client("events", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_client_error("put_events", service_error_code="AccessDeniedException", http_status_code=400)
        with pytest.raises(PublishError, match="AccessDeniedException") as raised:
            EventPublisher("account-doctor-events", client).publish_incident("IncidentOpened", incident())
    assert raised.value.detail_type == "IncidentOpened"


def test_the_put_names_the_bus_source_and_detail_type() -> None:
    client = boto3.client("events", region_name="us-east-1")
    record = verdict_record(evidence())
    with Stubber(client) as stubber:
        stubber.add_response(
            "put_events",
            {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]},
            {
                "Entries": [
                    {
                        "Source": "account-doctor",
                        "DetailType": "Verdict",
                        "Detail": json.dumps(verdict_detail(record), separators=(",", ":"), ensure_ascii=False),
                        "EventBusName": "account-doctor-events",
                    }
                ]
            },
        )
        EventPublisher("account-doctor-events", client).publish_verdict(record)
        stubber.assert_no_pending_responses()


def test_without_a_bus_nothing_is_published() -> None:
    assert isinstance(publisher_for(""), NoPublisher)
    assert isinstance(
        publisher_for("account-doctor-events", boto3.client("events", region_name="us-east-1")), EventPublisher
    )


# ---------------------------------------------------------------------------------------------
# The fake for unit tests, and the demo's table


def test_the_recording_publisher_keeps_what_the_bus_would_get_and_can_fail() -> None:
    fake = RecordingPublisher(failures=1)
    record = verdict_record(evidence())

    with pytest.raises(PublishError):
        fake.publish_verdict(record)
    fake.publish_verdict(record)
    fake.publish_incident("IncidentOpened", incident())

    assert fake.of_type("Verdict") == [verdict_detail(record)]
    assert "members" not in fake.of_type("IncidentOpened")[0]


def test_the_demo_table_lists_each_event(bus: BusCapture, publisher: EventPublisher) -> None:
    publisher.publish_incident("IncidentOpened", incident())
    publisher.publish_verdict(
        verdict_record(
            evidence(domain_burst_accounts=3, domain_window_accounts=3),
            incident_id="inc-acme",
            revises=iso(FAILED_AT + timedelta(minutes=1)),
        )
    )
    publisher.publish_recovery(
        {"account_id": "grant-9", "cause": "oauth_revoked", "recovered_by": "replaced", "replaced_by": "grant-10",
         "time_to_recover_seconds": 3600, "data_gap": False}
    )  # fmt: skip

    table = events_table(drain(bus))
    rows = [" ".join(line.split()) for line in table.splitlines()]  # columns as wide as their longest cell

    assert "IncidentOpened domain acme.example admin_disconnected open, 3 accounts, 1 domains" in rows
    assert "revises the verdict of 2024-11-19T07:07:40Z" in table
    assert "grant-1" in table
    assert "AccountRecovered grant-9 oauth_revoked replaced after 3600 s, replaced by grant-10" in rows
    assert events_table([]) == "(no events)"


def test_a_bus_that_does_not_exist_raises_publish_error(aws: ProvisionedStack) -> None:
    with pytest.raises(PublishError, match="could not put the Verdict event on the event bus"):
        EventPublisher("account-doctor-no-such-bus").publish_verdict(verdict_record(evidence()))
