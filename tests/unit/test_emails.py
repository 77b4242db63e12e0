"""What each email says and looks like (SPEC §5), rendered from real diagnoses, and that nothing interpolated
can inject HTML or leak a secret."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest

from account_doctor.models import (
    ALERT_MEMBERS,
    CAUSES,
    Cause,
    DeliveredNotification,
    IncidentBrief,
    IncidentMember,
    Notification,
    Occasion,
    Verdict,
)
from account_doctor.notifications import links
from account_doctor.notifications.audience import recipients
from account_doctor.notifications.render import (
    NYLAS_DASHBOARD_URL,
    OutgoingEmail,
    RenderedEmail,
    compose,
    render_email,
    render_outage_notice,
    render_rejected_alert,
    render_undeliverable,
)
from local_stack.emails import previews, sample_incident, sample_link, sample_settings, sample_verdict

SETTINGS = sample_settings(AppName="Acme Sync", OperatorEmail="ops@acme.dev", ReplyToEmail="help@acme.dev")
NO_REPLY_TO = sample_settings(AppName="Acme Sync", OperatorEmail="ops@acme.dev")
HOSTILE = '"><img src=x onerror=alert(1)><script>alert(2)</script>`rm -rf /`'
PREVIEWS = previews(SETTINGS)


_VOID = frozenset({"br", "img", "meta", "hr", "input", "link"})


class _Elements(HTMLParser):
    """Every element and attribute the HTML really contains (what a mail client would build)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.links: dict[str, str] = {}
        self.hrefs: list[str] = []
        self.ids: dict[str, str] = {}  # the text inside each element that has an id
        self.text = ""
        self._open: list[tuple[str, str | None]] = []
        self.feed(html)

    def handle_data(self, data: str) -> None:
        self.text += data
        for _, element in self._open:
            if element:
                self.ids[element] += data

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)
        found = dict(attrs)
        element = found.get("id")
        if tag == "a":
            self.hrefs.append(str(found.get("href")))
            if element:
                self.links[element] = str(found.get("href"))
        if element:
            self.ids[element] = ""
        if tag not in _VOID:
            self._open.append((tag, element))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break


def emails_of(cause: Cause, **overrides: object) -> dict[str, OutgoingEmail]:
    verdict = sample_verdict(cause, **overrides)
    return {o.email.kind: o for o in compose(verdict, SETTINGS, sample_link(verdict, SETTINGS))}


def alert_of(verdict: Verdict, incident: IncidentBrief | None = None) -> RenderedEmail:
    occasion = Occasion(incident_opened=True) if incident else None
    (alert,) = [
        o.email for o in compose(verdict, SETTINGS, "https://x", incident, occasion) if o.email.kind == "operator_alert"
    ]
    return alert


# --- The previews are real diagnoses ----------------------------------------------------------------


@pytest.mark.parametrize("cause", [c for c in CAUSES if c != "recovered"])
def test_previews_come_from_the_procedure_itself(cause: Cause) -> None:
    verdict = sample_verdict(cause)
    assert verdict.cause == cause
    # The procedure's own record: the steps it took end at the rule that matched, and the evidence is whole.
    assert verdict.steps[-1].answer.startswith("Yes:")
    assert all(step.answer.startswith("No:") for step in verdict.steps[:-1])
    assert verdict.recurring == (verdict.evidence["failures_last_30_days"] >= 3)
    assert verdict.confidence != "high" or cause != "unknown"


def test_every_cause_and_kind_is_previewed() -> None:
    emailed = {c for c in CAUSES if c != "recovered"}
    assert {name.split("-")[0] for name in PREVIEWS} == emailed | {"ses_rejected", "ses_bounced", "ses_complained"}
    assert "connector_outage-outage_notice" in PREVIEWS
    assert "Affected accounts: 12" in PREVIEWS["connector_outage-operator_alert"].text
    assert "Affected accounts: 3" in PREVIEWS["admin_disconnected-operator_alert"].text


# SPEC §4, last column, for a verdict that belongs to no incident: (cause, the emails as (kind, gate)).
WHO_IS_TOLD = [
    ("recovered", []),
    ("app_revoked", [("operator_alert", "event")]),
    ("connector_outage", [("reconnect", "cooldown"), ("operator_alert", "event")]),
    ("admin_disconnected", [("admin_contact", "cooldown"), ("operator_alert", "event")]),
    ("admin_session_policy", [("admin_contact", "cooldown"), ("operator_alert", "event")]),
    ("eas_sparse_inbox", [("reconnect", "cooldown"), ("operator_alert", "event")]),
    ("imap_sync_errors", [("operator_alert", "event")]),
    ("password_changed", [("reconnect", "cooldown")]),
    ("google_testing_mode", [("reconnect", "cooldown"), ("operator_alert", "event")]),
    ("microsoft_token_expired", [("reconnect", "cooldown")]),
    ("sync_stopped", [("operator_alert", "event")]),
    ("oauth_revoked", [("reconnect", "cooldown")]),
    ("unknown", [("operator_alert", "event")]),
]


def test_the_table_covers_every_cause() -> None:
    assert sorted(cause for cause, _ in WHO_IS_TOLD) == sorted(CAUSES)


@pytest.mark.parametrize(("cause", "expected"), WHO_IS_TOLD, ids=[c for c, _ in WHO_IS_TOLD])
def test_who_is_told(cause: Cause, expected: list[tuple[str, str]]) -> None:
    verdict = replace(sample_verdict("oauth_revoked" if cause == "recovered" else cause), cause=cause)
    planned = recipients(verdict, "ops@acme.dev")
    assert [(r.kind, r.gate) for r in planned] == expected


@pytest.mark.parametrize("email", [None, "", "not-an-address", HOSTILE + "@evil.com"])
@pytest.mark.parametrize("cause", ["password_changed", "oauth_revoked", "admin_disconnected"])
def test_a_customer_who_cannot_be_emailed_is_the_operators_to_reach(cause: Cause, email: str | None) -> None:
    emails = emails_of(cause, email=email)
    assert list(emails) == ["operator_alert"]
    alert = emails["operator_alert"]
    assert "has NOT been told" in alert.email.text
    assert "has NOT been told" in alert.email.html


# --- Every email -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PREVIEWS))
def test_every_email_names_the_app_and_has_both_parts(name: str) -> None:
    email = PREVIEWS[name]
    assert email.subject.startswith("Acme Sync")
    assert "\n" not in email.subject
    assert email.text.strip()
    assert "<" not in email.text.split("Raw evidence")[0].replace("<k***@", "")  # the text part is text
    elements = _Elements(email.html)
    assert elements.tags.count("html") == 1
    (title,) = re.findall(r"<title>(.*?)</title>", email.html)
    assert html.unescape(title) == email.subject


@pytest.mark.parametrize("name", sorted(PREVIEWS))
def test_every_email_names_the_reply_to_address_in_its_footer(name: str) -> None:
    email = PREVIEWS[name]
    assert "Questions? Write to help@acme.dev" in email.text.split("\n--\n")[-1]
    elements = _Elements(email.html)
    assert "mailto:help@acme.dev" in elements.hrefs
    assert "help@acme.dev" in elements.ids["reply-to"]


@pytest.mark.parametrize(
    "name", ["oauth_revoked-reconnect", "connector_outage-operator_alert", "ses_bounced-operator_alert"]
)
def test_without_a_reply_to_address_no_footer_names_one(name: str) -> None:
    email = previews(NO_REPLY_TO)[name]
    assert "Questions?" not in email.text
    assert "reply-to" not in email.html
    assert "mailto:" not in email.html


# --- Customer emails -------------------------------------------------------------------------------

CUSTOMER_CAUSES: list[Cause] = [
    "admin_disconnected",
    "admin_session_policy",
    "eas_sparse_inbox",
    "password_changed",
    "google_testing_mode",
    "microsoft_token_expired",
    "oauth_revoked",
    "connector_outage",
]


@pytest.mark.parametrize("cause", CUSTOMER_CAUSES)
def test_customer_emails_carry_the_reconnect_link_in_both_parts(cause: Cause) -> None:
    verdict = sample_verdict(cause)
    email = next(o.email for o in emails_of(cause).values() if o.recipient.audience == "customer")
    link = sample_link(verdict, SETTINGS)
    assert _Elements(email.html).links["reconnect-link"] == link
    assert link in email.text
    assert email.to == verdict.email


# (cause, provider, phrases the customer must read, in both parts)
WORDING = [
    ("password_changed", "icloud", ["password changed", "app-specific password"]),
    ("password_changed", "yahoo", ["app-specific password"]),
    ("password_changed", "imap", ["current password"]),
    ("eas_sparse_inbox", "eas", ["two messages or fewer", "Keep a few messages in your Inbox"]),
    ("google_testing_mode", "google", ["seven days", "nothing is wrong with your account"]),
    ("microsoft_token_expired", "microsoft", ["90 days", "Sign in again"]),
    ("oauth_revoked", "google", ["Google Account → Security", "Google Workspace"]),
    (
        "oauth_revoked",
        "office365",
        ["myapps.microsoft.com", "sessions were revoked", "Conditional Access", "consent was removed", "90 days"],
    ),
    ("admin_disconnected", "microsoft", ["3 mailboxes at burst.example", "Sign-in logs", "Sign-in frequency"]),
    ("admin_disconnected", "office365", ["Entra", "Conditional Access", "Enterprise applications", "admin consent"]),
    ("admin_session_policy", "google", ["Admin console", "API controls", "Google Cloud session control"]),
    ("admin_session_policy", "imap", ["For your mail administrator", "third-party mail apps"]),
    ("connector_outage", "microsoft", ["A problem on our side", "nothing was wrong with your account"]),
]


@pytest.mark.parametrize(("cause", "provider", "phrases"), WORDING, ids=[f"{c}-{p}" for c, p, _ in WORDING])
def test_cause_specific_wording(cause: Cause, provider: str, phrases: list[str]) -> None:
    email = next(o.email for o in emails_of(cause, provider=provider).values() if o.recipient.audience == "customer")
    for phrase in phrases:
        assert phrase in email.text
        assert phrase in _Elements(email.html).text


def test_app_passwords_are_not_suggested_to_a_plain_imap_customer() -> None:
    assert "app-specific" not in emails_of("password_changed", provider="imap")["reconnect"].email.text


def test_microsoft_and_google_hints_are_not_mixed() -> None:
    google = emails_of("oauth_revoked", provider="gmail")["reconnect"].email.text
    microsoft = emails_of("oauth_revoked", provider="microsoft")["reconnect"].email.text
    assert "Microsoft" not in google
    assert "Google" not in microsoft


# SPEC §5: a Microsoft OAuth refresh token survives a password change or reset alone.
MICROSOFT_EMAILS = [
    ("oauth_revoked", "microsoft", "reconnect"),
    ("oauth_revoked", "office365", "reconnect"),
    ("microsoft_token_expired", "microsoft", "reconnect"),
    ("admin_disconnected", "microsoft", "admin_contact"),
    ("admin_session_policy", "office365", "admin_contact"),
]


@pytest.mark.parametrize(
    ("cause", "provider", "kind"), MICROSOFT_EMAILS, ids=[f"{c}-{p}" for c, p, _ in MICROSOFT_EMAILS]
)
def test_microsoft_hints_lead_with_what_ends_access_and_a_password_change_only_where_it_ends_sessions(
    cause: Cause, provider: str, kind: str
) -> None:
    email = emails_of(cause, provider=provider)[kind].email
    for part in (email.text, _Elements(email.html).text):
        said = " ".join(part.split())
        sentences = [s for s in re.split(r"(?<=[.:;])\s+", said) if "password" in s.lower()]
        for sentence in sentences:
            assert "where your organisation ends sessions on a password change" in sentence.lower(), sentence
        if sentences:  # the enders come first
            assert said.lower().index("revoked") < said.lower().index("password")


def test_admin_section_is_forwardable_and_only_in_the_admin_contact_email() -> None:
    admin = emails_of("admin_disconnected")["admin_contact"].email
    assert 'id="admin-section"' in admin.html
    assert "Please forward to your IT administrator" in admin.text
    reconnect = emails_of("oauth_revoked")["reconnect"].email
    assert "admin-section" not in reconnect.html


def test_the_outage_notice_says_the_problem_is_ours_and_asks_nothing() -> None:
    verdict = sample_verdict("connector_outage")
    notice = render_outage_notice(verdict, SETTINGS)
    assert notice.kind == "outage_notice"
    assert notice.to == verdict.email
    assert notice.subject.startswith("Acme Sync:")
    for part in (notice.text, _Elements(notice.html).text):
        assert "the problem is on our side" in part.lower()
        assert "No action is needed from you" in part
        assert "We will write to you again when it is fixed" in part
        assert "Microsoft" in part
    # Nothing to click: the customer is told not to reconnect.
    assert _Elements(notice.html).hrefs == ["mailto:help@acme.dev"]
    assert "reconnect-link" not in notice.html
    assert "http" not in notice.text


def test_the_outage_notice_goes_out_as_a_revisions_follow_up() -> None:
    verdict = replace(sample_verdict("connector_outage"), revises="2024-11-19T09:52:00Z")
    (recipient,) = recipients(verdict, "ops@acme.dev", Occasion(follow_up="outage_notice"))
    email = render_email(recipient, verdict, SETTINGS, "")
    assert email.kind == "outage_notice"
    assert "on our side" in email.text


def test_a_revision_whose_customer_was_never_told_holds_the_reconnect_for_the_release() -> None:
    verdict = replace(sample_verdict("connector_outage"), revises="2024-11-19T09:52:00Z")
    (recipient,) = recipients(verdict, "ops@acme.dev", Occasion(hold_customer=True))
    assert (recipient.kind, recipient.held) == ("reconnect", True)
    assert recipients(verdict, "ops@acme.dev", Occasion()) == []  # one already told gets only a follow-up


# --- Operator alerts -------------------------------------------------------------------------------

CAUSE_CODE = re.compile(r"\b(" + "|".join(c for c in CAUSES) + r")\b")

# (cause, the title the operator reads)
TITLES = [
    ("app_revoked", "Grant removed by your application"),
    ("eas_sparse_inbox", "Exchange account stopped: its inbox is nearly empty"),
    ("imap_sync_errors", "IMAP account stopped syncing"),
    ("sync_stopped", "Gmail account stopped syncing"),
    ("unknown", "No known cause for a failing zimbra account"),
    ("google_testing_mode", "Google OAuth app still in testing mode"),
]


@pytest.mark.parametrize(("cause", "title"), TITLES, ids=[c for c, _ in TITLES])
def test_an_operator_alert_is_titled_in_plain_words(cause: Cause, title: str) -> None:
    verdict = sample_verdict(cause)
    alert = alert_of(verdict)
    assert alert.subject == f"Acme Sync alert: {title} ({verdict.email})"
    assert _Elements(alert.html).ids["title"] == title
    assert alert.text.startswith(f"OPERATOR ALERT: {title}\n")


INCIDENT_TITLES = [
    ("admin_disconnected", "3 mailboxes at burst.example disconnected by their administrator"),
    ("admin_session_policy", "3 mailboxes at policy.example signed out by a session policy"),
    ("connector_outage", "Microsoft connector outage: 12 accounts failing"),
    ("google_testing_mode", "Google OAuth app still in testing mode"),
]


@pytest.mark.parametrize(("cause", "title"), INCIDENT_TITLES, ids=[c for c, _ in INCIDENT_TITLES])
def test_an_incidents_alert_is_titled_by_the_incident(cause: Cause, title: str) -> None:
    verdict, incident = sample_incident(cause)
    alert = alert_of(verdict, incident)
    assert alert.subject == f"Acme Sync alert: {title}"


@pytest.mark.parametrize("name", sorted(n for n in PREVIEWS if n.endswith("operator_alert")))
def test_no_operator_alert_shows_a_cause_code_where_a_title_belongs(name: str) -> None:
    alert = PREVIEWS[name]
    # Account ids may contain anything (the samples' are named after their cause): they are not titles.
    assert not CAUSE_CODE.search(re.sub(r"\b(grant|acct)-\S+", "", alert.subject))
    assert not CAUSE_CODE.search(re.sub(r"\b(grant|acct)-\S+", "", _Elements(alert.html).ids["title"]))


@pytest.mark.parametrize("cause", ["admin_disconnected", "connector_outage"])
def test_an_incidents_alert_lists_every_member_with_its_command_and_dashboard_link(cause: Cause) -> None:
    verdict, incident = sample_incident(cause)
    alert = alert_of(verdict, incident)
    elements = _Elements(alert.html)
    assert len(incident.members) == {"admin_disconnected": 3, "connector_outage": 12}[cause]
    for member in incident.members:
        for part in (alert.text, elements.text):
            assert str(member.email) in part  # the operator needs the real address
            assert f"account-doctor verdicts {member.account_id}" in part
    assert elements.hrefs.count(NYLAS_DASHBOARD_URL) == len(incident.members)
    assert alert.text.count(f"Nylas dashboard: {NYLAS_DASHBOARD_URL}") == len(incident.members)


def test_a_big_incident_lists_its_first_members_and_says_how_to_see_the_rest() -> None:
    verdict, incident = sample_incident("connector_outage")
    members = tuple(IncidentMember(f"grant-{n}", f"user{n}@org{n % 7}.example", "connector_outage") for n in range(500))
    alert = alert_of(verdict, replace(incident, members=members, accounts=500))
    assert "Affected accounts: 500" in alert.text
    assert alert.text.count("account-doctor verdicts grant-") == ALERT_MEMBERS
    assert f"and {500 - ALERT_MEMBERS} more: GET /incidents/{incident.incident_id}" in alert.text


def test_a_single_accounts_alert_names_its_command_and_dashboard_link() -> None:
    verdict = sample_verdict("imap_sync_errors")
    alert = alert_of(verdict)
    assert f"account-doctor verdicts {verdict.account_id}" in alert.text
    assert NYLAS_DASHBOARD_URL in _Elements(alert.html).hrefs


def test_a_command_is_safe_to_paste_whatever_the_account_id() -> None:
    alert = alert_of(sample_verdict("unknown", account_id="grant-1; rm -rf ~"))
    assert "account-doctor verdicts 'grant-1; rm -rf ~'" in alert.text


def test_the_evidence_is_a_readable_table_and_the_raw_json_comes_last() -> None:
    verdict = sample_verdict("admin_disconnected")
    alert = alert_of(verdict)
    facts = dict(re.findall(r"^  ([A-Z][\w -]+?):\s+(.+)$", alert.text, flags=re.MULTILINE))
    assert facts["Provider"] == "Microsoft (microsoft)"
    assert facts["Sign-in"] == "OAuth"
    assert facts["Trigger"] == "grant.expired"
    assert facts["Failed at"] == verdict.occurred_at
    assert facts["Nylas status"] == "invalid"
    assert facts["Last signed in"] == verdict.evidence["last_refreshed_at"]
    assert facts["Failures in 30 days"] == "1"
    assert facts["Domain"] == "burst.example: 3 failing accounts within 15 minutes, 3 within 7 days"
    text = alert.text
    assert text.index("Evidence\n") < text.index("Steps taken") < text.index("Raw evidence (JSON)")
    assert text.rstrip().split("Raw evidence (JSON)\n", 1)[1].lstrip().startswith("{")
    page = alert.html
    assert page.index('id="evidence"') < page.index('id="steps"') < page.index("<details")
    assert re.search(r"<details[^>]*>\s*<summary[^>]*>Raw evidence \(JSON\)</summary>\s*<pre", page)
    assert " open" not in page.split("<details", 1)[1].split(">", 1)[0]  # collapsed


def test_the_steps_are_numbered_once_by_their_rule() -> None:
    verdict = sample_verdict("oauth_revoked")
    alert = alert_of(replace(verdict, cause="unknown"))  # any operator alert shows the steps
    rules = re.findall(r"^  Rule (\w+)\. ", alert.text, flags=re.MULTILINE)
    assert rules == [step.step for step in verdict.steps]
    assert not re.search(r"^\s*\d+\.\s+(Rule\s+)?\d+[a-d]?\b", alert.text, flags=re.MULTILINE)
    steps_html = alert.html.split('id="steps"', 1)[1].split("</ul>", 1)[0]
    assert "list-style:none" in alert.html.split('id="steps"', 1)[1].split(">", 1)[0]
    assert steps_html.count("<li") == len(verdict.steps)


def test_a_connector_outage_alert_names_the_providers_likely_causes_and_the_release() -> None:
    verdict, incident = sample_incident("connector_outage")
    alert = alert_of(verdict, incident)
    for part in (alert.text, _Elements(alert.html).text):
        assert "Entra ID app registration's client secret expired or was rotated" in part
        assert "consent was revoked tenant-wide" in part
        assert "https://status.nylas.com" in part
        assert f"account-doctor incident release {incident.incident_id}" in part
        assert "Customer emails are held" in part
    google = alert_of(
        replace(verdict, provider="google", actions=[], evidence={**verdict.evidence, "connector": "google"}),
        replace(incident, key="google"),
    )
    assert "The Google OAuth client was deleted or disabled" in google.text
    assert "Google Cloud project was suspended" in google.text
    assert "Entra" not in google.text
    assert google.subject == "Acme Sync alert: Google connector outage: 12 accounts failing"


def test_operator_alert_carries_summary_actions_steps_and_the_customer_note() -> None:
    verdict = sample_verdict("google_testing_mode", recurring=True)
    alert = alert_of(verdict)
    assert alert.to == "ops@acme.dev"
    for part in (alert.text, _Elements(alert.html).text):
        assert verdict.summary in part
        assert "recurring" in part
        assert "Publish the Google OAuth app out of testing mode" in part
        assert verdict.steps[0].question in part
        assert str(verdict.email) in part
        assert "is sent a reconnect email" in part


# --- Customers SES could not reach -----------------------------------------------------------------

UNDELIVERABLE = [
    ("rejected", "Could not email kim@shop.example about grant-oauth_revoked", "has NOT been told"),
    ("bounced", "Could not email kim@shop.example about grant-oauth_revoked: the address bounced", "has NOT been told"),
    ("complained", "kim@shop.example marked the email about grant-oauth_revoked as spam", "reported the reconnect"),
]


@pytest.mark.parametrize(("problem", "title", "says"), UNDELIVERABLE, ids=[p for p, _, _ in UNDELIVERABLE])
def test_the_operator_is_told_which_customer_could_not_be_reached(problem: str, title: str, says: str) -> None:
    alert = PREVIEWS[f"ses_{problem}-operator_alert"]
    assert alert.kind == "operator_alert"
    assert alert.to == "ops@acme.dev"
    assert alert.subject == f"Acme Sync alert: {title}"
    for part in (alert.text, _Elements(alert.html).text):
        assert says in part
        assert "account-doctor verdicts grant-oauth_revoked" in part
    if problem != "complained":  # SES's own words, with the address masked as in the logs
        assert "k***@shop.example" in _Elements(alert.html).ids["reason"]


def test_the_notifiers_rejection_alert_names_the_customer_and_the_reason() -> None:
    verdict = sample_verdict("password_changed")
    rejected = Notification(
        kind="reconnect", to=verdict.email or "", status="rejected", reason="MessageRejected: Address blacklisted."
    )
    alert = render_rejected_alert(SETTINGS, verdict, rejected)
    assert alert.subject == f"Acme Sync alert: Could not email {verdict.email} about {verdict.account_id}"
    assert "MessageRejected: Address blacklisted." in alert.text
    assert verdict.summary in alert.text


# --- Nothing injected, nothing leaked ------------------------------------------------------------


def test_no_secret_or_token_reaches_an_email() -> None:
    secrets = {"api_key": "nyk_live_SECRET1", "access_token": "ya29.SECRET2", "client_secret": "SECRET3"}
    base = sample_verdict("google_testing_mode")
    verdict = replace(base, evidence={**base.evidence, **secrets, "state": {"refresh_token": "SECRET4"}})
    for outgoing in compose(verdict, SETTINGS, sample_link(verdict, SETTINGS)):
        for part in (outgoing.email.subject, outgoing.email.text, outgoing.email.html):
            assert "SECRET" not in part
    alert = alert_of(verdict)
    assert '"api_key": "[redacted]"' in alert.text


@pytest.mark.parametrize("cause", [c for c in CAUSES if c != "recovered"])
def test_nothing_interpolated_injects_html(cause: Cause) -> None:
    settings = sample_settings(AppName=f"Acme {HOSTILE}", OperatorEmail="ops@acme.dev", ReplyToEmail="help@acme.dev")
    verdict = sample_verdict(
        cause,
        provider=HOSTILE,
        summary=HOSTILE,
        domain=f"{HOSTILE}.example",
        account_id=HOSTILE,
        actions=[HOSTILE, f"Operator: {HOSTILE}"],
        evidence={"note": HOSTILE, "state": {"status": HOSTILE}},
    )
    incident = IncidentBrief("inc-" + HOSTILE, "domain", HOSTILE, 2, (IncidentMember(HOSTILE, HOSTILE, HOSTILE),))
    emails = [o.email for o in compose(verdict, settings, sample_link(verdict, settings))]
    emails.append(
        alert_of(verdict, incident) if cause in ("admin_disconnected",) else render_outage_notice(verdict, settings)
    )
    bounced = DeliveredNotification(HOSTILE, HOSTILE, HOSTILE, "reconnect", HOSTILE, "bounced", HOSTILE, HOSTILE)
    emails.append(render_undeliverable(settings, "bounced", bounced))
    assert emails
    for email in emails:
        elements = _Elements(email.html)
        assert "script" not in elements.tags
        assert "img" not in elements.tags
        assert not any(name.startswith("on") for name, _ in elements.attributes)
        assert "&lt;script&gt;" in email.html or "&lt;img" in email.html


def test_a_hostile_provider_in_a_reconnect_email_is_shown_as_text() -> None:
    email = emails_of("oauth_revoked", provider=HOSTILE)["reconnect"].email
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in email.html
    assert "script" not in _Elements(email.html).tags


def test_a_command_in_an_action_is_shown_as_code_and_stays_text() -> None:
    alert = alert_of(sample_verdict("unknown", actions=["Operator: run `<b>x</b>` now"]))
    assert "<code" in alert.html
    assert "&lt;b&gt;x&lt;/b&gt;" in alert.html
    assert "b" not in _Elements(alert.html).tags


# --- The reconnect link ---


def test_template_link_url_encodes_every_placeholder() -> None:
    link = links.from_template(
        "https://app.example.com/reconnect?who={email}&via={provider}&id={account_id}&keep={other}",
        email='a+b&admin=1"@example.com',
        provider="<google>",
        account_id="id/with?chars#",
    )
    query = parse_qs(urlsplit(link).query)
    assert query == {
        "who": ['a+b&admin=1"@example.com'],
        "via": ["<google>"],
        "id": ["id/with?chars#"],
        "keep": ["{other}"],
    }
    assert "admin=1" not in link.split("&", 3)[0]


def test_template_link_in_a_path_segment() -> None:
    link = links.from_template("https://app.example.com/a/{account_id}/fix", email="x", provider=None, account_id="a/b")
    assert link == "https://app.example.com/a/a%2Fb/fix"


@pytest.mark.parametrize(
    ("provider", "hosted"),
    [("google", "google"), ("gmail", "google"), ("office365", "microsoft"), ("eas", "ews"), ("icloud", "icloud")],
)
def test_nylas_hosted_auth_link(provider: str, hosted: str) -> None:
    link = links.nylas_hosted_auth(
        "https://api.eu.nylas.com/",
        client_id="client id&x",
        redirect_uri="https://app.example.com/cb?next=/home",
        provider=provider,
        email="first+last@example.com",
    )
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "api.eu.nylas.com", "/v3/connect/auth")
    assert parse_qs(parts.query) == {
        "client_id": ["client id&x"],
        "redirect_uri": ["https://app.example.com/cb?next=/home"],
        "response_type": ["code"],
        "provider": [hosted],
        "login_hint": ["first+last@example.com"],
    }
    assert "+" not in parts.query  # a literal + would decode as a space in the login hint


def test_hosted_auth_lets_the_customer_choose_an_unknown_provider() -> None:
    link = links.nylas_hosted_auth(
        "https://api.us.nylas.com", client_id="c", redirect_uri="r", provider="zimbra", email="a@b.c"
    )
    assert "provider" not in parse_qs(urlsplit(link).query)
