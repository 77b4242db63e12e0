"""Google testing mode, before it bites (SPEC §3d), on moto: the open testing_mode incident lists the grants
that will die next. What a user sees: the operator's one alert, and GET /incidents/{id}'s at-risk list."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from account_doctor.accounts_api import AccountsApi
from account_doctor.census import Consent, Tally
from account_doctor.models import AccountEvent, iso
from account_doctor.stores.at_risk import AtRiskStore
from account_doctor.stores.dynamo import Table
from account_doctor.stores.events import EventHistory
from account_doctor.stores.watch import WatchStore
from account_doctor.testing_mode import AtRiskWatch
from tests.integration.test_incidents import START, Harness, fail_in_testing_mode

pytestmark = pytest.mark.usefixtures("aws")


@pytest.fixture
def watched(harness: Harness) -> Harness:
    """The harness's service watching testing mode, as build_consumer wires it."""
    history = harness.service.history
    watch = AtRiskWatch(
        AtRiskStore(Table(harness.settings.incidents_table)),
        history.census.recent_consents,
        history.latest_from_states,
        clock=lambda: harness.clock[0],
    )
    harness.service = replace(harness.service, at_risk=watch)
    return harness


def read_api(harness: Harness) -> AccountsApi:
    table = Table(harness.settings.events_table)
    return AccountsApi(
        events=EventHistory(table),
        verdicts=harness.verdicts,
        incidents=harness.incidents,
        policy=harness.settings.policy,
        clock=lambda: harness.clock[0],
        watch=WatchStore(table),
        at_risk=AtRiskStore(Table(harness.settings.incidents_table)),
    )


def census_with_consents(harness: Harness, consents: dict[str, float]) -> None:
    """A census taken at START that saw these Google grants consent `days` before it."""
    tally = Tally(census_id=iso(START))
    for n, (account_id, days) in enumerate(consents.items()):
        tally.consents[account_id] = Consent(account_id, f"new{n}@gmail.com", iso(START - timedelta(days=days)))
    harness.service.history.census.publish(tally, iso(START))


def test_the_incident_lists_the_grants_at_risk_soonest_first_and_its_alert_says_how_many(watched: Harness) -> None:
    census_with_consents(watched, {"grant-new-a": 2, "grant-new-b": 5, "grant-new-c": 6.5, "grant-old": 9})
    assert fail_in_testing_mode(watched, 0) == "google_testing_mode"

    (alert,) = watched.outbox.to(watched.settings.operator_email)
    assert "3 more grants expire by " in alert.text
    assert "unless you publish the app" in alert.text

    incidents, _ = watched.incidents.by_status("open", 10)
    answer = read_api(watched).incident(incidents[0].incident_id, limit=2)
    assert answer["at_risk"] == 3
    assert [g["account_id"] for g in answer["at_risk_accounts"]] == ["grant-new-c", "grant-new-b"]
    assert answer["at_risk_accounts"][0]["expires_at"] == iso(START + timedelta(days=0.5))
    rest = read_api(watched).incident(incidents[0].incident_id, limit=2, at_risk_cursor=answer["at_risk_next"])
    assert [g["account_id"] for g in rest["at_risk_accounts"]] == ["grant-new-a"]
    assert rest["at_risk_next"] is None


def test_the_count_follows_consents_and_failures_without_a_second_alert(watched: Harness) -> None:
    census_with_consents(watched, {"grant-1": 6.9, "grant-new-a": 2})
    assert fail_in_testing_mode(watched, 0) == "google_testing_mode"
    incident_id = watched.incidents.by_status("open", 10)[0][0].incident_id
    assert read_api(watched).incident(incident_id)["at_risk"] == 2

    # A new customer connects while the incident is open: one more grant at risk.
    created = AccountEvent(
        "evt-created",
        "v3",
        "grant.created",
        "grant-fresh",
        iso(START + timedelta(hours=1)),
        "google",
        "fresh@gmail.com",
    )
    watched.service.record(created)
    assert read_api(watched).incident(incident_id)["at_risk"] == 3
    assert read_api(watched).health()["testing_mode_at_risk"] == 3

    # grant-1, at risk, dies: it joins the incident and leaves the list.
    assert fail_in_testing_mode(watched, 1) == "google_testing_mode"
    shown = read_api(watched).incident(incident_id)
    assert shown["at_risk"] == 2
    assert "grant-1" not in {g["account_id"] for g in shown["at_risk_accounts"]}
    assert len(watched.outbox.to(watched.settings.operator_email)) == 1


def test_other_incidents_carry_no_at_risk_list(watched: Harness) -> None:
    for n in range(3):
        watched.diagnose(watched.fail(n, f"user{n}@acme.com", "google", minutes=4 * n))
    incidents, _ = watched.incidents.by_status("open", 10)
    answer = read_api(watched).incident(incidents[0].incident_id)
    assert "at_risk_accounts" not in answer
    assert read_api(watched).health()["testing_mode_at_risk"] == 0
