"""Facts about an account that follow from its provider and address alone (SPEC §3)."""

from __future__ import annotations

from account_doctor.models import AuthMethod

OAUTH_PROVIDERS = frozenset({"google", "gmail", "microsoft", "office365", "graph", "outlook"})
PASSWORD_PROVIDERS = frozenset({"imap", "eas", "ews", "exchange", "yahoo", "icloud", "aol"})
GOOGLE_PROVIDERS = frozenset({"google", "gmail"})
MICROSOFT_PROVIDERS = frozenset({"microsoft", "office365", "graph", "outlook"})
# Exchange by password: v2 says "eas"/"exchange", v3 says "ews".
EXCHANGE_PROVIDERS = frozenset({"eas", "exchange", "ews"})

# How people call each provider, for summaries and emails.
PROVIDER_NAMES = {
    "google": "Google",
    "gmail": "Gmail",
    "microsoft": "Microsoft",
    "office365": "Microsoft 365",
    "graph": "Microsoft 365",
    "outlook": "Outlook.com",
    "eas": "Exchange",
    "exchange": "Exchange",
    "ews": "Exchange",
    "imap": "IMAP",
    "yahoo": "Yahoo",
    "icloud": "iCloud",
    "aol": "AOL",
}

# Consumer mailbox services: thousands of unrelated people share these domains, so
# their failures never say anything about one organisation's administrator.
FREE_MAIL_BRANDS = frozenset(
    {
        "gmail",
        "googlemail",
        "outlook",
        "hotmail",
        "live",
        "msn",
        "yahoo",
        "ymail",
        "icloud",
        "me",
        "mac",
        "aol",
        "proton",
        "protonmail",
        "gmx",
        "zoho",
        "yandex",
        "mail",
    }
)
# Endings a brand's country variants use: hotmail.co.uk, yahoo.co.jp, gmx.de, yandex.ru, …
_COUNTRY_SECOND_LEVELS = frozenset({"co", "com", "net", "org", "ne", "or"})


def auth_method(provider: str | None) -> AuthMethod:
    name = (provider or "").lower()
    if name in OAUTH_PROVIDERS:
        return "oauth"
    if name in PASSWORD_PROVIDERS:
        return "password"
    return "unknown"


def email_domain(email: str | None) -> str | None:
    """The organisation domain of an address: what follows the last @, lower-cased."""
    if not email or "@" not in email:
        return None
    domain = email.rsplit("@", 1)[1].strip().lower().rstrip(".")
    return domain or None


def is_free_mail(domain: str) -> bool:
    labels = domain.lower().split(".")
    if len(labels) < 2:
        return False
    if len(labels) == 2:
        return labels[0] in FREE_MAIL_BRANDS
    # brand.co.uk / brand.com.au style: the brand sits before a second-level ending and a country code.
    return (
        len(labels) == 3
        and labels[0] in FREE_MAIL_BRANDS
        and labels[1] in _COUNTRY_SECOND_LEVELS
        and len(labels[2]) == 2
    )


def mask_email(email: str | None) -> str | None:
    """a****@example.com: enough for an operator to recognise, not enough to leak an address into logs."""
    if not email or "@" not in email:
        return email
    local, domain = email.rsplit("@", 1)
    return f"{local[:1]}***@{domain}"
