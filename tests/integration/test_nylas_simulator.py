"""The Nylas simulator answers the diagnosis' calls as Nylas does: real paths, real auth, 401 and 404."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local_stack.simulator import Grant, NylasSimulator, V2Account


@pytest.fixture
def simulator() -> Iterator[NylasSimulator]:
    with NylasSimulator(api_key="key", client_id="client", client_secret="shh") as running:
        running.add_grant(Grant("g-1", "a@acme.example", "ews", "invalid", 1, 2, folders=[("Inbox", 1)]))
        running.add_account(V2Account("acc-1", "b@acme.example", "imap", "stopped", "paid"))
        yield running


def test_v3_grant_with_the_api_key(simulator: NylasSimulator) -> None:
    answer = requests.get(f"{simulator.url}/v3/grants/g-1", headers={"Authorization": "Bearer key"}, timeout=5)
    assert answer.status_code == 200
    assert answer.json()["data"]["grant_status"] == "invalid"
    folders = requests.get(f"{simulator.url}/v3/grants/g-1/folders", headers={"Authorization": "Bearer key"}, timeout=5)
    inbox = next(f for f in folders.json()["data"] if "\\Inbox" in f["attributes"])
    assert inbox["total_count"] == 1


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic c2hoOg=="])
def test_v3_refuses_other_credentials(simulator: NylasSimulator, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    assert requests.get(f"{simulator.url}/v3/grants/g-1", headers=headers, timeout=5).status_code == 401


def test_v3_unknown_grant_is_404(simulator: NylasSimulator) -> None:
    answer = requests.get(f"{simulator.url}/v3/grants/gone", headers={"Authorization": "Bearer key"}, timeout=5)
    assert answer.status_code == 404


def test_v2_account_with_the_client_secret_as_basic_user(simulator: NylasSimulator) -> None:
    answer = requests.get(f"{simulator.url}/a/client/accounts/acc-1", auth=("shh", ""), timeout=5)
    assert answer.status_code == 200
    assert answer.json()["sync_state"] == "stopped"
    assert requests.get(f"{simulator.url}/a/client/accounts/acc-1", auth=("nope", ""), timeout=5).status_code == 401
    assert requests.get(f"{simulator.url}/a/other/accounts/acc-1", auth=("shh", ""), timeout=5).status_code == 401
    assert requests.get(f"{simulator.url}/a/client/accounts/gone", auth=("shh", ""), timeout=5).status_code == 404


def test_injected_fault_then_recovery(simulator: NylasSimulator) -> None:
    simulator.inject_fault("g-1", 429, times=1, retry_after=2)
    first = requests.get(f"{simulator.url}/v3/grants/g-1", headers={"Authorization": "Bearer key"}, timeout=5)
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "2"
    again = requests.get(f"{simulator.url}/v3/grants/g-1", headers={"Authorization": "Bearer key"}, timeout=5)
    assert again.status_code == 200
