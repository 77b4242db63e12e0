"""Sends a rendered email with SES (the SESv2 SendEmail API, simple content: text and HTML parts)."""

from __future__ import annotations

from email.utils import formataddr
from typing import Any

from account_doctor.notifications.render import RenderedEmail


class SesMailer:
    def __init__(self, client: Any, *, sender_email: str, app_name: str) -> None:
        self._client = client
        # "Account Doctor <sender@…>": the app's name as the sender's display name.
        self._from = formataddr((app_name, sender_email))

    def send(self, email: RenderedEmail) -> str:
        """Returns SES's message id; SES errors (throttling included) propagate to the caller."""
        response = self._client.send_email(
            FromEmailAddress=self._from,
            Destination={"ToAddresses": [email.to]},
            Content={
                "Simple": {
                    "Subject": {"Data": email.subject, "Charset": "UTF-8"},
                    "Body": {
                        "Text": {"Data": email.text, "Charset": "UTF-8"},
                        "Html": {"Data": email.html, "Charset": "UTF-8"},
                    },
                }
            },
        )
        return str(response["MessageId"])
