"""Who is told about a verdict (SPEC §4 last column, §4b, §5): pure, so the table reads at a glance."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from account_doctor.incidents import INCIDENT_RULES
from account_doctor.models import CAUSES, Cause, NotificationKind, Occasion, ReminderEntry, Verdict

Audience = Literal["customer", "operator"]
# How repeats are held back: one customer email per account per cooldown; one operator alert per
# incident; "event" means just once for this event (redelivery-safe), e.g. a revision's single follow-up.
Gate = Literal["cooldown", "incident", "event"]

# The customer email each customer-facing cause gets.
CUSTOMER_EMAIL: dict[Cause, NotificationKind] = {
    "connector_outage": "reconnect",
    "admin_disconnected": "admin_contact",
    "admin_session_policy": "admin_contact",
    "eas_sparse_inbox": "reconnect",
    "password_changed": "reconnect",
    "google_testing_mode": "reconnect",
    "microsoft_token_expired": "reconnect",
    "oauth_revoked": "reconnect",
}
# Causes only the operating team can fix, or must also hear about: all but those the customer's reconnect fixes.
OPERATOR_ALERTED: frozenset[Cause] = frozenset(CAUSES) - {
    "recovered",
    "password_changed",
    "microsoft_token_expired",
    "oauth_revoked",
}
# Causes whose failures group into an incident and alert once: the operator hears when it opens.
INCIDENT_CAUSES: frozenset[Cause] = frozenset(cause for cause, rule in INCIDENT_RULES.items() if rule.alerts_once)

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
    held: bool = False  # recorded with status `held`, sent only when the incident is released
    reminder: ReminderEntry | None = None  # a reminder: its entry (each is its own ledger entry)

    @property
    def ledger_audience(self) -> str | None:
        """The ledger entry of a reminder, one per entry of ReminderHours; None for the default entries."""
        return f"{self.audience}#reminder#{self.reminder.sequence}" if self.reminder else None


def recipients(verdict: Verdict, operator_email: str, occasion: Occasion | None = None) -> list[Recipient]:
    """The emails a verdict calls for, customer first. Empty for `recovered`.

    A customer who cannot be emailed (no or unusable address) is the operator's to reach: the operator
    alert then goes out for this account even inside an incident.
    """
    occasion = occasion or Occasion()
    cause = verdict.cause
    if cause == "recovered":
        return []
    planned: list[Recipient] = []
    customer_kind = CUSTOMER_EMAIL.get(cause)
    unreachable = customer_kind is not None and not is_deliverable(verdict.email)
    email = verdict.email or ""
    if occasion.reminder is not None:
        # Only ever the customer's, never beside an alert: the operator heard at the verdict.
        return (
            []
            if customer_kind is None or unreachable
            else [Recipient("reminder", email, "customer", "event", reminder=occasion.reminder)]
        )
    if occasion.released:
        return [Recipient("reconnect", email, "customer", "event")] if not unreachable else []
    if verdict.revises:
        # A revision tells the customer once, only when the advice changed, and alerts as its incident does;
        # one whose customer was never told waits for its connector's release like any member's.
        if occasion.follow_up and not unreachable and occasion.notify_customer:
            planned.append(Recipient(occasion.follow_up, email, "customer", "event"))
        elif occasion.hold_customer and customer_kind is not None and not unreachable and occasion.notify_customer:
            planned.append(Recipient(customer_kind, email, "customer", "cooldown", held=True))
    elif customer_kind is not None and not unreachable and occasion.notify_customer:
        planned.append(Recipient(customer_kind, email, "customer", "cooldown", held=occasion.hold_customer))
    if cause in INCIDENT_CAUSES and verdict.incident_id and not unreachable:
        if occasion.incident_opened:
            planned.append(Recipient("operator_alert", operator_email, "operator", "incident"))
    elif (cause in OPERATOR_ALERTED or unreachable) and not verdict.revises:
        planned.append(Recipient("operator_alert", operator_email, "operator", "event"))
    return planned
