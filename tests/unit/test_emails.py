"""Who is told, what each email says, and that nothing interpolated can inject HTML or leak a secret."""

from __future__ import annotations

from dataclasses import replace
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest

from account_doctor.models import CAUSES, Cause
from account_doctor.notifications import links
from account_doctor.notifications.audience import recipients
from account_doctor.notifications.render import OutgoingEmail, compose
from account_doctor.notifications.wording import OPERATOR_ACTION
from local_stack.emails import sample_link, sample_settings, sample_verdict

SETTINGS = sample_settings(AppName="Acme Sync", OperatorEmail="ops@acme.dev")
HOSTILE = '"><img src=x onerror=alert(1)><script>alert(2)</script>'


class _Elements(HTMLParser):
    """Every element and attribute the HTML really contains (what a mail client would build)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.links: dict[str, str] = {}
        self.text = ""
        self.feed(html)

    def handle_data(self, data: str) -> None:
        self.text += data

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)
        found = dict(attrs)
        if tag == "a" and found.get("id"):
            self.links[str(found["id"])] = str(found.get("href"))


def emails_of(cause: Cause, **overrides: object) -> dict[str, OutgoingEmail]:
    verdict = sample_verdict(cause, **overrides)
    return {o.email.kind: o for o in compose(verdict, SETTINGS, sample_link(verdict, SETTINGS))}


# SPEC §4, last column: (cause, the emails it calls for as (kind, gate)).
WHO_IS_TOLD = [
    ("recovered", []),
    ("app_revoked", [("operator_alert", "event")]),
    ("admin_disconnected", [("admin_contact", "cooldown"), ("operator_alert", "incident")]),
    ("admin_session_policy", [("admin_contact", "cooldown"), ("operator_alert", "incident")]),
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
    for r in planned:
        assert r.to == ("ops@acme.dev" if r.kind == "operator_alert" else verdict.email)


@pytest.mark.parametrize("email", [None, "", "not-an-address", HOSTILE + "@evil.com"])
@pytest.mark.parametrize("cause", ["password_changed", "oauth_revoked", "admin_disconnected"])
def test_a_customer_who_cannot_be_emailed_is_the_operators_to_reach(cause: Cause, email: str | None) -> None:
    emails = emails_of(cause, email=email)
    assert list(emails) == ["operator_alert"]
    alert = emails["operator_alert"]
    assert alert.recipient.gate == "event"  # not swallowed by a domain incident's single alert
    assert "has NOT been told" in alert.email.text
    assert "has NOT been told" in alert.email.html


CUSTOMER_CAUSES: list[Cause] = [
    "admin_disconnected",
    "admin_session_policy",
    "eas_sparse_inbox",
    "password_changed",
    "google_testing_mode",
    "microsoft_token_expired",
    "oauth_revoked",
]


@pytest.mark.parametrize("cause", [c for c in CAUSES if c != "recovered"])
def test_every_email_names_the_app_and_has_both_parts(cause: Cause) -> None:
    for outgoing in emails_of(cause).values():
        email = outgoing.email
        assert "Acme Sync" in email.subject
        assert "\n" not in email.subject
        assert email.text.strip()
        assert "<" not in email.text.split("Evidence")[0]  # the text part is text, not markup
        assert _Elements(email.html).tags.count("html") == 1


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
    ("oauth_revoked", "office365", ["myapps.microsoft.com", "Microsoft password"]),
    ("admin_disconnected", "microsoft", ["4 mailboxes at acme-corp.com", "Sign-in logs", "Sign-in frequency"]),
    ("admin_disconnected", "office365", ["Entra", "Conditional Access", "Enterprise applications", "admin consent"]),
    ("admin_session_policy", "google", ["Admin console", "API controls", "Google Cloud session control"]),
    ("admin_session_policy", "imap", ["For your mail administrator", "third-party mail apps"]),
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


def test_admin_section_is_forwardable_and_only_in_the_admin_contact_email() -> None:
    admin = emails_of("admin_disconnected")["admin_contact"].email
    assert 'id="admin-section"' in admin.html
    assert "Please forward to your IT administrator" in admin.text
    reconnect = emails_of("oauth_revoked")["reconnect"].email
    assert "admin-section" not in reconnect.html


def test_operator_alert_carries_cause_evidence_steps_and_action() -> None:
    verdict = sample_verdict("google_testing_mode", actions=["Publish the OAuth app now"], recurring=True)
    alert = next(
        o.email for o in compose(verdict, SETTINGS, sample_link(verdict, SETTINGS)) if o.email.kind == "operator_alert"
    )
    assert alert.to == "ops@acme.dev"
    assert "google_testing_mode" in alert.subject
    for part in (alert.text, alert.html):
        assert verdict.summary in part
        assert "(recurring)" in part
        assert "Publish the OAuth app now" in part
        assert "Did the application revoke access?" in part
        assert str(verdict.email) in part  # the operator needs the real address
        assert '"domain_burst_accounts": 1' in part.replace("&#34;", '"')
        assert "is sent a reconnect email" in part


@pytest.mark.parametrize("cause", ["google_testing_mode", "imap_sync_errors", "app_revoked"])
def test_operator_alert_without_actions_recommends_the_causes_default(cause: Cause) -> None:
    alert = emails_of(cause, actions=[])["operator_alert"].email
    assert OPERATOR_ACTION[cause] in alert.text


def test_domain_incident_alert_says_later_failures_are_not_alerted() -> None:
    alert = emails_of("admin_disconnected")["operator_alert"].email
    assert "One alert per domain incident" in alert.text
    assert "less than 15 minutes apart" in alert.text


def test_no_secret_or_token_reaches_an_email() -> None:
    secrets = {"api_key": "nyk_live_SECRET1", "access_token": "ya29.SECRET2", "client_secret": "SECRET3"}
    verdict = sample_verdict(
        "google_testing_mode",
        evidence={**sample_verdict("google_testing_mode").evidence, **secrets, "state": {"refresh_token": "SECRET4"}},
    )
    for outgoing in compose(verdict, SETTINGS, sample_link(verdict, SETTINGS)):
        for part in (outgoing.email.subject, outgoing.email.text, outgoing.email.html):
            assert "SECRET" not in part
    alert = next(o.email for o in compose(verdict, SETTINGS, "https://x") if o.email.kind == "operator_alert")
    assert '"api_key": "[redacted]"' in alert.text


@pytest.mark.parametrize("cause", [c for c in CAUSES if c != "recovered"])
def test_nothing_interpolated_injects_html(cause: Cause) -> None:
    settings = sample_settings(AppName=f"Acme {HOSTILE}", OperatorEmail="ops@acme.dev")
    verdict = sample_verdict(
        cause,
        provider=HOSTILE,
        summary=HOSTILE,
        domain=f"{HOSTILE}.example",
        account_id=HOSTILE,
        actions=[HOSTILE],
        evidence={"note": HOSTILE},
    )
    outgoing = compose(verdict, settings, sample_link(verdict, settings))
    assert outgoing
    for item in outgoing:
        elements = _Elements(item.email.html)
        assert "script" not in elements.tags
        assert "img" not in elements.tags
        assert not any(name.startswith("on") for name, _ in elements.attributes)
        assert "&lt;script&gt;" in item.email.html or "&lt;img" in item.email.html


def test_a_hostile_provider_in_a_reconnect_email_is_shown_as_text() -> None:
    email = emails_of("oauth_revoked", provider=HOSTILE)["reconnect"].email
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in email.html
    assert "script" not in _Elements(email.html).tags


# --- the reconnect link ---


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
