"""The grant census (SPEC §3c): what it counts, when it is due, and that it resumes where it stopped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from account_doctor.census import Consent, Tally, census_due
from account_doctor.census_run import Census, Pacer
from account_doctor.models import AccountEvent, ApiVersion, iso
from account_doctor.nylas import ListedAccount, NylasUnavailable
from account_doctor.testing_mode import at_risk_from, risk_sentence

NOW = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)


def grant(
    n: int,
    email: str | None,
    *,
    status: str = "valid",
    provider: str = "google",
    api_version: ApiVersion = "v3",
    consented_days_ago: float = 30,
) -> ListedAccount:
    consented = iso(NOW - timedelta(days=consented_days_ago))
    return ListedAccount(f"g-{n}", api_version, status, provider, email, updated_at=consented, created_at=consented)


def test_every_grant_is_connected_and_the_invalid_ones_are_broken() -> None:
    tally = Tally(census_id=iso(NOW))
    for account in [
        grant(1, "a@acme.com"),
        grant(2, "b@acme.com", status="invalid"),
        grant(3, "c@ACME.com", provider="microsoft"),
        grant(4, "d@globex.com", provider="imap"),
        grant(5, None),  # a row without an address counts under no domain
        grant(6, "e@legacy.org", api_version="v2", status="stopped", provider="exchange"),
        grant(7, "f@legacy.org", api_version="v2", status="running", provider="exchange"),
        grant(8, "g@legacy.org", api_version="v2", status="sync-error", provider="exchange"),
    ]:
        tally.add(account, NOW)
    assert tally.grants == 8
    assert tally.domains == {"acme.com": [3, 1], "globex.com": [1, 0], "legacy.org": [3, 1]}
    assert tally.connectors == {"google": [3, 1], "microsoft": [1, 0], "imap": [1, 0], "ews": [3, 1]}


def test_only_google_grants_consented_within_7_days_and_still_working_are_kept() -> None:
    tally = Tally(census_id=iso(NOW))
    tally.add(grant(1, "new@acme.com", consented_days_ago=2), NOW)
    tally.add(grant(2, "old@acme.com", consented_days_ago=8), NOW)
    tally.add(grant(3, "dead@acme.com", consented_days_ago=1, status="invalid"), NOW)
    tally.add(grant(4, "ms@acme.com", consented_days_ago=1, provider="microsoft"), NOW)
    assert [(c.account_id, c.email) for c in tally.consents.values()] == [("g-1", "new@acme.com")]


def test_a_checkpoint_round_trips() -> None:
    tally = Tally(census_id=iso(NOW), source="v2", offset=400, pages=3)
    tally.add(grant(1, "new@acme.com", consented_days_ago=2), NOW)
    assert Tally.from_dict(tally.to_dict()) == tally


@pytest.mark.parametrize(
    ("latest", "in_progress", "due"),
    [
        pytest.param(None, False, True, id="3c-a-deployments-first-run"),
        pytest.param("2026-11-30T23:59:00Z", False, True, id="3c-first-run-after-midnight-utc"),
        pytest.param("2026-12-01T00:10:00Z", False, False, id="3c-at-most-once-a-day"),
        pytest.param("2026-12-01T00:10:00Z", True, True, id="3c-a-census-in-progress-goes-on"),
    ],
)
def test_census_due(latest: str | None, in_progress: bool, due: bool) -> None:
    assert census_due(latest, in_progress, NOW) is due


class MemoryStore:
    """census.CensusStore in memory."""

    def __init__(self) -> None:
        self.latest: str | None = None
        self.saved: Tally | None = None
        self.leased = False
        self.published: list[Tally] = []

    def latest_started_at(self) -> str | None:
        return self.latest

    def checkpoint(self) -> Tally | None:
        return Tally.from_dict(self.saved.to_dict()) if self.saved else None

    def claim(self, now: str, until: str) -> bool:
        if self.leased:
            return False
        self.leased = True
        return True

    def release(self) -> None:
        self.leased = False

    def save_checkpoint(self, tally: Tally) -> None:
        self.saved = tally

    def publish(self, tally: Tally, census_at: str) -> int:
        self.published.append(tally)
        self.latest, self.saved = tally.census_id, None
        return 1


class Listing:
    """Nylas's grants list, 200 a page; `refuse_at` answers one page with 503 beyond the retries."""

    def __init__(self, grants: int, refuse_at: int | None = None) -> None:
        self.grants = [grant(n, f"u{n}@d{n % 7}.com") for n in range(grants)]
        self.refuse_at = refuse_at
        self.calls: list[int] = []

    def page(self, offset: int) -> tuple[int, list[ListedAccount]]:
        self.calls.append(offset)
        if offset == self.refuse_at:
            self.refuse_at = None
            raise NylasUnavailable("Nylas answered 503")
        rows = self.grants[offset : offset + 200]
        return len(rows), rows


def census(store: MemoryStore, listing: Listing) -> Census:
    return Census(
        store=store,
        pages={"v3": listing.page},
        sources=lambda: ("v3",),
        clock=lambda: NOW,
        pacer=Pacer(clock=lambda: 0.0, sleep=lambda _: None),
    )


def test_ceil_grants_over_200_plus_one_nylas_calls() -> None:
    store, listing = MemoryStore(), Listing(1000)
    summary = census(store, listing).run()
    assert (summary.complete, summary.grants, summary.domains, summary.pages) == (True, 1000, 7, 6)
    assert listing.calls == [0, 200, 400, 600, 800, 1000]  # the last, empty page ends the listing
    assert census(store, listing).run().ran is False  # taken today


def test_a_run_nylas_stops_answering_resumes_next_run_without_counting_twice() -> None:
    store, listing = MemoryStore(), Listing(500, refuse_at=400)
    first = census(store, listing).run()
    assert (first.ran, first.complete, first.grants) == (True, False, 400)
    assert "Nylas is unavailable" in (first.stopped or "")
    assert store.published == []
    second = census(store, listing).run()
    assert (second.complete, second.grants) == (True, 500)
    assert listing.calls == [0, 200, 400, 400]
    assert sum(connected for connected, _ in store.published[0].domains.values()) == 500


def test_a_run_out_of_time_keeps_its_place() -> None:
    store, listing = MemoryStore(), Listing(500)
    left = iter([60.0, 60.0, 1.0])
    first = census(store, listing).run(seconds_left=lambda: next(left))
    assert (first.complete, first.grants, first.stopped) == (False, 400, "the function's time is running out")
    assert census(store, listing).run().grants == 500


def test_a_run_while_another_holds_the_census_does_nothing() -> None:
    store, listing = MemoryStore(), Listing(10)
    store.leased = True
    summary = census(store, listing).run()
    assert (summary.ran, summary.stopped, listing.calls) == (False, "another sweep run is taking it", [])


def test_the_pacer_keeps_under_50_requests_a_second() -> None:
    clock, slept = [0.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    pacer = Pacer(50, clock=lambda: clock[0], sleep=sleep)
    for _ in range(3):
        pacer.wait()
    assert slept == pytest.approx([0.02, 0.02])


# --- Testing mode at risk (SPEC §3d) ----------------------------------------------------------------------------


def latest(trigger: str, days_ago: float) -> AccountEvent:
    return AccountEvent("evt-1", "v3", trigger, "g-1", iso(NOW - timedelta(days=days_ago)), "google")


def consent(account_id: str, days_ago: float) -> Consent:
    return Consent(account_id, f"{account_id}@gmail.com", iso(NOW - timedelta(days=days_ago)))


@pytest.mark.parametrize(
    ("event", "days_ago", "at_risk"),
    [
        pytest.param(None, 2, True, id="3d-consented-2-days-ago-not-failed"),
        pytest.param(None, 7.5, False, id="3d-consent-older-than-7-days-already-expired"),
        pytest.param(latest("grant.expired", 1), 2, False, id="3d-failed-since-its-consent"),
        pytest.param(latest("grant.expired", 3), 2, True, id="3d-failed-before-reconsenting"),
        pytest.param(latest("grant.updated", 1), 2, True, id="3d-recovered-is-not-failed"),
    ],
)
def test_at_risk_from(event: AccountEvent | None, days_ago: float, at_risk: bool) -> None:
    found = at_risk_from([consent("g-1", days_ago)], {"g-1": event}, NOW)
    assert [g.account_id for g in found] == (["g-1"] if at_risk else [])


def test_at_risk_is_soonest_first_and_the_sentence_names_the_last_date() -> None:
    found = at_risk_from([consent("g-late", 1), consent("g-soon", 6)], {}, NOW)
    assert [(g.account_id, g.expires_at) for g in found] == [
        ("g-soon", iso(NOW + timedelta(days=1))),
        ("g-late", iso(NOW + timedelta(days=6))),
    ]
    assert risk_sentence(found) == "2 more grants expire by 2026-12-07 unless you publish the app"
    assert risk_sentence(found[:1]) == "1 more grant expires by 2026-12-02 unless you publish the app"
    assert risk_sentence([]) is None
