"""Sends a rendered email with SES (the SESv2 SendEmail API, simple content: text and HTML parts).

SES errors are sorted here, once: a permanent refusal for this recipient becomes EmailRejected (recorded,
never retried); throttling, 5xx and our own configuration problems propagate, so the message is retried
and, if it keeps failing, dead-lettered where the operator's alarm sees it.
"""

from __future__ import annotations

import re
from email.utils import formataddr
from typing import Any, Protocol

from botocore.exceptions import ClientError

from account_doctor.addresses import mask_addresses
from account_doctor.notifications.notifier import EmailRejected
from account_doctor.notifications.render import RenderedEmail

# SES refuses this message for good: its content, or (in the sandbox) an unverified or suppressed recipient.
_REJECTED_CODES = frozenset({"MessageRejected"})
# SESv2 answers a malformed recipient with BadRequestException ("Illegal address", "Missing final '@domain'");
# any other bad request is our own bug, which a retry and then the dead-letter alarm bring to light.
_BAD_ADDRESS_CODES = frozenset({"BadRequestException", "InvalidParameterValue"})
_ADDRESS_PROBLEM = re.compile(r"address|recipient|@|domain", re.IGNORECASE)


class MailerSettings(Protocol):
    @property
    def app_name(self) -> str: ...

    @property
    def sender_email(self) -> str: ...

    @property
    def reply_to_email(self) -> str: ...

    @property
    def configuration_set_name(self) -> str: ...


class SesMailer:
    def __init__(self, client: Any, settings: MailerSettings) -> None:
        self._client = client
        # "Account Doctor <sender@…>": the app's name as the sender's display name.
        self._from = formataddr((settings.app_name, settings.sender_email))
        # Every send goes through the stack's configuration set, whose events record deliveries, bounces and
        # complaints on the notifications (SPEC §5); '' only where no set exists (a bare local run).
        self._options: dict[str, Any] = {}
        if settings.configuration_set_name:
            self._options["ConfigurationSetName"] = settings.configuration_set_name
        if settings.reply_to_email:
            self._options["ReplyToAddresses"] = [settings.reply_to_email]

    def send(self, email: RenderedEmail) -> str:
        """Returns SES's message id.

        Raises EmailRejected when SES refuses this recipient for good (reason with every address masked);
        any other SES error (throttling, 5xx, sending paused, an unverified sender) propagates for a retry.
        """
        try:
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
                **self._options,
            )
        except ClientError as error:
            reason = rejection(error)
            if reason is None:
                raise
            # `from None`: the SES error's own text names the full address, and a logged traceback would show it.
            raise EmailRejected(reason) from None
        return str(response["MessageId"])


def rejection(error: ClientError) -> str | None:
    """The masked reason when the error is SES refusing this recipient for good, else None."""
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    message = str(details.get("Message", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
    if status >= 500:
        return None
    if code in _REJECTED_CODES or (code in _BAD_ADDRESS_CODES and _ADDRESS_PROBLEM.search(message)):
        return mask_addresses(f"{code}: {message}" if message else code)
    return None
