"""Helpers for driving DiagnosisFunction in-process: Nylas answers per scenario, the handler cold-started."""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import pytest
import responses

from local_stack.payloads import load_handler, nylas_v2_error, nylas_v3_answer, nylas_v3_error
from local_stack.sample_sqs_events import NOW
from local_stack.scenarios import Scenario
from local_stack.simulator import Grant
from tests.integration.nylas_api import grant_url, v2_account_url


def grant_answer(s: Scenario) -> dict[str, Any]:
    """The body of v3 `GET /v3/grants/{id}` for the scenario's grant."""
    state = s.nylas_state(NOW)
    assert isinstance(state, Grant), f"{s.account_id} has no v3 grant"
    return nylas_v3_answer(state.to_api())


def answer(mock: responses.RequestsMock, s: Scenario) -> None:
    """Registers what Nylas says about the scenario's account (and its neighbours'), at the real Nylas URLs."""
    answer_history(mock, s)
    state = s.nylas_state(NOW)
    if state is None and s.api_version == "v2":
        not_found = nylas_v2_error("invalid_request_error", f"Couldn't find account {s.account_id}")
        mock.get(v2_account_url(s.account_id), status=404, json=not_found)
    elif state is None:
        mock.get(grant_url(s.account_id), status=404, json=nylas_v3_error("not_found_error", "grant not found"))
    elif isinstance(state, Grant):
        mock.get(grant_url(s.account_id), json=grant_answer(s))
        if s.inbox_count is not None:
            mock.get(f"{grant_url(s.account_id)}/folders", json=nylas_v3_answer(state.folders_api()))
    else:
        mock.get(v2_account_url(s.account_id), json=state.to_api())


def diagnosis_handler(monkeypatch: pytest.MonkeyPatch, *, ses_client: Any | None = None) -> ModuleType:
    """functions/diagnosis/app.py, cold-started as in Lambda: the real notifier, on moto's SES.

    `ses_client` replaces only the SES client the notifier sends with (e.g. one that throttles).
    """
    if ses_client is not None:
        import account_doctor.notifications as notifications

        monkeypatch.setattr(
            notifications, "build_notifier", functools.partial(notifications.build_notifier, ses_client=ses_client)
        )
    return load_handler("diagnosis")


def failed_ids(response: dict[str, Any]) -> list[str]:
    return sorted(item["itemIdentifier"] for item in response["batchItemFailures"])


def answer_history(mock: responses.RequestsMock, s: Scenario) -> None:
    """Registers Nylas's answers for the accounts in the scenario's history (a domain cluster's neighbours)."""
    for earlier in s.history:
        answer(mock, earlier)
