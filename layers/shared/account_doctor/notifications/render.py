"""Renders a verdict's emails (subject, text and HTML parts) from the package's Jinja2 templates."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from account_doctor.models import NotificationKind, Verdict
from account_doctor.notifications.audience import (
    CUSTOMER_EMAIL,
    DOMAIN_INCIDENT_CAUSES,
    Recipient,
    is_deliverable,
    recipients,
)
from account_doctor.notifications.wording import (
    OPERATOR_ACTION,
    admin_contact_copy,
    admin_steps,
    reconnect_copy,
)
from account_doctor.settings import Settings

# Templates ship inside the package, hence inside the Lambda layer. Autoescape covers every
# .html template, so no value a webhook or a provider controls can add markup.
_ENVIRONMENT = Environment(
    loader=PackageLoader("account_doctor.notifications", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)

# Evidence keys whose values are never shown, wherever they are nested.
_SECRET_MARKERS = ("token", "secret", "password", "api_key", "apikey", "authorization", "credential")


@dataclass(frozen=True)
class RenderedEmail:
    kind: NotificationKind
    to: str
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class OutgoingEmail:
    """One email a verdict calls for: who gets it, how repeats are held back, and what it says."""

    recipient: Recipient
    email: RenderedEmail


def compose(verdict: Verdict, settings: Settings, reconnect_url: str | None) -> list[OutgoingEmail]:
    """Every email the verdict calls for, rendered. reconnect_url is needed when a customer is emailed."""
    outgoing = []
    for recipient in recipients(verdict, settings.operator_email):
        if recipient.audience == "customer":
            if reconnect_url is None:
                raise ValueError("a customer email needs the reconnect link")
            email = render_customer(recipient, verdict, settings, reconnect_url)
        else:
            email = render_operator_alert(recipient, verdict, settings)
        outgoing.append(OutgoingEmail(recipient, email))
    return outgoing


def render_customer(recipient: Recipient, verdict: Verdict, settings: Settings, reconnect_url: str) -> RenderedEmail:
    app = settings.app_name
    context: dict[str, Any] = {"app_name": app, "reconnect_url": reconnect_url}
    if recipient.kind == "admin_contact":
        domain = verdict.domain or "your organisation"
        copy = admin_contact_copy(
            verdict.cause, app=app, email=recipient.to, domain=domain, accounts=_affected_accounts(verdict)
        )
        context.update(admin=admin_steps(verdict.provider, app=app, cause=verdict.cause), domain=domain)
    else:
        copy = reconnect_copy(verdict.cause, app=app, email=recipient.to, provider=verdict.provider)
    context.update(copy=copy, subject=copy.subject)
    return _render(recipient, _one_line(copy.subject), context)


def render_operator_alert(recipient: Recipient, verdict: Verdict, settings: Settings) -> RenderedEmail:
    app = settings.app_name
    subject = f"{app} alert: {verdict.cause} for {verdict.email or verdict.account_id}"
    # The diagnosis writes the actions for its finding; the per-cause default covers a verdict without any.
    actions = list(verdict.actions) or [
        OPERATOR_ACTION.get(verdict.cause, "Ask the customer to reconnect the mailbox.")
    ]
    context = {
        "app_name": app,
        "subject": subject,
        "verdict": verdict,
        "facts": _facts(verdict),
        "actions": actions,
        "customer_note": _customer_note(recipient, verdict, settings),
        "evidence": json.dumps(redact(verdict.evidence), indent=2, sort_keys=True, default=str),
    }
    return _render(recipient, _one_line(subject), context)


def redact(value: Any) -> Any:
    """The evidence with every secret-looking field blanked: an alert never carries a token."""
    if isinstance(value, dict):
        return {
            key: "[redacted]" if any(m in str(key).lower() for m in _SECRET_MARKERS) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    return value


def _render(recipient: Recipient, subject: str, context: dict[str, Any]) -> RenderedEmail:
    html = _ENVIRONMENT.get_template(f"{recipient.kind}.html").render(context)
    text = _ENVIRONMENT.get_template(f"{recipient.kind}.txt").render(context)
    return RenderedEmail(kind=recipient.kind, to=recipient.to, subject=subject, text=text, html=html)


def _one_line(text: str) -> str:
    """Subjects are mail headers: no line breaks, whatever the values in them contain."""
    return " ".join(text.split())[:200]


def _affected_accounts(verdict: Verdict) -> int | None:
    key = "domain_burst_accounts" if verdict.cause == "admin_disconnected" else "domain_window_accounts"
    value = verdict.evidence.get(key)
    return value if isinstance(value, int) and value > 1 else None


def _facts(verdict: Verdict) -> list[tuple[str, str]]:
    return [
        ("Account", verdict.account_id),
        ("Customer", verdict.email or "none on file"),
        ("Provider", f"{verdict.provider or 'unknown'} ({verdict.auth_method})"),
        ("Domain", verdict.domain or "-"),
        ("Trigger", f"{verdict.trigger} (Nylas {verdict.api_version})"),
        ("Occurred at", verdict.occurred_at),
        ("Diagnosed at", verdict.diagnosed_at),
        ("Confidence", verdict.confidence),
        ("Recurring", "yes: 3 or more failures in 30 days" if verdict.recurring else "no"),
        ("Event", verdict.event_id),
    ]


def _customer_note(recipient: Recipient, verdict: Verdict, settings: Settings) -> str:
    customer_kind = CUSTOMER_EMAIL.get(verdict.cause)
    notes = []
    if customer_kind is None:
        notes.append("The customer is not emailed for this cause.")
    elif not verdict.email:
        notes.append("No customer address on file: the customer has NOT been told. Reach them yourself.")
    elif not is_deliverable(verdict.email):
        notes.append(
            f"The customer address on file ({verdict.email}) is not a usable email address: the customer has NOT "
            "been told. Reach them yourself."
        )
    else:
        label = "an admin-contact" if customer_kind == "admin_contact" else "a reconnect"
        notes.append(
            f"The customer ({verdict.email}) is sent {label} email "
            f"(at most one per {settings.notify_cooldown_hours} h per account)."
        )
    if recipient.gate == "incident" and verdict.cause in DOMAIN_INCIDENT_CAUSES:
        window = (
            f"{settings.domain_burst_minutes} minutes"
            if verdict.cause == "admin_disconnected"
            else f"{settings.domain_window_days} days"
        )
        notes.append(
            f"One alert per domain incident: further {verdict.cause} failures of {verdict.domain} "
            f"less than {window} apart are not alerted again."
        )
    return " ".join(notes)
