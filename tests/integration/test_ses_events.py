"""SesEventsFunction's handler on the SES events of events/ (sam local invoke's files), and the mailer on moto's SES."""

from __future__ import annotations

from types import ModuleType

import boto3
import pytest

from account_doctor.delivery import DeliveryRecorder
from account_doctor.notifications.mailer import SesMailer
from account_doctor.notifications.notifier import SenderRejected
from account_doctor.notifications.render import RenderedEmail
from account_doctor.settings import SesEventsSettings, get_settings
from local_stack.payloads import FakeLambdaContext, load_handler
from local_stack.template import ProvisionedStack
from tests.conftest import load_event
from tests.integration.ses import OPERATOR, ses_outbox
from tests.unit.test_delivery import CUSTOMER, FakeLedger, message_id


@pytest.fixture
def handler(aws: ProvisionedStack) -> ModuleType:
    """The function cold-started with its template environment, its ledger in memory (the DynamoDB ledger's
    delivery side is tested with the store), its mailer moto's SES."""
    module = load_handler("ses_events")
    ledger = FakeLedger()
    for name in ("ses-delivery.json", "ses-bounce.json", "ses-complaint.json"):
        ledger.send(message_id(load_event(name)))
    module.ledger = ledger
    module.recorder = DeliveryRecorder(ledger, SesMailer(boto3.client("sesv2"), module.settings), module.settings)
    return module


def test_the_function_reads_only_its_own_environment(aws: ProvisionedStack) -> None:
    settings = get_settings(SesEventsSettings)
    assert settings.configuration_set_name == aws.physical["EmailConfigurationSet"]
    assert settings.notifications_table == aws.physical["NotificationsTable"]


@pytest.mark.parametrize(
    ("name", "status", "alerted"),
    [
        ("ses-delivery.json", "delivered", False),
        ("ses-bounce.json", "bounced", True),
        ("ses-complaint.json", "complained", True),
    ],
)
def test_each_sample_event_is_recorded(
    handler: ModuleType, lambda_context: FakeLambdaContext, name: str, status: str, alerted: bool
) -> None:
    event = load_event(name)
    result = handler.lambda_handler(event, lambda_context)
    assert result == {"status": status, "recorded": True, "operator_alerted": alerted}
    assert handler.ledger.status[message_id(event)] == status
    alerts = [m for m in ses_outbox() if m.to == [OPERATOR]]
    assert len(alerts) == (1 if alerted else 0)
    if alerted:
        assert CUSTOMER in alerts[0].subject


def test_a_redelivered_bounce_alerts_once(handler: ModuleType, lambda_context: FakeLambdaContext) -> None:
    event = load_event("ses-bounce.json")
    handler.lambda_handler(event, lambda_context)
    handler.lambda_handler(event, lambda_context)
    assert len([m for m in ses_outbox() if m.to == [OPERATOR]]) == 1


def test_ses_refusing_an_unverified_sender_is_the_senders_problem_with_the_address_masked(
    aws: ProvisionedStack,
) -> None:
    settings = get_settings(SesEventsSettings)
    mailer = SesMailer(boto3.client("sesv2"), settings)
    email = RenderedEmail("reconnect", "someone@customer.example", "s", "t", "<p>h</p>")
    mailer.send(email)  # the stack's verified sender: accepted
    unverified = SesMailer(
        boto3.client("sesv2"),
        SesEventsSettings(**{**settings.__dict__, "sender_email": "nobody@unverified.example"}),
    )
    with pytest.raises(SenderRejected) as raised:  # not the customer's refusal: retried, never recorded as theirs
        unverified.send(email)
    assert raised.value.reason.startswith("MessageRejected")
    assert "nobody@" not in raised.value.reason
