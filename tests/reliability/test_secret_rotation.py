"""Rotating the webhook secret: the old signature keeps working only while the cached copy is young.

Powertools caches the secret for SECRET_MAX_AGE_SECONDS and decides expiry with `datetime.now()`
in `aws_lambda_powertools.utilities.parameters.base`; the test moves that clock instead of sleeping.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import base as parameters_base

from account_doctor.credentials import SECRET_MAX_AGE_SECONDS
from account_doctor.settings import WebhookSettings, get_settings
from account_doctor.webhook import sign
from local_stack.payloads import TEST_SECRET, FakeLambdaContext
from local_stack.template import ProvisionedStack
from tests.conftest import load_event
from tests.integration.test_webhook_handler import SentBatches, cold_webhook

NEW_SECRET = "rotated-webhook-secret"


class MovableClock(datetime):
    """`datetime` whose now() runs `offset` ahead of the real clock."""

    offset = timedelta()

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime.now(tz) + cls.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> type[MovableClock]:
    monkeypatch.setattr(MovableClock, "offset", timedelta())
    monkeypatch.setattr(parameters_base, "datetime", MovableClock)
    return MovableClock


def signed_with(secret: str) -> dict[str, Any]:
    """The sample grant.expired webhook, signed with `secret`."""
    event = load_event("webhook-v3-grant-expired.json")
    signature = sign(event["body"].encode(), secret)
    event["headers"]["X-Nylas-Signature"] = signature
    event["multiValueHeaders"]["X-Nylas-Signature"] = [signature]
    return event


def post(handler: ModuleType, secret: str, context: FakeLambdaContext) -> int:
    status: int = handler.lambda_handler(signed_with(secret), context)["statusCode"]
    return status


def test_a_rotated_webhook_secret_takes_over_when_the_cache_expires(
    aws: ProvisionedStack, monkeypatch: pytest.MonkeyPatch, clock: type[MovableClock], lambda_context: FakeLambdaContext
) -> None:
    handler = cold_webhook(aws, monkeypatch)  # at the sample event's own time
    sent = SentBatches(handler)
    old = TEST_SECRET["webhook_secret"]

    assert post(handler, old, lambda_context) == 200  # a warm function, its secret cached
    rotated = json.dumps({"webhook_secret": NEW_SECRET, "client_secret": TEST_SECRET["client_secret"]})
    secret = get_settings(WebhookSettings).nylas_secret_name  # the webhook's own secret (NylasWebhookSecret)
    boto3.client("secretsmanager").put_secret_value(SecretId=secret, SecretString=rotated)

    # Within the max age the cached (previous) secret still decides.
    clock.offset = timedelta(seconds=SECRET_MAX_AGE_SECONDS - 1)
    assert post(handler, old, lambda_context) == 200
    assert post(handler, NEW_SECRET, lambda_context) == 401
    assert len(sent.calls) == 2

    # Past it, the secret is read again: the previous one is refused, the new one accepted.
    clock.offset = timedelta(seconds=SECRET_MAX_AGE_SECONDS + 1)
    assert post(handler, old, lambda_context) == 401
    assert len(sent.calls) == 2  # nothing enqueued for the refused webhook
    assert post(handler, NEW_SECRET, lambda_context) == 200
    assert len(sent.calls) == 3


def test_the_diagnosis_reads_a_rotated_api_key_after_the_max_age(
    aws: ProvisionedStack, clock: type[MovableClock]
) -> None:
    """The Nylas client asks for the credentials on every call, so a rotated api_key is used once the cache expires."""
    from account_doctor.credentials import load_credentials

    name = get_settings().nylas_secret_name
    assert load_credentials(name).api_key == TEST_SECRET["api_key"]
    boto3.client("secretsmanager").put_secret_value(
        SecretId=name, SecretString=json.dumps({**TEST_SECRET, "api_key": "nyk_rotated"})
    )
    clock.offset = timedelta(seconds=SECRET_MAX_AGE_SECONDS - 1)
    assert load_credentials(name).api_key == TEST_SECRET["api_key"]
    clock.offset = timedelta(seconds=SECRET_MAX_AGE_SECONDS + 1)
    assert load_credentials(name).api_key == "nyk_rotated"
