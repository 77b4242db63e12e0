"""DiagnosisFunction and AccountsApiFunction end to end, in-process: queue records → verdicts → read API.

AWS is moto with the template's own tables; Nylas answers at its real URLs through `responses`;
the Notifier port is a recording one (the SES notifier has its own tests).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import responses

from account_doctor.history import History
from account_doctor.settings import get_settings
from local_stack.sample_sqs_events import SCENARIOS, Scenario, history_batch, scenario, scenario_batch
from local_stack.template import LocalStack
from tests.conftest import EVENTS_DIR, FakeLambdaContext, load_event, load_handler
from tests.integration.diagnosis_stack import (
    RecordingNotifier,
    answer,
    diagnosis_handler,
    failed_ids,
    grant_url,
)


@pytest.fixture
def nylas() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def handler(aws: LocalStack, monkeypatch: pytest.MonkeyPatch, notifier: RecordingNotifier) -> ModuleType:
    return diagnosis_handler(monkeypatch, notifier)


@pytest.fixture
def api(aws: LocalStack) -> ModuleType:
    return load_handler("accounts_api")


@pytest.fixture
def history(aws: LocalStack) -> History:
    settings = get_settings()
    return History(settings.events_table, settings.verdicts_table)


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


def run_scenario(handler: ModuleType, s: Scenario, context: FakeLambdaContext) -> None:
    if s.history:
        assert failed_ids(invoke(handler, history_batch(s), context)) == []
    assert failed_ids(invoke(handler, scenario_batch(s), context)) == []


@pytest.mark.parametrize("s", SCENARIOS, ids=[s.cause for s in SCENARIOS])
def test_each_cause_from_queue_record_to_stored_verdict_and_read_api(
    s: Scenario,
    handler: ModuleType,
    api: ModuleType,
    history: History,
    nylas: responses.RequestsMock,
    notifier: RecordingNotifier,
    lambda_context: FakeLambdaContext,
) -> None:
    answer(nylas, s)
    run_scenario(handler, s, lambda_context)

    verdict = history.get_verdict(s.event.account_id, s.event.occurred_at, s.event.event_id)
    assert verdict is not None
    assert verdict.cause == s.cause
    assert verdict.email == (s.event.email or s.nylas.email)  # v2 events learn the address from Nylas
    assert verdict.steps
    assert verdict.steps[-1].answer  # every step recorded with its answer
    if s.cause == "recovered":
        assert notifier.calls == []
        assert verdict.notifications == []
    else:
        assert notifier.calls == [s.event.event_id]
        assert verdict.notifications == notifier.sent[s.event.event_id]

    status, body = get(api, f"/accounts/{s.event.account_id}", lambda_context)
    assert status == 200
    assert body["status"] == ("healthy" if s.cause == "recovered" else "broken")
    assert body["latest_verdict"]["cause"] == s.cause
    assert [v["event_id"] for v in body["verdicts"]] == [s.event.event_id]


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
    assert [v["cause"] for v in body["verdicts"]] == ["admin_disconnected"]
    assert body["verdicts"][0]["evidence"]["domain_burst_accounts"] == 3


def test_a_redelivered_batch_does_nothing_twice(
    handler: ModuleType,
    history: History,
    nylas: responses.RequestsMock,
    notifier: RecordingNotifier,
    lambda_context: FakeLambdaContext,
) -> None:
    s = scenario("oauth_revoked")
    answer(nylas, s)
    run_scenario(handler, s, lambda_context)
    calls = len(nylas.calls)
    run_scenario(handler, s, lambda_context)
    assert len(nylas.calls) == calls  # the idempotency record answered; Nylas was not asked again
    assert notifier.calls == [s.event.event_id]
    assert len(history.account_verdicts(s.event.account_id)) == 1


def test_a_retry_after_the_notifier_failed_reuses_the_verdict(
    handler: ModuleType,
    history: History,
    nylas: responses.RequestsMock,
    notifier: RecordingNotifier,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = scenario("oauth_revoked")
    answer(nylas, s)
    working = notifier.notify

    def failing(verdict: Any) -> Any:
        raise RuntimeError("SES throttled")

    monkeypatch.setattr(notifier, "notify", failing)
    response = invoke(handler, scenario_batch(s), lambda_context)
    assert failed_ids(response) == [f"{s.event.event_id}-diagnose"]
    first = history.get_verdict(s.event.account_id, s.event.occurred_at, s.event.event_id)
    assert first is not None
    assert first.notifications == []

    monkeypatch.setattr(notifier, "notify", working)
    assert failed_ids(invoke(handler, scenario_batch(s), lambda_context)) == []
    again = history.get_verdict(s.event.account_id, s.event.occurred_at, s.event.event_id)
    assert again is not None
    assert again.diagnosed_at == first.diagnosed_at
    assert len(again.notifications) == 1
    assert len(history.account_verdicts(s.event.account_id)) == 1


def test_a_recovery_recorded_after_the_failure_silences_the_verdict(
    handler: ModuleType,
    history: History,
    nylas: responses.RequestsMock,
    notifier: RecordingNotifier,
    lambda_context: FakeLambdaContext,
) -> None:
    from dataclasses import replace

    from local_stack.sample_sqs_events import sqs_batch, sqs_record

    s = scenario("oauth_revoked")
    answer(nylas, s)
    recovery = replace(s.event, event_id="evt-reauth", trigger="grant.updated", occurred_at="2024-11-19T10:01:00Z")
    assert failed_ids(invoke(handler, sqs_batch([sqs_record(recovery, "record")]), lambda_context)) == []
    assert failed_ids(invoke(handler, scenario_batch(s), lambda_context)) == []
    verdict = history.get_verdict(s.event.account_id, s.event.occurred_at, s.event.event_id)
    assert verdict is not None
    assert verdict.cause == "recovered"
    assert notifier.calls == []


def test_one_record_whose_nylas_call_keeps_failing_is_the_only_one_reported(
    handler: ModuleType,
    history: History,
    nylas: responses.RequestsMock,
    lambda_context: FakeLambdaContext,
) -> None:
    for s in SCENARIOS:
        if s.cause != "oauth_revoked":
            answer(nylas, s)
    broken = scenario("oauth_revoked")
    nylas.get(grant_url(broken.event.account_id), status=503)
    response = invoke(handler, load_event("sqs-mixed-batch.json"), lambda_context)
    assert failed_ids(response) == [f"{broken.event.event_id}-diagnose"]
    for cause in ("password_changed", "google_testing_mode", "unknown"):
        s = scenario(cause)
        verdict = history.get_verdict(s.event.account_id, s.event.occurred_at, s.event.event_id)
        assert verdict is not None
        assert verdict.cause == cause
    assert history.get_verdict(broken.event.account_id, broken.event.occurred_at, broken.event.event_id) is None


def test_nylas_429_with_retry_after_then_success(
    handler: ModuleType, history: History, nylas: responses.RequestsMock, lambda_context: FakeLambdaContext
) -> None:
    s = scenario("google_testing_mode")
    nylas.get(grant_url(s.event.account_id), status=429, headers={"Retry-After": "1"})
    answer(nylas, s)
    assert failed_ids(invoke(handler, scenario_batch(s), lambda_context)) == []
    verdict = history.get_verdict(s.event.account_id, s.event.occurred_at, s.event.event_id)
    assert verdict is not None
    assert verdict.cause == "google_testing_mode"
    assert [c.response.status_code for c in nylas.calls] == [429, 200]


def test_rejected_api_key_is_a_configuration_error_not_a_verdict(
    handler: ModuleType,
    history: History,
    nylas: responses.RequestsMock,
    notifier: RecordingNotifier,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = scenario("oauth_revoked")
    nylas.get(grant_url(s.event.account_id), status=401, json={"error": {"type": "unauthorized"}})
    response = invoke(handler, scenario_batch(s), lambda_context)
    assert failed_ids(response) == [f"{s.event.event_id}-diagnose"]  # retried by the queue
    assert history.get_verdict(s.event.account_id, s.event.occurred_at, s.event.event_id) is None
    assert notifier.calls == []
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
    }
    assert sorted(p.name for p in Path(EVENTS_DIR).glob("api-*.json")) == sorted(expected)
    for name, status in expected.items():
        response = api.lambda_handler(load_event(name), lambda_context)
        assert response["statusCode"] == status, name
        body = json.loads(response["body"])
        assert isinstance(body, dict)
        if status != 200:
            assert body["message"]


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
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from account_doctor.models import iso
    from local_stack.sample_sqs_events import sqs_batch, sqs_record

    now = datetime.now(UTC)
    events = [
        replace(
            scenario("admin_disconnected").event,
            event_id=f"evt-now-{index}",
            account_id=f"grant-now-{index}",
            email=f"user{index}@now.example",
            occurred_at=iso(now - timedelta(minutes=minutes)),
        )
        for index, minutes in enumerate((1, 5, 60 * 24 * 3))
    ]
    assert failed_ids(invoke(handler, sqs_batch(sqs_record(e, "record") for e in events), lambda_context)) == []
    status, body = get(api, "/domains/now.example", lambda_context)
    assert status == 200
    assert (body["burst"]["failing_accounts"], body["window"]["failing_accounts"]) == (2, 3)
    assert body["verdicts"] == []
    # Recorded but not yet diagnosed (still in its grace period): not known to be broken.
    status, body = get(api, "/accounts/grant-now-0", lambda_context)
    assert (status, body["status"], body["latest_verdict"]) == (200, "unknown", None)
