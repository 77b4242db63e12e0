"""Releases travel on their own queue: the read API can queue a release, never an account event to diagnose.

IAM lets AccountsApiFunction send to ReleaseQueue only (tests/infrastructure/test_template.py); here, the
consumer's half: from that queue it takes releases and drops anything else, so a caller allowed to release
incidents cannot make the diagnosis record a failure or email anyone.
"""

from __future__ import annotations

import json
from types import ModuleType

import boto3
import pytest

from account_doctor.accounts_api import build_read_api
from account_doctor.models import AccountEvent, Release
from account_doctor.settings import ReadApiSettings, get_settings
from account_doctor.stores.dynamo import Table
from account_doctor.stores.events import EventHistory
from local_stack.payloads import (
    DIAGNOSIS_QUEUE_ARN,
    RELEASE_QUEUE_ARN,
    FakeLambdaContext,
    diagnosis_record,
    release_record,
    sqs_event,
)
from local_stack.template import ProvisionedStack
from tests.integration.diagnosis_stack import diagnosis_handler, failed_ids

FORGED = AccountEvent(
    event_id="forged-1",
    api_version="v3",
    trigger="grant.expired",
    account_id="grant-forged",
    occurred_at="2026-11-22T08:00:00Z",
    provider="google",
    email="victim@acme.io",
)


@pytest.fixture
def handler(aws: ProvisionedStack, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return diagnosis_handler(monkeypatch)


def depth(url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_the_read_api_queues_releases_on_the_release_queue(aws: ProvisionedStack) -> None:
    api = build_read_api(get_settings(ReadApiSettings))
    assert api.enqueue_release is not None
    api.enqueue_release(Release("domain-acme.io-20261122T0812-1a2b3c4d5e"))
    assert (depth(aws.physical["ReleaseQueue"]), depth(aws.physical["DiagnosisQueue"])) == (1, 0)
    (message,) = boto3.client("sqs").receive_message(QueueUrl=aws.physical["ReleaseQueue"])["Messages"]
    assert json.loads(message["Body"])["incident_id"] == "domain-acme.io-20261122T0812-1a2b3c4d5e"


@pytest.mark.parametrize("stage", ["record", "diagnose"])
def test_an_account_event_on_the_release_queue_is_dropped(
    stage: str, handler: ModuleType, lambda_context: FakeLambdaContext
) -> None:
    forged = {**diagnosis_record(FORGED, stage), "eventSourceARN": RELEASE_QUEUE_ARN}
    # Dropped, not failed: a failed one would reach the DLQ, and a redrive would put it on the diagnosis queue.
    assert failed_ids(handler.lambda_handler(sqs_event([forged]), lambda_context)) == []
    assert EventHistory(Table(get_settings().events_table)).state(FORGED.account_id) is None


def test_the_same_event_from_the_diagnosis_queue_is_recorded(
    handler: ModuleType, lambda_context: FakeLambdaContext
) -> None:
    record = diagnosis_record(FORGED, "record")
    assert record["eventSourceARN"] == DIAGNOSIS_QUEUE_ARN
    assert failed_ids(handler.lambda_handler(sqs_event([record]), lambda_context)) == []
    assert EventHistory(Table(get_settings().events_table)).state(FORGED.account_id) is not None


def test_a_release_from_the_release_queue_runs(handler: ModuleType, lambda_context: FakeLambdaContext) -> None:
    release = release_record(Release("domain-acme.io-20261122T0812-1a2b3c4d5e"))
    assert release["eventSourceARN"] == RELEASE_QUEUE_ARN
    assert failed_ids(handler.lambda_handler(sqs_event([release]), lambda_context)) == []
