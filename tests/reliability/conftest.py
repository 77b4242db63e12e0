"""Fixtures of the reliability tests: the deployed DiagnosisFunction in-process, AWS faults on demand."""

from __future__ import annotations

import boto3
import pytest

from local_stack.payloads import FakeLambdaContext
from local_stack.template import ProvisionedStack
from tests.integration.test_incidents import harness  # noqa: F401 - the service on moto, Nylas in memory, SES recorded
from tests.reliability.pipeline import AwsFaults, Pipeline


@pytest.fixture
def aws_faults(aws: ProvisionedStack, monkeypatch: pytest.MonkeyPatch) -> AwsFaults:
    """Hooks on a fresh default boto3 session, so only clients built in this test see them."""
    session = boto3.Session()
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    return AwsFaults(session)


@pytest.fixture
def pipeline(aws_faults: AwsFaults, lambda_context: FakeLambdaContext) -> Pipeline:
    return Pipeline(lambda_context)
