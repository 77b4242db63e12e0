"""Rule 2b's share on moto (SPEC §4, §3c): the census's count of a domain decides whether failures spread over
days are its administrator's policy. What a user sees: the emails each customer gets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from account_doctor.census import Tally
from account_doctor.models import iso
from account_doctor.stores.census import CensusAggregates
from account_doctor.stores.dynamo import Table
from tests.integration.test_incidents import START, Harness

pytestmark = pytest.mark.usefixtures("aws")
DAY_MINUTES = 24 * 60


def counted(harness: Harness, domain: str, connected: int) -> None:
    """A census that counted `connected` mailboxes at the domain."""
    tally = Tally(census_id=iso(START - timedelta(days=3)), grants=connected, domains={domain: [connected, 0]})
    CensusAggregates(Table(harness.settings.events_table)).publish(tally, iso(START - timedelta(days=3)))


def three_failures_over_four_days(harness: Harness, domain: str) -> list[str]:
    return [
        harness.diagnose(harness.fail(n, f"user{n}@{domain}", "google", minutes=2 * n * DAY_MINUTES)) for n in range(3)
    ]


def test_three_unrelated_isp_subscribers_in_a_week_each_get_their_own_answer(harness: Harness) -> None:
    counted(harness, "sfr.fr", 812)
    assert three_failures_over_four_days(harness, "sfr.fr") == ["oauth_revoked"] * 3
    for n in range(3):
        # One reconnect email each; nobody is told to ask an administrator, nobody gets a contradicting email.
        assert harness.outbox.kinds(f"user{n}@sfr.fr") == ["reconnect"]
    (verdict,) = harness.verdicts.account_verdicts("grant-2", limit=5).items
    answer = next(step["answer"] for step in verdict["steps"] if step["step"] == "2b")
    assert "3 of 812 connected mailboxes: 0.4 %, under 10 %" in answer


def test_three_of_an_organisations_four_mailboxes_is_its_session_policy(harness: Harness) -> None:
    counted(harness, "smallco.fr", 4)
    assert three_failures_over_four_days(harness, "smallco.fr") == [
        "oauth_revoked",
        "oauth_revoked",
        "admin_session_policy",
    ]
    (admin_contact,) = [e for e in harness.outbox.to("user2@smallco.fr") if e.kind == "admin_contact"]
    assert "3 of your organisation's 4 mailboxes at smallco.fr" in admin_contact.text


def test_a_domain_the_census_has_not_counted_keeps_rule_2b_as_the_count_alone(harness: Harness) -> None:
    assert three_failures_over_four_days(harness, "uncounted.fr")[-1] == "admin_session_policy"
