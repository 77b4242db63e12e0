"""moto's SES as the tests see it: what it accepted for delivery, and an SES client that throttles on demand."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

OPERATOR = "operators@example.com"  # template.yaml's OperatorEmail default
SENDER = "account-doctor@example.com"  # template.yaml's SenderEmail default


@dataclass(frozen=True)
class Received:
    message_id: str
    to: list[str]
    source: str
    subject: str
    html: str


def ses_outbox() -> list[Received]:
    """What moto's SES accepted for delivery, oldest first (it keeps the HTML part when there is one)."""
    backend = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    return [Received(m.id, m.destinations["ToAddresses"], m.source, m.subject, m.body) for m in backend.sent_messages]


class FlakySes:
    """SES that answers Throttling to the first `failures` sends, then sends for real."""

    def __init__(self, failures: int) -> None:
        self._client = boto3.client("sesv2")
        self.failures = failures

    def send_email(self, **request: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise ClientError(
                {"Error": {"Code": "Throttling", "Message": "Maximum sending rate exceeded."}}, "SendEmail"
            )
        return self._client.send_email(**request)


def hosted_auth_href(email: str, provider: str) -> str:
    """The reconnect link's href as the HTML part holds it: Nylas hosted auth with TEST_SECRET's client."""
    return html.escape(
        "https://api.us.nylas.com/v3/connect/auth?client_id=test-client-id"
        "&redirect_uri=https%3A%2F%2Fapp.example.com%2Fnylas%2Fcallback&response_type=code"
        f"&provider={provider}&login_hint={email.replace('@', '%40')}"
    )
