"""The webhook feed's health and the client secret's clock (SPEC §3d): pure decisions, one row per case."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from account_doctor import providers
from account_doctor.clocks import (
    MalformedExpiry,
    days_left,
    due_alert_day,
    expired_secret_cause,
    parse_expiry,
    secret_alert,
)
from account_doctor.diagnosis import diagnose
from account_doctor.feed import Destination, FeedStatus, feed_alert, feed_changed, feed_health
from account_doctor.models import Evidence, Policy, Verdict
from account_doctor.notifications.render import compose
from local_stack.emails import sample_settings
from tests.unit.test_diagnosis import evidence

ALL = ("grant.created", "grant.updated", "grant.deleted", "grant.expired")
NO_EXPIRED = ("grant.created", "grant.updated", "grant.deleted")


def dest(webhook_id: str, status: str = "active", triggers: tuple[str, ...] = ALL) -> Destination:
    return Destination(webhook_id, status, triggers, webhook_url=f"https://{webhook_id}.example.net/v1/webhook")


@pytest.mark.parametrize(
    ("destinations", "status", "undelivered"),
    [
        pytest.param([dest("a")], "healthy", (), id="3d-one-active-destination-with-every-trigger"),
        pytest.param(
            [dest("a", triggers=("grant.expired",)), dest("b", triggers=("grant.updated", "grant.deleted"))],
            "healthy",
            (),
            id="3d-triggers-spread-over-two-active-destinations",
        ),
        pytest.param(
            [dest("a", "failing")],
            "unhealthy",
            ("grant.expired", "grant.updated", "grant.deleted"),
            id="3d-the-only-destination-is-failing",
        ),
        pytest.param(
            [dest("a", "failed")], "unhealthy", ("grant.expired", "grant.updated", "grant.deleted"), id="3d-failed"
        ),
        pytest.param(
            [dest("a", "pause")], "unhealthy", ("grant.expired", "grant.updated", "grant.deleted"), id="3d-paused"
        ),
        pytest.param(
            [dest("a", triggers=NO_EXPIRED)], "unhealthy", ("grant.expired",), id="3d-grant-expired-not-subscribed"
        ),
        pytest.param([dest("a", "failed"), dest("b")], "healthy", (), id="3d-a-failed-one-beside-an-active-one"),
        pytest.param(
            [dest("a", "failed"), dest("b", triggers=NO_EXPIRED)],
            "unhealthy",
            ("grant.expired",),
            id="3d-the-active-one-lacks-what-the-failed-one-had",
        ),
        pytest.param([], "unhealthy", ("grant.expired", "grant.updated", "grant.deleted"), id="3d-no-destination"),
        pytest.param(None, "unknown", (), id="3d-nylas-could-not-be-asked"),
    ],
)
def test_feed_health(destinations: list[Destination] | None, status: str, undelivered: tuple[str, ...]) -> None:
    health = feed_health(destinations)
    assert (health.status, health.undelivered) == (status, undelivered)


def test_each_destination_names_the_triggers_it_is_missing() -> None:
    health = feed_health([dest("wh-1", "failing", NO_EXPIRED), dest("wh-2")])
    assert health.to_dict("2026-12-01T10:00:00Z") == {
        "status": "healthy",
        "checked_at": "2026-12-01T10:00:00Z",
        "destinations": [
            {"id": "wh-1", "status": "failing", "trigger_types": list(NO_EXPIRED), "missing": ["grant.expired"]},
            {"id": "wh-2", "status": "active", "trigger_types": list(ALL), "missing": []},
        ],
    }


@pytest.mark.parametrize(
    ("previous", "now", "alert"),
    [
        pytest.param(None, "unhealthy", True, id="3d-first-check-unhealthy-alerts"),
        pytest.param(None, "healthy", False, id="3d-first-check-healthy-is-quiet"),
        pytest.param("healthy", "unhealthy", True, id="3d-healthy-to-unhealthy"),
        pytest.param("unhealthy", "healthy", True, id="3d-unhealthy-to-healthy"),
        pytest.param("unhealthy", "unhealthy", False, id="3d-still-unhealthy-no-second-alert"),
        pytest.param("healthy", "healthy", False, id="3d-still-healthy"),
        pytest.param("unhealthy", "unknown", False, id="3d-unknown-never-alerts"),
        pytest.param(None, "unknown", False, id="3d-unknown-first"),
    ],
)
def test_feed_changed(previous: FeedStatus | None, now: str, alert: bool) -> None:
    health = {
        "healthy": feed_health([dest("a")]),
        "unhealthy": feed_health([dest("a", "failing")]),
        "unknown": feed_health(None),
    }[now]
    assert feed_changed(previous, health) is alert


def test_the_unhealthy_alert_says_which_destination_which_status_what_is_missing_and_how_to_fix_it() -> None:
    alert = feed_alert(
        feed_health([dest("wh-1", "failed"), dest("wh-2", triggers=NO_EXPIRED)]),
        nylas_api_uri="https://api.us.nylas.com",
    )
    words = " ".join((alert.title, *alert.paragraphs, *alert.steps))
    assert alert.title == "The Nylas webhook feed is not delivering failures"
    assert "Destination wh-1 (https://wh-1.example.net/v1/webhook) is failed: Nylas stopped delivering to it." in words
    assert "Destination wh-2 (https://wh-2.example.net/v1/webhook) does not subscribe grant.expired." in words
    assert "Nylas is not delivering grant.expired to any active webhook destination." in words
    assert "PUT https://api.us.nylas.com/v3/webhooks/{webhook_id}" in words
    assert "the sweep is the only source of failures" in words


def test_no_destination_at_all_is_said_in_words() -> None:
    alert = feed_alert(feed_health([]), nylas_api_uri="https://api.eu.nylas.com")
    assert "Nylas lists no webhook destination at all for the application." in alert.paragraphs


# --- The Microsoft client secret -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "due"),
    [
        pytest.param(45, None, id="3d-31-days-or-more-nothing-yet"),
        pytest.param(31, None, id="3d-31"),
        pytest.param(30, 30, id="3d-30-days-before"),
        pytest.param(8, 30, id="3d-between-30-and-7"),
        pytest.param(7, 7, id="3d-7-days-before"),
        pytest.param(6, 7, id="3d-first-deployment-6-days-before-one-alert-for-the-nearest"),
        pytest.param(1, 1, id="3d-1-day-before"),
        pytest.param(0, 0, id="3d-on-the-day"),
        pytest.param(-5, 0, id="3d-after-the-date"),
    ],
)
def test_due_alert_day(left: int, due: int | None) -> None:
    assert due_alert_day(left) == due


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("", None, id="empty-is-unknown"),
        pytest.param(" 2027-03-31 ", date(2027, 3, 31), id="a-date"),
    ],
)
def test_parse_expiry(raw: str, expected: date | None) -> None:
    assert parse_expiry(raw) == expected


@pytest.mark.parametrize("raw", ["31/03/2027", "2027-3-31", "2027-02-30", "soon"])
def test_a_malformed_expiry_says_what_a_date_looks_like(raw: str) -> None:
    with pytest.raises(MalformedExpiry, match="MICROSOFT_CLIENT_SECRET_EXPIRES_ON"):
        parse_expiry(raw)


def test_days_left_counts_utc_calendar_days() -> None:
    assert days_left(date(2027, 3, 31), datetime(2027, 3, 24, 23, 59, tzinfo=UTC)) == 7
    assert days_left(date(2027, 3, 31), datetime(2027, 4, 2, tzinfo=UTC)) == -2


@pytest.mark.parametrize(
    ("left", "title"),
    [
        (6, "The Microsoft client secret expires in 6 days (2027-03-31)"),
        (1, "The Microsoft client secret expires in 1 day (2027-03-31)"),
        (0, "The Microsoft client secret expires today (2027-03-31)"),
        (-2, "The Microsoft client secret expired on 2027-03-31"),
    ],
)
def test_the_secret_alert_is_titled_in_plain_words(left: int, title: str) -> None:
    alert = secret_alert(date(2027, 3, 31), left)
    assert alert.title == title
    assert any("Certificates & secrets" in step for step in alert.steps)


def test_after_the_date_the_expired_secret_is_the_likely_cause_of_a_microsoft_outage() -> None:
    expires = date(2027, 3, 31)
    assert expired_secret_cause(expires, datetime(2027, 3, 30, 23, tzinfo=UTC)) is None
    assert expired_secret_cause(None, datetime(2027, 4, 1, tzinfo=UTC)) is None
    cause = expired_secret_cause(expires, datetime(2027, 3, 31, 9, tzinfo=UTC))
    assert cause is not None
    assert cause.startswith("The Entra ID client secret of the Microsoft connector expired on 2027-03-31")


def outage(provider: str) -> Evidence:
    """Twenty accounts of one connector from five domains failing within minutes, where none usually fail."""
    return replace(
        evidence(provider=provider, email="ann@contoso.com"),
        connector=providers.connector(provider),
        connector_burst_accounts=20,
        connector_burst_domains=5,
    )


@pytest.mark.parametrize(
    ("provider", "expires_on", "first"),
    [
        pytest.param(
            "microsoft", date(2024, 11, 18), "Operator: The Entra ID client secret", id="1b-expired-secret-first"
        ),
        pytest.param(
            "microsoft", date(2024, 12, 31), "Operator: The Entra ID app registration's", id="1b-not-yet-expired"
        ),
        pytest.param("microsoft", None, "Operator: The Entra ID app registration's", id="1b-expiry-unknown"),
        pytest.param(
            "google", date(2024, 11, 18), "Operator: The Google OAuth client", id="1b-google-has-no-such-clock"
        ),
    ],
)
def test_a_connector_outage_names_an_expired_microsoft_secret_first(
    provider: str, expires_on: date | None, first: str
) -> None:
    found = diagnose(outage(provider), Policy(client_secret_expires_on=expires_on))
    assert found.cause == "connector_outage"
    assert found.actions[0].startswith(first)


def test_the_outage_alert_lists_the_expired_secret_as_the_first_likely_cause() -> None:
    settings = sample_settings(MicrosoftClientSecretExpiresOn="2024-11-18")
    verdict = Verdict.of(
        outage("microsoft"), diagnose(outage("microsoft"), settings.policy), diagnosed_at="2024-11-19T07:10:00Z"
    )
    (alert,) = [o.email for o in compose(verdict, settings, "https://x") if o.email.kind == "operator_alert"]
    assert "Likely causes\n1. The Entra ID client secret of the Microsoft connector expired on 2024-11-18" in alert.text
