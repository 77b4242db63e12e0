"""The SES mailer: what every send carries, and which SES errors are a customer's permanent refusal (SPEC §5)."""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber

from account_doctor.notifications.mailer import SesMailer
from account_doctor.notifications.notifier import EmailRejected, SenderRejected
from account_doctor.notifications.render import RenderedEmail
from account_doctor.tally import tally

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
        "Email address is not verified. The following identities failed the check in region US-EAST-1: "
        "First.Last@customer.example",  # the sandbox: this recipient is not verified
    ),
    ("MessageRejected", 400, "Address blacklisted."),
    ("BadRequestException", 400, "Illegal address"),
    ("BadRequestException", 400, "Missing final '@domain' in first.last@customer"),
]


# SES will not send for us at all (the sender identity, the account, the stack's configuration or permission):
# no customer refused anything, so never recorded as a rejection of their address; retried until fixed.
NOT_VERIFIED = "Email address is not verified. The following identities failed the check in region US-EAST-1: "
SENDER = [
    ("MessageRejected", 400, NOT_VERIFIED + "doctor@acme.dev"),
    ("MessageRejected", 400, NOT_VERIFIED + "Doctor@Acme.dev, first.last@customer.example"),  # both: the sender's
    (
        "MessageRejected",
        400,
        "User `arn:aws:sts::123456789012:assumed-role/DiagnosisRole/fn' is not authorized to perform "
        "`ses:SendEmail' on resource `arn:aws:ses:us-east-1:123456789012:identity/acme.dev'",
    ),
    ("MessageRejected", 400, "Sending suspended for this account. Check the inbox of your account's email address."),
    ("SendingPausedException", 400, "Sending is paused for this account"),
    ("AccountSuspendedException", 400, "The account's ability to send email has been permanently restricted"),
    ("MailFromDomainNotVerifiedException", 400, "MAIL FROM domain is not verified"),
    ("NotFoundException", 404, "Configuration set <account-doctor-emails> does not exist."),
    ("AccessDeniedException", 403, "User is not authorized to perform: ses:SendEmail"),
]


# Whose refusal each is: the customer's is recorded on their notification, ours retried and counted for the alarm.
REFUSALS = [(EmailRejected, *row) for row in PERMANENT] + [(SenderRejected, *row) for row in SENDER]


@pytest.mark.parametrize(
    ("refusal", "code", "status", "message"),
    REFUSALS,
    ids=[f"{r.__name__}-{c}: {m[:30]}" for r, c, _, m in REFUSALS],
)
def test_a_refusal_is_sorted_by_whose_it_is_with_every_address_masked(
    ses: tuple[Any, Stubber], refusal: type[EmailRejected | SenderRejected], code: str, status: int, message: str
) -> None:
    client, stubber = ses
    stubber.add_client_error("send_email", code, message, status)
    tally.drain()
    with pytest.raises(refusal) as raised:  # neither is the other: a sender refusal is never the customer's
        SesMailer(client, MailSettings()).send(EMAIL)
    assert raised.value.reason.startswith(code)
    printed = "".join(traceback.format_exception(raised.value)).lower()
    assert "first.last@" not in printed  # not even in the chained SES error a logged traceback would show
    assert "doctor@acme.dev" not in printed
    if refusal is SenderRejected:
        assert "verify SenderEmail" in str(raised.value)  # what the operator must do
        assert tally.drain() == {("SenderRejected", "", ""): 1}
    else:
        assert tally.drain() == {}
        if "@customer.example" in message:
            assert "F***@customer.example" in raised.value.reason


def test_a_sender_problem_is_logged_once_however_many_emails_it_stops(
    ses: tuple[Any, Stubber], caplog: pytest.LogCaptureFixture
) -> None:
    client, stubber = ses
    mailer = SesMailer(client, MailSettings())
    unverified, paused = NOT_VERIFIED + "doctor@acme.dev", "Sending is paused for this account"
    for message in (unverified, unverified, unverified, None, unverified, paused):
        if message is None:
            stubber.add_response("send_email", {"MessageId": "m"})  # fixed for a while: a recurrence is news
        else:
            stubber.add_client_error("send_email", "MessageRejected", message, 400)
    tally.drain()
    with caplog.at_level(logging.ERROR):
        for _ in range(6):
            with contextlib.suppress(SenderRejected):
                mailer.send(EMAIL)
    logged = [r.reason for r in caplog.records if r.getMessage().startswith("SES refuses to send")]  # type: ignore[attr-defined]
    masked = f"MessageRejected: {NOT_VERIFIED}d***@acme.dev"
    assert logged == [masked, masked, f"MessageRejected: {paused}"]
    assert tally.drain() == {("SenderRejected", "", ""): 5}


# Retried as they are (throttling, 5xx, a request SES could not read): SES refused nothing for good.
TRANSIENT = [
    ("TooManyRequestsException", 429, "Too many requests"),
    ("LimitExceededException", 400, "Maximum sending rate exceeded."),
    ("InternalFailure", 500, "Internal error"),
    ("ServiceUnavailable", 503, "Service unavailable"),
    ("MessageRejected", 503, "Email address is not verified"),  # a 5xx is retried whatever its code
    ("BadRequestException", 400, "1 validation error detected: Value at 'content' failed to satisfy constraint"),
]


@pytest.mark.parametrize(("code", "status", "message"), TRANSIENT, ids=[f"{c}-{s}" for c, s, _ in TRANSIENT])
def test_anything_else_propagates_for_a_retry(ses: tuple[Any, Stubber], code: str, status: int, message: str) -> None:
    client, stubber = ses
    stubber.add_client_error("send_email", code, message, status)
    with pytest.raises(ClientError) as raised:
        SesMailer(client, MailSettings()).send(EMAIL)
    assert raised.value.response["Error"]["Code"] == code
