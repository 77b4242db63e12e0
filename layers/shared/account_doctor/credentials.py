"""The Nylas credentials, from the stack's Secrets Manager secret through Powertools parameters (cached)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities import parameters

# How long a warm function trusts its copy of the secret: a rotated webhook secret is
# picked up within this many seconds.
SECRET_MAX_AGE_SECONDS = 300


class CredentialsError(RuntimeError):
    """The secret is missing keys: put the Nylas credentials JSON into the stack's secret."""


@dataclass(frozen=True, repr=False)
class NylasCredentials:
    webhook_secret: str
    api_key: str
    client_id: str
    client_secret: str
    redirect_uri: str = ""

    def __repr__(self) -> str:  # never print a secret, even by accident
        return "NylasCredentials(<redacted>)"


def load_credentials(secret_name: str, *, force_fetch: bool = False) -> NylasCredentials:
    value: Any = parameters.get_secret(
        secret_name, transform="json", max_age=SECRET_MAX_AGE_SECONDS, force_fetch=force_fetch
    )
    if not isinstance(value, dict):
        raise CredentialsError(f"secret {secret_name} must hold a JSON object of Nylas credentials")
    return NylasCredentials(
        webhook_secret=str(value.get("webhook_secret") or ""),
        api_key=str(value.get("api_key") or ""),
        client_id=str(value.get("client_id") or ""),
        client_secret=str(value.get("client_secret") or ""),
        redirect_uri=str(value.get("redirect_uri") or ""),
    )
