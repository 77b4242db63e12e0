"""The reconnect link: the operator's ReauthUrlTemplate, or Nylas hosted authentication with a login hint."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from account_doctor.providers import EXCHANGE_PROVIDERS, GOOGLE_PROVIDERS, MICROSOFT_PROVIDERS

PLACEHOLDERS = ("email", "provider", "account_id")

# Nylas v3 hosted auth knows these provider names; v2 spellings are mapped onto them.
_HOSTED_AUTH_PROVIDER = {
    **dict.fromkeys(GOOGLE_PROVIDERS, "google"),
    **dict.fromkeys(MICROSOFT_PROVIDERS, "microsoft"),
    **dict.fromkeys(EXCHANGE_PROVIDERS, "ews"),
    "imap": "imap",
    "aol": "imap",
    "yahoo": "yahoo",
    "icloud": "icloud",
}


def hosted_auth_provider(provider: str | None) -> str | None:
    """The v3 hosted-auth `provider` value, or None to let the customer pick (unknown providers)."""
    return _HOSTED_AUTH_PROVIDER.get((provider or "").lower())


def from_template(template: str, *, email: str, provider: str | None, account_id: str) -> str:
    """Fills {email}, {provider} and {account_id}, each URL-encoded (so an address cannot add a parameter).

    Plain replacement rather than str.format: any other brace in the operator's URL stays as written.
    """
    values = {"email": email, "provider": provider or "", "account_id": account_id}
    link = template
    for name in PLACEHOLDERS:
        link = link.replace("{" + name + "}", quote(values[name], safe=""))
    return link


def nylas_hosted_auth(
    nylas_api_uri: str, *, client_id: str, redirect_uri: str, provider: str | None, email: str
) -> str:
    query: dict[str, str] = {"client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code"}
    hosted_provider = hosted_auth_provider(provider)
    if hosted_provider:
        query["provider"] = hosted_provider
    query["login_hint"] = email
    return f"{nylas_api_uri.rstrip('/')}/v3/connect/auth?{urlencode(query, quote_via=quote, safe='')}"
