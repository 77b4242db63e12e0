"""The event history and the verdict store on the template's own tables (moto)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from account_doctor.models import AccountEvent, Notification, Step, Verdict
from account_doctor.settings import get_settings
from account_doctor.stores.dynamo import ConditionsFailed, InvalidCursor, Table
from account_doctor.stores.events import EventHistory
from account_doctor.stores.verdicts import VerdictStore, page_verdicts
from local_stack.template import ProvisionedStack


@pytest.fixture
def history(aws: ProvisionedStack) -> EventHistory:
    return EventHistory(Table(get_settings().events_table))


@pytest.fixture
def verdicts(aws: ProvisionedStack) -> VerdictStore:
    return VerdictStore(Table(get_settings().verdicts_table))


def failure(
    account_id: str, at: str, email: str | None = None, event_id: str | None = None, provider: str = "microsoft"
) -> AccountEvent:
    return AccountEvent(
        event_id=event_id or f"evt-{account_id}-{at}",
        api_version="v3",
        trigger="grant.expired",
        account_id=account_id,
        occurred_at=at,
        provider=provider,
        email=email or f"{account_id}@acme.example",
    )


def recovery(account_id: str, at: str, event_id: str = "reauth") -> AccountEvent:
    return replace(failure(account_id, at), trigger="grant.updated", event_id=event_id)


# The event history -------------------------------------------------------------------------------


def test_events_are_stored_once(history: EventHistory) -> None:
    event = failure("a1", "2024-11-19T10:00:00Z")
    assert history.put_event(event) is True
    assert history.put_event(event) is False
    assert [e.event_id for e in history.account_events("a1", since="2024-11-01T00:00:00Z")] == [event.event_id]


def diagnosed(history: EventHistory, event: AccountEvent) -> None:
    """A failure recorded, then confirmed by its diagnosis: counted toward its clusters."""
    history.put_event(event)
    history.count_failure(event)


def test_a_failure_counts_toward_clusters_only_once_its_diagnosis_counted_it(history: EventHistory) -> None:
    event = failure("g1", "2024-11-19T10:00:00Z", email="one@corp.example", provider="google")
    history.put_event(event)
    window = ("2024-11-19T09:45:00Z", "2024-11-19T10:15:00Z")
    assert history.domain_failures("corp.example", *window).accounts == set()
    assert history.connector_failures("google", *window).accounts == set()
    assert history.connectors.burst("google", *window).failures == 0
    assert history.count_failure(event) is True
    assert history.count_failure(event) is False  # a repeated diagnosis counts nothing twice
    assert history.domain_failures("corp.example", *window).accounts == {"g1"}
    assert history.connector_failures("google", *window).accounts == {"g1"}
    assert history.connectors.burst("google", *window).failures == 1


def test_domain_cluster_counts_distinct_accounts_in_the_window(history: EventHistory) -> None:
    for account, at in [
        ("a1", "2024-11-19T10:00:00Z"),
        ("a1", "2024-11-19T10:05:00Z"),  # the same account twice counts once
        ("a2", "2024-11-19T10:10:00Z"),
        ("a3", "2024-11-19T11:00:00Z"),  # outside
    ]:
        diagnosed(history, failure(account, at))
    diagnosed(history, failure("other", "2024-11-19T10:01:00Z", email="x@other.example"))
    cluster = history.domain_failures("acme.example", "2024-11-19T09:55:00Z", "2024-11-19T10:15:00Z")
    assert cluster.accounts == {"a1", "a2"}
    assert cluster.accounts_between("2024-11-19T10:04:00Z", "2024-11-19T10:15:00Z") == {"a1", "a2"}
    assert cluster.accounts_between("2024-11-19T10:06:00Z", "2024-11-19T10:15:00Z") == {"a2"}
    assert cluster.items_read == 3  # only the domain's failures in the window, never the table


def test_free_mail_and_recoveries_never_join_a_domain_cluster(history: EventHistory) -> None:
    diagnosed(history, failure("g1", "2024-11-19T10:00:00Z", email="one@gmail.com"))
    history.put_event(recovery("a1", "2024-11-19T10:00:00Z", event_id="rec"))
    assert history.domain_failures("gmail.com", "2024-11-19T00:00:00Z", "2024-11-20T00:00:00Z").accounts == set()
    assert history.domain_failures("acme.example", "2024-11-19T00:00:00Z", "2024-11-20T00:00:00Z").accounts == set()


def test_connector_failures_span_domains_free_mail_included(history: EventHistory) -> None:
    diagnosed(history, failure("g1", "2024-11-19T10:00:00Z", email="one@gmail.com", provider="gmail"))
    diagnosed(history, failure("g2", "2024-11-19T10:02:00Z", email="two@corp.example", provider="google"))
    diagnosed(history, failure("m1", "2024-11-19T10:02:00Z", email="three@corp.example", provider="microsoft"))
    cluster = history.connector_failures("google", "2024-11-19T09:45:00Z", "2024-11-19T10:15:00Z")
    assert cluster.accounts == {"g1", "g2"}
    assert cluster.domains_between("2024-11-19T09:45:00Z", "2024-11-19T10:15:00Z") == {"gmail.com", "corp.example"}


def test_a_connectors_usual_failures_come_from_its_hourly_counts(history: EventHistory) -> None:
    # Four failures a day for two days before; the burst's own hour is left out by the caller's end.
    for day in ("17", "18"):
        for n in range(4):
            diagnosed(history, failure(f"d{day}-{n}", f"2024-11-{day}T0{n}:30:00Z", provider="google"))
    diagnosed(history, failure("now", "2024-11-19T10:00:00Z", provider="google"))
    diagnosed(history, failure("now", "2024-11-19T10:00:00Z", provider="google"))  # a redelivery: not counted twice
    usual = history.connectors.usual("google", "2024-11-17T10:00:00Z", "2024-11-19T10:00:00Z", timedelta(hours=1))
    # 8 failures from the 17th 10:00 to the 19th 10:00 (hours 2024-11-17T10 … 2024-11-19T09): 4 of them inside.
    assert usual == pytest.approx(4 / 48)
    assert history.connectors.usual("google", "2024-11-17T00:00:00Z", "2024-11-19T11:00:00Z", timedelta(hours=1)) == (
        pytest.approx(9 / 59)
    )
    assert (
        history.connectors.usual("microsoft", "2024-11-17T10:00:00Z", "2024-11-19T10:00:00Z", timedelta(hours=1)) == 0
    )


def test_a_connectors_burst_is_counted_once_per_failure_with_its_domains(history: EventHistory) -> None:
    for n, domain in enumerate(("gmail.com", "corp.example", "corp.example", "other.example")):
        diagnosed(history, failure(f"g{n}", f"2024-11-19T10:0{n}:00Z", email=f"u{n}@{domain}", provider="google"))
    diagnosed(history, failure("g0", "2024-11-19T10:00:00Z", email="u0@gmail.com", provider="google"))  # redelivered
    diagnosed(history, failure("m1", "2024-11-19T10:02:00Z", provider="microsoft"))
    diagnosed(history, failure("late", "2024-11-19T10:31:00Z", email="late@late.example", provider="google"))
    burst = history.connectors.burst("google", "2024-11-19T09:46:00Z", "2024-11-19T10:16:00Z")
    assert burst.failures == 4
    assert burst.domains == {"gmail.com", "corp.example", "other.example"}
    # Whole 5-minute buckets: 10:16 reaches the 10:15 bucket, not the 10:30 one.
    assert history.connectors.burst("google", "2024-11-19T10:26:00Z", "2024-11-19T10:34:00Z").failures == 1
    assert history.connectors.burst("google", "2024-11-19T11:00:00Z", "2024-11-19T11:30:00Z").failures == 0


def test_a_connector_burst_written_by_concurrent_recorders_counts_every_failure_once(
    history: EventHistory,
) -> None:
    events = [
        failure(f"a{n}", f"2024-11-19T10:{n % 10:02d}:00Z", email=f"u{n}@d{n % 5}.example", provider="google")
        for n in range(40)
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(lambda e: diagnosed(history, e), events + events[:10])
        )  # ten of them delivered twice, concurrently
    burst = history.connectors.burst("google", "2024-11-19T09:50:00Z", "2024-11-19T10:10:00Z")
    assert burst.failures == 40
    assert burst.domains == {f"d{n}.example" for n in range(5)}


def test_recovery_after_a_failure(history: EventHistory) -> None:
    history.put_event(failure("a1", "2024-11-19T10:00:00Z"))
    assert history.recovery_after("a1", "2024-11-19T10:00:00Z") is None
    history.put_event(recovery("a1", "2024-11-19T10:03:00Z"))
    assert history.recovery_after("a1", "2024-11-19T10:00:00Z") == "2024-11-19T10:03:00Z"


def test_the_accounts_state_follows_its_latest_event_even_delivered_out_of_order(history: EventHistory) -> None:
    history.put_event(failure("a1", "2024-11-19T10:00:00Z"))
    history.put_event(recovery("a1", "2024-11-19T10:03:00Z"))
    # The failure's webhook arrives late: it is stored, but the account stays recovered.
    late = failure("a1", "2024-11-19T10:01:00Z", event_id="late")
    assert history.put_event(late) is True
    state = history.state("a1")
    assert state is not None
    assert (state["latest_kind"], state["latest_at"]) == ("recovery", "2024-11-19T10:03:00Z")
    assert "broken" not in state
    assert [e.event_id for e in history.account_events("a1", since="2024-11-19T00:00:00Z")] == [
        "evt-a1-2024-11-19T10:00:00Z",
        "late",
        "reauth",
    ]
    latest = history.latest_event("a1")
    assert latest is not None
    assert latest.event_id == "reauth"
    failed = history.latest_failure("a1")
    assert failed is not None
    assert failed.event_id == "late"
    # The sweep's batch read answers the same from the state items; an unknown account is left out.
    history.put_event(failure("a2", "2024-11-19T10:05:00Z"))
    assert history.latest_from_states(["a1", "a2", "unknown", "a1"]) == {
        "a1": latest,
        "a2": history.latest_event("a2"),
    }


def test_broken_accounts_are_listed_newest_first_in_pages_and_leave_when_they_recover(
    history: EventHistory,
) -> None:
    for n in range(12):
        history.put_event(failure(f"b{n:02}", f"2024-11-19T10:{n:02}:00Z"))
    history.put_event(failure("b03", "2024-11-19T11:00:00Z", event_id="again"))  # still broken since 10:03
    history.put_event(recovery("b05", "2024-11-19T11:00:00Z"))
    listed: list[tuple[str, str]] = []
    cursor: str | None = None
    for _ in range(10):
        page = history.broken_accounts(limit=5, cursor=cursor)
        assert len(page.items) <= 5
        listed += [(item["account_id"], item["since"]) for item in page.items]
        cursor = page.next
        if cursor is None:
            break
    expected = [(f"b{n:02}", f"2024-11-19T10:{n:02}:00Z") for n in range(11, -1, -1) if n != 5]
    assert listed == expected
    with pytest.raises(InvalidCursor):
        history.broken_accounts(limit=5, cursor="not-a-cursor")


# The verdicts --------------------------------------------------------------------------------------


def verdict(
    account_id: str,
    at: str,
    cause: str = "oauth_revoked",
    domain: str | None = "acme.example",
    event_id: str | None = None,
) -> Verdict:
    return Verdict(
        event_id=event_id or f"evt-{at}",
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


def all_verdicts(verdicts: VerdictStore, account_id: str) -> list[Verdict]:
    return page_verdicts(verdicts.account_verdicts(account_id, limit=100))


def test_a_verdict_is_made_once_and_reads_back_equal(verdicts: VerdictStore) -> None:
    first = verdict("a1", "2024-11-19T10:00:00Z")
    assert verdicts.put(first) is True
    assert verdicts.put(replace(first, cause="unknown")) is False
    assert verdicts.latest_for_event("a1", first.occurred_at, first.event_id) == first
    assert verdicts.latest("a1") == first


def test_an_events_verdict_is_never_another_events_whose_id_it_prefixes(verdicts: VerdictStore) -> None:
    mine = verdict("a1", "2024-11-19T10:00:00Z", event_id="evt-1")
    other = verdict("a1", "2024-11-19T10:00:00Z", event_id="evt-10", cause="unknown")
    verdicts.put(mine)
    verdicts.put(other)
    assert verdicts.latest_for_event("a1", mine.occurred_at, "evt-1") == mine
    assert verdicts.latest_for_event("a1", mine.occurred_at, "evt-10") == other
    assert verdicts.latest_for_event("a1", mine.occurred_at, "evt-") is None


def test_a_revision_is_the_events_verdict_from_then_on_and_the_earlier_one_is_kept(verdicts: VerdictStore) -> None:
    earlier = verdict("a1", "2024-11-19T10:00:00Z")
    verdicts.put(earlier)
    revision = replace(
        earlier.revision(cause="admin_disconnected", revision_reason="incident opened"),
        diagnosed_at="2024-11-19T10:09:00Z",
    )
    assert verdicts.revise(earlier, revision) is True
    assert verdicts.revise(earlier, revision) is False
    assert verdicts.latest_for_event("a1", earlier.occurred_at, earlier.event_id) == revision
    listed = all_verdicts(verdicts, "a1")
    assert [(v.cause, v.revises, v.superseded) for v in listed] == [
        ("admin_disconnected", earlier.diagnosed_at, False),
        ("oauth_revoked", None, True),
    ]


def test_notifications_are_kept_on_the_verdict(verdicts: VerdictStore) -> None:
    stored = verdict("a1", "2024-11-19T10:00:00Z")
    verdicts.put(stored)
    sent = [
        Notification(
            kind="reconnect", to="a1@acme.example", message_id="m-1", status="sent", sent_at="2024-11-19T10:02:10Z"
        )
    ]
    verdicts.set_notifications(stored, sent)
    assert all_verdicts(verdicts, "a1")[0].notifications == sent


def test_verdict_listings_are_newest_first_in_pages(verdicts: VerdictStore) -> None:
    for at in ("2024-11-10T10:00:00Z", "2024-11-19T10:00:00Z", "2024-11-15T10:00:00Z"):
        verdicts.put(verdict("a1", at))
    verdicts.put(verdict("a2", "2024-11-18T10:00:00Z"))
    verdicts.put(verdict("a3", "2024-11-18T11:00:00Z", domain=None))
    first = verdicts.account_verdicts("a1", limit=2)
    assert [v.occurred_at for v in page_verdicts(first)] == ["2024-11-19T10:00:00Z", "2024-11-15T10:00:00Z"]
    assert first.next is not None
    rest = verdicts.account_verdicts("a1", limit=2, cursor=first.next)
    assert [v.occurred_at for v in page_verdicts(rest)] == ["2024-11-10T10:00:00Z"]
    assert rest.next is None

    recent = verdicts.domain_verdicts("acme.example", limit=3)
    assert [(v["account_id"], v["occurred_at"], v["cause"]) for v in recent.items] == [
        ("a1", "2024-11-19T10:00:00Z", "oauth_revoked"),
        ("a2", "2024-11-18T10:00:00Z", "oauth_revoked"),
        ("a1", "2024-11-15T10:00:00Z", "oauth_revoked"),
    ]
    # The domain list shows what its index projects, never the evidence of every member.
    assert "evidence" not in recent.items[0]
    assert recent.next is not None
    older = verdicts.domain_verdicts("acme.example", limit=3, cursor=recent.next)
    assert [(v["account_id"], v["occurred_at"]) for v in older.items] == [("a1", "2024-11-10T10:00:00Z")]


def test_a_cursor_this_store_did_not_hand_out_is_refused(verdicts: VerdictStore) -> None:
    verdicts.put(verdict("a1", "2024-11-19T10:00:00Z"))
    for forged in ("%%%", "bm90IGpzb24", "WzFd"):  # not base64, not JSON, not a key
        with pytest.raises(InvalidCursor):
            verdicts.account_verdicts("a1", limit=1, cursor=forged)


class ConflictingOnce:
    """DynamoDB whose next transaction is cancelled by a concurrent one on the connector's hourly count."""

    def __init__(self) -> None:
        self._client = boto3.client("dynamodb")
        self.armed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def transact_write_items(self, **request: Any) -> Any:
        if self.armed:
            self.armed = False
            reasons = [{"Code": "None"}, {"Code": "TransactionConflict"}, {"Code": "None"}]
            raise ClientError(
                {"Error": {"Code": "TransactionCanceledException"}, "CancellationReasons": reasons},
                "TransactWriteItems",
            )
        return self._client.transact_write_items(**request)


def test_a_transaction_conflict_is_retried_never_stored_without_the_accounts_state(aws: ProvisionedStack) -> None:
    history = EventHistory(Table(get_settings().events_table, ConflictingOnce()))  # type: ignore[arg-type]
    event = failure("a1", "2024-11-19T10:00:00Z", provider="google")
    with pytest.raises(ClientError):
        history.put_event(event)  # the record fails back to the queue ...
    assert history.put_event(event) is True  # ... and its redelivery stores it, with the account's state
    state = history.state("a1")
    assert state is not None
    assert (state["latest_kind"], state["since"]) == ("failure", "2024-11-19T10:00:00Z")
    assert len(history.broken_accounts(limit=10).items) == 1


def test_a_transaction_says_which_condition_failed_and_writes_nothing(aws: ProvisionedStack) -> None:
    """The one translation point: a store learns which write's condition failed, never DynamoDB's error."""
    table = Table(get_settings().events_table)
    assert table.put_once({"account_id": "a1", "sk": "taken"}, key="sk")
    writes = [
        table.put_write({"account_id": "a1", "sk": "new"}, condition="attribute_not_exists(sk)"),
        table.put_write({"account_id": "a1", "sk": "taken"}, condition="attribute_not_exists(sk)"),
    ]
    with pytest.raises(ConditionsFailed) as refused:
        table.transact(writes)
    assert refused.value.failed == frozenset({1})
    assert table.get({"account_id": "a1", "sk": "new"}) is None  # all or nothing
    table.transact(writes[:1])
    assert table.get({"account_id": "a1", "sk": "new"}) is not None
