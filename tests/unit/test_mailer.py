"""The SES mailer: what every send carries, and which SES errors are a customer's permanent refusal (SPEC §5)."""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber

from account_doctor.notifications.mailer import SesMailer
from account_doctor.notifications.notifier import EmailRejected
from account_doctor.notifications.render import RenderedEmail

EMAIL = RenderedEmail(
    kind="reconnect", to="first.last@customer.example", subject="Acme Sync: reconnect", text="text", html="<p>html</p>"
)


@dataclass(frozen=True)
class MailSettings:
    app_name: str = "Acme Sync"
    sender_email: str = "doctor@acme.dev"
    reply_to_email: str = "help@acme.dev"
    configuration_set_name: str = "account-doctor-emails"


@pytest.fixture
def ses() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("sesv2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expected_request(**extra: Any) -> dict[str, Any]:
    return {
        "FromEmailAddress": "Acme Sync <doctor@acme.dev>",
        "Destination": {"ToAddresses": [EMAIL.to]},
        "Content": ANY,
        **extra,
    }


def test_every_send_uses_the_configuration_set_and_the_reply_to_address(ses: tuple[Any, Stubber]) -> None:
    client, stubber = ses
    stubber.add_response(
        "send_email",
        {"MessageId": "0100-abc"},
        expected_request(ConfigurationSetName="account-doctor-emails", ReplyToAddresses=["help@acme.dev"]),
    )
    assert SesMailer(client, MailSettings()).send(EMAIL) == "0100-abc"


def test_no_reply_to_header_when_none_is_configured(ses: tuple[Any, Stubber]) -> None:
    client, stubber = ses
    stubber.add_response(
        "send_email", {"MessageId": "m"}, expected_request(ConfigurationSetName="account-doctor-emails")
    )
    SesMailer(client, MailSettings(reply_to_email="")).send(EMAIL)


def test_both_parts_go_out_in_utf_8(ses: tuple[Any, Stubber]) -> None:
    client, stubber = ses
    simple = {
        "Subject": {"Data": EMAIL.subject, "Charset": "UTF-8"},
        "Body": {"Text": {"Data": "text", "Charset": "UTF-8"}, "Html": {"Data": "<p>html</p>", "Charset": "UTF-8"}},
    }
    stubber.add_response(
        "send_email",
        {"MessageId": "m"},
        {**expected_request(ConfigurationSetName=ANY, ReplyToAddresses=ANY), "Content": {"Simple": simple}},
    )
    SesMailer(client, MailSettings()).send(EMAIL)


# (error code, HTTP status, SES's message): refused for good for this recipient.
PERMANENT = [
    (
        "MessageRejected",
        400,
        "Email address is not verified. The following identities failed the check: first.last@customer.example",
    ),
    ("MessageRejected", 400, "Address blacklisted."),
    ("BadRequestException", 400, "Illegal address"),
    ("BadRequestException", 400, "Missing final '@domain' in first.last@customer"),
]


@pytest.mark.parametrize(("code", "status", "message"), PERMANENT, ids=[f"{c}: {m[:24]}" for c, _, m in PERMANENT])
def test_a_permanent_refusal_is_email_rejected_with_every_address_masked(
    ses: tuple[Any, Stubber], code: str, status: int, message: str
) -> None:
    client, stubber = ses
    stubber.add_client_error("send_email", code, message, status)
    with pytest.raises(EmailRejected) as raised:
        SesMailer(client, MailSettings()).send(EMAIL)
    assert raised.value.reason.startswith(code)
    assert "first.last@" not in raised.value.reason
    printed = "".join(traceback.format_exception(raised.value))
    assert "first.last@" not in printed  # not even in the chained SES error a logged traceback would show
    if "@customer.example" in message:
        assert "f***@customer.example" in raised.value.reason


# Retried (throttling, 5xx) or the operator's to fix (the sender, the configuration set, the account): not the
# customer's address, so never recorded as a rejection of it.
TRANSIENT = [
    ("TooManyRequestsException", 429, "Too many requests"),
    ("LimitExceededException", 400, "Maximum sending rate exceeded."),
    ("InternalFailure", 500, "Internal error"),
    ("ServiceUnavailable", 503, "Service unavailable"),
    ("MessageRejected", 503, "Email address is not verified"),  # a 5xx is retried whatever its code
    ("SendingPausedException", 400, "Sending is paused for this account"),
    ("AccountSuspendedException", 400, "The account's ability to send email has been permanently restricted"),
    ("MailFromDomainNotVerifiedException", 400, "MAIL FROM domain is not verified"),
    ("NotFoundException", 404, "Configuration set <account-doctor-emails> does not exist."),
    ("BadRequestException", 400, "1 validation error detected: Value at 'content' failed to satisfy constraint"),
]


@pytest.mark.parametrize(("code", "status", "message"), TRANSIENT, ids=[f"{c}-{s}" for c, s, _ in TRANSIENT])
def test_anything_else_propagates_for_a_retry(ses: tuple[Any, Stubber], code: str, status: int, message: str) -> None:
    client, stubber = ses
    stubber.add_client_error("send_email", code, message, status)
    with pytest.raises(ClientError) as raised:
        SesMailer(client, MailSettings()).send(EMAIL)
    assert raised.value.response["Error"]["Code"] == code
