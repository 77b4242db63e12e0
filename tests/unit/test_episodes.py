"""The pure decisions of recovery episodes (SPEC §4c, §6): buckets, percentiles, replaced grants, data gaps."""

from __future__ import annotations

import pytest

from account_doctor.episodes import (
    Episode,
    address_key,
    bucket_of,
    customer_emails,
    data_gap,
    episode_end,
    percentile_hours,
    replaces,
)
from account_doctor.models import AccountEvent, Notification

HOUR = 3600


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [
        pytest.param(0, "1", id="instant: the first bucket"),
        pytest.param(HOUR, "1", id="exactly 1 h: its upper bound is inclusive"),
        pytest.param(HOUR + 1, "2", id="just over 1 h"),
        pytest.param(5 * HOUR, "8", id="5 h: the 4-8 h bucket"),
        pytest.param(72 * HOUR, "72", id="72 h: Nylas's replay window"),
        pytest.param(100 * HOUR, "168", id="100 h: within a week"),
        pytest.param(720 * HOUR, "720", id="30 days: the last bucket"),
        pytest.param(720 * HOUR + 1, "over", id="beyond 720 h: no bound"),
    ],
)
def test_a_time_to_recover_falls_in_the_bucket_spec_names(seconds: int, bucket: str) -> None:
    assert bucket_of(seconds) == bucket


@pytest.mark.parametrize(
    ("histogram", "fraction", "hours"),
    [
        pytest.param({}, 0.5, None, id="no recovered episode: no percentile"),
        pytest.param({"1": 1}, 0.5, 1, id="one episode"),
        pytest.param({"1": 1, "8": 1}, 0.5, 1, id="median of two: nearest rank is the first"),
        pytest.param({"1": 5, "8": 4, "72": 1}, 0.5, 1, id="median: rank 5 of 10"),
        pytest.param({"1": 5, "8": 4, "72": 1}, 0.9, 8, id="p90: rank 9 of 10"),
        pytest.param({"1": 5, "8": 4, "72": 1}, 1.0, 72, id="p100: the slowest"),
        pytest.param({"2": 1, "over": 9}, 0.9, None, id="p90 beyond the last bucket: null"),
    ],
)
def test_percentiles_are_the_upper_bound_of_the_bucket_holding_the_nearest_rank(
    histogram: dict[str, int], fraction: float, hours: int | None
) -> None:
    assert percentile_hours(histogram, fraction) == hours


@pytest.mark.parametrize(
    ("api_version", "recovered_at", "expected"),
    [
        pytest.param("v3", "2026-11-04T00:00:00Z", (False, None, None), id="v3 back within 72 h: nothing missed"),
        pytest.param(
            "v3",
            "2026-11-04T00:00:01Z",
            (True, "2026-11-01T00:00:00Z", "2026-11-04T00:00:01Z"),
            id="v3 back after 72 h: the gap to re-sync",
        ),
        pytest.param("v2", "2026-11-20T00:00:00Z", (False, None, None), id="v2 has no replay window"),
    ],
)
def test_a_v3_account_back_after_72_hours_has_a_data_gap(
    api_version: str, recovered_at: str, expected: tuple[bool, str | None, str | None]
) -> None:
    assert data_gap(api_version, "2026-11-01T00:00:00Z", recovered_at) == expected


BROKEN = Episode(
    account_id="grant-old",
    episode_id="evt-1",
    failed_at="2026-11-01T00:00:00Z",
    email="Ann@Acme.com",
    provider="google",
)


def _created(account_id: str = "grant-new", email: str | None = "ann@acme.COM", **changes: str) -> AccountEvent:
    values = {
        "event_id": "evt-2",
        "api_version": "v3",
        "trigger": "grant.created",
        "account_id": account_id,
        "occurred_at": "2026-11-02T00:00:00Z",
        "provider": "google",
        "email": email,
        **changes,
    }
    return AccountEvent(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("new", "replaced"),
    [
        pytest.param(_created(), True, id="a new grant, same address (any case), same connector: replaced"),
        pytest.param(_created(provider="gmail"), True, id="gmail is the google connector too"),
        pytest.param(_created(email=None), False, id="grant.created without an address replaces nothing"),
        pytest.param(_created(email="bob@acme.com"), False, id="another address"),
        pytest.param(_created(provider="microsoft"), False, id="another connector"),
        pytest.param(_created(account_id="grant-old"), False, id="the same grant: a re-authentication"),
        pytest.param(_created(trigger="grant.updated"), False, id="an update is no new grant"),
        pytest.param(_created(occurred_at="2026-10-31T00:00:00Z"), False, id="created before the failure"),
        pytest.param(
            _created(api_version="v2", trigger="account.connected"), True, id="v2: a new account id connected"
        ),
    ],
)
def test_does_this_grant_replace_that_broken_one(new: AccountEvent, replaced: bool) -> None:
    assert replaces(new, BROKEN) is replaced


def test_the_address_key_is_case_insensitive_and_needs_a_connector_and_an_address() -> None:
    assert address_key("google", " Ann@Acme.COM ") == address_key("gmail", "ann@acme.com") == "google#ann@acme.com"
    assert address_key(None, "ann@acme.com") is None
    assert address_key("google", None) is None
    assert address_key("google", "not-an-address") is None


def test_the_recovered_event_carries_every_field_of_spec_4c() -> None:
    episode = Episode(
        account_id="grant-1",
        episode_id="evt-1",
        failed_at="2026-11-01T00:00:00Z",
        email="ann@acme.com",
        provider="google",
        domain="acme.com",
        cause="oauth_revoked",
        incident_id=None,
        emails=frozenset({"reconnect#a#1", "reminder#b#2"}),
    )
    end = episode_end(episode, "reauthentication", "2026-11-01T05:00:00Z", ended_by="evt-2")
    assert end.detail() == {
        "account_id": "grant-1",
        "email": "ann@acme.com",
        "provider": "google",
        "domain": "acme.com",
        "failed_at": "2026-11-01T00:00:00Z",
        "recovered_at": "2026-11-01T05:00:00Z",
        "time_to_recover_seconds": 5 * HOUR,
        "recovered_by": "reauthentication",
        "replaced_by": None,
        "cause": "oauth_revoked",
        "incident_id": None,
        "emails_sent": 2,
        "data_gap": False,
        "gap_from": None,
        "gap_to": None,
    }
    assert end.counts() == {"recovered": 1, "by_reauthentication": 1, "ttr_8": 1, "within_72h": 1}
    assert episode_end(episode, "removed", "2026-12-01T00:00:00Z", ended_by="sweep").counts() == {"removed": 1}


def test_an_end_dated_before_its_failure_counts_as_instant() -> None:
    end = episode_end(BROKEN, "reauthentication", "2026-10-31T23:59:00Z", ended_by="evt-2")
    assert (end.recovered_at, end.seconds) == (BROKEN.failed_at, 0)


def test_only_customer_emails_that_went_out_count_once_each() -> None:
    notifications = [
        Notification(kind="reconnect", to="a@b.com", status="sent", sent_at="t1", message_id="m1"),
        Notification(kind="reconnect", to="a@b.com", status="delivered", sent_at="t1", message_id="m1"),
        Notification(kind="operator_alert", to="ops@b.com", status="sent", sent_at="t1", message_id="m2"),
        Notification(kind="admin_contact", to="a@b.com", status="held"),
        Notification(kind="reminder", to="a@b.com", status="rejected", reason="bad"),
    ]
    assert customer_emails(notifications) == frozenset({"reconnect#t1#m1"})
