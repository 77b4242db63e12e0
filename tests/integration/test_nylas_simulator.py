"""The Nylas simulator answers the diagnosis' calls as Nylas does: real paths, real auth, 401 and 404."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from account_doctor.nylas import NylasClient, NylasUnavailable
from account_doctor.settings import get_settings
from local_stack.payloads import TEST_SECRET
from local_stack.simulator import Grant, NylasSimulator, V2Account
from local_stack.template import ProvisionedStack


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


# The real client over real HTTP: unlike `responses`, the simulator lets urllib3 actually wait.
@pytest.fixture
def client_and_simulator(
    aws: ProvisionedStack, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[NylasClient, NylasSimulator]]:
    with NylasSimulator(
        api_key=TEST_SECRET["api_key"], client_id=TEST_SECRET["client_id"], client_secret=TEST_SECRET["client_secret"]
    ) as running:
        running.add_grant(Grant("g-1", "a@acme.example", "google", "invalid", 1, 2))
        monkeypatch.setenv("NYLAS_API_URI", running.url)
        get_settings.cache_clear()
        yield NylasClient(get_settings()), running


def test_the_client_waits_out_retry_after(client_and_simulator: tuple[NylasClient, NylasSimulator]) -> None:
    client, simulator = client_and_simulator
    simulator.inject_fault("g-1", 429, times=1, retry_after=1)
    started = time.monotonic()
    assert client.grant("g-1").status == "invalid"
    assert time.monotonic() - started >= 1.0


def test_the_client_backs_off_between_5xx_retries(client_and_simulator: tuple[NylasClient, NylasSimulator]) -> None:
    client, simulator = client_and_simulator
    simulator.inject_fault("g-1", 503, times=2)
    started = time.monotonic()
    assert client.grant("g-1").status == "invalid"
    # urllib3 retries the first failure at once, then waits backoff_factor (0.5 s) × 2.
    assert time.monotonic() - started >= 1.0


def test_a_retry_after_beyond_the_invocation_goes_back_to_the_queue(
    client_and_simulator: tuple[NylasClient, NylasSimulator],
) -> None:
    client, simulator = client_and_simulator
    simulator.inject_fault("g-1", 429, times=1, retry_after=600)
    started = time.monotonic()
    with pytest.raises(NylasUnavailable):
        client.grant("g-1")
    assert time.monotonic() - started < 5
