"""Answers at the real Nylas URLs (through `responses`) for the accounts a test describes."""

from __future__ import annotations

from typing import Any

import responses

V3 = "https://api.us.nylas.com"
V2 = "https://api.nylas.com"
CLIENT_ID = "test-client-id"


def grant(
    mock: responses.RequestsMock,
    grant_id: str,
    *,
    status: str = "invalid",
    provider: str = "google",
    email: str = "user@example.com",
    created_at: int = 1_700_000_000,
    updated_at: int = 1_731_000_000,
    inbox_count: int | None = None,
) -> None:
    body: dict[str, Any] = {
        "request_id": "req-1",
        "data": {
            "id": grant_id,
            "grant_status": status,
            "provider": provider,
            "email": email,
            "created_at": created_at,
            "updated_at": updated_at,
        },
    }
    mock.get(f"{V3}/v3/grants/{grant_id}", json=body)
    if inbox_count is not None:
        folders = [
            {"id": "SENT", "name": "Sent Items", "total_count": 40},
            {"id": "AAMkInbox", "name": "Inbox", "attributes": ["\\Inbox"], "total_count": inbox_count},
        ]
        mock.get(f"{V3}/v3/grants/{grant_id}/folders", json={"request_id": "req-2", "data": folders})


def grant_gone(mock: responses.RequestsMock, grant_id: str) -> None:
    mock.get(
        f"{V3}/v3/grants/{grant_id}",
        status=404,
        json={"request_id": "req-3", "error": {"type": "not_found_error", "message": "grant not found"}},
    )


def v2_account(
    mock: responses.RequestsMock,
    account_id: str,
    *,
    sync_state: str = "invalid",
    billing_state: str = "paid",
    provider: str = "imap",
    email: str = "user@example.com",
) -> None:
    body = {
        "id": account_id,
        "account_id": account_id,
        "object": "account",
        "sync_state": sync_state,
        "billing_state": billing_state,
        "provider": provider,
        "email_address": email,
    }
    mock.get(f"{V2}/a/{CLIENT_ID}/accounts/{account_id}", json=body)
