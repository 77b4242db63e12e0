"""Faults on the diagnosis path, in-process: Nylas failing every way it can, SES throttling, racing workers.

Each test asserts what a user would see: no verdict and no email while the fault lasts (the record
fails back to the queue), then, on redelivery, exactly one verdict and one email per recipient, and
nothing more on further redeliveries. Nylas is mocked at its real URLs with `responses`; AWS is moto
with faults injected through botocore event hooks.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import responses

from account_doctor.consumer import QueueConsumer, build_consumer
from account_doctor.models import AccountEvent
from account_doctor.notifications import build_notifier
from account_doctor.settings import get_settings
from local_stack.payloads import FakeLambdaContext, diagnosis_record
from local_stack.sample_sqs_events import failure, scenario
from local_stack.scenarios import Scenario
from tests.integration.diagnosis_stack import answer, grant_answer, grant_url
from tests.reliability.pipeline import AwsFaults, Pipeline, atomic_moto_dynamodb

OPERATOR = "operators@example.com"  # template.yaml's OperatorEmail default
RETRIES = 3  # account_doctor.nylas.build_session's default


def diagnose_id(event: AccountEvent) -> str:
    return f"{event.event_id}-diagnose"


def assert_nothing_yet(pipeline: Pipeline, event: AccountEvent) -> None:
    assert pipeline.verdicts(event) == []
    assert pipeline.emails() == {}


def assert_diagnosed_once(pipeline: Pipeline, s: Scenario, recipients: dict[str, int]) -> None:
    """One verdict of the expected cause, its notifications recorded, each recipient emailed as expected."""
    event = failure(s)
    (verdict,) = pipeline.verdicts(event)
    assert verdict.cause == s.expected_cause
    assert sorted(n.to for n in verdict.notifications) == sorted(recipients)
    assert pipeline.emails() == recipients
    # A further redelivery (SQS is at-least-once) changes nothing a user can see.
    assert pipeline.deliver((event, "diagnose"), receive_count=3) == []
    assert pipeline.verdicts(event) == [verdict]
    assert pipeline.emails() == recipients


def test_nylas_500s_until_retries_run_out_then_recovery(pipeline: Pipeline, nylas: responses.RequestsMock) -> None:
    s = scenario("oauth_revoked")
    event = failure(s)
    nylas.get(grant_url(s.account_id), status=500, json={"error": {"type": "internal_error"}})

    assert pipeline.deliver((event, "record"), (event, "diagnose")) == [diagnose_id(event)]
    assert [c.response.status_code for c in nylas.calls] == [500] * (1 + RETRIES)
    assert_nothing_yet(pipeline, event)

    nylas.reset()
    answer(nylas, s)  # Nylas is back
    assert pipeline.deliver((event, "diagnose"), receive_count=2) == []
    assert_diagnosed_once(pipeline, s, {s.email: 1})


def test_nylas_429_then_answer_within_the_same_attempt(pipeline: Pipeline, nylas: responses.RequestsMock) -> None:
    s = scenario("oauth_revoked")
    event = failure(s)
    nylas.get(grant_url(s.account_id), status=429, headers={"Retry-After": "1"})
    answer(nylas, s)
    assert pipeline.deliver((event, "record"), (event, "diagnose")) == []
    assert [c.response.status_code for c in nylas.calls] == [429, 200]
    assert_diagnosed_once(pipeline, s, {s.email: 1})


def test_nylas_429_for_longer_than_the_retries_fails_back_then_recovers(
    pipeline: Pipeline, nylas: responses.RequestsMock
) -> None:
    s = scenario("oauth_revoked")
    event = failure(s)
    nylas.get(grant_url(s.account_id), status=429, headers={"Retry-After": "2"})
    assert pipeline.deliver((event, "diagnose")) == [diagnose_id(event)]
    assert len(nylas.calls) == 1 + RETRIES
    assert_nothing_yet(pipeline, event)

    nylas.reset()
    answer(nylas, s)
    assert pipeline.deliver((event, "diagnose"), receive_count=2) == []
    assert_diagnosed_once(pipeline, s, {s.email: 1})


@pytest.mark.parametrize(
    "timeout",
    [requests.exceptions.ConnectTimeout("connect timed out"), requests.exceptions.ReadTimeout("read timed out")],
    ids=["connect", "read"],
)
def test_nylas_timeouts_fail_back_then_recover(
    pipeline: Pipeline, nylas: responses.RequestsMock, timeout: Exception
) -> None:
    s = scenario("google_testing_mode")
    event = failure(s)
    nylas.get(grant_url(s.account_id), body=timeout)
    assert pipeline.deliver((event, "record"), (event, "diagnose")) == [diagnose_id(event)]
    assert_nothing_yet(pipeline, event)

    nylas.reset()
    answer(nylas, s)
    assert pipeline.deliver((event, "diagnose"), receive_count=2) == []
    assert_diagnosed_once(pipeline, s, {s.email: 1, OPERATOR: 1})


MALFORMED: dict[str, tuple[str, str]] = {
    # id: (body, content type)
    "html-error-page": ("<html><body>502 Bad Gateway</body></html>", "text/html"),
    "truncated": ('{"request_id": "r", "data": {"grant_status": "val', "application/json"),
    "empty": ("", "application/json"),
    "array": ("[]", "application/json"),
    "data-not-object": ('{"request_id": "r", "data": "invalid"}', "application/json"),
    "data-list": ('{"request_id": "r", "data": [{"grant_status": "valid"}]}', "application/json"),
    "no-data": ('{"request_id": "r"}', "application/json"),
    "no-grant-status": ('{"request_id": "r", "data": {"id": "g", "provider": "google"}}', "application/json"),
    "grant-status-not-text": ('{"request_id": "r", "data": {"grant_status": 1}}', "application/json"),
}


@pytest.mark.parametrize(("body", "content_type"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_nylas_answers_are_a_clear_failure_never_a_verdict(
    pipeline: Pipeline,
    nylas: responses.RequestsMock,
    caplog: pytest.LogCaptureFixture,
    body: str,
    content_type: str,
) -> None:
    s = scenario("oauth_revoked")
    event = failure(s)
    nylas.get(grant_url(s.account_id), body=body, content_type=content_type)
    assert pipeline.deliver((event, "record"), (event, "diagnose")) == [diagnose_id(event)]
    assert_nothing_yet(pipeline, event)
    # The failed record is logged, and the failure names Nylas's answer (not an AttributeError deep down).
    (error,) = [r.exc_info[1] for r in caplog.records if r.exc_info and r.exc_info[1] is not None]
    assert type(error).__name__ == "NylasUnavailable"
    assert "Nylas answered" in str(error)

    nylas.reset()
    answer(nylas, s)
    assert pipeline.deliver((event, "diagnose"), receive_count=2) == []
    assert_diagnosed_once(pipeline, s, {s.email: 1})


def test_ses_throttling_retries_only_the_unsent_email(
    pipeline: Pipeline, aws_faults: AwsFaults, nylas: responses.RequestsMock
) -> None:
    s = scenario("google_testing_mode")  # a reconnect email to the customer and an alert to the operator
    event = failure(s)
    answer(nylas, s)
    aws_faults.ses_throttles = 1  # the first send (the customer's) is throttled

    assert pipeline.deliver((event, "record"), (event, "diagnose")) == [diagnose_id(event)]
    (verdict,) = pipeline.verdicts(event)  # the verdict is kept, the retry reuses it
    assert pipeline.emails() == {OPERATOR: 1}

    assert pipeline.deliver((event, "diagnose"), receive_count=2) == []
    (again,) = pipeline.verdicts(event)
    assert again.diagnosed_at == verdict.diagnosed_at
    assert aws_faults.ses_attempts == 3  # throttled customer, operator, customer again: never the operator twice
    assert_diagnosed_once(pipeline, s, {s.email: 1, OPERATOR: 1})


def test_ses_throttled_throughout_loses_nothing(
    pipeline: Pipeline, aws_faults: AwsFaults, nylas: responses.RequestsMock
) -> None:
    s = scenario("google_testing_mode")
    event = failure(s)
    answer(nylas, s)
    aws_faults.ses_throttles = 4  # two attempts' worth of sends
    for receive in (1, 2):
        assert pipeline.deliver((event, "diagnose"), receive_count=receive) == [diagnose_id(event)]
        assert pipeline.emails() == {}
    assert pipeline.deliver((event, "diagnose"), receive_count=3) == []
    assert_diagnosed_once(pipeline, s, {s.email: 1, OPERATOR: 1})


def test_an_unverified_sender_is_retried_until_fixed_never_recorded_as_the_customers_refusal(
    pipeline: Pipeline,
    aws_faults: AwsFaults,
    nylas: responses.RequestsMock,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Right after a deploy SES refuses the sender: the customers refused nothing, and must still get their email.
    customers = [scenario("google_testing_mode"), scenario("oauth_revoked"), scenario("microsoft_token_expired")]
    events = [failure(s) for s in customers]
    for s in customers:
        answer(nylas, s)
    aws_faults.ses_unverified = {"account-doctor@example.com"}  # template.yaml's SenderEmail default
    capsys.readouterr()

    for receive in (1, 2):
        failed = pipeline.deliver(*((e, "diagnose") for e in events), receive_count=receive)
        assert failed == sorted(diagnose_id(e) for e in events)  # back to the queue: retried, not lost
        assert pipeline.emails() == {}
        for event in events:
            (verdict,) = pipeline.verdicts(event)
            assert verdict.notifications == []  # no `rejected` row, no cooldown used, no operator alert attempted
    # One send tried per record per attempt (the rest would be refused alike), each counted for the alarm;
    # the problem logged once, not once per email.
    assert aws_faults.ses_attempts == 2 * len(events)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"SenderRejected"' in line]
    assert sum(sum(blob["SenderRejected"]) for blob in emitted) == 2 * len(events)
    assert [r.getMessage() for r in caplog.records].count(
        "SES refuses to send for this stack; every email waits for the fix and is retried"
    ) == 1

    aws_faults.ses_unverified = set()  # the operator verified the identity
    assert pipeline.deliver(*((e, "diagnose") for e in events), receive_count=3) == []
    expected = {s.email: 1 for s in customers} | {OPERATOR: 1}  # google_testing_mode's alert
    assert pipeline.emails() == expected
    for event in events:
        (verdict,) = pipeline.verdicts(event)
        assert all(n.status == "sent" for n in verdict.notifications)


def test_an_unverified_recipient_is_the_customers_refusal_recorded_once_and_the_operator_told(
    pipeline: Pipeline, aws_faults: AwsFaults, nylas: responses.RequestsMock
) -> None:
    s = scenario("oauth_revoked")  # the customer alone is emailed
    event = failure(s)
    answer(nylas, s)
    aws_faults.ses_unverified = {s.email}  # the SES sandbox: only verified recipients

    assert pipeline.deliver((event, "diagnose")) == []  # nothing to retry: SES refused this address for good
    (verdict,) = pipeline.verdicts(event)
    rejected = [n for n in verdict.notifications if n.status == "rejected"]
    assert [(n.kind, n.to) for n in rejected] == [("reconnect", s.email)]
    assert rejected[0].reason is not None
    assert s.email not in rejected[0].reason  # masked
    assert pipeline.emails() == {OPERATOR: 1}  # told which customer could not be reached
    assert pipeline.deliver((event, "diagnose"), receive_count=2) == []
    assert pipeline.emails() == {OPERATOR: 1}
    assert pipeline.verdicts(event) == [verdict]


def two_workers() -> tuple[QueueConsumer, QueueConsumer]:
    """Two DiagnosisFunction instances' consumers, built from the same settings (as two cold starts are)."""
    settings = get_settings()
    workers = build_consumer(settings, build_notifier(settings)), build_consumer(settings, build_notifier(settings))
    for worker in workers:
        # As the handler does: the in-progress record then expires with the invocation's remaining time.
        worker.idempotency.register_lambda_context(FakeLambdaContext())
    return workers


def test_the_same_record_on_two_workers_at_once(
    aws_faults: AwsFaults, pipeline: Pipeline, nylas: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQS delivers a message twice at once: the second worker backs off while the first one works."""
    from aws_lambda_powertools.utilities.batch.base import SQSRecord

    atomic_moto_dynamodb(monkeypatch)
    s = scenario("google_testing_mode")
    first_in_nylas, second_done = threading.Event(), threading.Event()

    def slow_nylas(request: Any) -> tuple[int, dict[str, str], str]:
        first_in_nylas.set()
        assert second_done.wait(10), "the second worker never finished"
        import json

        return 200, {}, json.dumps(grant_answer(s))

    nylas.add_callback(responses.GET, grant_url(s.account_id), callback=slow_nylas)
    first, second = two_workers()
    record = SQSRecord(diagnosis_record(failure(s), "diagnose"))

    def run(consumer: Any) -> BaseException | None:
        try:
            consumer.handle(record)
        except Exception as error:
            return error
        finally:
            if consumer is second:
                second_done.set()
        return None

    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(run, first)
        # The second delivery arrives while the first one holds the record (it is waiting on Nylas).
        assert first_in_nylas.wait(10), "the first worker never reached Nylas"
        two = pool.submit(run, second)
        outcomes = [one.result(20), two.result(20)]

    assert outcomes[0] is None
    assert type(outcomes[1]).__name__ == "IdempotencyAlreadyInProgressError"  # back to the queue, retried later
    assert len(nylas.calls) == 1
    # The retry of the second delivery finds the first one's result.
    assert second.handle(record)["cause"] == s.expected_cause
    assert_diagnosed_once(pipeline, s, {s.email: 1, OPERATOR: 1})


def test_a_redrive_racing_the_diagnosis_makes_one_verdict_and_one_email_each(
    aws_faults: AwsFaults, pipeline: Pipeline, nylas: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two copies of one failure with different idempotency keys (the diagnose message and a stage-less
    redrive) run at the same moment: the verdict's and the emails' conditional writes pick one winner."""
    from aws_lambda_powertools.utilities.batch.base import SQSRecord

    atomic_moto_dynamodb(monkeypatch)
    s = scenario("google_testing_mode")
    event = failure(s)
    both_gathered = threading.Barrier(2, timeout=10)

    def nylas_after_both_asked(request: Any) -> tuple[int, dict[str, str], str]:
        both_gathered.wait()  # both workers have their evidence before either writes a verdict
        import json

        return 200, {}, json.dumps(grant_answer(s))

    nylas.add_callback(responses.GET, grant_url(s.account_id), callback=nylas_after_both_asked)
    first, second = two_workers()
    diagnose = SQSRecord(diagnosis_record(event, "diagnose"))
    redrive = diagnosis_record(event, "diagnose")
    redrive["messageAttributes"] = {}
    redrive["messageId"] = "redriven"

    def run(consumer: Any, record: SQSRecord) -> BaseException | None:
        try:
            consumer.handle(record)
        except Exception as error:
            return error
        return None

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(run, (first, second), (diagnose, SQSRecord(redrive))))

    assert len(nylas.calls) == 2
    # The loser of an email's lease fails back, to be retried; nothing was sent twice meanwhile.
    assert all(o is None or type(o).__name__ == "NotificationError" for o in outcomes), outcomes
    assert sum(pipeline.emails().values()) <= 2
    assert max(pipeline.emails().values(), default=0) == 1
    redelivered_diagnose = SQSRecord(diagnosis_record(event, "diagnose", receive_count=2))
    redelivered_redrive = {**redrive, "attributes": {**redrive["attributes"], "ApproximateReceiveCount": "2"}}
    for consumer, record, outcome in (
        (first, redelivered_diagnose, outcomes[0]),
        (second, SQSRecord(redelivered_redrive), outcomes[1]),
    ):
        if outcome is not None:
            consumer.handle(record)  # the redelivery, which SQS counts as a second receive
    assert_diagnosed_once(pipeline, s, {s.email: 1, OPERATOR: 1})
