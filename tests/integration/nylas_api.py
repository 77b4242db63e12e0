"""Answers at the real Nylas URLs (through `responses`) for the accounts a test describes."""

from __future__ import annotations

import responses

from local_stack.payloads import (
    TEST_SECRET,
    nylas_v2_account,
    nylas_v3_answer,
    nylas_v3_error,
    nylas_v3_folders,
    nylas_v3_grant,
)

V3 = "https://api.us.nylas.com"
V2 = "https://api.nylas.com"


def grant_url(grant_id: str) -> str:
    return f"{V3}/v3/grants/{grant_id}"


def v2_account_url(account_id: str) -> str:
    return f"{V2}/a/{TEST_SECRET['client_id']}/accounts/{account_id}"


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
    """The grant, and its folders when `inbox_count` is given (as for Exchange, whose inbox rule 3a reads)."""
    data = nylas_v3_grant(
        grant_id, status=status, provider=provider, email=email, created_at=created_at, updated_at=updated_at
    )
    mock.get(grant_url(grant_id), json=nylas_v3_answer(data))
    if inbox_count is not None:
        folders = nylas_v3_folders(grant_id, [("Sent Items", 40), ("Inbox", inbox_count)])
        mock.get(f"{grant_url(grant_id)}/folders", json=nylas_v3_answer(folders))


def grant_gone(mock: responses.RequestsMock, grant_id: str) -> None:
    mock.get(grant_url(grant_id), status=404, json=nylas_v3_error("not_found_error", "grant not found"))


def v2_account(
    mock: responses.RequestsMock,
    account_id: str,
    *,
    sync_state: str = "invalid",
    billing_state: str = "paid",
    provider: str = "imap",
    email: str = "user@example.com",
) -> None:
    body = nylas_v2_account(
        account_id, sync_state=sync_state, billing_state=billing_state, provider=provider, email=email
    )
    mock.get(v2_account_url(account_id), json=body)
