"""The connectors' clocks (SPEC §3d): the Microsoft client secret's expiry, known in advance, alerted in time.

An expired Entra ID client secret breaks every Microsoft grant at once, the costliest incident there is, and its
date is known: the operator is told 30, 7 and 1 days before and on the day, once each. Pure: dates in, the
alert to send (if any) out.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from aws_lambda_powertools import Logger

from account_doctor import providers
from account_doctor.models import WatchAlert

logger = Logger(child=True)

# Days before the expiry at which the operator is alerted, nearest last.
SECRET_ALERT_DAYS = (30, 7, 1, 0)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# The connector whose app credential has a known expiry date.
EXPIRING_CREDENTIAL_CONNECTOR = "microsoft"


class MalformedExpiry(ValueError):
    """MicrosoftClientSecretExpiresOn is not a YYYY-MM-DD date."""


def parse_expiry(raw: str) -> date | None:
    """The secret's expiry date; None when unknown (empty). MalformedExpiry says what a date looks like."""
    text = raw.strip()
    if not text:
        return None
    if not _DATE.match(text):
        raise MalformedExpiry(f"MICROSOFT_CLIENT_SECRET_EXPIRES_ON must be a date like 2027-03-31, got {raw!r}")
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise MalformedExpiry(f"MICROSOFT_CLIENT_SECRET_EXPIRES_ON is not a calendar date: {raw!r}") from error


def secret_expiry(raw: str) -> date | None:
    """MicrosoftClientSecretExpiresOn as a date; a malformed value (the template's pattern was bypassed) is one
    clear log line and no clock at all, never a function that fails on every run."""
    try:
        return parse_expiry(raw)
    except MalformedExpiry as error:
        logger.error(f"{error}: the client secret's expiry is not watched until it is fixed in samconfig.toml")
        return None


def days_left(expires_on: date, now: datetime) -> int:
    """Whole days from today (UTC) to the expiry: 0 on the day, negative once it passed."""
    return (expires_on - now.date()).days


def due_alert_day(left: int) -> int | None:
    """The nearest alert threshold this many days left has passed; None before the first (31 days or more).

    A run that finds several passed at once (a first deployment 6 days before) alerts once, for the nearest."""
    passed = [threshold for threshold in SECRET_ALERT_DAYS if left <= threshold]
    return min(passed) if passed else None


def secret_alert(expires_on: date, left: int) -> WatchAlert:
    when = expires_on.isoformat()
    if left > 0:
        title = f"The Microsoft client secret expires in {left} day{'' if left == 1 else 's'} ({when})"
        what = (
            f"The Entra ID client secret of your Microsoft connector expires on {when}. On that day every "
            "Microsoft grant stops working at once and every Microsoft customer would have to reconnect."
        )
    elif left == 0:
        title = f"The Microsoft client secret expires today ({when})"
        what = (
            f"The Entra ID client secret of your Microsoft connector expires today, {when}: from then on every "
            "Microsoft grant fails at once."
        )
    else:
        title = f"The Microsoft client secret expired on {when}"
        what = (
            f"The Entra ID client secret of your Microsoft connector expired on {when}, {-left} day"
            f"{'' if left == -1 else 's'} ago: Microsoft grants fail until the connector has a new secret."
        )
    return WatchAlert(
        key="client_secret",
        title=title,
        paragraphs=(what,),
        steps=(
            "In the Azure portal: Entra ID > App registrations > your app > Certificates & secrets > New client "
            "secret; copy its value.",
            "In the Nylas dashboard: Connectors > Microsoft, paste the new client secret and save "
            "(or PATCH /v3/connectors/microsoft with the new client_secret).",
            "Deploy Account Doctor with MicrosoftClientSecretExpiresOn set to the new secret's expiry date, so the "
            "next expiry is watched too.",
        ),
        facts=(("Client secret expires on", when), ("Days left", str(left))),
    )


def expired_secret_cause(expires_on: date | None, at: datetime) -> str | None:
    """The most likely cause of a Microsoft connector outage at `at`, when the known secret had expired by then."""
    if expires_on is None or at.date() < expires_on:
        return None
    return (
        f"The Entra ID client secret of the Microsoft connector expired on {expires_on.isoformat()} "
        "(MicrosoftClientSecretExpiresOn): create a new one and put it into the Nylas Microsoft connector."
    )


def outage_causes(connector_key: str, expires_on: date | None, at: datetime) -> tuple[str, ...]:
    """The likely causes of a connector outage at `at`, most likely first: a known expired client secret leads."""
    causes = providers.connector_outage_causes(connector_key)
    expired = expired_secret_cause(expires_on, at) if connector_key == EXPIRING_CREDENTIAL_CONNECTOR else None
    return (expired, *causes) if expired else causes
