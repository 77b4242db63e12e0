"""Who is told about a verdict (SPEC §4, last column): pure, so the table reads at a glance."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from account_doctor.models import Cause, NotificationKind, Verdict

Audience = Literal["customer", "operator"]
# How repeats are held back: one customer email per account per cooldown, one operator
# alert per domain incident; "event" means just once for this event (redelivery-safe).
Gate = Literal["cooldown", "incident", "event"]

# The customer email each customer-facing cause gets.
CUSTOMER_EMAIL: dict[Cause, NotificationKind] = {
    "admin_disconnected": "admin_contact",
    "admin_session_policy": "admin_contact",
    "eas_sparse_inbox": "reconnect",
    "password_changed": "reconnect",
    "google_testing_mode": "reconnect",
    "microsoft_token_expired": "reconnect",
    "oauth_revoked": "reconnect",
}
# Causes only the operating team can fix, or must also hear about.
OPERATOR_ALERTED: frozenset[Cause] = frozenset(
    {
        "app_revoked",
        "admin_disconnected",
        "admin_session_policy",
        "eas_sparse_inbox",
        "imap_sync_errors",
        "google_testing_mode",
        "sync_stopped",
        "unknown",
    }
)
# A whole organisation failing is one incident: its operator alert goes out once.
DOMAIN_INCIDENT_CAUSES: frozenset[Cause] = frozenset({"admin_disconnected", "admin_session_policy"})

# Deliberately loose: it only has to keep SES from rejecting the message (which would retry the
# record for nothing) and route unusable addresses to the operator instead.
_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$"
)


def is_deliverable(address: str | None) -> bool:
    return bool(address) and len(address or "") <= 254 and _ADDRESS.match(address or "") is not None


@dataclass(frozen=True)
class Recipient:
    kind: NotificationKind
    to: str
    audience: Audience
    gate: Gate


def recipients(verdict: Verdict, operator_email: str) -> list[Recipient]:
    """The emails a verdict calls for, customer first. Empty for `recovered`.

    A customer who cannot be emailed (no or unusable address) is the operator's to reach:
    the operator alert then goes out for this account even inside a domain incident.
    """
    cause = verdict.cause
    planned: list[Recipient] = []
    customer_kind = CUSTOMER_EMAIL.get(cause)
    customer_unreachable = customer_kind is not None and not is_deliverable(verdict.email)
    if customer_kind is not None and verdict.email and not customer_unreachable:
        planned.append(Recipient(customer_kind, verdict.email, "customer", "cooldown"))
    if cause in OPERATOR_ALERTED or customer_unreachable:
        incident = cause in DOMAIN_INCIDENT_CAUSES and verdict.domain is not None and not customer_unreachable
        planned.append(Recipient("operator_alert", operator_email, "operator", "incident" if incident else "event"))
    return planned
