"""Fixtures of the reliability tests: the deployed DiagnosisFunction in-process, Nylas mocked, AWS faults on demand."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
import responses

from local_stack.payloads import FakeLambdaContext
from local_stack.template import LocalStack
from tests.reliability.pipeline import AwsFaults, Pipeline


@pytest.fixture
def nylas() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def aws_faults(aws: LocalStack, monkeypatch: pytest.MonkeyPatch) -> AwsFaults:
    """Hooks on a fresh default boto3 session, so only clients built in this test see them."""
    session = boto3.Session()
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    return AwsFaults(session)


@pytest.fixture
def pipeline(aws_faults: AwsFaults, lambda_context: FakeLambdaContext) -> Pipeline:
    return Pipeline(lambda_context)
