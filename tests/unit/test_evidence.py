"""evidence_from: what the history and Nylas's answer say about one failure (no I/O)."""

from __future__ import annotations

from account_doctor.evidence import evidence_from
from account_doctor.models import AccountEvent, AccountState

FAILED_AT = "2024-11-19T10:00:00Z"
EVENT = AccountEvent(
    event_id="evt-now",
    api_version="v3",
    trigger="grant.expired",
    account_id="g1",
    occurred_at=FAILED_AT,
    provider="google",
    email="Ana@Acme.Example",
    grant_updated_at="2024-11-12T09:00:00Z",
)
STATE = AccountState(exists=True, status="invalid", provider="google", created_at="2024-10-01T00:00:00Z")


def stored(trigger: str, at: str, event_id: str | None = None) -> AccountEvent:
    return AccountEvent(event_id or f"{trigger}@{at}", "v3", trigger, "g1", at)


def gather(*events: AccountEvent, event: AccountEvent = EVENT, state: AccountState = STATE):  # type: ignore[no-untyped-def]
    return evidence_from(event, state, events, domain_burst_accounts=1, domain_window_accounts=1)


def test_domain_and_auth_method_follow_the_address_and_provider() -> None:
    evidence = gather()
    assert (evidence.domain, evidence.free_mail, evidence.auth_method) == ("acme.example", False, "oauth")


def test_free_mail_is_recognised() -> None:
    evidence = gather(event=AccountEvent(**{**EVENT.__dict__, "email": "x@hotmail.co.uk"}))
    assert (evidence.domain, evidence.free_mail) == ("hotmail.co.uk", True)


def test_v2_address_comes_from_nylas() -> None:
    v2 = AccountEvent(event_id="e", api_version="v2", trigger="account.invalid", account_id="g1", occurred_at=FAILED_AT)
    evidence = gather(
        event=v2, state=AccountState(exists=True, status="invalid", provider="imap", email="b@corp.example")
    )
    assert (evidence.email, evidence.provider, evidence.auth_method) == ("b@corp.example", "imap", "password")


def test_a_recovery_after_the_failure_is_found_and_one_before_it_is_not() -> None:
    assert gather(stored("grant.updated", "2024-11-19T09:00:00Z")).recovered_at is None
    assert gather(stored("grant.updated", "2024-11-19T10:01:00Z")).recovered_at == "2024-11-19T10:01:00Z"


def test_failures_in_30_days_count_this_one_once() -> None:
    evidence = gather(
        stored("grant.expired", "2024-10-19T09:59:59Z"),  # 30 days and a second before: out
        stored("grant.expired", "2024-10-20T10:00:00Z"),
        stored("grant.expired", FAILED_AT, event_id="evt-now"),  # this failure, already recorded
    )
    assert evidence.failures_last_30_days == 2


def test_consents_are_creation_grant_update_and_reauthentications_before_the_failure() -> None:
    # Rule 4a: a Google testing-mode token dies 7 days after any consent.
    assert gather().consents == ("2024-10-01T00:00:00Z", "2024-11-12T09:00:00Z")
    later = gather(stored("grant.updated", "2024-11-15T00:00:00Z"), stored("grant.updated", "2024-11-20T00:00:00Z"))
    assert later.consents == ("2024-10-01T00:00:00Z", "2024-11-12T09:00:00Z", "2024-11-15T00:00:00Z")


def test_last_refresh_is_the_latest_grant_update_or_reauthentication_before_and_never_creation() -> None:
    assert gather().last_refreshed_at == "2024-11-12T09:00:00Z"
    later = gather(stored("grant.updated", "2024-11-15T00:00:00Z"), stored("grant.updated", "2024-11-20T00:00:00Z"))
    assert later.last_refreshed_at == "2024-11-15T00:00:00Z"
    # Rule 4b: the grant's created_at alone says nothing about later activity.
    created_only = gather(event=AccountEvent(**{**EVENT.__dict__, "grant_updated_at": None}))
    assert (created_only.consents, created_only.last_refreshed_at) == (("2024-10-01T00:00:00Z",), None)


def test_connector_and_its_counts_are_passed_through() -> None:
    evidence = evidence_from(
        EVENT,
        STATE,
        (),
        domain_burst_accounts=1,
        domain_window_accounts=1,
        connector_burst_accounts=12,
        connector_burst_domains=4,
        connector_usual_failures=0.5,
    )
    assert (evidence.connector, evidence.connector_burst_accounts, evidence.connector_burst_domains) == (
        "google",
        12,
        4,
    )
    assert evidence.connector_usual_failures == 0.5


def test_removal_by_the_app_is_seen() -> None:
    assert gather().removed_by_app is False
    assert gather(stored("grant.deleted", "2024-11-19T10:00:30Z")).removed_by_app is True


def test_a_flapping_account_keeps_the_consents_the_rules_read_and_its_verdict_stays_small() -> None:
    """Re-authenticated every 30 minutes for 120 days: thousands of consents. The verdict keeps the grant's
    creation, the youngest consent 7 days (± 12 h) before the failure (rule 4a) and the RECENT_CONSENTS latest."""
    import json
    from datetime import timedelta

    from account_doctor.diagnosis import diagnose
    from account_doctor.evidence import RECENT_CONSENTS
    from account_doctor.models import Policy, Verdict, iso, parse_iso

    failed = parse_iso(FAILED_AT)
    reauths = [iso(failed - timedelta(minutes=30 * n)) for n in range(1, 120 * 48)]
    state = AccountState(exists=True, status="invalid", provider="google", created_at=iso(failed - timedelta(days=200)))
    evidence = gather(
        *(stored("grant.updated", at) for at in reauths),
        event=AccountEvent(**{**EVENT.__dict__, "grant_updated_at": None}),
        state=state,
    )
    latest = sorted(reauths)[-RECENT_CONSENTS:]
    testing_mode = iso(failed - timedelta(days=6, hours=12))  # the youngest of the 7 days ± 12 h
    assert evidence.consents == (state.created_at, testing_mode, *latest)
    diagnosis = diagnose(evidence, Policy())
    assert diagnosis.cause == "google_testing_mode"
    verdict = Verdict.of(evidence, diagnosis, diagnosed_at=FAILED_AT)
    assert len(json.dumps(verdict.to_dict())) < 16_000  # DynamoDB's item limit is 400 KB


def test_consents_at_the_limit_are_all_kept() -> None:
    from account_doctor.evidence import RECENT_CONSENTS

    reauths = [f"2024-11-19T0{n}:00:00Z" for n in range(RECENT_CONSENTS)]
    evidence = gather(*(stored("grant.updated", at) for at in reauths))
    assert evidence.consents == ("2024-10-01T00:00:00Z", "2024-11-12T09:00:00Z", *reauths)
    one_more = gather(*(stored("grant.updated", at) for at in ["2024-11-18T23:00:00Z", *reauths]))
    assert "2024-11-18T23:00:00Z" not in one_more.consents  # neither creation, nor rule 4a's, nor among the latest
    assert one_more.consents[-RECENT_CONSENTS:] == tuple(reauths)


def test_the_address_nylas_reports_wins_and_the_payloads_is_used_only_without_one() -> None:
    # Security: a forged payload address must not receive the reconnect email (nor be its login hint).
    nylas_knows = AccountState(exists=True, status="invalid", provider="google", email="ana@acme.example")
    forged = AccountEvent(**{**EVENT.__dict__, "email": "attacker@evil.example"})
    evidence = gather(event=forged, state=nylas_knows)
    assert (evidence.email, evidence.domain) == ("ana@acme.example", "acme.example")
    assert gather(event=forged, state=STATE).email == "attacker@evil.example"  # Nylas reports none
