"""Scenarios: an account's failure, the Nylas state behind it, the webhooks that tell; and the demo's accounts.

Each scenario says what Nylas will answer about the account (loaded into the simulator, or answered
through `responses` in tests), which webhooks Nylas sends (v3 CloudEvents or v2 deltas), and what
the diagnosis must conclude: the cause and which emails go out. `SCENARIOS` are the demo's accounts,
one or more per cause of SPEC §4, which `make demo` and the e2e test check; the queue's per-cause
scenarios behind events/sqs-*.json are in `local_stack.sample_sqs_events`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from account_doctor.models import AccountEvent, from_epoch
from local_stack.payloads import json_body, v2_delta, v3_notification
from local_stack.simulator import Grant, NylasSimulator, V2Account

CustomerEmail = Literal["reconnect", "admin_contact"]
DAY = 86_400


@dataclass(frozen=True)
class Scenario:
    """One account's failure: how Nylas reports it, what Nylas answers about the account, what the diagnosis concludes.

    Times are ages in days before `now`, the moment the scenario is played: the wall clock for the
    demo, a fixed date for events/ and the tests.
    """

    account_id: str
    api_version: Literal["v2", "v3"]
    provider: str
    email: str
    trigger: str  # the failure Nylas reports
    expected_cause: str
    story: str  # one line: what happened to this account
    customer_email: CustomerEmail | None = None
    # Operator alerts are one per domain incident: scenarios of one incident share the key.
    operator_alert: str | None = None
    # v3 grant / v2 account state that Nylas answers with.
    status: str = "invalid"
    billing_state: str = "paid"
    authenticated_days_ago: float = 30.0
    inbox_count: int | None = None
    failed_days_ago: float = 0.0
    exists: bool = True
    reauthenticated: bool = False  # a grant.updated with reauthentication_flag follows the failure
    # Failures already in the history when this one arrives (a domain cluster's neighbours).
    history: tuple[Scenario, ...] = ()
    # A cluster member diagnosed before enough of its neighbours counted themselves: asked to reconnect
    # first, then revised to `customer_email` once the incident opens (a failure counts once diagnosed).
    may_be_revised: bool = False

    def failed_at(self, now: float) -> float:
        return now - self.failed_days_ago * DAY

    def authenticated_at(self, now: float) -> int:
        return round(now - self.authenticated_days_ago * DAY)

    def account_event(self, now: float) -> AccountEvent:
        """The failure as the webhook hands it to the queue; v2 deltas carry no address or provider."""
        v3 = self.api_version == "v3"
        return AccountEvent(
            event_id=f"evt-{self.account_id}",
            api_version=self.api_version,
            trigger=self.trigger,
            account_id=self.account_id,
            occurred_at=from_epoch(round(self.failed_at(now))),
            provider=self.provider if v3 else None,
            email=self.email if v3 else None,
            grant_updated_at=from_epoch(self.authenticated_at(now)) if v3 else None,
        )

    def nylas_state(self, now: float) -> Grant | V2Account | None:
        """What Nylas describes at `now`: the v3 grant or v2 account, None when it is gone (404)."""
        if not self.exists:
            return None
        if self.api_version == "v2":
            return V2Account(
                account_id=self.account_id,
                email=self.email,
                provider=self.provider,
                sync_state=self.status,
                billing_state=self.billing_state,
            )
        authenticated = self.authenticated_at(now)
        grant = Grant(
            grant_id=self.account_id,
            email=self.email,
            provider=self.provider,
            grant_status=self.status,
            created_at=authenticated - 30 * DAY,
            updated_at=round(now) if self.status == "valid" else authenticated,
        )
        if self.inbox_count is not None:
            grant.folders = [("Inbox", self.inbox_count), ("Sent Items", 3)]
        return grant


def _org(domain: str, name: str) -> str:
    return f"{name}@{domain}"


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "grant-recovered",
        "v3",
        "google",
        "rita.recovered@gmail.com",
        "grant.expired",
        "recovered",
        "token expired, the user re-authenticated within the grace period",
        status="valid",
        reauthenticated=True,
    ),
    Scenario(
        "acct-v2-cancelled",
        "v2",
        "gmail",
        "carl.cancelled@gmail.com",
        "account.invalid",
        "app_revoked",
        "the app cancelled the account (v2 billing_state cancelled)",
        billing_state="cancelled",
        operator_alert="acct-v2-cancelled",
    ),
    # Three accounts of one organisation failing together: its administrator disconnected the app.
    *(
        Scenario(
            f"grant-acme-{n}",
            "v3",
            "microsoft",
            _org("acme.example", name),
            "grant.expired",
            "admin_disconnected",
            "acme.example's administrator revoked the app's consent: three mailboxes failed together",
            customer_email="admin_contact",
            operator_alert="acme.example",
            may_be_revised=True,
        )
        for n, name in enumerate(("alice", "bob", "chen"), start=1)
    ),
    # One organisation whose mailboxes fail every few days: a session-length policy. The two earlier
    # failures are still broken (a failure counts toward its domain only while its grant exists and is
    # broken when diagnosed); the third makes the pattern.
    Scenario(
        "grant-globex-1",
        "v3",
        "google",
        _org("globex.example", "dana"),
        "grant.expired",
        "admin_session_policy",
        "globex.example failure 60 hours ago (inside WebhookMaxAgeHours), not reconnected since",
        failed_days_ago=2.5,
        customer_email="admin_contact",
        operator_alert="globex.example",
        may_be_revised=True,
    ),
    Scenario(
        "grant-globex-2",
        "v3",
        "google",
        _org("globex.example", "eli"),
        "grant.expired",
        "admin_session_policy",
        "globex.example failure two days ago, not reconnected since",
        failed_days_ago=2,
        customer_email="admin_contact",
        operator_alert="globex.example",
        may_be_revised=True,
    ),
    Scenario(
        "grant-globex-3",
        "v3",
        "google",
        _org("globex.example", "fay"),
        "grant.expired",
        "admin_session_policy",
        "third globex.example mailbox to fail this week: a session-length policy",
        customer_email="admin_contact",
        operator_alert="globex.example",
    ),
    Scenario(
        "grant-ews-sparse",
        "v3",
        "ews",
        _org("initech.example", "gus"),
        "grant.expired",
        "eas_sparse_inbox",
        "Exchange by password with an almost empty inbox",
        inbox_count=1,
        customer_email="reconnect",
        operator_alert="grant-ews-sparse",
    ),
    Scenario(
        "acct-v2-imap",
        "v2",
        "imap",
        _org("hooli.example", "hana"),
        "account.sync_error",
        "imap_sync_errors",
        "IMAP server keeps failing the sync (v2 account.sync_error)",
        status="sync-error",
        operator_alert="acct-v2-imap",
    ),
    Scenario(
        "grant-yahoo",
        "v3",
        "yahoo",
        "ivan.password@yahoo.com",
        "grant.expired",
        "password_changed",
        "Yahoo by app password: the password changed",
        customer_email="reconnect",
    ),
    # Free-mail control group: three gmail.com accounts failing together must not look like one organisation.
    Scenario(
        "grant-gmail-testing",
        "v3",
        "google",
        "jo.testing@gmail.com",
        "grant.expired",
        "google_testing_mode",
        "Google token died 7 days after sign-in: OAuth app still in testing mode",
        authenticated_days_ago=7,
        customer_email="reconnect",
        operator_alert="grant-gmail-testing",
    ),
    Scenario(
        "grant-gmail-revoked-1",
        "v3",
        "google",
        "kim.revoked@gmail.com",
        "grant.expired",
        "oauth_revoked",
        "gmail.com user revoked access (free-mail control group)",
        authenticated_days_ago=40,
        customer_email="reconnect",
    ),
    Scenario(
        "grant-gmail-revoked-2",
        "v3",
        "google",
        "lee.revoked@gmail.com",
        "grant.expired",
        "oauth_revoked",
        "gmail.com user changed password (free-mail control group)",
        authenticated_days_ago=2,
        customer_email="reconnect",
    ),
    Scenario(
        "grant-ms-90d",
        "v3",
        "microsoft",
        "max.stale@hotmail.com",
        "grant.expired",
        "microsoft_token_expired",
        "Microsoft refresh token unused for over 90 days",
        authenticated_days_ago=100,
        customer_email="reconnect",
    ),
    Scenario(
        "acct-v2-stopped",
        "v2",
        "gmail",
        "nia.stopped@gmail.com",
        "account.stopped",
        "sync_stopped",
        "OAuth account stopped syncing, credentials still good (v2 account.stopped)",
        status="stopped",
        operator_alert="acct-v2-stopped",
    ),
    Scenario(
        "acct-v2-custom",
        "v2",
        "custom",
        _org("umbrella.example", "oz"),
        "account.invalid",
        "unknown",
        "a provider the procedure does not know",
        operator_alert="acct-v2-custom",
    ),
)

# A grant that broke while no webhook reached Account Doctor: no webhook is ever posted for it, so it is not in
# SCENARIOS. Loaded into the simulator like the others (`load_simulator(simulator, [MISSED_WEBHOOK])`), it is
# found by the reconciliation sweep (SPEC §3b; `local_stack.sweep_demo.run_sweep`). It broke a few hours ago
# (the grant's updated_at), well within SweepNotifyDays, so the customer gets the reconnect email.
MISSED_WEBHOOK = Scenario(
    "grant-missed-webhook",
    "v3",
    "icloud",
    "pia.missed@icloud.com",
    "grant.expired",
    "password_changed",
    "iCloud app password changed while the webhook endpoint was down: found by the sweep",
    customer_email="reconnect",
    authenticated_days_ago=0.125,
)


def load_simulator(
    simulator: NylasSimulator, scenarios: Iterable[Scenario] = SCENARIOS, *, now: float | None = None
) -> None:
    """Gives the simulator each scenario's grant (v3) or account (v2), as Nylas would describe it now."""
    now = time.time() if now is None else now
    for scenario in scenarios:
        state = scenario.nylas_state(now)
        if isinstance(state, Grant):
            simulator.add_grant(state)
        elif isinstance(state, V2Account):
            simulator.add_account(state)


@dataclass(frozen=True)
class Webhook:
    """One POST Nylas would make: the raw body and which credential signs it."""

    body: bytes
    signed_with: Literal["webhook_secret", "client_secret"]
    accounts: list[str] = field(default_factory=list)


def v3_failure(scenario: Scenario, *, occurred: float, now: float) -> dict[str, Any]:
    """The v3 notification of the scenario's failure, its grant last authenticated as the scenario says."""
    return v3_notification(
        scenario.trigger,
        grant_id=scenario.account_id,
        provider=scenario.provider,
        email=scenario.email,
        occurred=occurred,
        grant_updated_at=scenario.authenticated_at(now),
        code=25009,
    )


def v3_recovery(scenario: Scenario, *, occurred: float) -> dict[str, Any]:
    """The v3 notification that the scenario's account signed in again (grant.updated, reauthentication_flag)."""
    return v3_notification(
        "grant.updated",
        grant_id=scenario.account_id,
        provider=scenario.provider,
        email=scenario.email,
        occurred=occurred,
        reauthentication_flag=True,
        grant_updated_at=int(occurred),
    )


def webhooks(scenarios: Iterable[Scenario] = SCENARIOS, *, now: float | None = None) -> list[Webhook]:
    """What Nylas sends for the scenarios: a v3 POST per event, and one v2 POST carrying every v2 delta."""
    now = time.time() if now is None else now
    posts: list[Webhook] = []
    deltas: list[dict[str, Any]] = []
    v2_accounts: list[str] = []
    for scenario in sorted(scenarios, key=lambda s: -s.failed_days_ago):  # oldest first, as Nylas would
        occurred = scenario.failed_at(now)
        if scenario.api_version == "v2":
            deltas.append(v2_delta(scenario.trigger, account_id=scenario.account_id, occurred=occurred))
            v2_accounts.append(scenario.account_id)
            continue
        failure = v3_failure(scenario, occurred=occurred, now=now)
        posts.append(Webhook(json_body(failure), "webhook_secret", [scenario.account_id]))
        if scenario.reauthenticated:
            recovery = v3_recovery(scenario, occurred=occurred + 1)
            posts.append(Webhook(json_body(recovery), "webhook_secret", [scenario.account_id]))
    if deltas:
        posts.append(Webhook(json_body({"deltas": deltas}), "client_secret", v2_accounts))
    return posts


def expected_operator_alerts(scenarios: Iterable[Scenario] = SCENARIOS) -> int:
    return len({s.operator_alert for s in scenarios if s.operator_alert})
