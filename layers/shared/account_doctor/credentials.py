"""The Nylas credentials, from the stack's Secrets Manager secrets through Powertools parameters (cached).

Two secrets (SPEC §7): the API keys (`NylasSecret`: api_key, client_id, client_secret, redirect_uri), read by
the functions that call Nylas, and the verification keys (`NylasWebhookSecret`: webhook_secret, client_secret),
the only one the internet-facing webhook may read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError
from botocore.exceptions import BotoCoreError, ClientError

# How long a warm function trusts its copy of a secret: a rotated webhook secret is
# picked up within this many seconds.
SECRET_MAX_AGE_SECONDS = 300
# How long the webhook answers from a failed read instead of asking Secrets Manager again. Powertools caches
# only successes; without this, a deleted or throttled secret would cost one more API call (and feed the
# throttling) on every webhook Nylas retries, while a fixed secret is still picked up within seconds.
FAILURE_MAX_AGE_SECONDS = 5


class CredentialsError(RuntimeError):
    """The secret is missing keys: put the Nylas credentials JSON into the stack's secret."""


class SecretUnavailable(CredentialsError):
    """The secret cannot be read (deleted, no value yet, throttled, access denied) or is not a JSON object."""

    def __init__(self, message: str, *, remembered: bool = False) -> None:
        super().__init__(message)
        self.remembered = remembered  # answered from an earlier failed read, without calling Secrets Manager


@dataclass(frozen=True, repr=False)
class NylasCredentials:
    webhook_secret: str
    api_key: str
    client_id: str
    client_secret: str
    redirect_uri: str = ""

    def __repr__(self) -> str:  # never print a secret, even by accident
        return "NylasCredentials(<redacted>)"


@dataclass(frozen=True, repr=False)
class WebhookKeys:
    """What webhook signatures are verified with: the v3 webhook_secret and the v2 client_secret."""

    webhook_secret: str
    client_secret: str

    def __repr__(self) -> str:
        return "WebhookKeys(<redacted>)"


def load_credentials(secret_name: str, *, force_fetch: bool = False) -> NylasCredentials:
    value: Any = parameters.get_secret(
        secret_name, transform="json", max_age=SECRET_MAX_AGE_SECONDS, force_fetch=force_fetch
    )
    if not isinstance(value, dict):
        raise CredentialsError(f"secret {secret_name} must hold a JSON object of Nylas credentials")
    return NylasCredentials(
        webhook_secret=_key_text(value, "webhook_secret"),
        api_key=_key_text(value, "api_key"),
        client_id=_key_text(value, "client_id"),
        client_secret=_key_text(value, "client_secret"),
        redirect_uri=_key_text(value, "redirect_uri"),
    )


def read_secret(secret_name: str, *, force_fetch: bool = False) -> Mapping[str, Any]:
    """The secret's JSON object (cached for SECRET_MAX_AGE_SECONDS); SecretUnavailable when there is none.

    Powertools reports a failed read as GetParameterError and an unparsable value as
    TransformParameterError (neither is a ValueError nor a ClientError): all of them mean the same
    thing to a caller, so they become one exception here, naming the secret and never its value.
    """
    try:
        value: Any = parameters.get_secret(
            secret_name, transform="json", max_age=SECRET_MAX_AGE_SECONDS, force_fetch=force_fetch
        )
    except (GetParameterError, TransformParameterError, ClientError, BotoCoreError) as error:
        raise SecretUnavailable(f"cannot read secret {secret_name} ({type(error).__name__}): {error}") from error
    if not isinstance(value, dict):
        raise SecretUnavailable(f"secret {secret_name} must hold a JSON object, not {type(value).__name__}")
    return value


class WebhookKeySource:
    """The webhook's keys, from its secret; a failed read is remembered for FAILURE_MAX_AGE_SECONDS.

    One per warm function (built at import), so the remembered failure lives as long as the sandbox.
    """

    def __init__(self, secret_name: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.secret_name = secret_name
        self._clock = clock
        self._failed: tuple[float, str] | None = None

    def __call__(self) -> WebhookKeys:
        if self._failed is not None:
            failed_at, reason = self._failed
            if self._clock() - failed_at < FAILURE_MAX_AGE_SECONDS:
                raise SecretUnavailable(f"{reason} (not read again for {FAILURE_MAX_AGE_SECONDS} s)", remembered=True)
        try:
            # After a failure, past Powertools' cache: it keeps a value that parsed as JSON but was no object.
            value = read_secret(self.secret_name, force_fetch=self._failed is not None)
        except SecretUnavailable as error:
            self._failed = (self._clock(), str(error))
            raise
        self._failed = None
        webhook_secret, client_secret = _key_text(value, "webhook_secret"), _key_text(value, "client_secret")
        return WebhookKeys(webhook_secret=webhook_secret, client_secret=client_secret)


def _key_text(value: Mapping[str, Any], key: str) -> str:
    return str(value.get(key) or "")
