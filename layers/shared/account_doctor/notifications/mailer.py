"""Sends a rendered email with SES (the SESv2 SendEmail API, simple content: text and HTML parts).

SES errors are sorted here, once. A permanent refusal of this recipient becomes EmailRejected (recorded, never
retried). A refusal of our sender, account or configuration becomes SenderRejected: no customer refused
anything, so nothing is recorded against them; it is counted (`SenderRejected`, watched by an alarm) and the
message is retried. Throttling and 5xx propagate as they are, for a retry.
"""

from __future__ import annotations

import re
import threading
from email.utils import formataddr
from typing import Any, Literal, Protocol

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from account_doctor.addresses import mask_addresses
from account_doctor.notifications.notifier import EmailRejected, SenderRejected
from account_doctor.notifications.render import RenderedEmail
from account_doctor.tally import tally

logger = Logger(child=True)

# SES's MessageRejected covers both sides: "Email address is not verified. The following identities failed the
# check in region US-EAST-1: …" names the sender right after a deploy (or, in the sandbox, the recipient), and
# "User … is not authorized to perform `ses:SendEmail'" names neither. Only one naming the recipient (or SES's
# words for a suppressed recipient, which name no address) is the customer's.
_REJECTED_CODES = frozenset({"MessageRejected"})
_RECIPIENT_REFUSED = re.compile(r"blacklisted|suppression list", re.IGNORECASE)
# SESv2's answers for a sender or account that may not send at all, and a configuration set or permission the
# stack lacks: every email fails alike until the operator acts.
_SENDER_CODES = frozenset(
    {
        "SendingPausedException",
        "AccountSuspendedException",
        "MailFromDomainNotVerifiedException",
        "NotFoundException",
        "AccessDeniedException",
    }
)
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
        self._sender = settings.sender_email
        # The sender problem logged last: one error line per problem, not per email of every retried batch.
        self._reported: str | None = None
        self._lock = threading.Lock()
        # Every send goes through the stack's configuration set, whose events record deliveries, bounces and
        # complaints on the notifications (SPEC §5); '' only where no set exists (a bare local run).
        self._options: dict[str, Any] = {}
        if settings.configuration_set_name:
            self._options["ConfigurationSetName"] = settings.configuration_set_name
        if settings.reply_to_email:
            self._options["ReplyToAddresses"] = [settings.reply_to_email]

    def send(self, email: RenderedEmail) -> str:
        """Returns SES's message id.

        Raises EmailRejected when SES refuses this recipient for good, SenderRejected when it refuses our sender
        or account (both reasons with every address masked); throttling and 5xx propagate for a retry.
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
            refused = refusal(error, recipient=email.to, sender=self._sender)
            if refused is None:
                raise
            whose, reason = refused
            # `from None`: the SES error's own text names the full address, and a logged traceback would show it.
            if whose == "recipient":
                raise EmailRejected(reason) from None
            self._sender_refused(reason)
            raise SenderRejected(reason) from None
        self._reported = None  # sending works (again): the next problem is news
        return str(response["MessageId"])

    def _sender_refused(self, reason: str) -> None:
        tally.count("SenderRejected")  # every refused send: SenderRejectedAlarm sums them
        with self._lock:
            first, self._reported = self._reported != reason, reason
        if first:
            logger.error(
                "SES refuses to send for this stack; every email waits for the fix and is retried",
                extra={"reason": reason},
            )


def refusal(error: ClientError, *, recipient: str, sender: str) -> tuple[Literal["recipient", "sender"], str] | None:
    """Whose refusal the error is ("recipient" or "sender", with the masked reason), or None when SES did not
    refuse anything for good (throttling, 5xx, a request of ours SES could not read)."""
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    message = str(details.get("Message", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
    if status >= 500:
        return None
    reason = mask_addresses(f"{code}: {message}" if message else code)
    if code in _SENDER_CODES:
        return "sender", reason
    if code in _REJECTED_CODES:
        said = message.casefold()
        # An unverified sender and recipient are listed together: nothing is sent until the sender is fixed.
        if sender.casefold() not in said and (recipient.casefold() in said or _RECIPIENT_REFUSED.search(message)):
            return "recipient", reason
        return "sender", reason
    if code in _BAD_ADDRESS_CODES and _ADDRESS_PROBLEM.search(message):
        return "recipient", reason
    return None
