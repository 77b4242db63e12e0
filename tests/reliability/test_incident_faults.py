"""Faults while an incident opens (SPEC §4b, §9): the queue's retry finishes what the failed attempt began.

The diagnosis service runs on moto with its real stores and notifier (the integration tests' harness); a fault is
injected once, the attempt fails back to the queue, and the redelivery must leave customers and the operator with
exactly what an attempt without the fault would have: every member counted, every revision made, every email once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from account_doctor.events_out import PublishError
from account_doctor.models import AccountEvent, iso
from account_doctor.notifications.notifier import NotificationError
from account_doctor.notifications.render import RenderedEmail
from tests.integration.test_incidents import START, Harness

pytestmark = pytest.mark.usefixtures("aws")


def test_a_member_whose_join_failed_is_counted_on_the_retry(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The verdict was stored, then counting the member failed (a transaction conflict on a busy shard)."""
    events = [harness.fail(n, f"user{n}@acme.com", "google", minutes=0) for n in range(3)]
    harness.being_diagnosed(*events)  # one batch: each counted before the first verdict
    join = harness.incidents.join
    failures = [1]

    def conflicting_once(*args: Any, **kwargs: Any) -> bool:
        if failures[0]:
            failures[0] -= 1
            raise ClientError(
                {"Error": {"Code": "TransactionCanceledException"}, "CancellationReasons": [{"Code": "None"}]},
                "TransactWriteItems",
            )
        return join(*args, **kwargs)

    monkeypatch.setattr(harness.incidents, "join", conflicting_once)
    with pytest.raises(ClientError):
        harness.diagnose(events[0])
    harness.service.diagnose(events[0])  # the queue's redelivery
    for event in events[1:]:
        harness.diagnose(event)

    (incident,), _ = harness.incidents.by_status("open", 10)
    members = sorted(m.account_id for m in harness.incidents.all_members(incident.incident_id))
    assert members == ["grant-0", "grant-1", "grant-2"]
    assert incident.accounts == 3
    assert len(harness.outbox.to(harness.settings.operator_email)) == 1
    for n in range(3):
        assert harness.outbox.kinds(f"user{n}@acme.com") == ["admin_contact"]


class ThrottledFor:
    """The recording mailer, with SES throttling the next email to one address."""

    def __init__(self, harness: Harness, address: str) -> None:
        self._outbox = harness.outbox
        self.address: str | None = address

    def send(self, email: RenderedEmail) -> str:
        if email.to == self.address:
            self.address = None
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Maximum sending rate exceeded."}}, "Send")
        return self._outbox.send(email)


def test_a_revision_whose_email_failed_is_finished_and_the_other_members_revised_on_the_retry(
    harness: Harness,
) -> None:
    """Three acme.com accounts failing minutes apart; when the third opens the incident, SES throttles the first
    member's follow-up. The retry sends it, and revises the second member too."""
    for n in range(2):
        assert harness.diagnose(harness.fail(n, f"user{n}@acme.com", "google", minutes=4 * n)) == "oauth_revoked"
    opener = harness.fail(2, "user2@acme.com", "google", minutes=8)
    notifier = harness.service.notifier
    notifier._mailer = ThrottledFor(harness, "user0@acme.com")  # type: ignore[attr-defined]
    with pytest.raises(NotificationError):
        harness.diagnose(opener)
    harness.service.diagnose(opener)  # the queue's redelivery

    for n in range(2):
        assert [cause for cause, _, _ in harness.history(f"grant-{n}")] == ["admin_disconnected", "oauth_revoked"]
        # Asked to reconnect before the incident existed, then once to forward the admin section.
        assert harness.outbox.kinds(f"user{n}@acme.com") == ["reconnect", "admin_contact"]
    assert harness.outbox.kinds("user2@acme.com") == ["admin_contact"]
    assert len(harness.outbox.to(harness.settings.operator_email)) == 1
    (incident,), _ = harness.incidents.by_status("open", 10)
    assert incident.accounts == 3


def _acme_incident_of_three(harness: Harness) -> str:
    events = [harness.fail(n, f"user{n}@acme.com", "google", minutes=0) for n in range(3)]
    for event in events:
        harness.diagnose(event)
    (incident,), _ = harness.incidents.by_status("open", 10)
    return incident.incident_id


def _recovery(n: int) -> AccountEvent:
    return AccountEvent(f"back-{n}", "v3", "grant.created", f"grant-{n}", iso(START + timedelta(hours=1 + n)), "google")


def test_a_recovery_whose_marking_failed_is_marked_on_the_retry_and_resolves_the_incident(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident_id = _acme_incident_of_three(harness)
    harness.service.record(_recovery(0))
    harness.service.record(_recovery(1))
    marked = harness.incidents.member_recovered
    failures = [1]

    def conflicting_once(*args: Any, **kwargs: Any) -> bool:
        if failures[0]:
            failures[0] -= 1
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "TransactWriteItems")
        return marked(*args, **kwargs)

    monkeypatch.setattr(harness.incidents, "member_recovered", conflicting_once)
    with pytest.raises(ClientError):
        harness.service.record(_recovery(2))
    harness.service.record(_recovery(2))  # the queue's redelivery

    incident = harness.incidents.get(incident_id)
    assert incident is not None
    assert incident.status == "resolved"
    members = list(harness.incidents.all_members(incident_id))
    assert all(m.recovered for m in members)
    assert [r["incident_id"] for r in harness.publisher.of_type("IncidentResolved")] == [incident_id]


def test_an_incident_resolved_by_the_last_recovery_is_announced_on_the_retry_of_a_failed_publish(
    harness: Harness,
) -> None:
    incident_id = _acme_incident_of_three(harness)
    harness.service.record(_recovery(0))
    harness.service.record(_recovery(1))
    harness.publisher.failures = 1
    with pytest.raises(PublishError):
        harness.service.record(_recovery(2))
    assert harness.publisher.of_type("IncidentResolved") == []
    harness.service.record(_recovery(2))  # the queue's redelivery
    harness.service.record(_recovery(2))  # and one more: announced once
    assert [r["incident_id"] for r in harness.publisher.of_type("IncidentResolved")] == [incident_id]


def test_an_incident_resolved_by_the_operator_is_announced_when_the_failed_resolve_is_repeated(
    harness: Harness,
) -> None:
    from account_doctor.accounts_api import AccountsApi

    incident_id = _acme_incident_of_three(harness)
    api = AccountsApi(
        events=harness.service.history,  # type: ignore[arg-type]
        verdicts=harness.verdicts,
        incidents=harness.incidents,
        policy=harness.settings.policy,
        publisher=harness.publisher,
    )
    harness.publisher.failures = 1
    with pytest.raises(PublishError):
        api.resolve_incident(incident_id)
    assert api.resolve_incident(incident_id)["status"] == "resolved"
    api.resolve_incident(incident_id)
    assert [r["incident_id"] for r in harness.publisher.of_type("IncidentResolved")] == [incident_id]


def test_a_verdict_whose_publish_failed_is_published_on_the_retry_though_the_account_recovered_meanwhile(
    harness: Harness,
) -> None:
    event = harness.fail(0, "ana@acme.com", "google", minutes=0)
    harness.publisher.failures = 1
    with pytest.raises(PublishError):
        harness.diagnose(event)
    assert harness.publisher.of_type("Verdict") == []
    harness.service.record(_recovery(0))
    harness.service.diagnose(event)  # the queue's redelivery, after the recovery
    harness.service.diagnose(event)  # and another: published once
    published = harness.publisher.of_type("Verdict")
    assert [(v["account_id"], v["cause"]) for v in published] == [("grant-0", "oauth_revoked")]
