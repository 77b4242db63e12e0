"""Everything Account Doctor knows about mail providers: families, auth methods, names, connectors, admin hints.

Nylas spells providers differently across API generations (v2 "eas"/"exchange", v3 "ews"; "gmail" and
"google"); every other module asks here instead of keeping its own list.
"""

from __future__ import annotations

from typing import Literal

from account_doctor.models import AuthMethod

ProviderFamily = Literal["microsoft", "google", "other"]

OAUTH_PROVIDERS = frozenset({"google", "gmail", "microsoft", "office365", "graph", "outlook"})
PASSWORD_PROVIDERS = frozenset({"imap", "eas", "ews", "exchange", "yahoo", "icloud", "aol"})
GOOGLE_PROVIDERS = frozenset({"google", "gmail"})
MICROSOFT_PROVIDERS = frozenset({"microsoft", "office365", "graph", "outlook"})
# Exchange by password: v2 says "eas"/"exchange", v3 says "ews". Administered in Microsoft's consoles.
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
UNKNOWN_PROVIDER_NAME = "your email provider"

# The Nylas connector each provider signs in through (v3 hosted auth's `provider` value). One connector
# failing for everyone at once (an expired Entra ID client secret, a disabled Google OAuth client) is a
# connector outage (rule 1b); Google testing mode is a property of the Google connector (rule 4a).
CONNECTORS = {
    **dict.fromkeys(GOOGLE_PROVIDERS, "google"),
    **dict.fromkeys(MICROSOFT_PROVIDERS, "microsoft"),
    **dict.fromkeys(EXCHANGE_PROVIDERS, "ews"),
    "imap": "imap",
    "aol": "imap",
    "yahoo": "yahoo",
    "icloud": "icloud",
}


def normalized(provider: str | None) -> str:
    return (provider or "").strip().lower()


def auth_method(provider: str | None) -> AuthMethod:
    name = normalized(provider)
    if name in OAUTH_PROVIDERS:
        return "oauth"
    if name in PASSWORD_PROVIDERS:
        return "password"
    return "unknown"


def family(provider: str | None) -> ProviderFamily:
    """Whose administrator console governs the mailbox: Exchange is Microsoft's."""
    name = normalized(provider)
    if name in MICROSOFT_PROVIDERS or name in EXCHANGE_PROVIDERS:
        return "microsoft"
    if name in GOOGLE_PROVIDERS:
        return "google"
    return "other"


def connector(provider: str | None) -> str | None:
    """The Nylas connector of a provider (google, microsoft, ews, imap, yahoo, icloud); None when unknown."""
    return CONNECTORS.get(normalized(provider))


def display_name(provider: str | None) -> str:
    """Google, Microsoft 365, iCloud…; an unknown provider as written (templates escape it)."""
    if not provider:
        return UNKNOWN_PROVIDER_NAME
    return PROVIDER_NAMES.get(normalized(provider), provider)


CONNECTOR_NAMES = {"google": "Google", "microsoft": "Microsoft", "ews": "Exchange", "imap": "IMAP"}


def connector_name(key: str) -> str:
    return CONNECTOR_NAMES.get(key, PROVIDER_NAMES.get(key, key))


def admin_check(provider: str | None, *, disconnected: bool) -> str:
    """What the customer's mail administrator should look at: a disconnection, or a session policy."""
    match family(provider), disconnected:
        case "microsoft", True:
            return (
                "Microsoft admin: check the Entra ID sign-in logs and the app's enterprise-app consent "
                "and user assignment; grant consent again if it was removed."
            )
        case "microsoft", False:
            return (
                "Microsoft admin: check the Entra ID sign-in logs and the Conditional Access sign-in frequency "
                "that applies to the app; extend it or exempt the app."
            )
        case "google", True:
            return (
                "Google Workspace admin: in the admin console, check Security > API controls > App access control "
                "and trust the app again if it was blocked."
            )
        case "google", False:
            return (
                "Google Workspace admin: check the Google Cloud session control re-authentication policy "
                "in the admin console; extend it or exempt the app."
            )
        case _, True:
            return "Mail administrator: check whether the app's access to the mail server was removed or blocked."
        case _:
            return "Mail administrator: check the session or password-expiry policy that applies to the app's sign-ins."


def connector_outage_causes(key: str) -> tuple[str, ...]:
    """The likely reasons every account of a connector fails at once (rule 1b), most likely first."""
    status = "Check Nylas's status page (https://status.nylas.com) for an incident on their side."
    if key == "microsoft":
        return (
            "The Entra ID app registration's client secret expired or was rotated without updating the Nylas "
            "connector: create a new secret and update the Microsoft connector in the Nylas dashboard.",
            "The app registration was deleted, or its consent was revoked tenant-wide.",
            "A Microsoft 365 outage (Microsoft 365 service health).",
            status,
        )
    if key == "google":
        return (
            "The Google OAuth client was deleted or disabled, or its secret changed without updating the Nylas "
            "Google connector.",
            "The Google Cloud project was suspended (check the Cloud console's notifications).",
            "A Google Workspace outage (Google Workspace Status Dashboard).",
            status,
        )
    return ("The connector's credentials in the Nylas dashboard changed or expired.", status)
