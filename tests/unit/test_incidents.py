"""The incident lifecycle (SPEC §4b) on in-memory stores: the real procedure, the real rules of who is told.

The same stories run on moto in tests/integration/test_incidents.py; here they need no AWS, so each row of
INCIDENT_RULES and each step of the lifecycle (open, join, revise, hold, release, resolve, close) is cheap
to pin down.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from account_doctor.consumer import DiagnosisService
from account_doctor.diagnosis import diagnose
from account_doctor.evidence import evidence_from
from account_doctor.incidents import INCIDENT_RULES, as_shown, incident_key_of, incident_keys, joinable
from account_doctor.models import AccountEvent, AccountState, Evidence, IncidentKey, Policy, Release, iso
from account_doctor.stores.incidents import Incident, Live
from tests.fakes import FakeHistory, FakeIncidents, FakeNotifier, FakeNylas, FakeVerdicts, RecordingPublisher

START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
POLICY = Policy()
OPERATOR = "ops@example.com"


@dataclass
class Story:
    """The diagnosis service over fakes, its clock two minutes after each failure it diagnoses."""

    history: FakeHistory = field(default_factory=FakeHistory)
    verdicts: FakeVerdicts = field(default_factory=FakeVerdicts)
    incidents: FakeIncidents = field(default_factory=FakeIncidents)
    notifier: FakeNotifier = field(init=False)
    publisher: RecordingPublisher = field(default_factory=RecordingPublisher)
    releases: list[Release] = field(default_factory=list)
    now: list[datetime] = field(default_factory=lambda: [START])

    def __post_init__(self) -> None:
        self.notifier = FakeNotifier(OPERATOR, verdicts=self.verdicts)
        self.service = DiagnosisService(
            history=self.history,
            verdicts=self.verdicts,
            incidents=self.incidents,
            nylas=FakeNylas(created_at=iso(START - timedelta(days=40))),
            notifier=self.notifier,
            publisher=self.publisher,
            policy=POLICY,
            procedure=diagnose,
            sweep_notify_days=3,
            enqueue_release=self.releases.append,
            clock=lambda: self.now[0],
        )

    def fail(self, n: int, email: str, provider: str, minutes: float) -> AccountEvent:
        event = AccountEvent(
            f"evt-{n}", "v3", "grant.expired", f"grant-{n}", iso(START + timedelta(minutes=minutes)), provider, email
        )
        self.service.record(event)
        return event

    def diagnose(self, event: AccountEvent) -> str:
        self.now[0] = datetime.fromisoformat(event.occurred_at.replace("Z", "+00:00")) + timedelta(minutes=2)
        return self.service.diagnose(event, first_delivery=True).cause

    def causes(self, account_id: str) -> list[str]:
        return [v.cause for v in self.verdicts.newest(account_id, 10)]

    def the_incident(self) -> Incident:
        (incident_id,) = self.incidents.open_ids.values()
        incident = self.incidents.get(incident_id)
        assert incident is not None
        return incident


def evidence(domain: str, provider: str) -> Evidence:
    event = AccountEvent("evt", "v3", "grant.expired", "grant", iso(START), provider, f"a@{domain}")
    return evidence_from(event, AccountState(exists=True), [], domain_burst_accounts=1, domain_window_accounts=1)


@pytest.mark.parametrize(
    ("cause", "domain", "provider", "key"),
    [
        pytest.param("connector_outage", "acme.com", "microsoft", IncidentKey("connector", "microsoft"), id="1b"),
        pytest.param("admin_disconnected", "acme.com", "google", IncidentKey("domain", "acme.com"), id="2a"),
        pytest.param("admin_session_policy", "acme.com", "microsoft", IncidentKey("domain", "acme.com"), id="2b"),
        pytest.param("google_testing_mode", "gmail.com", "google", IncidentKey("testing_mode", "google"), id="3"),
        pytest.param("admin_disconnected", "gmail.com", "google", None, id="2a-free-mail-has-no-organisation"),
        pytest.param("oauth_revoked", "acme.com", "google", None, id="alone"),
    ],
)
def test_each_grouping_cause_has_its_key(cause: str, domain: str, provider: str, key: IncidentKey | None) -> None:
    assert incident_key_of(cause, evidence(domain, provider)) == key  # type: ignore[arg-type]


def test_a_failure_could_belong_to_its_domain_connector_and_testing_mode_incidents() -> None:
    assert incident_keys("acme.com", False, "google") == [
        IncidentKey("domain", "acme.com"),
        IncidentKey("connector", "google"),
        IncidentKey("testing_mode", "google"),
    ]
    assert incident_keys("gmail.com", True, "microsoft") == [IncidentKey("connector", "microsoft")]


@pytest.mark.parametrize(
    ("cause", "later", "joins"),
    [
        pytest.param("admin_disconnected", timedelta(minutes=15), True, id="2a-within-the-burst"),
        pytest.param("admin_disconnected", timedelta(minutes=16), False, id="2a-after-the-burst"),
        pytest.param("connector_outage", timedelta(minutes=16), False, id="1b-after-the-burst"),
        pytest.param("admin_session_policy", timedelta(days=7), True, id="2b-within-the-window"),
        pytest.param("admin_session_policy", timedelta(days=7, seconds=1), False, id="2b-after-the-window"),
        pytest.param("google_testing_mode", timedelta(days=6), True, id="3-within-the-window"),
        pytest.param("admin_disconnected", -timedelta(hours=1), True, id="an-earlier-failure-joins"),
    ],
)
def test_a_failure_joins_within_its_rules_window(cause: str, later: timedelta, joins: bool) -> None:
    live = Live("inc", cause, iso(START), 3, frozenset(), iso(START))
    assert (joinable(live, iso(START + later), POLICY) is live) is joins


def test_only_a_connector_outage_holds_customer_emails() -> None:
    assert {cause for cause, rule in INCIDENT_RULES.items() if rule.holds_customer_emails} == {"connector_outage"}


def test_an_incident_quiet_for_the_window_shows_as_closed() -> None:
    incident = Incident("inc", "domain", "acme.com", "admin_disconnected", "open", iso(START), iso(START), 3, 1)
    window = timedelta(days=POLICY.domain_window_days)
    assert as_shown(incident, START + window, POLICY).status == "open"
    assert as_shown(incident, START + window + timedelta(seconds=1), POLICY).status == "closed"
    resolved = replace(incident, status="resolved")
    assert as_shown(resolved, START + 2 * window, POLICY).status == "resolved"


def test_a_domain_burst_opens_one_incident_and_revises_the_early_members() -> None:
    story = Story()
    causes = [story.diagnose(story.fail(n, f"user{n}@acme.com", "google", minutes=4 * n)) for n in range(3)]
    assert causes == ["oauth_revoked", "oauth_revoked", "admin_disconnected"]
    for n in range(2):
        assert story.causes(f"grant-{n}") == ["admin_disconnected", "oauth_revoked"]
        assert story.notifier.kinds(f"user{n}@acme.com") == ["reconnect", "admin_contact"]
    assert story.notifier.kinds("user2@acme.com") == ["admin_contact"]
    assert story.notifier.kinds(OPERATOR) == ["operator_alert"]
    (brief,) = story.notifier.briefs
    assert (brief.kind, brief.key, brief.accounts) == ("domain", "acme.com", 3)
    (opened,) = story.publisher.of_type("IncidentOpened")
    assert (opened["kind"], opened["key"], opened["accounts"]) == ("domain", "acme.com", 3)
    assert len(story.publisher.of_type("Verdict")) == 5  # three verdicts and two revisions


def test_a_retried_opener_sends_nothing_twice() -> None:
    story = Story()
    events = [story.fail(n, f"user{n}@acme.com", "google", minutes=4 * n) for n in range(3)]
    for event in events:
        story.diagnose(event)
    sent = list(story.notifier.sent)
    story.service.diagnose(events[2])  # the queue's redelivery of the opener
    assert story.notifier.sent == sent
    assert story.the_incident().accounts == 3


def test_a_connector_outage_holds_its_members_emails_until_released() -> None:
    story = Story()
    causes = [story.diagnose(story.fail(n, f"it{n}@org{n}.com", "microsoft", minutes=n)) for n in range(12)]
    assert causes == ["oauth_revoked"] * 9 + ["connector_outage"] * 3
    for n in range(9):  # asked to reconnect, then told it is on our side
        assert story.notifier.kinds(f"it{n}@org{n}.com") == ["reconnect", "outage_notice"]
    for n in range(9, 12):
        assert story.notifier.kinds(f"it{n}@org{n}.com") == []
    incident = story.the_incident()
    assert (incident.kind, incident.key, incident.accounts, incident.held_emails) == ("connector", "microsoft", 12, 3)

    story.service.record(
        AccountEvent("evt-back-11", "v3", "grant.created", "grant-11", iso(START + timedelta(minutes=30)), "microsoft")
    )
    story.service.release(Release(incident.incident_id))
    assert story.notifier.kinds("it9@org9.com") == ["reconnect"]
    assert story.notifier.kinds("it10@org10.com") == ["reconnect"]
    assert story.notifier.kinds("it11@org11.com") == []  # recovered before the release
    story.service.release(Release(incident.incident_id))
    assert story.notifier.kinds("it9@org9.com") == ["reconnect"]


def test_a_release_of_many_members_continues_in_pages() -> None:
    story = Story()
    events = [story.fail(n, f"it{n}@org{n}.com", "microsoft", minutes=n / 10) for n in range(40)]
    for event in events:
        story.diagnose(event)
    incident = story.the_incident()
    # Each failure counts once diagnosed: the tenth opens the incident, and its 31 members from there are held.
    first_page = story.service.release(Release(incident.incident_id))
    (following,) = story.releases
    assert first_page + story.service.release(following) == 31
    assert len(story.releases) == 1


def test_the_last_member_recovering_resolves_the_incident_once() -> None:
    story = Story()
    events = [story.fail(n, f"user{n}@acme.com", "google", minutes=0) for n in range(3)]
    for event in events:
        story.diagnose(event)
    incident = story.the_incident()
    for n in range(3):
        back = AccountEvent(f"back-{n}", "v3", "grant.created", f"grant-{n}", iso(START + timedelta(hours=1)))
        story.service.record(back)
        story.service.record(back)  # a redelivery counts nothing twice
        resolved = story.incidents.get(incident.incident_id)
        assert resolved is not None
        assert resolved.status == ("resolved" if n == 2 else "open")
    assert len(story.publisher.of_type("IncidentResolved")) == 1
    assert story.incidents.open_ids == {}  # the key is free for the next incident


def test_a_failure_after_the_quiet_window_opens_a_new_incident_and_closes_the_old() -> None:
    story = Story()
    for n in range(3):
        story.diagnose(story.fail(n, f"user{n}@acme.com", "google", minutes=0))
    first = story.the_incident()
    later = 60 * 24 * (POLICY.domain_window_days + 1)
    for n in range(3, 6):
        story.diagnose(story.fail(n, f"user{n}@acme.com", "google", minutes=later + n))
    second = story.the_incident()
    assert second.incident_id != first.incident_id
    closed = story.incidents.get(first.incident_id)
    assert closed is not None
    assert closed.status == "closed"
    assert story.notifier.kinds(OPERATOR) == ["operator_alert", "operator_alert"]
