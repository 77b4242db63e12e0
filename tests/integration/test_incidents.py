"""Incidents (SPEC §4b, rule 1b) on moto: failures that span accounts and arrive over time.

The service runs with its real stores, notifier and renderer; only Nylas answers from memory and SES is a
recording mailer, so every assertion is about what customers and operators would receive.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest

from account_doctor.consumer import DiagnosisService
from account_doctor.diagnosis import diagnose
from account_doctor.models import AccountEvent, Release, iso
from account_doctor.notifications.notifier import EmailNotifier, ReconnectLinks
from account_doctor.notifications.render import RenderedEmail
from account_doctor.settings import Settings, get_settings
from account_doctor.stores.dynamo import Table, dynamodb_client
from account_doctor.stores.events import EventHistory
from account_doctor.stores.incidents import IncidentStore
from account_doctor.stores.ledger import NotificationLedger
from account_doctor.stores.verdicts import VerdictStore, page_verdicts
from local_stack.payloads import FakeLambdaContext, api_gateway_event, load_handler
from tests.fakes import FakeNylas, RecordingPublisher

# Relative to the real clock: the read API shows an incident quiet for DomainWindowDays as closed.
START = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
pytestmark = pytest.mark.usefixtures("aws")


@pytest.fixture
def stack_parameters() -> dict[str, str]:
    return {"ReauthUrlTemplate": "https://app.example.com/reconnect?email={email}", "NotificationMode": "send"}


@dataclass
class Outbox:
    sent: list[RenderedEmail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, email: RenderedEmail) -> str:
        with self.lock:
            self.sent.append(email)
            return f"msg-{len(self.sent)}"

    def to(self, address: str) -> list[RenderedEmail]:
        return [email for email in self.sent if email.to == address]

    def kinds(self, address: str) -> list[str]:
        return [email.kind for email in self.to(address)]


@dataclass
class Harness:
    service: DiagnosisService
    outbox: Outbox
    publisher: RecordingPublisher
    verdicts: VerdictStore
    incidents: IncidentStore
    settings: Settings
    clock: list[datetime]
    releases: list[Release]

    def fail(self, n: int, email: str, provider: str, minutes: float) -> AccountEvent:
        at = START + timedelta(minutes=minutes)
        event = AccountEvent(f"evt-{n}", "v3", "grant.expired", f"grant-{n}", iso(at), provider, email)
        self.service.record(event)
        return event

    def being_diagnosed(self, *events: AccountEvent) -> None:
        """Their diagnoses (running concurrently) have confirmed them broken: they count, no verdict yet."""
        for event in events:
            self.service.history.count_failure(event)

    def diagnose(self, event: AccountEvent) -> str:
        self.clock[0] = datetime.fromisoformat(event.occurred_at.replace("Z", "+00:00")) + timedelta(minutes=2)
        return self.service.diagnose(event, first_delivery=True).cause

    def history(self, account_id: str) -> list[tuple[str, str | None, bool]]:
        """(cause, revises, superseded), newest first, as the read API lists them."""
        page = self.verdicts.account_verdicts(account_id, limit=10)
        return [(v.cause, v.revises, v.superseded) for v in page_verdicts(page)]


@pytest.fixture
def harness() -> Harness:
    settings = get_settings()
    client = dynamodb_client()
    clock = [START]
    outbox = Outbox()
    verdicts = VerdictStore(Table(settings.verdicts_table, client))
    incidents = IncidentStore(Table(settings.incidents_table, client))
    publisher = RecordingPublisher()
    releases: list[Release] = []
    notifier = EmailNotifier(
        settings,
        ledger=NotificationLedger(Table(settings.notifications_table, client)),
        mailer=outbox,
        reconnect_link=ReconnectLinks(settings),
        verdicts=verdicts,
        clock=lambda: clock[0],
    )
    service = DiagnosisService(
        history=EventHistory(Table(settings.events_table, client)),
        verdicts=verdicts,
        incidents=incidents,
        nylas=FakeNylas(created_at=iso(START - timedelta(days=40))),
        notifier=notifier,
        publisher=publisher,
        policy=settings.policy,
        procedure=diagnose,
        sweep_notify_days=settings.sweep_notify_days,
        enqueue_release=releases.append,
        clock=lambda: clock[0],
    )
    return Harness(service, outbox, publisher, verdicts, incidents, settings, clock, releases)


def test_a_domain_burst_arriving_over_minutes_revises_the_early_verdicts(harness: Harness) -> None:
    """Three acme.com accounts failing 4 minutes apart, each diagnosed before the next arrives."""
    causes = []
    for n in range(3):
        causes.append(harness.diagnose(harness.fail(n, f"user{n}@acme.com", "google", minutes=4 * n)))
    assert causes == ["oauth_revoked", "oauth_revoked", "admin_disconnected"]

    # The first two now read admin_disconnected first (the revision), the original kept and superseded.
    for n in range(2):
        (revision_cause, revises, superseded), (original_cause, _, original_superseded) = harness.history(f"grant-{n}")
        assert (revision_cause, original_cause) == ("admin_disconnected", "oauth_revoked")
        assert revises is not None
        assert not superseded
        assert original_superseded
        # Reconnect first, then once the advice changed: forward this to your administrator.
        assert harness.outbox.kinds(f"user{n}@acme.com") == ["reconnect", "admin_contact"]
    assert harness.outbox.kinds("user2@acme.com") == ["admin_contact"]
    operator = harness.outbox.to(harness.settings.operator_email)
    assert len(operator) == 1
    assert "acme.com" in operator[0].subject
    (opened,) = harness.publisher.of_type("IncidentOpened")
    assert (opened["kind"], opened["key"], opened["accounts"]) == ("domain", "acme.com", 3)
    assert len(harness.publisher.of_type("Verdict")) == 5  # three verdicts and two revisions


def test_a_member_diagnosed_while_the_opener_is_still_joining_sees_the_whole_burst(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The earliest of three failures opens the incident (it counts one failure up to itself, three around it);
    the third is diagnosed between the opening and the opener's join: it must still see three accounts."""
    events = [harness.fail(n, f"user{n}@acme.com", "google", minutes=3 * n) for n in range(3)]
    harness.being_diagnosed(*events)
    join = harness.incidents.join
    late: list[str] = []

    def join_after_a_racer(*args: Any, **kwargs: Any) -> None:
        if not late:
            late.append("diagnosing")
            late[0] = harness.service.diagnose(events[2], first_delivery=True).cause
        join(*args, **kwargs)

    monkeypatch.setattr(harness.incidents, "join", join_after_a_racer)
    assert harness.diagnose(events[0]) == "admin_disconnected"
    assert late == ["admin_disconnected"]
    assert harness.outbox.kinds("user2@acme.com") == ["admin_contact"]
    assert len(harness.outbox.to(harness.settings.operator_email)) == 1


def test_a_verdict_made_while_a_racer_opened_the_incident_is_made_again_and_joins_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first failure is diagnosed while only two have been recorded (oauth_revoked); before its verdict is
    stored, the third is recorded and diagnosed, opens the incident and finds no verdict of the first to
    revise. The first's verdict is then not stored as if alone: made again, it joins the incident, and its
    customer is told once, to contact the administrator."""
    first, second = (harness.fail(n, f"user{n}@acme.com", "google", minutes=3 * n) for n in range(2))
    harness.being_diagnosed(first, second)
    put = harness.verdicts.put
    racer: list[str] = []

    def put_after_a_racer(verdict: Any, **conditions: Any) -> bool:
        if not racer:
            racer.append("diagnosing")
            third = harness.fail(2, "user2@acme.com", "google", 6)
            racer[0] = harness.service.diagnose(third, first_delivery=True).cause
        return put(verdict, **conditions)

    monkeypatch.setattr(harness.verdicts, "put", put_after_a_racer)
    assert harness.diagnose(first) == "admin_disconnected"
    assert racer == ["admin_disconnected"]
    assert harness.history("grant-0") == [("admin_disconnected", None, False)]
    assert harness.outbox.kinds("user0@acme.com") == ["admin_contact"]
    assert harness.diagnose(second) == "admin_disconnected"
    for n in range(3):
        assert harness.outbox.kinds(f"user{n}@acme.com") == ["admin_contact"]
    assert len(harness.outbox.to(harness.settings.operator_email)) == 1
    (opened,) = harness.incidents.by_status("open", 10)[0]
    assert opened.accounts == 3


def test_a_connector_outage_holds_customer_emails_until_released(harness: Harness) -> None:
    """12 Microsoft accounts of 12 organisations failing within minutes: the app's connector, not them."""
    causes = [harness.diagnose(harness.fail(n, f"it{n}@org{n}.com", "microsoft", minutes=n)) for n in range(12)]
    assert causes == ["oauth_revoked"] * 9 + ["connector_outage"] * 3

    for n in range(9):  # asked to reconnect, then told it is on our side
        assert harness.outbox.kinds(f"it{n}@org{n}.com") == ["reconnect", "outage_notice"]
        assert harness.history(f"grant-{n}")[0][0] == "connector_outage"
    for n in range(9, 12):  # held: nothing sent yet
        assert harness.outbox.to(f"it{n}@org{n}.com") == []
        latest = page_verdicts(harness.verdicts.account_verdicts(f"grant-{n}", limit=1))[0]
        assert [(x.kind, x.status) for x in latest.notifications if x.kind == "reconnect"] == [("reconnect", "held")]
    operator = harness.outbox.to(harness.settings.operator_email)
    assert len(operator) == 1
    assert "Microsoft" in operator[0].subject

    (incident,) = harness.incidents.by_status("open", 10)[0]
    assert (incident.kind, incident.key, incident.accounts, incident.held_emails) == ("connector", "microsoft", 12, 3)

    # One member recovers before the operator fixes the connector: it needs nothing.
    harness.service.record(
        AccountEvent("evt-back-11", "v3", "grant.created", "grant-11", iso(START + timedelta(minutes=30)), "microsoft")
    )
    harness.service.release(Release(incident.incident_id))
    assert harness.outbox.kinds("it9@org9.com") == ["reconnect"]
    assert harness.outbox.kinds("it10@org10.com") == ["reconnect"]
    assert harness.outbox.to("it11@org11.com") == []
    # A second release sends nothing again.
    harness.service.release(Release(incident.incident_id))
    assert len(harness.outbox.to("it9@org9.com")) == 1


def test_members_counted_by_the_opener_before_their_own_diagnosis_are_held_and_released(harness: Harness) -> None:
    """All 12 failures counted by their diagnoses (one batch) before the first verdict: the first opens the
    incident and counts the other 11 as members; each of their own diagnoses then holds its email, and the
    incident counts every held email."""
    events = [harness.fail(n, f"it{n}@org{n}.com", "microsoft", minutes=n) for n in range(12)]
    harness.being_diagnosed(*events)  # diagnosed in one batch: each confirmed before the first verdict
    assert {harness.diagnose(event) for event in events} == {"connector_outage"}
    assert all(harness.outbox.to(f"it{n}@org{n}.com") == [] for n in range(12))
    (incident,) = harness.incidents.by_status("open", 10)[0]
    assert (incident.accounts, incident.held_emails) == (12, 12)
    harness.service.release(Release(incident.incident_id))
    assert all(harness.outbox.kinds(f"it{n}@org{n}.com") == ["reconnect"] for n in range(12))


def test_concurrent_first_members_open_one_incident_and_count_everyone_once(harness: Harness) -> None:
    # AWS calls are linearized by the `aws` fixture (moto is not thread-safe); the diagnoses interleave.
    events = [harness.fail(n, f"user{n}@globex.com", "google", minutes=0) for n in range(20)]
    harness.clock[0] = START + timedelta(minutes=2)
    errors: list[BaseException] = []

    def run(event: AccountEvent) -> None:
        try:
            harness.service.diagnose(event, first_delivery=True)
            harness.service.diagnose(event)  # a redelivery on top: nothing twice
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    incidents, _ = harness.incidents.by_status("open", 10)
    assert [(i.kind, i.key, i.accounts) for i in incidents] == [("domain", "globex.com", 20)]
    assert len(harness.outbox.to(harness.settings.operator_email)) == 1
    for n in range(20):
        # One whose verdict was stored before its neighbours counted themselves was asked to reconnect first.
        assert harness.outbox.kinds(f"user{n}@globex.com") in (["admin_contact"], ["reconnect", "admin_contact"])
    members = list(harness.incidents.all_members(incidents[0].incident_id))
    assert sorted(m.account_id for m in members) == sorted(f"grant-{n}" for n in range(20))


def fail_in_testing_mode(harness: Harness, n: int) -> str:
    """Google grant n dies 7 days after its last consent, an hour after grant n-1: rule 4a."""
    event = AccountEvent(
        f"evt-{n}",
        "v3",
        "grant.expired",
        f"grant-{n}",
        iso(START + timedelta(hours=n)),
        "google",
        f"a{n}@gmail.com",
        grant_updated_at=iso(START + timedelta(hours=n) - timedelta(days=7)),
    )
    harness.service.record(event)
    return harness.diagnose(event)


def test_google_testing_mode_accounts_share_one_incident_and_one_alert(harness: Harness) -> None:
    for n in range(3):
        assert fail_in_testing_mode(harness, n) == "google_testing_mode"
    assert len(harness.outbox.to(harness.settings.operator_email)) == 1
    incidents, _ = harness.incidents.by_status("open", 10)
    assert [(i.kind, i.accounts) for i in incidents] == [("testing_mode", 3)]
    for n in range(3):
        assert harness.outbox.kinds(f"a{n}@gmail.com") == ["reconnect"]


def test_consumer_domains_never_open_an_organisation_incident(harness: Harness) -> None:
    causes = [harness.diagnose(harness.fail(n, f"user{n}@comcast.net", "imap", minutes=n)) for n in range(4)]
    assert "admin_disconnected" not in causes
    assert harness.incidents.by_status("open", 10)[0] == []


def test_the_last_member_recovering_resolves_the_incident_once(harness: Harness) -> None:
    for n in range(3):
        harness.service.record(harness.fail(n, f"user{n}@acme.com", "google", minutes=0))
    for n in range(3):
        harness.diagnose(
            AccountEvent(f"evt-{n}", "v3", "grant.expired", f"grant-{n}", iso(START), "google", f"user{n}@acme.com")
        )
    (incident,) = harness.incidents.by_status("open", 10)[0]
    for n in range(3):
        back = AccountEvent(
            f"back-{n}", "v3", "grant.created", f"grant-{n}", iso(START + timedelta(hours=1 + n)), "google"
        )
        harness.service.record(back)
        harness.service.record(back)  # a redelivered recovery counts once
        still_open = [i.incident_id for i in harness.incidents.by_status("open", 10)[0]]
        assert (incident.incident_id in still_open) == (n < 2)
    resolved = harness.publisher.of_type("IncidentResolved")
    assert [(r["incident_id"], r["status"]) for r in resolved] == [(incident.incident_id, "resolved")]


# ---------------------------------------------------------------------------------------------
# The read API over incidents (SPEC §6), through the AccountsApiFunction handler.


def _call(
    api: ModuleType,
    method: str,
    path: str,
    resource: str,
    params: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    event = api_gateway_event(
        method, path, resource=resource, path_parameters=params, query=list((query or {}).items())
    )
    response = api.lambda_handler(event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


def test_incidents_read_api_lists_shows_releases_and_resolves(harness: Harness) -> None:
    for n in range(12):
        harness.diagnose(harness.fail(n, f"it{n}@org{n}.com", "microsoft", minutes=n))
    api = load_handler("accounts_api")

    status, listing = _call(api, "GET", "/incidents", "/incidents", query={"status": "open"})
    assert status == 200
    (incident,) = listing["incidents"]
    assert {k: incident[k] for k in ("kind", "key", "cause", "status", "accounts", "domains", "held_emails")} == {
        "kind": "connector",
        "key": "microsoft",
        "cause": "connector_outage",
        "status": "open",
        "accounts": 12,
        "domains": 12,
        "held_emails": 3,
    }
    assert listing["next"] is None

    one = f"/incidents/{incident['incident_id']}"
    status, body = _call(
        api, "GET", one, "/incidents/{incident_id}", {"incident_id": incident["incident_id"]}, {"limit": "5"}
    )
    assert status == 200
    assert len(body["members"]) == 5
    assert body["next"]
    members = list(body["members"])
    while body["next"]:
        status, body = _call(
            api,
            "GET",
            one,
            "/incidents/{incident_id}",
            {"incident_id": incident["incident_id"]},
            {"limit": "5", "next": body["next"]},
        )
        members.extend(body["members"])
    assert sorted(m["account_id"] for m in members) == sorted(f"grant-{n}" for n in range(12))
    assert {m["latest_cause"] for m in members} <= {"connector_outage", "oauth_revoked"}

    status, released = _call(
        api, "POST", f"{one}/release", "/incidents/{incident_id}/release", {"incident_id": incident["incident_id"]}
    )
    assert (status, released["release"]) == (200, "started")
    status, again = _call(
        api, "POST", f"{one}/release", "/incidents/{incident_id}/release", {"incident_id": incident["incident_id"]}
    )
    assert (status, again["release"]) == (200, "already released")

    status, resolved = _call(
        api, "POST", f"{one}/resolve", "/incidents/{incident_id}/resolve", {"incident_id": incident["incident_id"]}
    )
    assert (status, resolved["status"]) == (200, "resolved")
    status, listing = _call(api, "GET", "/incidents", "/incidents", query={"status": "resolved"})
    assert [i["incident_id"] for i in listing["incidents"]] == [incident["incident_id"]]
    status, listing = _call(api, "GET", "/incidents", "/incidents")
    assert listing["incidents"] == []


@pytest.mark.parametrize(
    ("method", "path", "resource", "params", "query", "status"),
    [
        (
            "GET",
            "/incidents/domain-nope.com-20260101T0000-0000000000",
            "/incidents/{incident_id}",
            {"incident_id": "domain-nope.com-20260101T0000-0000000000"},
            None,
            404,
        ),
        ("GET", "/incidents/<script>", "/incidents/{incident_id}", {"incident_id": "<script>"}, None, 400),
        ("POST", "/incidents/x/release", "/incidents/{incident_id}/release", {"incident_id": "x"}, None, 400),
        ("GET", "/incidents", "/incidents", None, {"status": "sideways"}, 400),
        ("GET", "/incidents", "/incidents", None, {"limit": "101"}, 400),
        ("GET", "/incidents", "/incidents", None, {"limit": "zero"}, 400),
        ("GET", "/accounts", "/accounts", None, {"status": "broken", "next": "not-a-cursor"}, 400),
        ("GET", "/accounts", "/accounts", None, {"status": "healthy"}, 400),
    ],
)
def test_bad_requests_get_a_clear_4xx_never_a_500(
    method: str, path: str, resource: str, params: dict[str, str] | None, query: dict[str, str] | None, status: int
) -> None:
    api = load_handler("accounts_api")
    code, body = _call(api, method, path, resource, params, query)
    assert code == status
    assert body["message"]


def test_broken_accounts_lists_every_failing_account_newest_first_in_pages(harness: Harness) -> None:
    for n in range(7):
        harness.service.record(harness.fail(n, f"user{n}@corp{n}.com", "imap", minutes=n))
    harness.service.record(
        AccountEvent("back-3", "v3", "grant.created", "grant-3", iso(START + timedelta(hours=1)), "imap")
    )
    api = load_handler("accounts_api")
    seen: list[str] = []
    query = {"status": "broken", "limit": "2"}
    while True:
        status, body = _call(api, "GET", "/accounts", "/accounts", query=query)
        assert status == 200
        assert len(body["accounts"]) <= 2
        seen.extend(a["account_id"] for a in body["accounts"])
        if not body["next"]:
            break
        query = {**query, "next": body["next"]}
    assert seen == [f"grant-{n}" for n in (6, 5, 4, 2, 1, 0)]


def test_a_late_older_failure_joins_the_incident_going_on_instead_of_replacing_it(harness: Harness) -> None:
    causes = [harness.diagnose(harness.fail(n, f"it{n}@org{n}.com", "microsoft", minutes=60 + n)) for n in range(10)]
    assert causes[-1] == "connector_outage"
    # Delivered late: a failure of the same connector an hour before the outage, in a burst of its own.
    early = [harness.fail(100 + n, f"old{n}@early{n}.com", "microsoft", minutes=n * 0.1) for n in range(10)]
    for event in early:
        harness.service.diagnose(event, first_delivery=True)
    incidents, _ = harness.incidents.by_status("open", 10)
    assert [(i.kind, i.key) for i in incidents] == [("connector", "microsoft")]
    assert len(harness.outbox.to(harness.settings.operator_email)) == 1


def test_a_release_whose_queueing_failed_is_queued_again_on_retry(harness: Harness) -> None:
    from account_doctor.accounts_api import AccountsApi
    from account_doctor.queue import QueueError

    for n in range(12):
        harness.diagnose(harness.fail(n, f"it{n}@org{n}.com", "microsoft", minutes=n))
    (incident,), _ = harness.incidents.by_status("open", 5)
    queued: list[Release] = []

    def send_failing_once(request: Release) -> None:
        if not queued:
            queued.append(request)
            raise QueueError("SendMessage to the diagnosis queue failed: throttled")
        queued.append(request)

    api = AccountsApi(
        events=harness.service.history,  # type: ignore[arg-type]
        verdicts=harness.verdicts,
        incidents=harness.incidents,
        policy=harness.settings.policy,
        enqueue_release=send_failing_once,
    )
    with pytest.raises(QueueError):
        api.release_incident(incident.incident_id)
    retried = api.release_incident(incident.incident_id)

    assert retried["release"] == "started"
    assert queued == [Release(incident.incident_id), Release(incident.incident_id)]
    assert api.release_incident(incident.incident_id)["release"] == "already released"
    assert len(queued) == 2
    harness.service.release(queued[-1])
    assert all(harness.outbox.kinds(f"it{n}@org{n}.com")[-1] == "reconnect" for n in range(9, 12))


def test_failures_of_grants_that_no_longer_exist_make_no_connector_outage(harness: Harness) -> None:
    """The app deleted ten expired Google grants (Nylas answers 404 for each): their failures are no accounts,
    and a real customer failing among them is told to reconnect, not held behind an outage."""
    gone = harness.service.nylas.gone  # type: ignore[attr-defined]
    for n in range(10):
        gone.add(f"grant-{n}")
        assert harness.diagnose(harness.fail(n, f"it{n}@org{n}.com", "google", minutes=n / 2)) == "app_revoked"
    assert harness.diagnose(harness.fail(10, "real@customer.com", "google", minutes=6)) == "oauth_revoked"
    assert harness.incidents.by_status("open", 10)[0] == []
    assert harness.outbox.kinds("real@customer.com") == ["reconnect"]


def test_failures_of_grants_that_no_longer_exist_make_no_session_policy(harness: Harness) -> None:
    """Three 404 grants at one organisation, then a real user there a day later: not its administrator's policy."""
    gone = harness.service.nylas.gone  # type: ignore[attr-defined]
    for n in range(3):
        gone.add(f"grant-{n}")
        assert harness.diagnose(harness.fail(n, f"user{n}@acme.com", "google", minutes=n)) == "app_revoked"
    assert harness.diagnose(harness.fail(3, "real@acme.com", "google", minutes=24 * 60)) == "oauth_revoked"
    assert harness.incidents.by_status("open", 10)[0] == []
    assert harness.outbox.kinds("real@acme.com") == ["reconnect"]


def test_a_connector_outage_counts_only_the_broken_grants_among_its_failures(harness: Harness) -> None:
    """Twelve real Microsoft failures and five of grants the app deleted, interleaved: the incident counts the
    twelve, lists only them as members, and its revisions reach only them."""
    gone = harness.service.nylas.gone  # type: ignore[attr-defined]
    for n in range(17):
        if n in (1, 4, 7, 10, 16):  # the last one after the incident opened
            gone.add(f"grant-{n}")
        harness.diagnose(harness.fail(n, f"it{n}@org{n}.com", "microsoft", minutes=n / 2))
    (incident,), _ = harness.incidents.by_status("open", 10)
    members = sorted(m.account_id for m in harness.incidents.all_members(incident.incident_id))
    assert members == sorted(f"grant-{n}" for n in range(17) if f"grant-{n}" not in gone)
    assert (incident.accounts, incident.domains) == (12, 12)
    for account in gone:
        assert [cause for cause, _, _ in harness.history(account)] == ["app_revoked"]


FREE_MAIL = ("outlook.com", "hotmail.com", "live.com")


def _outage_in_batches(harness: Harness, run: int) -> int:
    """15 Microsoft accounts (12 organisation domains, 3 free-mail users) failing over 10 minutes, diagnosed
    in batches of 5 on concurrent threads; the accounts its incident shows."""
    base = run * 24 * 60  # a day apart: each run its own incident
    events = []
    for n in range(15):
        domain = FREE_MAIL[n - 12] if n >= 12 else f"org{n}.example"
        event = AccountEvent(
            f"evt-{run}-{n}",
            "v3",
            "grant.expired",
            f"grant-{run}-{n}",
            iso(START + timedelta(minutes=base + n * 10 / 14)),
            "microsoft",
            f"it{n}@{domain}",
        )
        harness.service.record(event)
        events.append(event)
    order = [*events[12:], *events[:12]]  # the free-mail users among the first batch
    errors: list[BaseException] = []

    def run_one(event: AccountEvent) -> None:
        try:
            harness.service.diagnose(event, first_delivery=True)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    for start in range(0, 15, 5):
        batch = order[start : start + 5]
        harness.clock[0] = max(parse_at(e.occurred_at) for e in batch) + timedelta(minutes=2)
        threads = [threading.Thread(target=run_one, args=(event,)) for event in batch]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    (incident,) = [
        i
        for i in harness.incidents.by_status("all", 50)[0]
        if i.key == "microsoft" and i.opened_at >= events[0].occurred_at
    ]
    return incident.accounts


def parse_at(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


def test_a_connector_outage_diagnosed_in_concurrent_batches_counts_every_account(harness: Harness) -> None:
    """Run enough times to catch an interleaving that leaves one member uncounted (it showed 14 of 15)."""
    assert [_outage_in_batches(harness, run) for run in range(6)] == [15] * 6


def test_an_incident_across_many_domains_keeps_its_count_items_small(harness: Harness) -> None:
    """A connector incident whose members come from hundreds of domains: every member counted, each count shard
    holding at most DOMAIN_SLOTS domains (a string set of them all grew past DynamoDB's 400 KB item limit)."""
    import json

    from account_doctor.models import IncidentKey
    from account_doctor.stores.incidents import DOMAIN_SLOTS
    from account_doctor.stores.incidents import SHARDS as COUNT_SHARDS

    key = IncidentKey("connector", "microsoft")
    incident_id, opened = harness.incidents.open(key, "connector_outage", iso(START), "evt-0", None, domains=3)
    assert opened
    for n in range(200):
        domain = f"organisation-number-{n:04d}.example"
        harness.incidents.join(key, incident_id, f"grant-{n}", f"it@{domain}", domain, "connector_outage", iso(START))
    table = Table(harness.settings.incidents_table, dynamodb_client())
    for shard in range(COUNT_SHARDS):
        item = table.get(key.shard(shard))
        assert item is not None
        slots = [name for name in item if name[:1] == "d" and name[1:].isdigit()]
        # Bounded whatever the number of domains: at most one domain a slot, and no growing set of them all.
        assert "domains" not in item
        assert len(slots) <= DOMAIN_SLOTS
        assert len(json.dumps(item, default=str)) < DOMAIN_SLOTS * 50 + 500
    incident = harness.incidents.get(incident_id)
    assert incident is not None
    assert incident.accounts == 200
    assert 3 <= incident.domains <= DOMAIN_SLOTS * COUNT_SHARDS
    (live,) = harness.incidents.live([key]).values()
    assert len(live.domains) >= 3
    assert live.domains_at_open == 3
