"""What the sweep watches besides broken grants (SPEC §3c, §3d): SweepFunction in-process on the template's
tables in moto, against the Nylas simulator over real HTTP. What a user sees: the operator's alerts in SES, the
metric the alarm reads, and the census's counts as the read API answers them."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine

from account_doctor.nylas import NylasConfigError
from account_doctor.stores.census import CensusAggregates
from account_doctor.stores.dynamo import Table
from local_stack.payloads import FakeLambdaContext, api_gateway_event, load_handler
from local_stack.simulator import DEFAULT_WEBHOOK_ID, V3_ALL, V3_WEBHOOKS, Grant, NylasSimulator, V2Account
from local_stack.template import ProvisionedStack
from tests.integration import test_sweep
from tests.integration.ses import OPERATOR, ses_outbox
from tests.integration.test_sweep import NOW, Stack

# The sweep tests' stack: SweepFunction on moto, the simulator over HTTP, no grace period.
stack_parameters = test_sweep.stack_parameters
simulator = test_sweep.simulator
stack = test_sweep.stack

DAY = 86_400


def operator_alerts() -> list[str]:
    return [m.subject for m in ses_outbox() if OPERATOR in m.to]


def alert_html(subject_part: str) -> str:
    return next(m.html for m in ses_outbox() if subject_part in m.subject)


# --- The webhook feed -------------------------------------------------------------------------------------------


def test_a_failing_destination_alerts_the_operator_once_and_again_when_it_is_healthy(
    stack: Stack, simulator: NylasSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.sweep()
    assert operator_alerts() == []  # healthy on the first check: nothing to say
    assert '"WebhookFeedUnhealthy":[0.0]' in capsys.readouterr().out

    simulator.add_webhook(DEFAULT_WEBHOOK_ID, status="failing")
    assert stack.sweep()["webhook_feed"] == "unhealthy"
    assert operator_alerts() == ["Account Doctor alert: The Nylas webhook feed is not delivering failures"]
    assert '"WebhookFeedUnhealthy":[1.0]' in capsys.readouterr().out
    body = alert_html("not delivering")
    assert f"Destination {DEFAULT_WEBHOOK_ID}" in body
    assert "is failing" in body
    assert "/v3/webhooks/{webhook_id}" in body
    assert "the only source of failures" in body

    stack.sweep()  # still failing: no second alert
    assert len(operator_alerts()) == 1

    simulator.add_webhook(DEFAULT_WEBHOOK_ID, status="active")
    stack.sweep()
    assert operator_alerts()[1:] == ["Account Doctor alert: The Nylas webhook feed is healthy again"]
    assert '"WebhookFeedUnhealthy":[0.0]' in capsys.readouterr().out


def test_a_destination_without_grant_expired_is_unhealthy_from_the_first_check(
    stack: Stack, simulator: NylasSimulator
) -> None:
    simulator.add_webhook(DEFAULT_WEBHOOK_ID, trigger_types=("grant.created", "grant.updated", "grant.deleted"))
    stack.sweep()
    assert len(operator_alerts()) == 1
    assert "does not subscribe grant.expired" in alert_html("not delivering")


@pytest.mark.parametrize("status", [404, 503])
def test_nylas_not_answering_the_webhooks_list_is_unknown_no_alert_no_metric(
    stack: Stack, simulator: NylasSimulator, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    simulator.webhooks_fault = status
    assert stack.sweep()["webhook_feed"] == "unknown"
    assert operator_alerts() == []
    assert "WebhookFeedUnhealthy" not in capsys.readouterr().out


def test_rejected_credentials_on_the_webhooks_list_raise_the_credentials_alarm(
    stack: Stack, simulator: NylasSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    simulator.webhooks_fault = 401
    with pytest.raises(NylasConfigError):
        stack.sweep()
    assert '"NylasConfigErrors":[1.0]' in capsys.readouterr().out
    assert simulator.calls[V3_WEBHOOKS] == 1


# --- The grant census --------------------------------------------------------------------------------------------


def census_of(aws: ProvisionedStack) -> CensusAggregates:
    return CensusAggregates(Table(aws.physical["EventsTable"]))


def test_the_first_run_counts_every_grant_per_domain_and_connector_in_one_call_per_200(
    aws: ProvisionedStack, stack: Stack, simulator: NylasSimulator
) -> None:
    for n in range(450):
        status = "invalid" if n % 50 == 0 else "valid"
        provider = "microsoft" if n % 3 == 0 else "google"
        simulator.add_grant(Grant(f"g-{n:03}", f"user{n}@org{n % 5}.com", provider, status, int(NOW - 60 * DAY)))
    simulator.add_grant(Grant("g-noaddress", "", "google", "valid", int(NOW - 60 * DAY)))
    simulator.add_account(V2Account("acc-1", "old@legacy.org", "exchange", "stopped"))

    summary = stack.sweep()["census"]
    assert (summary["complete"], summary["grants"], summary["domains"]) == (True, 452, 6)
    assert simulator.calls[V3_ALL] == 3  # 451 grants: 200 + 200 + 51
    counts = census_of(aws)
    org0 = counts.domain("org0.com")
    assert org0 is not None
    assert (org0.connected, org0.broken) == (90, 9)
    assert counts.domain("legacy.org") is not None
    connectors = counts.connectors(["google", "microsoft", "ews"])
    assert {name: (c.connected, c.broken) for name, c in connectors.items()} == {
        "google": (301, 6),
        "microsoft": (150, 3),
        "ews": (1, 1),
    }

    assert stack.sweep()["census"]["ran"] is False  # at most once a day
    assert simulator.calls[V3_ALL] == 3


def test_the_census_runs_again_on_the_first_run_after_midnight_utc(
    aws: ProvisionedStack, stack: Stack, simulator: NylasSimulator
) -> None:
    simulator.add_grant(Grant("g-1", "a@acme.com", "google", "valid", int(NOW - 60 * DAY)))
    stack.sweep()
    simulator.add_grant(Grant("g-2", "b@acme.com", "google", "valid", int(NOW - 60 * DAY)))
    tomorrow = datetime.now(UTC).replace(hour=0, minute=5, second=0) + timedelta(days=1)
    with time_machine.travel(tomorrow, tick=False):
        assert stack.sweep()["census"]["complete"] is True
    acme = census_of(aws).domain("acme.com")
    assert acme is not None
    assert acme.connected == 2


def test_a_census_nylas_stops_answering_resumes_on_the_next_run(
    aws: ProvisionedStack, stack: Stack, simulator: NylasSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(450):
        simulator.add_grant(Grant(f"g-{n:03}", f"user{n}@acme.com", "google", "valid", int(NOW - 60 * DAY)))
    simulator.inject_page_fault("v3", offset=200, status=429, retry_after=60)
    first = stack.sweep()["census"]
    assert (first["complete"], first["grants"]) == (False, 200)
    assert "resumes next run" in caplog.text
    assert census_of(aws).domain("acme.com") is None  # nothing published half-counted

    second = stack.sweep()["census"]
    assert (second["complete"], second["grants"]) == (True, 450)
    acme = census_of(aws).domain("acme.com")
    assert acme is not None
    assert acme.connected == 450


# --- The Microsoft client secret --------------------------------------------------------------------------------


@pytest.fixture
def expiry_in_6_days(aws: ProvisionedStack, monkeypatch: pytest.MonkeyPatch) -> date:
    expires = datetime.now(UTC).date() + timedelta(days=6)
    monkeypatch.setenv("MICROSOFT_CLIENT_SECRET_EXPIRES_ON", expires.isoformat())
    return expires


def test_the_secret_is_alerted_once_for_the_nearest_threshold_then_on_the_day(
    expiry_in_6_days: date, stack: Stack, simulator: NylasSimulator
) -> None:
    stack.sweep()
    stack.sweep()
    assert operator_alerts() == [
        f"Account Doctor alert: The Microsoft client secret expires in 6 days ({expiry_in_6_days.isoformat()})"
    ]
    with time_machine.travel(datetime.combine(expiry_in_6_days, datetime.min.time(), UTC) + timedelta(hours=1)):
        stack.sweep()
        stack.sweep()
    assert operator_alerts()[1:] == [
        f"Account Doctor alert: The Microsoft client secret expires today ({expiry_in_6_days.isoformat()})"
    ]


def test_a_malformed_expiry_is_one_clear_log_line_and_the_sweep_still_runs(
    aws: ProvisionedStack, simulator: NylasSimulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MICROSOFT_CLIENT_SECRET_EXPIRES_ON", "2027-02-30")
    summary = Stack(aws, monkeypatch).sweep()
    assert summary["complete"] is True
    lines = [r.getMessage() for r in caplog.records if "MICROSOFT_CLIENT_SECRET_EXPIRES_ON" in r.getMessage()]
    assert lines == [
        "MICROSOFT_CLIENT_SECRET_EXPIRES_ON is not a calendar date: '2027-02-30': the client secret's expiry is "
        "not watched until it is fixed in samconfig.toml"
    ]
    assert operator_alerts() == []


def test_a_secret_without_a_date_is_not_watched(stack: Stack, simulator: NylasSimulator) -> None:
    # The template's default: MicrosoftClientSecretExpiresOn is empty (unknown).
    with time_machine.travel(datetime.now(UTC) + timedelta(days=400)):
        stack.sweep()
    assert operator_alerts() == []


# --- What the read API shows ----------------------------------------------------------------------------------


def read_api(path: str, resource: str, **parameters: str) -> tuple[int, dict[str, Any]]:
    handler = load_handler("accounts_api")
    event = api_gateway_event("GET", path, resource=resource, path_parameters=parameters or None)
    response = handler.lambda_handler(event, FakeLambdaContext("AccountsApiFunction", 10))
    return response["statusCode"], json.loads(response["body"])


def test_get_health_and_domain_show_the_feed_and_the_census(
    expiry_in_6_days: date, stack: Stack, simulator: NylasSimulator
) -> None:
    for n in range(4):
        simulator.add_grant(Grant(f"g-{n}", f"user{n}@smallco.fr", "microsoft", "valid", int(NOW - 60 * DAY)))
    simulator.add_webhook(DEFAULT_WEBHOOK_ID, status="pause")
    stack.sweep()

    status, health = read_api("/health", "/health")
    assert status == 200
    assert health["webhook_feed"]["status"] == "unhealthy"
    assert health["webhook_feed"]["destinations"] == [
        {
            "id": DEFAULT_WEBHOOK_ID,
            "status": "pause",
            "trigger_types": ["grant.created", "grant.updated", "grant.deleted", "grant.expired"],
            "missing": [],
        }
    ]
    microsoft = next(c for c in health["connectors"] if c["connector"] == "microsoft")
    assert microsoft["connected"] == 4
    assert microsoft["broken"] == 0
    assert microsoft["census_at"] is not None
    assert (microsoft["client_secret_expires_on"], microsoft["days_left"]) == (expiry_in_6_days.isoformat(), 6)
    assert health["testing_mode_at_risk"] == 0

    status, domain = read_api("/domains/smallco.fr", "/domains/{domain}", domain="smallco.fr")
    assert status == 200
    assert (domain["connected"], domain["census_at"]) == (4, microsoft["census_at"])
