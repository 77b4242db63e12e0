"""DiagnosisFunction and AccountsApiFunction end to end, in-process: queue records → verdicts → read API.

AWS is moto with the template's own tables and SES; Nylas answers at its real URLs through `responses`;
the notifier is the real one the handler builds at cold start, so the emails asserted are the ones
moto's SES accepted.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import responses

from account_doctor.models import CAUSES, AccountEvent, Verdict
from account_doctor.notifications import DRY_RUN_MESSAGE_ID
from account_doctor.settings import get_settings
from account_doctor.stores.dynamo import Table
from account_doctor.stores.verdicts import VerdictStore, page_verdicts
from account_doctor.tally import tally
from local_stack.payloads import FakeLambdaContext, diagnosis_record, load_handler, sqs_event
from local_stack.sample_sqs_events import SCENARIOS, failure, failure_batch, history_batch, scenario, scenario_batch
from local_stack.scenarios import Scenario
from local_stack.template import ProvisionedStack
from tests.conftest import EVENTS_DIR, load_event
from tests.integration.diagnosis_stack import (
    answer,
    answer_history,
    diagnosis_handler,
    failed_ids,
    grant_answer,
    grant_url,
)
from tests.integration.ses import OPERATOR, FlakySes, Received, hosted_auth_href, ses_outbox


@pytest.fixture
def handler(aws: ProvisionedStack, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return diagnosis_handler(monkeypatch)


@pytest.fixture
def api(aws: ProvisionedStack) -> ModuleType:
    return load_handler("accounts_api")


@pytest.fixture
def verdict_store(aws: ProvisionedStack) -> VerdictStore:
    """The verdicts as the stack stored them (the read API's store)."""
    return VerdictStore(Table(get_settings().verdicts_table))


def invoke(handler: ModuleType, event: dict[str, Any], context: FakeLambdaContext) -> dict[str, Any]:
    response: dict[str, Any] = handler.lambda_handler(event, context)
    return response


def get(api: ModuleType, path: str, context: FakeLambdaContext) -> tuple[int, dict[str, Any]]:
    resource, _, value = path.rpartition("/")
    name = "account_id" if resource == "/accounts" else "domain"
    event = load_event("api-get-account.json")
    event.update(path=path, resource=f"{resource}/{{{name}}}", pathParameters={name: value})
    response = api.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def stored_verdict(store: VerdictStore, event: AccountEvent) -> Verdict | None:
    return store.latest_for_event(event.account_id, event.occurred_at, event.event_id)


def account_verdicts(store: VerdictStore, account_id: str) -> list[Verdict]:
    """Every verdict of the account, newest first."""
    return page_verdicts(store.account_verdicts(account_id, limit=100))


def run_scenario(handler: ModuleType, s: Scenario, context: FakeLambdaContext) -> None:
    if s.history:
        assert failed_ids(invoke(handler, history_batch(s), context)) == []
    assert failed_ids(invoke(handler, scenario_batch(s), context)) == []


# Who SPEC §4 says is told, per cause: (the customer's email, operator alerted, hosted-auth provider of the link).
TOLD: dict[str, tuple[str | None, bool, str]] = {
    "recovered": (None, False, ""),
    "app_revoked": (None, True, ""),
    "admin_disconnected": ("admin_contact", True, "microsoft"),
    "admin_session_policy": ("admin_contact", True, "google"),
    "eas_sparse_inbox": ("reconnect", True, "ews"),
    "imap_sync_errors": (None, True, ""),
    "password_changed": ("reconnect", False, "yahoo"),
    "google_testing_mode": ("reconnect", True, "google"),
    "microsoft_token_expired": ("reconnect", False, "microsoft"),
    "sync_stopped": (None, True, ""),
    "oauth_revoked": ("reconnect", False, "google"),
    "unknown": (None, True, ""),
}


# Rule 1b needs ten accounts of three domains failing at once: tests/integration/test_incidents.py drives it.
INCIDENT_ONLY_CAUSES = ("connector_outage",)


def test_every_cause_has_a_scenario_and_a_row() -> None:
    single = sorted(c for c in CAUSES if c not in INCIDENT_ONLY_CAUSES)
    assert sorted(s.expected_cause for s in SCENARIOS) == sorted(TOLD) == single


def customer_of(s: Scenario) -> str:
    return s.email


def by_recipient(outbox: list[Received]) -> dict[str, Received]:
    received = {message.to[0]: message for message in outbox}
    assert all(len(message.to) == 1 for message in outbox)
    assert len(received) == len(outbox), "someone received two emails"
    return received


@pytest.mark.parametrize("s", SCENARIOS, ids=[s.expected_cause for s in SCENARIOS])
def test_each_cause_from_queue_record_to_stored_verdict_emails_and_read_api(
    s: Scenario,
    handler: ModuleType,
    api: ModuleType,
    verdict_store: VerdictStore,
    nylas: responses.RequestsMock,
    lambda_context: FakeLambdaContext,
) -> None:
    answer(nylas, s)
    run_scenario(handler, s, lambda_context)

    verdict = stored_verdict(verdict_store, failure(s))
    assert verdict is not None
    assert verdict.cause == s.expected_cause
    assert verdict.email == customer_of(s)
    assert verdict.steps
    assert verdict.steps[-1].answer  # every step recorded with its answer

    customer_kind, operator_alerted, provider = TOLD[s.expected_cause]
    expected = ([(customer_kind, customer_of(s))] if customer_kind else []) + (
        [("operator_alert", OPERATOR)] if operator_alerted else []
    )
    # The neighbours of a domain cause were diagnosed (and told) before it: only this account's emails here.
    received = by_recipient([m for m in ses_outbox() if m.to[0] in (customer_of(s), OPERATOR)])
    assert sorted(received) == sorted(to for _, to in expected)
    # The verdict names every email SES took, with SES's own message id.
    assert [(n.kind, n.to, n.message_id) for n in verdict.notifications] == [
        (kind, to, received[to].message_id) for kind, to in expected
    ]
    assert all(n.status == "sent" and n.sent_at for n in verdict.notifications)
    for to, message in received.items():
        assert message.subject.startswith("Account Doctor")
        assert message.source == "Account Doctor <account-doctor@example.com>"
        if to == OPERATOR:
            # Titled in plain words, never the raw cause code (SPEC §5).
            assert message.subject.startswith("Account Doctor alert: ")
            assert s.expected_cause not in message.subject
            assert "<script" not in message.html
        else:
            assert f'href="{hosted_auth_href(to, provider)}"' in message.html
            assert ('id="admin-section"' in message.html) == (customer_kind == "admin_contact")

    status, body = get(api, f"/accounts/{s.account_id}", lambda_context)
    assert status == 200
    assert body["status"] == ("healthy" if s.expected_cause == "recovered" else "broken")
    assert body["latest_verdict"]["cause"] == s.expected_cause
    assert body["latest_verdict"]["notifications"] == [asdict(n) for n in verdict.notifications]
    assert [v["event_id"] for v in body["verdicts"]] == [failure(s).event_id]


def test_domain_cluster_members_see_each_other(
    handler: ModuleType, api: ModuleType, nylas: responses.RequestsMock, lambda_context: FakeLambdaContext
) -> None:
    s = scenario("admin_disconnected")
    answer(nylas, s)
    run_scenario(handler, s, lambda_context)
    status, body = get(api, "/domains/burst.example", lambda_context)
    assert status == 200
    # The failures are in the past, so nothing fails "now"; the verdicts are listed.
    assert body["burst"]["failing_accounts"] == 0
    (listed,) = [v for v in body["verdicts"] if v["account_id"] == s.account_id]
    assert listed["cause"] == "admin_disconnected"
    assert listed["incident_id"].startswith("domain-burst.example-")
    # The verdict counted its two neighbours, recorded before it was diagnosed.
    status, account = get(api, f"/accounts/{s.account_id}", lambda_context)
    assert status == 200
    assert account["latest_verdict"]["evidence"]["domain_burst_accounts"] == 3


def test_three_accounts_of_one_domain_each_get_the_admin_email_and_the_operator_one_alert(
    handler: ModuleType, verdict_store: VerdictStore, nylas: responses.RequestsMock, lambda_context: FakeLambdaContext
) -> None:
    s = scenario("admin_disconnected")
    answer(nylas, s)
    answer_history(nylas, s)
    members = [failure(earlier) for earlier in (*s.history, s)]
    assert failed_ids(invoke(handler, sqs_event(diagnosis_record(e, "record") for e in members), lambda_context)) == []
    # All three recorded (the record copy goes out before the delayed diagnose copy); their diagnoses in
    # one batch, on concurrent threads: each counts itself before it reads its neighbours, so the last to
    # count sees all three; the incident is claimed once. A member whose verdict was made before the others
    # counted themselves was asked to reconnect, and is then told once to contact its administrator.
    batch = sqs_event(diagnosis_record(e, "diagnose") for e in members)
    assert failed_ids(invoke(handler, batch, lambda_context)) == []

    outbox = ses_outbox()
    customers = sorted(str(e.email) for e in members)
    assert [m.to for m in outbox].count([OPERATOR]) == 1
    for customer in customers:
        received = [m for m in outbox if m.to == [customer]]
        assert 1 <= len(received) <= 2
        assert 'id="admin-section"' in received[-1].html
        assert all('id="admin-section"' not in m.html for m in received[:-1])
    verdicts = [stored_verdict(verdict_store, e) for e in members]
    assert all(v is not None and v.cause == "admin_disconnected" for v in verdicts)
    told = [(n.kind, n.to) for v in verdicts if v is not None for n in v.notifications]
    assert sorted(told) == sorted([("admin_contact", to) for to in customers] + [("operator_alert", OPERATOR)])


def test_a_redelivered_batch_does_nothing_twice(
    handler: ModuleType,
    verdict_store: VerdictStore,
    nylas: responses.RequestsMock,
    lambda_context: FakeLambdaContext,
    aws: ProvisionedStack,
) -> None:
    s = scenario("google_testing_mode")
    answer(nylas, s)
    run_scenario(handler, s, lambda_context)
    sent = ses_outbox()
    assert len(sent) == 2
    calls = len(nylas.calls)
    run_scenario(handler, s, lambda_context)
    assert len(nylas.calls) == calls  # the idempotency record answered; Nylas was not asked again
    assert ses_outbox() == sent

    # Past the idempotency records' lifetime the message is processed again: the stored verdict
    # and the notification ledger still keep it from emailing anyone twice.
    client = boto3.client("dynamodb")
    table = aws.physical["IdempotencyTable"]
    for item in client.scan(TableName=table)["Items"]:
        client.delete_item(TableName=table, Key={"id": item["id"]})
    run_scenario(handler, s, lambda_context)
    assert ses_outbox() == sent
    (verdict,) = account_verdicts(verdict_store, s.account_id)
    assert sorted(n.message_id for n in verdict.notifications) == sorted(m.message_id for m in sent)


def test_ses_throttling_on_the_first_attempt_retries_only_the_missing_email(
    aws: ProvisionedStack,
    verdict_store: VerdictStore,
    nylas: responses.RequestsMock,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = scenario("google_testing_mode")  # a reconnect email to the customer (sent first) and an operator alert
    event = failure(s)
    answer(nylas, s)
    handler = diagnosis_handler(monkeypatch, ses_client=FlakySes(failures=1))

    response = invoke(handler, scenario_batch(s), lambda_context)
    assert failed_ids(response) == [f"{event.event_id}-diagnose"]  # back to the queue
    assert [m.to for m in ses_outbox()] == [[OPERATOR]]
    first = stored_verdict(verdict_store, event)
    assert first is not None
    assert first.cause == "google_testing_mode"

    # The queue redelivers the diagnose message.
    retry = sqs_event([diagnosis_record(event, "diagnose", receive_count=2)])
    assert failed_ids(invoke(handler, retry, lambda_context)) == []
    outbox = ses_outbox()
    assert [m.to for m in outbox] == [[OPERATOR], [customer_of(s)]]
    (verdict,) = account_verdicts(verdict_store, s.account_id)
    assert verdict.diagnosed_at == first.diagnosed_at  # the same verdict, not a second one
    assert sorted((n.kind, n.message_id) for n in verdict.notifications) == sorted(
        [("operator_alert", outbox[0].message_id), ("reconnect", outbox[1].message_id)]
    )


def test_a_recovery_recorded_after_the_failure_silences_the_verdict(
    handler: ModuleType,
    verdict_store: VerdictStore,
    nylas: responses.RequestsMock,
    lambda_context: FakeLambdaContext,
) -> None:
    s = scenario("oauth_revoked")
    event = failure(s)
    answer(nylas, s)
    recovery = replace(event, event_id="evt-reauth", trigger="grant.updated", occurred_at="2024-11-19T10:01:00Z")
    assert failed_ids(invoke(handler, sqs_event([diagnosis_record(recovery, "record")]), lambda_context)) == []
    assert failed_ids(invoke(handler, scenario_batch(s), lambda_context)) == []
    verdict = stored_verdict(verdict_store, event)
    assert verdict is not None
    assert verdict.cause == "recovered"
    assert verdict.notifications == []
    assert ses_outbox() == []


def test_a_recovery_between_a_failed_attempt_and_its_retry_sends_nothing(
    aws: ProvisionedStack,
    verdict_store: VerdictStore,
    nylas: responses.RequestsMock,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = scenario("google_testing_mode")
    event = failure(s)
    answer(nylas, s)
    handler = diagnosis_handler(monkeypatch, ses_client=FlakySes(failures=2))  # SES down for the first attempt
    assert failed_ids(invoke(handler, scenario_batch(s), lambda_context)) == [f"{event.event_id}-diagnose"]
    recovery = replace(event, event_id="evt-reauth", trigger="grant.updated", occurred_at="2024-11-19T10:05:00Z")
    assert failed_ids(invoke(handler, sqs_event([diagnosis_record(recovery, "record")]), lambda_context)) == []

    retry = sqs_event([diagnosis_record(event, "diagnose", receive_count=2)])
    assert failed_ids(invoke(handler, retry, lambda_context)) == []
    assert ses_outbox() == []
    (verdict,) = account_verdicts(verdict_store, s.account_id)
    assert verdict.notifications == []


def test_two_failures_of_one_account_inside_the_cooldown_email_the_customer_once(
    handler: ModuleType, verdict_store: VerdictStore, nylas: responses.RequestsMock, lambda_context: FakeLambdaContext
) -> None:
    s = scenario("oauth_revoked")
    answer(nylas, s)
    again = replace(failure(s), event_id="evt-oauth-again", occurred_at="2024-11-19T11:00:00Z")
    assert failed_ids(invoke(handler, scenario_batch(s), lambda_context)) == []
    assert failed_ids(invoke(handler, failure_batch(again), lambda_context)) == []

    assert [m.to for m in ses_outbox()] == [[customer_of(s)]]
    verdicts = {v.event_id: v for v in account_verdicts(verdict_store, s.account_id)}
    assert [v.cause for v in verdicts.values()] == ["oauth_revoked", "oauth_revoked"]
    assert [n.kind for n in verdicts[failure(s).event_id].notifications] == ["reconnect"]
    assert verdicts[again.event_id].notifications == []


@pytest.mark.parametrize("stack_parameters", [{"NotificationMode": "dry-run"}])
def test_dry_run_records_what_would_be_sent_and_sends_nothing(
    handler: ModuleType, verdict_store: VerdictStore, nylas: responses.RequestsMock, lambda_context: FakeLambdaContext
) -> None:
    s = scenario("google_testing_mode")
    event = failure(s)
    answer(nylas, s)
    run_scenario(handler, s, lambda_context)
    verdict = stored_verdict(verdict_store, event)
    assert verdict is not None
    assert [(n.kind, n.to, n.status, n.message_id) for n in verdict.notifications] == [
        ("reconnect", customer_of(s), "dry_run", DRY_RUN_MESSAGE_ID),
        ("operator_alert", OPERATOR, "dry_run", DRY_RUN_MESSAGE_ID),
    ]
    assert ses_outbox() == []


def test_metrics_count_verdicts_by_cause_and_emails_by_kind(
    handler: ModuleType,
    nylas: responses.RequestsMock,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = scenario("google_testing_mode")
    answer(nylas, s)
    tally.drain()  # what earlier tests counted outside a handler (the notifier called directly)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "No application metrics to publish" would fail the test
        run_scenario(handler, s, lambda_context)
        run_scenario(handler, s, lambda_context)  # a redelivery: no verdict, no email, still metrics
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]

    def total(name: str, **dimensions: str) -> float:
        return sum(
            sum(b[name]) if isinstance(b[name], list) else b[name]
            for b in blobs
            if name in b and all(b.get(k) == v for k, v in dimensions.items())
        )

    assert total("Verdicts", cause="google_testing_mode") == 1
    assert total("EmailsSent", kind="reconnect") == 1
    assert total("EmailsSent", kind="operator_alert") == 1
    assert total("RecordsProcessed") == 4
    assert total("RecordsFailed") == 0
    assert all(b["service"] == "account-doctor" for b in blobs)


def test_one_record_whose_nylas_call_keeps_failing_is_the_only_one_reported(
    handler: ModuleType,
    verdict_store: VerdictStore,
    nylas: responses.RequestsMock,
    lambda_context: FakeLambdaContext,
) -> None:
    for s in SCENARIOS:
        if s.expected_cause != "oauth_revoked":
            answer(nylas, s)
    broken = scenario("oauth_revoked")
    broken_event = failure(broken)
    nylas.get(grant_url(broken.account_id), status=503)
    response = invoke(handler, load_event("sqs-mixed-batch.json"), lambda_context)
    assert failed_ids(response) == [f"{broken_event.event_id}-diagnose"]
    for cause in ("password_changed", "google_testing_mode", "unknown"):
        s = scenario(cause)
        verdict = stored_verdict(verdict_store, failure(s))
        assert verdict is not None
        assert verdict.cause == cause
    assert stored_verdict(verdict_store, broken_event) is None


def test_nylas_429_with_retry_after_then_success(
    handler: ModuleType, verdict_store: VerdictStore, nylas: responses.RequestsMock, lambda_context: FakeLambdaContext
) -> None:
    s = scenario("google_testing_mode")
    event = failure(s)
    nylas.get(grant_url(s.account_id), status=429, headers={"Retry-After": "1"})
    answer(nylas, s)
    assert failed_ids(invoke(handler, scenario_batch(s), lambda_context)) == []
    verdict = stored_verdict(verdict_store, event)
    assert verdict is not None
    assert verdict.cause == "google_testing_mode"
    assert [c.response.status_code for c in nylas.calls] == [429, 200]


def test_rejected_api_key_is_a_configuration_error_not_a_verdict(
    handler: ModuleType,
    verdict_store: VerdictStore,
    nylas: responses.RequestsMock,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = scenario("oauth_revoked")
    event = failure(s)
    nylas.get(grant_url(s.account_id), status=401, json={"error": {"type": "unauthorized"}})
    response = invoke(handler, scenario_batch(s), lambda_context)
    assert failed_ids(response) == [f"{event.event_id}-diagnose"]  # retried by the queue
    assert stored_verdict(verdict_store, event) is None
    assert ses_outbox() == []
    assert "check api_key in secret account-doctor-NylasSecret" in caplog.text
    assert '"NylasConfigErrors":[1.0]' in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(p.name for p in EVENTS_DIR.glob("sqs-*.json")))
def test_every_sqs_sample_event_is_processed(
    name: str, handler: ModuleType, nylas: responses.RequestsMock, lambda_context: FakeLambdaContext
) -> None:
    for s in SCENARIOS:
        answer(nylas, s)
    event = load_event(name)
    assert event["Records"]
    assert failed_ids(invoke(handler, event, lambda_context)) == []


def test_every_api_sample_event_is_answered(
    handler: ModuleType, api: ModuleType, nylas: responses.RequestsMock, lambda_context: FakeLambdaContext
) -> None:
    for cause in ("oauth_revoked", "admin_disconnected"):
        answer(nylas, scenario(cause))
        run_scenario(handler, scenario(cause), lambda_context)
    expected = {
        "api-get-account.json": 200,
        "api-get-account-unknown.json": 404,
        "api-get-domain.json": 200,
        "api-get-domain-invalid.json": 400,
        "api-get-broken-accounts.json": 200,
        "api-get-incidents.json": 200,
        "api-get-health.json": 200,
        "api-get-incident-unknown.json": 404,
        "api-post-incident-release-unknown.json": 404,
        "api-post-incident-resolve-invalid.json": 400,
    }
    assert sorted(p.name for p in Path(EVENTS_DIR).glob("api-*.json")) == sorted(expected)
    answers: dict[str, dict[str, Any]] = {}
    for name, status in expected.items():
        response = api.lambda_handler(load_event(name), lambda_context)
        assert response["statusCode"] == status, name
        body = json.loads(response["body"])
        assert isinstance(body, dict)
        answers[name] = body
        if status != 200:
            assert body["message"]
    broken = {a["account_id"] for a in answers["api-get-broken-accounts.json"]["accounts"]}
    assert {scenario(c).account_id for c in ("oauth_revoked", "admin_disconnected")} <= broken
    incidents = answers["api-get-incidents.json"]["incidents"]
    assert [(i["kind"], i["key"], i["cause"]) for i in incidents] == [("domain", "burst.example", "admin_disconnected")]


@pytest.mark.parametrize(
    "path",
    ["/accounts/bad%2Fid", "/accounts/" + "x" * 300, "/domains/localhost", "/domains/exa_mple.com"],
)
def test_bad_input_is_400_never_500(api: ModuleType, lambda_context: FakeLambdaContext, path: str) -> None:
    status, body = get(api, path, lambda_context)
    assert status == 400
    assert body["message"]


def test_failures_now_count_in_the_domain_windows(
    handler: ModuleType, api: ModuleType, nylas: responses.RequestsMock, lambda_context: FakeLambdaContext
) -> None:
    from datetime import UTC, datetime, timedelta

    from account_doctor.models import iso

    now = datetime.now(UTC)
    events = [
        replace(
            failure(scenario("admin_disconnected")),
            event_id=f"evt-now-{index}",
            account_id=f"grant-now-{index}",
            email=f"user{index}@now.example",
            occurred_at=iso(now - timedelta(minutes=minutes)),
        )
        for index, minutes in enumerate((1, 5, 60 * 24 * 3))
    ]
    assert failed_ids(invoke(handler, sqs_event(diagnosis_record(e, "record") for e in events), lambda_context)) == []
    # Recorded but not yet diagnosed (still in its grace period): not known to be broken, counted nowhere.
    status, body = get(api, "/accounts/grant-now-0", lambda_context)
    assert (status, body["status"], body["latest_verdict"]) == (200, "unknown", None)
    assert get(api, "/domains/now.example", lambda_context)[0] == 404
    for e in events:
        answer(nylas, replace(scenario("admin_disconnected"), account_id=e.account_id, email=e.email, history=()))
    assert failed_ids(invoke(handler, sqs_event(diagnosis_record(e, "diagnose") for e in events), lambda_context)) == []
    status, body = get(api, "/domains/now.example", lambda_context)
    assert status == 200
    assert (body["burst"]["failing_accounts"], body["window"]["failing_accounts"]) == (2, 3)


def test_the_address_nylas_reports_wins_over_the_payloads(
    handler: ModuleType, verdict_store: VerdictStore, nylas: responses.RequestsMock, lambda_context: FakeLambdaContext
) -> None:
    # Security: anyone holding the webhook secret and one real invalid grant id could otherwise send a
    # reconnect email, with its login hint, to any address they put in the payload.
    s = scenario("oauth_revoked")
    answer(nylas, s)
    forged = replace(failure(s), email="attacker@evil.example")
    for stage in ("record", "diagnose"):
        assert failed_ids(invoke(handler, sqs_event([diagnosis_record(forged, stage)]), lambda_context)) == []

    assert [m.to for m in ses_outbox()] == [[customer_of(s)]]
    assert f'href="{hosted_auth_href(customer_of(s), "google")}"' in ses_outbox()[0].html
    verdict = stored_verdict(verdict_store, forged)
    assert verdict is not None
    assert (verdict.email, verdict.domain) == (customer_of(s), customer_of(s).partition("@")[2])
    assert [n.to for n in verdict.notifications] == [customer_of(s)]


def test_the_payloads_address_is_used_when_nylas_reports_none(
    handler: ModuleType, verdict_store: VerdictStore, nylas: responses.RequestsMock, lambda_context: FakeLambdaContext
) -> None:
    s = scenario("oauth_revoked")
    body = grant_answer(s)
    del body["data"]["email"]
    nylas.get(grant_url(s.account_id), json=body)
    assert failed_ids(invoke(handler, scenario_batch(s), lambda_context)) == []

    assert [m.to for m in ses_outbox()] == [[customer_of(s)]]
    verdict = stored_verdict(verdict_store, failure(s))
    assert verdict is not None
    assert verdict.email == customer_of(s)
