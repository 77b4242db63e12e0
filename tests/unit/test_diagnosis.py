"""The troubleshooting procedure (SPEC §4), row by row and edge by edge."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from account_doctor import addresses, providers
from account_doctor.diagnosis import diagnose
from account_doctor.models import AccountEvent, AccountState, ApiVersion, Diagnosis, Evidence, Policy

# SPEC §4's rows in the order the procedure must ask them.
TABLE_ORDER = ["0", "1", "1b", "2a", "2b", "3a", "3b", "3c", "4a", "4b", "4c", "4d", "5"]
FAILED_AT = datetime(2024, 11, 19, 7, 6, 40, tzinfo=UTC)
# Who does what: every recommended action starts by naming who acts.
ACTOR = re.compile(r"^(Customer|Operator|Microsoft admin|Google Workspace admin|Mail administrator): \S")


def at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def before_failure(**delta: float) -> str:
    return at(FAILED_AT - timedelta(**delta))


def evidence(
    *,
    api_version: ApiVersion = "v3",
    trigger: str = "grant.expired",
    provider: str | None = "google",
    email: str | None = "alice@example.com",
    exists: bool = True,
    status: str | None = "invalid",
    billing_state: str | None = None,
    inbox_count: int | None = None,
    recovered_at: str | None = None,
    removed_by_app: bool = False,
    failures_last_30_days: int = 1,
    last_authenticated_at: str | None = before_failure(days=30),
    domain_burst_accounts: int = 1,
    domain_window_accounts: int = 1,
) -> Evidence:
    """A plain v3 Google grant that expired 30 days after sign-in, alone in its domain, unless told otherwise.

    Auth method, domain and free-mail come from the real accounts helpers, as the adapters derive them.
    """
    domain = addresses.email_domain(email)
    return Evidence(
        event=AccountEvent(
            event_id="evt-1",
            api_version=api_version,
            trigger=trigger,
            account_id="grant-1",
            occurred_at=at(FAILED_AT),
            provider=provider,
            email=email,
        ),
        state=AccountState(
            exists=exists,
            status=status if exists else None,
            billing_state=billing_state,
            provider=provider if exists else None,
            email=email if exists else None,
            inbox_count=inbox_count,
        ),
        provider=provider,
        email=email,
        domain=domain,
        auth_method=providers.auth_method(provider),
        free_mail=domain is not None and addresses.is_free_mail(domain),
        recovered_at=recovered_at,
        removed_by_app=removed_by_app,
        failures_last_30_days=failures_last_30_days,
        consents=(last_authenticated_at,) if last_authenticated_at else (),
        last_refreshed_at=last_authenticated_at,
        domain_burst_accounts=domain_burst_accounts,
        domain_window_accounts=domain_window_accounts,
    )


def v2(**fields: Any) -> Evidence:
    """A v2 account event: account.* triggers, sync_state for status."""
    return evidence(**{"api_version": "v2", "trigger": "account.invalid", **fields})


def case(rule: str, cause: str, confidence: str, ev: Evidence, id: str, policy: Policy | None = None) -> Any:
    return pytest.param(rule, cause, confidence, ev, policy or Policy(), id=id)


CASES = [
    # 0 — recovered
    case("0", "recovered", "high", evidence(status="valid"), id="0-v3-grant-valid-again"),
    case("0", "recovered", "high", v2(status="running"), id="0-v2-account-running-again"),
    case(
        "0",
        "recovered",
        "medium",
        evidence(recovered_at=at(FAILED_AT + timedelta(minutes=1))),
        id="0-recovery-event-after-failure",
    ),
    case(
        "0",
        "recovered",
        "high",
        evidence(status="valid", domain_burst_accounts=5, domain_window_accounts=5),
        id="0-beats-2a-recovered-member-of-burst",
    ),
    case(
        "0",
        "recovered",
        "medium",
        evidence(recovered_at=at(FAILED_AT + timedelta(minutes=1)), removed_by_app=True),
        id="0-beats-1-recovered-before-app-revoked",
    ),
    # 1 — app_revoked: v2 billing, v3 404, grant.deleted in history
    case("1", "app_revoked", "high", v2(billing_state="cancelled"), id="1-v2-billing-cancelled"),
    case("1", "app_revoked", "high", v2(billing_state="deleted", status="stopped"), id="1-v2-billing-deleted"),
    case("4d", "oauth_revoked", "medium", v2(billing_state="paid"), id="1-v2-billing-paid-not-revoked"),
    # A bare 404 may also mean NylasApiUri names the wrong region: medium, and the summary says so.
    case("1", "app_revoked", "medium", evidence(exists=False), id="1-v3-grant-404"),
    case("1", "app_revoked", "high", evidence(exists=False, removed_by_app=True), id="1-v3-grant-404-and-deleted"),
    case("1", "app_revoked", "high", evidence(removed_by_app=True), id="1-v3-grant-deleted-in-history"),
    # A 404 alone is medium (SPEC §4): high needs grant.deleted in the history or the v2 billing state.
    case("1", "app_revoked", "medium", v2(exists=False), id="1-v2-account-404"),
    case(
        "1",
        "app_revoked",
        "medium",
        evidence(exists=False, domain_burst_accounts=4, domain_window_accounts=4),
        id="1-beats-2a-app-revoked-before-cluster",
    ),
    # 2a — a burst of one organisation domain
    case(
        "2a",
        "admin_disconnected",
        "high",
        evidence(domain_burst_accounts=3, domain_window_accounts=3),
        id="2a-burst-at-threshold",
    ),
    case(
        "4d",
        "oauth_revoked",
        "medium",
        evidence(domain_burst_accounts=2, domain_window_accounts=2),
        id="2a-burst-threshold-minus-1-falls-to-4d",
    ),
    case(
        "2a",
        "admin_disconnected",
        "high",
        evidence(domain_burst_accounts=5, domain_window_accounts=5),
        id="2a-policy-threshold-5-reached",
        policy=Policy(domain_cluster_threshold=5),
    ),
    case(
        "4d",
        "oauth_revoked",
        "medium",
        evidence(domain_burst_accounts=4, domain_window_accounts=4),
        id="2a-policy-threshold-5-minus-1-falls-to-4d",
        policy=Policy(domain_cluster_threshold=5),
    ),
    case(
        "2a",
        "admin_disconnected",
        "high",
        evidence(provider="imap", domain_burst_accounts=3, domain_window_accounts=3),
        id="2a-beats-3c-cluster-before-password-changed",
    ),
    case(
        "2a",
        "admin_disconnected",
        "high",
        evidence(provider="zimbra", domain_burst_accounts=3, domain_window_accounts=3),
        id="2a-unknown-provider-still-clusters",
    ),
    case(
        "4d",
        "oauth_revoked",
        "medium",
        evidence(email="alice@gmail.com", domain_burst_accounts=9, domain_window_accounts=9),
        id="2a-free-mail-never-clusters",
    ),
    case(
        "4d",
        "oauth_revoked",
        "medium",
        evidence(provider="outlook", email="bob@hotmail.co.uk", domain_burst_accounts=9, domain_window_accounts=9),
        id="2a-free-mail-country-variant-never-clusters",
    ),
    case(
        "4d",
        "oauth_revoked",
        "medium",
        evidence(email=None, domain_burst_accounts=9, domain_window_accounts=9),
        id="2a-no-email-no-cluster",
    ),
    # 2b — the same domain over the long window; the burst edge shows as the burst count
    case(
        "2b",
        "admin_session_policy",
        "medium",
        evidence(domain_burst_accounts=2, domain_window_accounts=3),
        id="2b-third-account-just-outside-burst-window",
    ),
    case(
        "4d",
        "oauth_revoked",
        "medium",
        evidence(domain_burst_accounts=1, domain_window_accounts=2),
        id="2b-window-threshold-minus-1-falls-to-4d",
    ),
    case(
        "2b",
        "admin_session_policy",
        "medium",
        v2(provider="eas", inbox_count=1, domain_burst_accounts=1, domain_window_accounts=6),
        id="2b-beats-3a-cluster-before-sparse-inbox",
    ),
    # 3a — Exchange on a password with an (almost) empty inbox
    case("3a", "eas_sparse_inbox", "medium", v2(provider="eas", inbox_count=2), id="3a-v2-eas-inbox-2"),
    case("3a", "eas_sparse_inbox", "medium", evidence(provider="ews", inbox_count=0), id="3a-v3-ews-inbox-0"),
    case(
        "3a",
        "eas_sparse_inbox",
        "medium",
        v2(provider="exchange", trigger="account.stopped", inbox_count=1),
        id="3a-exchange-stopped-inbox-1",
    ),
    case("3c", "password_changed", "medium", v2(provider="eas", inbox_count=3), id="3a-eas-inbox-3-falls-to-3c"),
    case("3c", "password_changed", "medium", v2(provider="eas"), id="3a-eas-inbox-unknown-falls-to-3c"),
    # 3b — IMAP stopped rather than rejected
    case("3b", "imap_sync_errors", "medium", v2(provider="imap", trigger="account.stopped"), id="3b-imap-stopped"),
    case(
        "3b", "imap_sync_errors", "medium", v2(provider="imap", trigger="account.sync_error"), id="3b-imap-sync-error"
    ),
    case("3c", "password_changed", "medium", v2(provider="imap"), id="3b-imap-invalid-falls-to-3c"),
    case(
        "3c",
        "password_changed",
        "medium",
        v2(provider="yahoo", trigger="account.stopped"),
        id="3b-yahoo-stopped-not-imap-falls-to-3c",
    ),
    # 3c — any other password account
    case("3c", "password_changed", "medium", evidence(provider="imap"), id="3c-v3-imap-expired"),
    case("3c", "password_changed", "medium", v2(provider="icloud", email="c@icloud.com"), id="3c-v2-icloud-invalid"),
    # 4a — Google testing mode: 7 days ± 12 h after the last authentication, edges included
    case(
        "4a",
        "google_testing_mode",
        "high",
        evidence(last_authenticated_at=before_failure(days=7)),
        id="4a-google-7d-exactly",
    ),
    case(
        "4a",
        "google_testing_mode",
        "high",
        evidence(last_authenticated_at=before_failure(days=6, hours=12)),
        id="4a-google-7d-minus-12h",
    ),
    case(
        "4a",
        "google_testing_mode",
        "high",
        evidence(last_authenticated_at=before_failure(days=7, hours=12)),
        id="4a-google-7d-plus-12h",
    ),
    case(
        "4d",
        "oauth_revoked",
        "medium",
        evidence(last_authenticated_at=before_failure(days=6, hours=12, seconds=-1)),
        id="4a-google-7d-minus-12h-1s-falls-to-4d",
    ),
    case(
        "4d",
        "oauth_revoked",
        "medium",
        evidence(last_authenticated_at=before_failure(days=7, hours=12, seconds=1)),
        id="4a-google-7d-plus-12h-1s-falls-to-4d",
    ),
    case(
        "4a",
        "google_testing_mode",
        "high",
        v2(provider="gmail", last_authenticated_at=before_failure(days=7, hours=3)),
        id="4a-v2-gmail-provider",
    ),
    case(
        "4a",
        "google_testing_mode",
        "high",
        v2(trigger="account.stopped", last_authenticated_at=before_failure(days=7)),
        id="4a-beats-4c-google-stopped-at-7d",
    ),
    case(
        "4d",
        "oauth_revoked",
        "medium",
        evidence(last_authenticated_at=None),
        id="4a-auth-time-unknown-falls-to-4d",
    ),
    case(
        "4d",
        "oauth_revoked",
        "medium",
        evidence(last_authenticated_at=at(FAILED_AT + timedelta(days=7))),
        id="4a-auth-after-failure-falls-to-4d",
    ),
    case(
        "4d",
        "oauth_revoked",
        "medium",
        evidence(provider="microsoft", last_authenticated_at=before_failure(days=7)),
        id="4a-microsoft-at-7d-not-google",
    ),
    # 4b — Microsoft: 90 days without a new sign-in
    case(
        "4b",
        "microsoft_token_expired",
        "high",
        evidence(provider="microsoft", last_authenticated_at=before_failure(days=90)),
        id="4b-microsoft-90d-exactly",
    ),
    case(
        "4b",
        "microsoft_token_expired",
        "high",
        v2(provider="office365", last_authenticated_at=before_failure(days=120)),
        id="4b-v2-office365-120d",
    ),
    case(
        "4d",
        "oauth_revoked",
        "medium",
        evidence(provider="microsoft", last_authenticated_at=before_failure(days=89)),
        id="4b-microsoft-89d-falls-to-4d",
    ),
    case(
        "4d",
        "oauth_revoked",
        "medium",
        evidence(provider="microsoft", last_authenticated_at=before_failure(days=90, seconds=-1)),
        id="4b-microsoft-1s-short-of-90d-falls-to-4d",
    ),
    case(
        "4d",
        "oauth_revoked",
        "medium",
        evidence(provider="microsoft", last_authenticated_at=None),
        id="4b-auth-time-unknown-falls-to-4d",
    ),
    case(
        "4d",
        "oauth_revoked",
        "medium",
        evidence(last_authenticated_at=before_failure(days=90)),
        id="4b-google-at-90d-not-microsoft",
    ),
    # 4c — OAuth stopped rather than rejected
    case("4c", "sync_stopped", "medium", v2(trigger="account.stopped"), id="4c-v2-google-stopped"),
    case(
        "4c",
        "sync_stopped",
        "medium",
        v2(provider="outlook", trigger="account.sync_error"),
        id="4c-v2-outlook-sync-error",
    ),
    case("4c", "sync_stopped", "medium", v2(trigger="account.stopped", status="stopped"), id="4c-sync-state-stopped"),
    # 4d — OAuth otherwise
    case("4d", "oauth_revoked", "medium", evidence(), id="4d-v3-google-expired"),
    case("4d", "oauth_revoked", "medium", v2(provider="graph"), id="4d-v2-microsoft-invalid"),
    # 5 — nothing applies
    case("5", "unknown", "low", evidence(provider="zimbra"), id="5-unknown-provider"),
    case("5", "unknown", "low", v2(provider=None, trigger="account.stopped"), id="5-no-provider"),
    case(
        "5",
        "unknown",
        "low",
        evidence(provider="zimbra", domain_burst_accounts=2, domain_window_accounts=2),
        id="5-unknown-provider-below-threshold",
    ),
]


@pytest.mark.parametrize(("rule", "cause", "confidence", "ev", "policy"), CASES)
def test_first_matching_rule_decides(rule: str, cause: str, confidence: str, ev: Evidence, policy: Policy) -> None:
    diagnosis = diagnose(ev, policy)

    assert (diagnosis.cause, diagnosis.confidence) == (cause, confidence)
    # Every row up to the matching one was asked, in table order, and only the last one said yes.
    assert [s.step for s in diagnosis.steps] == TABLE_ORDER[: TABLE_ORDER.index(rule) + 1]
    assert [s.answer.split(":")[0] for s in diagnosis.steps] == ["No"] * (len(diagnosis.steps) - 1) + ["Yes"]
    assert all(s.question.endswith("?") for s in diagnosis.steps)
    assert diagnosis.summary.strip()
    assert "\n" not in diagnosis.summary
    assert all(ACTOR.match(action) for action in diagnosis.actions), diagnosis.actions
    assert bool(diagnosis.actions) == (cause != "recovered")
    if ev.email:
        assert ev.email not in diagnosis.summary + " ".join(diagnosis.actions)


def steps_by_id(diagnosis: Diagnosis) -> dict[str, str]:
    return {s.step: s.answer for s in diagnosis.steps}


@pytest.mark.parametrize(
    ("ev", "step", "words"),
    [
        pytest.param(evidence(), "0", "grant as invalid", id="0-says-grant-still-invalid"),
        pytest.param(v2(status="stopped"), "0", "account as stopped", id="0-v2-says-account-stopped"),
        pytest.param(v2(billing_state="paid"), "1", "billing state is paid", id="1-v2-says-billing-paid"),
        pytest.param(evidence(), "1", "grant still exists", id="1-v3-says-grant-exists"),
        pytest.param(
            evidence(email="a@gmail.com", domain_burst_accounts=9),
            "2a",
            "gmail.com is a free-mail domain",
            id="2a-says-free-mail",
        ),
        pytest.param(
            evidence(domain_burst_accounts=2, domain_window_accounts=2),
            "2a",
            "2 accounts at example.com failed within 15 minutes (3 needed)",
            id="2a-says-count-below-threshold",
        ),
        pytest.param(
            evidence(domain_window_accounts=2),
            "2b",
            "2 accounts at example.com failed within 7 days (3 needed)",
            id="2b-says-count-below-threshold",
        ),
        pytest.param(v2(provider="eas", inbox_count=3), "3a", "holds 3 messages", id="3a-says-inbox-count"),
        pytest.param(v2(provider="imap"), "3b", "trigger is account.invalid", id="3b-says-trigger-not-stopped"),
        pytest.param(evidence(), "3c", "signs in with OAuth", id="3c-says-oauth"),
        pytest.param(
            evidence(last_authenticated_at=before_failure(days=7, hours=12, seconds=1)),
            "4a",
            "failed 7 days 12 hours 1 second after its consents",
            id="4a-says-how-long-after-sign-in",
        ),
        pytest.param(
            evidence(provider="microsoft", last_authenticated_at=before_failure(days=89)),
            "4b",
            "failed 89 days after its last token refresh",
            id="4b-says-89-days",
        ),
        pytest.param(evidence(), "4c", "trigger is grant.expired", id="4c-says-token-rejected"),
    ],
)
def test_passed_over_rules_say_why(ev: Evidence, step: str, words: str) -> None:
    answer = steps_by_id(diagnose(ev, Policy()))[step]

    assert answer.startswith("No: ")
    assert words in answer


@pytest.mark.parametrize(
    ("ev", "words"),
    [
        pytest.param(
            evidence(domain_burst_accounts=3, domain_window_accounts=3),
            "3 accounts at example.com failed within 15 minutes: their administrator disconnected the app.",
            id="2a-names-domain-and-burst",
        ),
        pytest.param(
            evidence(domain_burst_accounts=1, domain_window_accounts=4),
            "4 accounts at example.com failed within 7 days",
            id="2b-names-domain-and-window",
        ),
        pytest.param(
            evidence(last_authenticated_at=before_failure(days=7, hours=2)),
            "died 7 days 2 hours after consent",
            id="4a-names-token-age",
        ),
        pytest.param(
            evidence(provider="microsoft", last_authenticated_at=before_failure(days=95)),
            "95 days",
            id="4b-names-token-age",
        ),
        pytest.param(v2(provider="eas", inbox_count=1), "only 1 message", id="3a-names-inbox-count"),
        pytest.param(
            evidence(provider="office365"),
            "access ended: its sessions were revoked (by the user or an administrator), a Conditional Access policy",
            id="4d-microsoft-leads-with-what-ends-a-refresh-token",
        ),
        pytest.param(
            evidence(provider="office365"),
            "a password change only where the organisation ends sessions on one.",
            id="4d-microsoft-password-change-only-where-it-ends-sessions",
        ),
        pytest.param(evidence(provider="gmail"), "access ended: a password change", id="4d-google-password-change"),
    ],
)
def test_summary_names_the_cause(ev: Evidence, words: str) -> None:
    assert words in diagnose(ev, Policy()).summary


@pytest.mark.parametrize(
    ("ev", "words"),
    [
        pytest.param(
            evidence(last_authenticated_at=before_failure(days=7)),
            "Operator: publish the Google OAuth app out of testing mode",
            id="4a-operator-publishes-app",
        ),
        pytest.param(
            evidence(last_authenticated_at=before_failure(days=7)),
            "Customer: reconnect",
            id="4a-customer-reconnects",
        ),
        pytest.param(
            evidence(provider="microsoft", domain_burst_accounts=3, domain_window_accounts=3),
            "Microsoft admin: check the Entra ID sign-in logs",
            id="2a-microsoft-admin-sign-in-logs",
        ),
        pytest.param(
            evidence(provider="office365", domain_window_accounts=3),
            "Conditional Access sign-in frequency",
            id="2b-microsoft-conditional-access",
        ),
        pytest.param(
            evidence(domain_window_accounts=3),
            "Google Cloud session control re-authentication policy",
            id="2b-google-session-control",
        ),
        pytest.param(
            evidence(domain_burst_accounts=3, domain_window_accounts=3),
            "App access control",
            id="2a-google-app-access-control",
        ),
        pytest.param(
            evidence(domain_burst_accounts=3, domain_window_accounts=3),
            "Customer: forward the admin-contact email",
            id="2a-customer-forwards-to-admin",
        ),
        pytest.param(v2(provider="eas", inbox_count=0), "inbox has more than 2 messages", id="3a-fill-the-inbox"),
        pytest.param(
            v2(provider="imap", trigger="account.stopped"),
            "sync logs in the Nylas dashboard for IMAP UID errors",
            id="3b-check-uid-errors",
        ),
        pytest.param(v2(provider="imap"), "reconnect the account with the new password", id="3c-reconnect"),
        pytest.param(
            evidence(provider="microsoft", last_authenticated_at=before_failure(days=90)),
            "Customer: reconnect",
            id="4b-customer-reconnects",
        ),
        pytest.param(v2(trigger="account.stopped"), "sync logs in the Nylas dashboard", id="4c-check-sync-logs"),
        pytest.param(evidence(provider="microsoft"), "Entra ID sign-in logs", id="4d-microsoft-hint"),
        pytest.param(evidence(), "Third-party apps", id="4d-google-hint"),
        pytest.param(evidence(exists=False), "Nylas dashboard API logs", id="1-operator-checks-api-logs"),
        pytest.param(evidence(provider="zimbra"), "Operator: look at the account", id="5-operator-investigates"),
    ],
)
def test_actions_say_who_does_what(ev: Evidence, words: str) -> None:
    assert any(words in action for action in diagnose(ev, Policy()).actions)


@pytest.mark.parametrize(
    ("failures", "recurring"),
    [
        pytest.param(2, False, id="recurring-2-failures-not-yet"),
        pytest.param(3, True, id="recurring-3-failures"),
    ],
)
def test_recurring_from_three_failures_in_30_days(failures: int, recurring: bool) -> None:
    diagnosis = diagnose(evidence(failures_last_30_days=failures), Policy())

    assert diagnosis.recurring is recurring
    assert ("stops frequently" in diagnosis.summary) is recurring
    assert any("recurring" in action for action in diagnosis.actions) is recurring


def test_recurring_is_reported_even_when_the_account_recovered() -> None:
    diagnosis = diagnose(evidence(status="valid", failures_last_30_days=4), Policy())

    assert (diagnosis.cause, diagnosis.recurring) == ("recovered", True)
    assert "4 failures in the last 30 days" in diagnosis.summary


def test_questions_name_the_policy_thresholds() -> None:
    policy = Policy(domain_cluster_threshold=4, domain_burst_minutes=30, domain_window_days=14)

    questions = {s.step: s.question for s in diagnose(evidence(), policy).steps}

    assert "4 or more accounts" in questions["2a"]
    assert "30 minutes" in questions["2a"]
    assert "14 days" in questions["2b"]


def test_burst_window_length_comes_from_the_policy() -> None:
    diagnosis = diagnose(evidence(domain_burst_accounts=3, domain_window_accounts=3), Policy(domain_burst_minutes=30))

    assert diagnosis.summary.startswith("3 accounts at example.com failed within 30 minutes")


# ---------------------------------------------------------------------------------------------
# Rule 1b (SPEC §4): a connector outage needs the threshold, 3 domains and 5× the usual rate.


def outage(accounts: int, domains: int, usual: float = 0.0, **changes: Any) -> Evidence:
    return replace(
        evidence(provider="microsoft", email="ann@contoso.com", **changes),
        connector="microsoft",
        connector_burst_accounts=accounts,
        connector_burst_domains=domains,
        connector_usual_failures=usual,
    )


@pytest.mark.parametrize(
    ("ev", "cause"),
    [
        pytest.param(outage(10, 3), "connector_outage", id="1b-threshold-3-domains-no-history"),
        pytest.param(outage(9, 9), "oauth_revoked", id="1b-threshold-minus-one"),
        pytest.param(outage(15, 2), "oauth_revoked", id="1b-two-domains-is-one-organisation-not-the-connector"),
        pytest.param(outage(15, 3, usual=2.9), "connector_outage", id="1b-above-5x-baseline"),
        pytest.param(outage(15, 3, usual=3.1), "oauth_revoked", id="1b-below-5x-baseline-is-a-normal-day"),
        pytest.param(
            outage(15, 13, domain_burst_accounts=3), "connector_outage", id="1b-beats-2a-organisations-in-an-outage"
        ),
        pytest.param(outage(12, 12, exists=False), "app_revoked", id="1-beats-1b-grant-removed"),
        pytest.param(outage(12, 12, status="valid"), "recovered", id="0-beats-1b"),
    ],
)
def test_connector_outage(ev: Evidence, cause: str) -> None:
    diagnosis = diagnose(ev, Policy(connector_outage_threshold=10))
    assert diagnosis.cause == cause
    if cause == "connector_outage":
        assert diagnosis.confidence == "high"
        assert any("client secret expired" in action for action in diagnosis.actions)
        assert any("account-doctor incident release" in action for action in diagnosis.actions)


def test_connector_outage_with_free_mail_members_counts_their_domains() -> None:
    ev = replace(outage(10, 3), email="ann@hotmail.com", domain="hotmail.com", free_mail=True)
    assert diagnose(ev, Policy()).cause == "connector_outage"


# Rule 4a checks every consent; rule 4b never counts the grant's creation as activity.
def test_4a_any_consent_seven_days_before_matches() -> None:
    ev = replace(evidence(), consents=(before_failure(days=40), before_failure(days=7, hours=1)))
    assert diagnose(ev, Policy()).cause == "google_testing_mode"


def test_4b_created_at_alone_is_no_evidence_of_inactivity() -> None:
    ev = replace(evidence(provider="microsoft"), consents=(before_failure(days=200),), last_refreshed_at=None)
    assert diagnose(ev, Policy()).cause == "oauth_revoked"


@pytest.mark.parametrize(
    "domain",
    [
        "comcast.net",
        "att.net",
        "qq.com",
        "163.com",
        "naver.com",
        "web.de",
        "t-online.de",
        "orange.fr",
        "hotmail.co.uk",
        "yahoo.co.jp",
    ],
)
def test_consumer_and_isp_domains_never_form_an_organisation(domain: str) -> None:
    ev = evidence(email=f"someone@{domain}", domain_burst_accounts=9, domain_window_accounts=9)
    assert diagnose(ev, Policy()).cause not in ("admin_disconnected", "admin_session_policy")
