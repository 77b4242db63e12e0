"""Helpers for driving DiagnosisFunction in-process: Nylas answers per scenario, the handler cold-started."""

from __future__ import annotations

import functools
from dataclasses import replace
from types import ModuleType
from typing import Any

import pytest
import responses

from local_stack.payloads import TEST_SECRET, load_handler
from local_stack.sample_sqs_events import (
    Scenario,
    nylas_v2_account,
    nylas_v3_folders,
    nylas_v3_grant,
)

V3 = "https://api.us.nylas.com"
V2 = "https://api.nylas.com"


def grant_url(account_id: str) -> str:
    return f"{V3}/v3/grants/{account_id}"


def v2_url(account_id: str) -> str:
    return f"{V2}/a/{TEST_SECRET['client_id']}/accounts/{account_id}"


def answer(mock: responses.RequestsMock, s: Scenario) -> None:
    """Registers what Nylas says about the scenario's account, at the real Nylas URLs."""
    account_id = s.event.account_id
    if s.event.api_version == "v2":
        mock.get(v2_url(account_id), json=nylas_v2_account(s.nylas, account_id))
    elif not s.nylas.exists:
        mock.get(grant_url(account_id), status=404, json={"error": {"type": "not_found_error"}})
    else:
        mock.get(grant_url(account_id), json=nylas_v3_grant(s.nylas, account_id))
        if s.nylas.inbox_count is not None:
            mock.get(f"{grant_url(account_id)}/folders", json=nylas_v3_folders(s.nylas))


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
    for event in s.history:
        state = replace(s.nylas, email=event.email or s.nylas.email, provider=event.provider or s.nylas.provider)
        mock.get(grant_url(event.account_id), json=nylas_v3_grant(state, event.account_id))
