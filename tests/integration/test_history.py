"""The DynamoDB history and verdict store on the template's own tables (moto)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from account_doctor.history import History
from account_doctor.models import AccountEvent, Notification, Step, Verdict
from account_doctor.settings import get_settings
from local_stack.template import LocalStack


@pytest.fixture
def history(aws: LocalStack) -> History:
    settings = get_settings()
    return History(settings.events_table, settings.verdicts_table)


def failure(account_id: str, at: str, email: str | None = None, event_id: str | None = None) -> AccountEvent:
    return AccountEvent(
        event_id=event_id or f"evt-{account_id}-{at}",
        api_version="v3",
        trigger="grant.expired",
        account_id=account_id,
        occurred_at=at,
        provider="microsoft",
        email=email or f"{account_id}@acme.example",
    )


def test_events_are_stored_once(history: History) -> None:
    event = failure("a1", "2024-11-19T10:00:00Z")
    assert history.put_event(event) is True
    assert history.put_event(event) is False
    assert [e.event_id for e in history.account_events("a1", since="2024-11-01T00:00:00Z")] == [event.event_id]


def test_domain_cluster_counts_distinct_accounts_in_the_window(history: History) -> None:
    for account, at in [
        ("a1", "2024-11-19T10:00:00Z"),
        ("a1", "2024-11-19T10:05:00Z"),  # the same account twice counts once
        ("a2", "2024-11-19T10:10:00Z"),
        ("a3", "2024-11-19T11:00:00Z"),  # outside
    ]:
        history.put_event(failure(account, at))
    history.put_event(failure("other", "2024-11-19T10:01:00Z", email="x@other.example"))
    cluster = history.domain_failures("acme.example", "2024-11-19T09:55:00Z", "2024-11-19T10:15:00Z")
    assert cluster.accounts == {"a1", "a2"}
    assert cluster.items_read == 3


def test_free_mail_and_recoveries_never_join_a_domain_cluster(history: History) -> None:
    history.put_event(failure("g1", "2024-11-19T10:00:00Z", email="one@gmail.com"))
    history.put_event(replace(failure("a1", "2024-11-19T10:00:00Z"), trigger="grant.created", event_id="rec"))
    assert history.domain_failures("gmail.com", "2024-11-19T00:00:00Z", "2024-11-20T00:00:00Z").accounts == set()
    assert history.domain_failures("acme.example", "2024-11-19T00:00:00Z", "2024-11-20T00:00:00Z").accounts == set()


def test_recovery_after_a_failure(history: History) -> None:
    history.put_event(failure("a1", "2024-11-19T10:00:00Z"))
    assert history.recovery_after("a1", "2024-11-19T10:00:00Z") is None
    history.put_event(replace(failure("a1", "2024-11-19T10:03:00Z"), trigger="grant.updated", event_id="reauth"))
    assert history.recovery_after("a1", "2024-11-19T10:00:00Z") == "2024-11-19T10:03:00Z"


def verdict(account_id: str, at: str, cause: str = "oauth_revoked", domain: str | None = "acme.example") -> Verdict:
    return Verdict(
        event_id=f"evt-{at}",
        account_id=account_id,
        api_version="v3",
        trigger="grant.expired",
        occurred_at=at,
        diagnosed_at=at,
        email=f"{account_id}@acme.example",
        domain=domain,
        provider="google",
        auth_method="oauth",
        cause=cause,  # type: ignore[arg-type]
        confidence="medium",
        summary="The user revoked access.",
        actions=["Send a reconnect link"],
        steps=[Step(step="1", question="Was access revoked by the app?", answer="no")],
        evidence={"failures_last_30_days": 1, "state": {"exists": True, "status": None}},
        recurring=False,
    )


def test_a_verdict_is_made_once_and_reads_back_equal(history: History) -> None:
    first = verdict("a1", "2024-11-19T10:00:00Z")
    assert history.put_verdict(first) is True
    assert history.put_verdict(replace(first, cause="unknown")) is False
    assert history.get_verdict("a1", first.occurred_at, first.event_id) == first


def test_notifications_are_kept_on_the_verdict(history: History) -> None:
    stored = verdict("a1", "2024-11-19T10:00:00Z")
    history.put_verdict(stored)
    sent = [Notification(kind="reconnect", to="a1@acme.example", message_id="m-1", sent_at="2024-11-19T10:02:10Z")]
    history.set_notifications(stored, sent)
    assert history.account_verdicts("a1")[0].notifications == sent


def test_verdict_listings_are_newest_first(history: History) -> None:
    for at in ("2024-11-10T10:00:00Z", "2024-11-19T10:00:00Z", "2024-11-15T10:00:00Z"):
        history.put_verdict(verdict("a1", at))
    history.put_verdict(verdict("a2", "2024-11-18T10:00:00Z"))
    history.put_verdict(verdict("a3", "2024-11-18T11:00:00Z", domain=None))
    assert [v.occurred_at for v in history.account_verdicts("a1")] == [
        "2024-11-19T10:00:00Z",
        "2024-11-15T10:00:00Z",
        "2024-11-10T10:00:00Z",
    ]
    recent = history.domain_verdicts("acme.example", since="2024-11-12T00:00:00Z")
    assert [(v.account_id, v.occurred_at) for v in recent] == [
        ("a1", "2024-11-19T10:00:00Z"),
        ("a2", "2024-11-18T10:00:00Z"),
        ("a1", "2024-11-15T10:00:00Z"),
    ]
