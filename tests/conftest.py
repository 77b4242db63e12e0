"""Fixtures shared by every test: the stack's AWS resources in moto, built from template.yaml."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from aws_lambda_powertools.utilities import parameters
from botocore.client import BaseClient
from moto import mock_aws

from account_doctor.settings import get_settings
from local_stack.payloads import TEST_SECRET, FakeLambdaContext
from local_stack.template import ProvisionedStack, load_template, provision

# Every test fails when the code logged a secret or a full email address (see tests/log_hygiene.py).
pytest_plugins = ["tests.log_hygiene"]

# Powertools child loggers take the service name when their module is imported, and a test module's imports
# run at collection, before the `aws` fixture sets the functions' environment: a child logger named for no
# service is an orphan that cannot carry the correlation id (OrphanedChildLoggerError in the consumer).
os.environ.setdefault(
    "POWERTOOLS_SERVICE_NAME",
    load_template()["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"],
)

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = ROOT / "events"


@pytest.fixture(autouse=True)
def _isolated_aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test can reach real AWS or a developer's profile, and no cache leaks between tests."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "AccountDoctor")
    get_settings.cache_clear()
    parameters.clear_caches()
    yield
    get_settings.cache_clear()
    parameters.clear_caches()


@pytest.fixture
def stack_parameters() -> dict[str, str]:
    """Template parameter overrides; a test module overrides this fixture to change them."""
    return {}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, stack_parameters: dict[str, str]) -> Iterator[ProvisionedStack]:
    """The stack's queues, tables, secret and SES identity in moto, and the functions' environment set.

    A batch's records run on several threads. moto's in-process backends are not thread-safe (a transaction
    iterates a dict another thread adds to), while AWS answers each call atomically: so AWS calls are made one
    at a time here, as AWS would linearize them; the threads still interleave between their calls.
    """
    lock = threading.RLock()
    make_api_call = BaseClient._make_api_call

    def one_call_at_a_time(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        with lock:
            return make_api_call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", one_call_at_a_time)
    with mock_aws():
        stack = provision(secret=TEST_SECRET, parameters=stack_parameters)
        for name, value in stack.function_environment().items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        yield stack


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def nylas() -> Iterator[responses.RequestsMock]:
    """Nylas at its real URLs, answered by `responses` (tests/integration/nylas_api.py registers answers)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    return event
