"""The Nylas client against the real Nylas URLs (answered by `responses`), credentials from the stack's secret."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import responses

from account_doctor.models import AccountState
from account_doctor.nylas import NylasClient, NylasConfigError, NylasUnavailable
from account_doctor.settings import get_settings
from local_stack.template import ProvisionedStack
from tests.integration import nylas_api
from tests.integration.nylas_api import V2, V3


@pytest.fixture
def nylas(aws: ProvisionedStack) -> NylasClient:
    return NylasClient(get_settings())


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as requests_mock:
        yield requests_mock


def test_v3_grant_state_with_bearer_key_and_iso_times(nylas: NylasClient, mock: responses.RequestsMock) -> None:
    nylas_api.grant(mock, "grant-1", status="invalid", provider="google", email="Ana@Acme.example")
    state = nylas.grant("grant-1")
    assert state == AccountState(
        exists=True,
        status="invalid",
        provider="google",
        email="Ana@Acme.example",
        created_at="2023-11-14T22:13:20Z",
        updated_at="2024-11-07T17:20:00Z",
    )
    assert mock.calls[0].request.headers["Authorization"] == "Bearer nyk_test_api_key"


def test_v3_grant_gone(nylas: NylasClient, mock: responses.RequestsMock) -> None:
    nylas_api.grant_gone(mock, "grant-2")
    assert nylas.grant("grant-2") == AccountState(exists=False)


def test_v3_exchange_inbox_count_from_folders(nylas: NylasClient, mock: responses.RequestsMock) -> None:
    nylas_api.grant(mock, "grant-3", provider="ews", inbox_count=2)
    assert nylas.grant("grant-3").inbox_count == 2


def test_v3_exchange_inbox_count_unknown_when_nylas_cannot_list_folders(
    nylas: NylasClient, mock: responses.RequestsMock
) -> None:
    nylas_api.grant(mock, "grant-4", provider="ews")
    mock.get(f"{V3}/v3/grants/grant-4/folders", status=400, json={"error": {"type": "grant.invalid"}})
    assert nylas.grant("grant-4").inbox_count is None


def test_v2_account_with_basic_auth(nylas: NylasClient, mock: responses.RequestsMock) -> None:
    nylas_api.v2_account(mock, "acct-1", sync_state="stopped", billing_state="cancelled", email="bo@corp.example")
    state = nylas.v2_account("acct-1")
    assert (state.status, state.billing_state, state.provider, state.email) == (
        "stopped",
        "cancelled",
        "imap",
        "bo@corp.example",
    )
    expected = "Basic " + base64.b64encode(b"test-client-secret:").decode()
    assert mock.calls[0].request.headers["Authorization"] == expected


def test_429_with_retry_after_then_success(nylas: NylasClient, mock: responses.RequestsMock) -> None:
    url = f"{V3}/v3/grants/grant-5"
    mock.get(url, status=429, headers={"Retry-After": "1"}, json={"error": {"type": "rate_limit"}})
    nylas_api.grant(mock, "grant-5", status="valid")
    assert nylas.grant("grant-5").status == "valid"
    assert [call.response.status_code for call in mock.calls] == [429, 200]


def test_5xx_beyond_the_retries_fails_the_record(nylas: NylasClient, mock: responses.RequestsMock) -> None:
    mock.get(f"{V3}/v3/grants/grant-6", status=503)
    with pytest.raises(NylasUnavailable):
        nylas.grant("grant-6")
    assert len(mock.calls) == 4  # the first try and three retries


def test_timeouts_are_retried_then_fail_the_record(nylas: NylasClient, mock: responses.RequestsMock) -> None:
    import requests

    mock.get(f"{V3}/v3/grants/grant-7", body=requests.exceptions.ConnectTimeout("slow"))
    with pytest.raises(NylasUnavailable):
        nylas.grant("grant-7")


@pytest.mark.parametrize(("status", "url", "check"), [(401, "v3", "api_key"), (403, "v2", "client_secret")])
def test_rejected_credentials_are_a_configuration_error(
    nylas: NylasClient,
    mock: responses.RequestsMock,
    status: int,
    url: str,
    check: str,
) -> None:
    if url == "v3":
        mock.get(f"{V3}/v3/grants/grant-8", status=status, json={"error": {"type": "unauthorized"}})
        call = lambda: nylas.grant("grant-8")  # noqa: E731
    else:
        mock.get(f"{V2}/a/test-client-id/accounts/acct-8", status=status, json={"message": "forbidden"})
        call = lambda: nylas.v2_account("acct-8")  # noqa: E731
    with pytest.raises(NylasConfigError, match=f"check .*{check}.* in secret account-doctor-NylasSecret"):
        call()
    assert len(mock.calls) == 1  # not retried: the same credentials would fail again
