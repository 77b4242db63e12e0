"""Renders a verdict's emails (subject, text and HTML parts) from the package's Jinja2 templates."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from account_doctor import clocks, providers
from account_doctor.models import (
    ALERT_MEMBERS,
    DeliveredNotification,
    IncidentBrief,
    IncidentMember,
    Notification,
    NotificationKind,
    Occasion,
    Step,
    Verdict,
    WatchAlert,
    parse_iso,
)
from account_doctor.notifications.audience import (
    CUSTOMER_EMAIL,
    Recipient,
    is_deliverable,
    recipients,
)
from account_doctor.notifications.wording import (
    CustomerCopy,
    admin_contact_copy,
    admin_steps,
    cause_in_words,
    operator_title,
    outage_notice_copy,
    reconnect_copy,
    reminder_copy,
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

_CODE_SPAN = re.compile(r"`([^`]+)`")


def _code_spans(text: str) -> Markup:
    """Plain text for HTML: escaped first, then each `command` shown as code (nothing else becomes markup)."""
    return Markup(  # noqa: S704 - built from escaped text only
        _CODE_SPAN.sub(
            r'<code style="font-family:Menlo,Consolas,monospace;font-size:13px;background:#f3f4f6;padding:1px 4px;'
            r'border-radius:4px;word-break:break-all;">\1</code>',
            str(escape(text)),
        )
    )


_ENVIRONMENT.filters["code"] = _code_spans

# Evidence keys whose values are never shown, wherever they are nested.
_SECRET_MARKERS = ("token", "secret", "password", "api_key", "apikey", "authorization", "credential")

# Nylas documents no per-grant address in its v3 dashboard (developer.nylas.com/docs/dashboard describes the
# pages, not their URLs), so an account's link opens the dashboard, whose Grants page finds it by its id.
# The v3 dashboard also manages v2 applications. Change nylas_dashboard_link() once a grant URL is documented.
NYLAS_DASHBOARD_URL = "https://dashboard-v3.nylas.com/"
_DOMAIN_CAUSES = ("admin_disconnected", "admin_session_policy")

AlertProblem = Literal["rejected", "bounced", "complained"]

# Who an action of the diagnosis is for, by its prefix ("Operator: …"), in the order the alert shows them.
_ACTION_AUDIENCES = (
    ("Operator: ", "You (the operating team)"),
    ("Customer: ", "The customer"),
    ("Microsoft admin: ", "The customer's Microsoft administrator"),
    ("Google Workspace admin: ", "The customer's Google Workspace administrator"),
    ("Mail administrator: ", "The customer's mail administrator"),
)


class Branding(Protocol):
    """What every email needs from the settings: the app's name, and where replies go ('' = none)."""

    @property
    def app_name(self) -> str: ...

    @property
    def reply_to_email(self) -> str: ...


class AlertSettings(Branding, Protocol):
    """What an operator alert needs besides the branding: where operator alerts go."""

    @property
    def operator_email(self) -> str: ...


@dataclass(frozen=True)
class RenderedEmail:
    """An email ready to send: its kind, its recipient, and its text and HTML bodies."""

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


@dataclass(frozen=True)
class AccountLinks:
    """Where an operator looks at one account: the CLI command and the Nylas dashboard."""

    account_id: str
    email: str | None
    command: str
    dashboard: str
    note: str = ""


def compose(
    verdict: Verdict,
    settings: Settings,
    reconnect_url: str | None,
    incident: IncidentBrief | None = None,
    occasion: Occasion | None = None,
) -> list[OutgoingEmail]:
    """Every email the verdict calls for on this occasion, rendered (`make emails` and tests; the notifier
    renders one email at a time with render_email). reconnect_url is needed when a customer is emailed."""
    outgoing = []
    for recipient in recipients(verdict, settings.operator_email, occasion):
        if recipient.audience == "customer" and reconnect_url is None and recipient.kind != "outage_notice":
            raise ValueError("a customer email needs the reconnect link")
        email = render_email(recipient, verdict, settings, reconnect_url or "", incident=incident)
        outgoing.append(OutgoingEmail(recipient, email))
    return outgoing


def render_email(
    recipient: Recipient,
    verdict: Verdict,
    settings: Settings,
    reconnect_url: str,
    *,
    incident: IncidentBrief | None = None,
    rejected: Notification | None = None,
) -> RenderedEmail:
    """One email of the verdict: the customer's, the operator's alert, or (`rejected`: the customer email SES
    refused) the operator's alert that the customer could not be reached."""
    if recipient.audience == "customer":
        return render_customer(recipient, verdict, settings, reconnect_url)
    if rejected is not None:
        return render_rejected_alert(settings, verdict, rejected)
    return render_operator_alert(recipient, verdict, settings, incident)


def render_customer(recipient: Recipient, verdict: Verdict, settings: Branding, reconnect_url: str) -> RenderedEmail:
    copy, context = _customer_copy(recipient.kind, recipient.to, verdict, settings)
    if recipient.reminder is not None:
        # The original advice again (reconnect, or the admin-contact section to forward), said as a reminder.
        copy = reminder_copy(
            copy,
            app=settings.app_name,
            email=recipient.to,
            stopped_on=_day(recipient.reminder.failed_at),
            deadline=_moment(recipient.reminder.deadline) if recipient.reminder.deadline else None,
        )
    context.update(copy=copy, app_name=settings.app_name, reconnect_url=reconnect_url)
    return _render(recipient.kind, recipient.kind, recipient.to, copy.subject, context, settings)


def _customer_copy(
    kind: NotificationKind, to: str, verdict: Verdict, settings: Branding
) -> tuple[CustomerCopy, dict[str, Any]]:
    """The words of a customer email and what its template shows besides them; a reminder's are its original's."""
    app = settings.app_name
    if kind == "reminder":
        original = CUSTOMER_EMAIL[verdict.cause]
        copy, context = _customer_copy(original, to, verdict, settings)
        return copy, {**context, "original_kind": original}
    if kind == "admin_contact":
        domain = verdict.domain or "your organisation"
        copy = admin_contact_copy(
            verdict.cause,
            app=app,
            email=to,
            domain=domain,
            accounts=_affected_accounts(verdict),
            connected=_connected_mailboxes(verdict),
        )
        return copy, {"admin": admin_steps(verdict.provider, app=app, cause=verdict.cause), "domain": domain}
    if kind == "outage_notice":
        return outage_notice_copy(app=app, email=to, provider=verdict.provider), {}
    return reconnect_copy(verdict.cause, app=app, email=to, provider=verdict.provider), {}


def _day(instant: str) -> str:
    """`2026-11-30T17:00:00Z` → `30 November 2026`: the day a mailbox stopped, as a customer reads it."""
    moment = parse_iso(instant)
    return f"{moment.day} {moment:%B %Y}"


def _moment(instant: str) -> str:
    """`2026-12-03T17:00:00Z` → `Thursday 3 December 2026, 17:00 UTC`."""
    moment = parse_iso(instant)
    return f"{moment:%A} {moment.day} {moment:%B %Y, %H:%M} UTC"


def render_outage_notice(verdict: Verdict, settings: Branding, to: str | None = None) -> RenderedEmail:
    """The outage notice for a connector-incident member already asked to reconnect (SPEC §4b)."""
    address = to or verdict.email or ""
    return render_customer(Recipient("outage_notice", address, "customer", "event"), verdict, settings, "")


def render_operator_alert(
    recipient: Recipient, verdict: Verdict, settings: Settings, incident: IncidentBrief | None = None
) -> RenderedEmail:
    app = settings.app_name
    evidence = verdict.evidence if isinstance(verdict.evidence, Mapping) else {}
    connector = _connector(verdict, evidence, incident)
    title = operator_title(
        verdict.cause,
        provider=verdict.provider,
        api_version=verdict.api_version,
        domain=incident.key if incident and incident.kind == "domain" else verdict.domain,
        accounts=incident.accounts if incident else _cluster_size(verdict, evidence),
        connector=connector,
    )
    # An incident's alert is about many accounts; any other names its one account.
    who = "" if incident else f" ({verdict.email or verdict.account_id})"
    subject = f"{app} alert: {title}{who}"
    incident_id = incident.incident_id if incident else _optional_text(evidence.get("incident_id"))
    likely_causes = (
        clocks.outage_causes(connector or "", settings.policy.client_secret_expires_on, parse_iso(verdict.occurred_at))
        if verdict.cause == "connector_outage"
        else ()
    )
    release = _release_command(incident_id)
    members = incident.members[:ALERT_MEMBERS] if incident else ()
    context = {
        "app_name": app,
        "title": title,
        "verdict": verdict,
        "facts": evidence_facts(verdict, settings),
        "action_groups": _action_groups(verdict, likely_causes, release),
        "likely_causes": likely_causes,
        "notes": _notes(recipient, verdict, settings, incident, incident_id),
        "incident": incident,
        "members": [_links(m.account_id, m.email, _member_state(m)) for m in members],
        "more_members": (incident.accounts - len(members)) if incident else 0,
        "account": _links(verdict.account_id, verdict.email),
        "steps": [_step(step) for step in verdict.steps],
        "evidence": json.dumps(redact(verdict.evidence), indent=2, sort_keys=True, default=str),
    }
    return _render("operator_alert", recipient.kind, recipient.to, subject, context, settings)


def _kind_in_words(kind: str) -> str:
    """An email kind as the operator reads it: "admin-contact email", "outage notice email"."""
    return "admin-contact" if kind == "admin_contact" else kind.replace("_", " ")


def render_undeliverable(
    settings: AlertSettings, problem: AlertProblem, undelivered: DeliveredNotification
) -> RenderedEmail:
    """The operator alert for a customer email that SES refused, that bounced for good, or that the customer
    marked as spam (SPEC §5): the customer has not been told, or must not be emailed again."""
    customer, account_id = undelivered.to, undelivered.account_id
    account = account_id or "an unknown account"
    email = f"{_kind_in_words(undelivered.kind)} email"
    if problem == "rejected":
        title = f"Could not email {customer} about {account}"
        what = f"SES refused to send the {email} to the customer for good, so the customer has NOT been told."
    elif problem == "bounced":
        title = f"Could not email {customer} about {account}: the address bounced"
        what = (
            f"The {email} bounced for good (the receiving mail server rejected the address), so the customer has "
            "NOT been told."
        )
    else:
        title = f"{customer} marked the email about {account} as spam"
        what = f"The customer reported the {email} as spam."
    context = {
        "app_name": settings.app_name,
        "title": title,
        "problem": problem,
        "what": what,
        "reason": undelivered.reason or "SES gave no reason",
        "summary": undelivered.summary,
        "event_id": undelivered.event_id,
        "account": _links(account_id, customer) if account_id else None,
    }
    subject = f"{settings.app_name} alert: {title}"
    return _render("undeliverable_alert", "operator_alert", settings.operator_email, subject, context, settings)


def render_watch_alert(settings: AlertSettings, alert: WatchAlert) -> RenderedEmail:
    """The operator alert about an input or a clock (SPEC §3d): the webhook feed, the client secret."""
    context = {"app_name": settings.app_name, "title": alert.title, "alert": alert}
    subject = f"{settings.app_name} alert: {alert.title}"
    return _render("watch_alert", "operator_alert", settings.operator_email, subject, context, settings)


def render_rejected_alert(settings: AlertSettings, verdict: Verdict, rejected: Notification) -> RenderedEmail:
    """The operator alert for a customer email of this verdict that SES rejected permanently."""
    undelivered = DeliveredNotification(
        message_id=None,  # SES refused it: it never had one
        event_id=verdict.event_id,
        account_id=verdict.account_id,
        kind=rejected.kind,
        to=rejected.to or "the customer (no address on file)",
        status="rejected",
        reason=rejected.reason or "rejected by SES",
        summary=verdict.summary,
    )
    return render_undeliverable(settings, "rejected", undelivered)


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


def nylas_dashboard_link(account_id: str) -> str:
    """Where the operator finds the account in the Nylas dashboard (see NYLAS_DASHBOARD_URL)."""
    return NYLAS_DASHBOARD_URL


def account_command(account_id: str) -> str:
    """The CLI command that shows the account's status and verdicts, ready to paste into a shell."""
    return f"account-doctor verdicts {_quote(account_id)}"


def evidence_facts(verdict: Verdict, settings: Settings) -> list[tuple[str, str]]:
    """The evidence an operator reads first, as label/value rows (the raw JSON comes last)."""
    evidence = verdict.evidence if isinstance(verdict.evidence, Mapping) else {}
    state = _mapping(evidence, "state")
    facts = [
        ("Account", f"{verdict.account_id} (Nylas {verdict.api_version})"),
        ("Customer", verdict.email or "none on file"),
        ("Provider", f"{providers.display_name(verdict.provider)} ({verdict.provider or 'not reported'})"),
        ("Sign-in", {"oauth": "OAuth", "password": "password"}.get(verdict.auth_method, "unknown")),
        ("Trigger", verdict.trigger),
        ("Failed at", verdict.occurred_at),
        ("Nylas status", _nylas_status(verdict, state)),
        ("Last signed in", _last_signed_in(evidence)),
    ]
    failures = evidence.get("failures_last_30_days")
    if isinstance(failures, int):
        facts.append(("Failures in 30 days", f"{failures}{' (recurring)' if verdict.recurring else ''}"))
    if verdict.domain:
        facts.append(("Domain", _domain_fact(verdict, evidence, settings)))
    connector_accounts = evidence.get("connector_burst_accounts")
    if isinstance(connector_accounts, int) and (connector_accounts > 1 or verdict.cause == "connector_outage"):
        domains = evidence.get("connector_burst_domains")
        usual = evidence.get("connector_usual_failures")
        facts.append(
            (
                "Connector failures",
                f"{connector_accounts} accounts"
                + (f" from {domains} email domain{'' if domains == 1 else 's'}" if isinstance(domains, int) else "")
                + f" within {settings.domain_burst_minutes} minutes"
                + (f" (usually {usual:.1f})" if isinstance(usual, (int, float)) and usual else " (usually none)"),
            )
        )
    inbox = state.get("inbox_count")
    if isinstance(inbox, int):
        facts.append(("Inbox messages", str(inbox)))
    facts += [("Confidence", verdict.confidence), ("Diagnosed at", verdict.diagnosed_at), ("Event", verdict.event_id)]
    return facts


# ---------------------------------------------------------------------------------------------


def _render(
    template: str, kind: NotificationKind, to: str, subject: str, context: dict[str, Any], branding: Branding
) -> RenderedEmail:
    subject = _one_line(subject)
    context = {**context, "subject": subject, "reply_to_email": branding.reply_to_email}
    html = _ENVIRONMENT.get_template(f"{template}.html").render(context)
    text = _ENVIRONMENT.get_template(f"{template}.txt").render(context)
    return RenderedEmail(kind=kind, to=to, subject=subject, text=text, html=html)


def _one_line(text: str) -> str:
    """Subjects are mail headers: no line breaks, whatever the values in them contain."""
    return " ".join(text.split())[:200]


def _release_command(incident_id: str | None) -> str:
    return f"account-doctor incident release {_quote(incident_id or 'INCIDENT_ID')}"


def _quote(value: str) -> str:
    return shlex.quote(value)


def _mapping(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, Mapping) else {}


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _links(account_id: str, email: str | None, note: str = "") -> AccountLinks:
    return AccountLinks(account_id, email, account_command(account_id), nylas_dashboard_link(account_id), note)


def _member_state(member: IncidentMember) -> str:
    return "recovered" if member.recovered else cause_in_words(member.latest_cause)


def _step(step: Step | Mapping[str, Any]) -> Step:
    return step if isinstance(step, Step) else Step(str(step["step"]), str(step["question"]), str(step["answer"]))


def _connector(verdict: Verdict, evidence: Mapping[str, Any], incident: IncidentBrief | None) -> str | None:
    if incident is not None and incident.kind == "connector":
        return incident.key
    return _optional_text(evidence.get("connector")) or providers.connector(verdict.provider)


def _cluster_size(verdict: Verdict, evidence: Mapping[str, Any]) -> int | None:
    key = {
        "admin_disconnected": "domain_burst_accounts",
        "admin_session_policy": "domain_window_accounts",
        "connector_outage": "connector_burst_accounts",
    }.get(verdict.cause)
    value = evidence.get(key) if key else None
    return value if isinstance(value, int) and value > 1 else None


def _affected_accounts(verdict: Verdict) -> int | None:
    key = "domain_burst_accounts" if verdict.cause == "admin_disconnected" else "domain_window_accounts"
    value = verdict.evidence.get(key) if isinstance(verdict.evidence, Mapping) else None
    return value if isinstance(value, int) and value > 1 else None


def _connected_mailboxes(verdict: Verdict) -> int | None:
    """The domain's connected mailboxes as the grant census counted them, when the verdict's evidence has them."""
    value = verdict.evidence.get("domain_connected") if isinstance(verdict.evidence, Mapping) else None
    return value if isinstance(value, int) and value > 0 else None


def _nylas_status(verdict: Verdict, state: Mapping[str, Any]) -> str:
    if state.get("exists") is False:
        return "not found (404): the grant no longer exists" if verdict.api_version == "v3" else "not found (404)"
    status = _optional_text(state.get("status")) or "not reported"
    billing = _optional_text(state.get("billing_state"))
    return f"{status}, billing state {billing}" if billing else status


def _last_signed_in(evidence: Mapping[str, Any]) -> str:
    refreshed = _optional_text(evidence.get("last_refreshed_at")) or _optional_text(
        evidence.get("last_authenticated_at")  # verdicts stored before consents and refreshes were told apart
    )
    consents = evidence.get("consents")
    latest_consent = (
        max((c for c in consents if isinstance(c, str)), default=None) if isinstance(consents, Sequence) else None
    )
    if refreshed:
        return refreshed
    if latest_consent:
        return f"{latest_consent} (first sign-in)"
    return "unknown"


def _domain_fact(verdict: Verdict, evidence: Mapping[str, Any], settings: Settings) -> str:
    domain = verdict.domain or ""
    if evidence.get("free_mail") is True:
        return f"{domain} (free mail: its users share no administrator)"
    burst, window = evidence.get("domain_burst_accounts"), evidence.get("domain_window_accounts")
    if not isinstance(burst, int) or not isinstance(window, int):
        return domain
    connected = evidence.get("domain_connected")
    size = (
        f" of {connected} connected (census {evidence.get('domain_census_at')})" if isinstance(connected, int) else ""
    )
    return (
        f"{domain}: {burst} failing {'account' if burst == 1 else 'accounts'} within "
        f"{settings.domain_burst_minutes} minutes, {window}{size} within {settings.domain_window_days} days"
    )


def _action_groups(verdict: Verdict, likely_causes: Sequence[str], release: str) -> list[tuple[str, list[str]]]:
    """The diagnosis' actions grouped by who does them (every finding of the procedure names its actions)."""
    actions = list(verdict.actions)
    groups: dict[str, list[str]] = {}
    if likely_causes:
        # The causes have their own numbered section; the action is to work through it.
        groups[_ACTION_AUDIENCES[0][1]] = [
            "Work through the likely causes above, most likely first, and fix the connector."
        ]
    for action in actions:
        audience, text = next(
            ((who, action[len(prefix) :]) for prefix, who in _ACTION_AUDIENCES if action.startswith(prefix)),
            (_ACTION_AUDIENCES[0][1], action),  # the diagnosis prefixes everything else: an operator's action
        )
        if text in likely_causes:
            continue
        text = text.replace("account-doctor incident release INCIDENT_ID", release)
        groups.setdefault(audience, []).append(text[:1].upper() + text[1:])
    order = [audience for _, audience in _ACTION_AUDIENCES]
    return sorted(groups.items(), key=lambda item: order.index(item[0]))


def _notes(
    recipient: Recipient,
    verdict: Verdict,
    settings: Settings,
    incident: IncidentBrief | None,
    incident_id: str | None,
) -> list[str]:
    """What the operator should know about the customer's email and about further alerts, one note each."""
    customer_kind = CUSTOMER_EMAIL.get(verdict.cause)
    notes: list[str] = []
    if verdict.cause == "connector_outage":
        notes.append(
            "Customer emails are held while the incident is open: reconnecting cannot work until the connector is "
            f"fixed. Once it works again, run `{_release_command(incident_id)}` (or POST "
            f"/incidents/{incident_id or 'ID'}/release on the read API) to send the reconnect email to every member "
            "still broken; members that recover need nothing."
        )
    elif customer_kind is None:
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
    if incident is not None and incident.at_risk:
        notes.append(
            f"{incident.at_risk}: every Google grant that consented in the last 7 days dies 7 days after its "
            f"consent while the app is in testing mode. GET /incidents/{incident.incident_id} lists them "
            "(at_risk_accounts, soonest first), its at_risk count kept current as grants consent and fail."
        )
    if incident is not None:
        notes.append(
            f"One alert per incident ({incident.incident_id}): accounts that join it later are not alerted again; "
            f"GET /incidents/{incident.incident_id} on the read API lists every member."
        )
    elif recipient.gate == "incident" and verdict.cause in _DOMAIN_CAUSES and verdict.domain:
        window = (
            f"{settings.domain_burst_minutes} minutes"
            if verdict.cause == "admin_disconnected"
            else f"{settings.domain_window_days} days"
        )
        notes.append(
            f"One alert per domain incident: further failures of {verdict.domain} with the same cause "
            f"less than {window} apart are not alerted again."
        )
    return notes
