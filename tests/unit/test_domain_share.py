"""Rule 2b's share (SPEC §4): once the census counted a domain, a spread of failures is a session policy only when
the failing accounts are at least DomainSharePercent of its connected mailboxes. One row per case."""

from __future__ import annotations

from dataclasses import replace

import pytest

from account_doctor.diagnosis import diagnose, domain_share
from account_doctor.models import Evidence, Policy
from tests.unit.test_diagnosis import evidence


@pytest.mark.parametrize(
    ("failing", "connected", "percent", "enough", "words"),
    [
        pytest.param(3, None, 10, True, "", id="2b-not-counted-yet-the-count-alone-decides"),
        pytest.param(3, 4, 10, True, "3 of 4 connected mailboxes: 75 %, at least 10 %", id="2b-3-of-4"),
        pytest.param(3, 812, 10, False, "3 of 812 connected mailboxes: 0.4 %, under 10 %", id="2b-3-of-812-isp"),
        pytest.param(3, 30, 10, True, "3 of 30 connected mailboxes: 10 %, at least 10 %", id="2b-exactly-the-share"),
        pytest.param(3, 31, 10, False, "3 of 31 connected mailboxes: 9.7 %, under 10 %", id="2b-just-under"),
        pytest.param(3, 812, 0, True, "3 of 812 connected mailboxes: 0.4 %, at least 0 %", id="2b-share-0-off"),
        pytest.param(5, 3, 10, True, "5 of 3 connected mailboxes: 166.7 %, at least 10 %", id="2b-census-older"),
    ],
)
def test_domain_share(failing: int, connected: int | None, percent: int, enough: bool, words: str) -> None:
    share = domain_share(failing, connected, percent)
    assert (share.enough, share.words) == (enough, words)


def spread(connected: int | None) -> Evidence:
    """Three sfr.fr-like accounts failing over a week (not a burst), with the domain's census count."""
    return replace(
        evidence(email="claire@sfr.fr", domain_burst_accounts=1, domain_window_accounts=3), domain_connected=connected
    )


@pytest.mark.parametrize(
    ("connected", "cause"),
    [
        pytest.param(None, "admin_session_policy", id="2b-uncounted-domain-keeps-its-old-meaning"),
        pytest.param(4, "admin_session_policy", id="2b-3-of-4-is-the-organisations-policy"),
        pytest.param(812, "oauth_revoked", id="2b-3-of-812-is-coincidence-each-gets-its-own-answer"),
    ],
)
def test_rule_2b_uses_the_share(connected: int | None, cause: str) -> None:
    assert diagnose(spread(connected), Policy()).cause == cause


def test_the_step_says_the_numbers() -> None:
    steps = {s.step: s for s in diagnose(spread(812), Policy()).steps}
    assert steps["2b"].answer == (
        "No: 3 accounts at sfr.fr failed within 7 days, but 3 of 812 connected mailboxes: 0.4 %, under 10 %: "
        "too few of its mailboxes for a policy of the organisation."
    )
    assert "at least 10 % of its connected mailboxes" in steps["2b"].question
    matched = {s.step: s for s in diagnose(spread(4), Policy()).steps}
    assert (
        matched["2b"].answer
        == "Yes: 3 accounts at sfr.fr failed within 7 days: 3 of 4 connected mailboxes: 75 %, at least 10 %."
    )


def test_rule_2a_a_burst_within_minutes_keeps_its_meaning_whatever_the_share() -> None:
    burst = replace(evidence(email="a@sfr.fr", domain_burst_accounts=3, domain_window_accounts=3), domain_connected=812)
    assert diagnose(burst, Policy()).cause == "admin_disconnected"
