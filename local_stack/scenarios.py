"""The demo's scenario accounts: one per cause of SPEC §4, the Nylas state behind each, the webhooks that tell.

Each scenario says what Nylas will answer about the account (loaded into the simulator), which
webhooks Nylas sends (v3 CloudEvents or v2 deltas), and what the diagnosis must conclude: the
cause and which emails go out. `make demo` and the e2e test check every one of them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from local_stack.simulator import Grant, NylasSimulator, V2Account

CustomerEmail = Literal["reconnect", "admin_contact"]
DAY = 86_400


@dataclass(frozen=True)
class Scenario:
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
    # v3 grant / v2 account state that the simulator answers with.
    status: str = "invalid"
    billing_state: str = "paid"
    authenticated_days_ago: float = 30.0
    inbox_count: int | None = None
    failed_days_ago: float = 0.0
    exists: bool = True
    reauthenticated: bool = False  # a grant.updated with reauthentication_flag follows the failure


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
        )
        for n, name in enumerate(("alice", "bob", "chen"), start=1)
    ),
    # One organisation whose mailboxes fail every few days: a session-length policy. The two earlier
    # failures have since re-authenticated, so they are recovered; the third makes the pattern.
    Scenario(
        "grant-globex-1",
        "v3",
        "google",
        _org("globex.example", "dana"),
        "grant.expired",
        "recovered",
        "globex.example failure five days ago, re-authenticated since",
        status="valid",
        failed_days_ago=5,
    ),
    Scenario(
        "grant-globex-2",
        "v3",
        "google",
        _org("globex.example", "eli"),
        "grant.expired",
        "recovered",
        "globex.example failure two days ago, re-authenticated since",
        status="valid",
        failed_days_ago=2,
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


def load_simulator(
    simulator: NylasSimulator, scenarios: Iterable[Scenario] = SCENARIOS, *, now: float | None = None
) -> None:
    """Gives the simulator each scenario's grant (v3) or account (v2), as Nylas would describe it now."""
    now = time.time() if now is None else now
    for scenario in scenarios:
        if not scenario.exists:
            continue
        if scenario.api_version == "v3":
            authenticated = int(now - scenario.authenticated_days_ago * DAY)
            grant = Grant(
                grant_id=scenario.account_id,
                email=scenario.email,
                provider=scenario.provider,
                grant_status=scenario.status,
                created_at=authenticated - 30 * DAY,
                updated_at=int(now) if scenario.status == "valid" else authenticated,
            )
            if scenario.inbox_count is not None:
                grant.folders = [("Inbox", scenario.inbox_count), ("Sent Items", 3)]
            simulator.add_grant(grant)
        else:
            simulator.add_account(
                V2Account(
                    account_id=scenario.account_id,
                    email=scenario.email,
                    provider=scenario.provider,
                    sync_state=scenario.status,
                    billing_state=scenario.billing_state,
                )
            )


@dataclass(frozen=True)
class Webhook:
    """One POST Nylas would make: the raw body and which credential signs it."""

    body: bytes
    signed_with: Literal["webhook_secret", "client_secret"]
    accounts: list[str] = field(default_factory=list)


def v3_notification(
    trigger: str, *, grant_id: str, provider: str, email: str, occurred: float, **object_fields: Any
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": trigger,
        "source": "/nylas/system",
        "id": str(uuid.uuid4()),
        "time": int(occurred),
        "webhook_delivery_attempt": 1,
        "data": {
            "application_id": "local-application",
            "object": {
                "code": 25009,
                "grant_id": grant_id,
                "integration_id": "local-integration",
                "provider": provider,
                "email": email,
                **object_fields,
            },
        },
    }


def v2_delta(trigger: str, *, account_id: str, occurred: float) -> dict[str, Any]:
    return {
        "date": int(occurred),
        "object": "account",
        "type": trigger,
        "object_data": {
            "namespace_id": account_id,
            "account_id": account_id,
            "object": "account",
            "attributes": None,
            "id": account_id,
            "metadata": None,
        },
    }


def v3_failure(scenario: Scenario, *, occurred: float, now: float) -> dict[str, Any]:
    """The v3 notification of the scenario's failure, its grant last authenticated as the scenario says."""
    return v3_notification(
        scenario.trigger,
        grant_id=scenario.account_id,
        provider=scenario.provider,
        email=scenario.email,
        occurred=occurred,
        grant_updated_at=int(now - scenario.authenticated_days_ago * DAY),
    )


def webhooks(scenarios: Iterable[Scenario] = SCENARIOS, *, now: float | None = None) -> list[Webhook]:
    """What Nylas sends for the scenarios: a v3 POST per event, and one v2 POST carrying every v2 delta."""
    now = time.time() if now is None else now
    posts: list[Webhook] = []
    deltas: list[dict[str, Any]] = []
    v2_accounts: list[str] = []
    for scenario in sorted(scenarios, key=lambda s: -s.failed_days_ago):  # oldest first, as Nylas would
        occurred = now - scenario.failed_days_ago * DAY
        if scenario.api_version == "v2":
            deltas.append(v2_delta(scenario.trigger, account_id=scenario.account_id, occurred=occurred))
            v2_accounts.append(scenario.account_id)
            continue
        failure = v3_failure(scenario, occurred=occurred, now=now)
        posts.append(Webhook(_body(failure), "webhook_secret", [scenario.account_id]))
        if scenario.reauthenticated:
            recovery = v3_notification(
                "grant.updated",
                grant_id=scenario.account_id,
                provider=scenario.provider,
                email=scenario.email,
                occurred=occurred + 1,
                reauthentication_flag=True,
                grant_updated_at=int(occurred + 1),
            )
            posts.append(Webhook(_body(recovery), "webhook_secret", [scenario.account_id]))
    if deltas:
        posts.append(Webhook(_body({"deltas": deltas}), "client_secret", v2_accounts))
    return posts


def _body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def expected_operator_alerts(scenarios: Iterable[Scenario] = SCENARIOS) -> int:
    return len({s.operator_alert for s in scenarios if s.operator_alert})
