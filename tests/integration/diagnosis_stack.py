"""Helpers for driving DiagnosisFunction in-process: Nylas answers per scenario, a recording notifier."""

from __future__ import annotations

import sys
import threading
from types import ModuleType
from typing import Any

import pytest
import responses

from account_doctor.models import Notification, Verdict
from account_doctor.settings import Settings
from local_stack.sample_sqs_events import (
    Scenario,
    nylas_v2_account,
    nylas_v3_folders,
    nylas_v3_grant,
)
from tests.conftest import TEST_SECRET, load_handler

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


class RecordingNotifier:
    """The Notifier port, recording instead of emailing: one notification per verdict, never twice."""

    def __init__(self) -> None:
        self.sent: dict[str, list[Notification]] = {}
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def notify(self, verdict: Verdict) -> list[Notification]:
        with self._lock:
            self.calls.append(verdict.event_id)
            if verdict.event_id not in self.sent:
                kind = "operator_alert" if verdict.cause in ("unknown", "sync_stopped") else "reconnect"
                to = "operators@example.com" if kind == "operator_alert" else verdict.email or ""
                self.sent[verdict.event_id] = [
                    Notification(kind=kind, to=to, message_id=f"msg-{verdict.event_id}", sent_at=verdict.diagnosed_at)
                ]
            return self.sent[verdict.event_id]


def diagnosis_handler(monkeypatch: pytest.MonkeyPatch, notifier: RecordingNotifier) -> ModuleType:
    """functions/diagnosis/app.py, cold-started with the recording notifier in place of SES."""

    def build(settings: Settings) -> RecordingNotifier:
        return notifier

    try:
        import account_doctor.notifications as notifications
    except ImportError:  # the SES notifier lives on another branch until it is merged
        notifications = ModuleType("account_doctor.notifications")
        monkeypatch.setitem(sys.modules, "account_doctor.notifications", notifications)
    monkeypatch.setattr(notifications, "build_notifier", build, raising=False)
    return load_handler("diagnosis")


def failed_ids(response: dict[str, Any]) -> list[str]:
    return sorted(item["itemIdentifier"] for item in response["batchItemFailures"])
