"""What a customer and the operator see when SES refuses an address or EventBridge refuses an event (SPEC §5, §6b)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from account_doctor.delivery import DeliveryRecorder
from account_doctor.events_out import PublishError
from account_doctor.models import AccountEvent, iso
from account_doctor.notifications.notifier import EmailRejected
from account_doctor.notifications.render import RenderedEmail
from account_doctor.stores.dynamo import Table, dynamodb_client
from account_doctor.stores.ledger import NotificationLedger
from account_doctor.stores.verdicts import page_verdicts
from tests.conftest import load_event
from tests.integration.test_incidents import START, Harness

pytestmark = pytest.mark.usefixtures("aws")


@dataclass
class RefusingMailer:
    """SES as it answers an address on the suppression list: MessageRejected, for this recipient only."""

    refused: str
    inner: object

    def send(self, email: RenderedEmail) -> str:
        if email.to == self.refused:
            raise EmailRejected("MessageRejected: Email address is on the suppression list: r***@corp.com")
        return self.inner.send(email)  # type: ignore[attr-defined, no-any-return]


def test_a_rejected_address_is_recorded_the_operator_told_and_the_cooldown_kept(harness: Harness) -> None:
    notifier = harness.service.notifier
    notifier._mailer = RefusingMailer("rita@corp.com", harness.outbox)  # type: ignore[attr-defined]

    assert harness.diagnose(harness.fail(1, "rita@corp.com", "google", minutes=0)) == "oauth_revoked"

    (verdict,) = page_verdicts(harness.verdicts.account_verdicts("grant-1", limit=5))
    statuses = [(n.kind, n.status) for n in verdict.notifications]
    assert ("reconnect", "rejected") in statuses
    rejected = next(n for n in verdict.notifications if n.status == "rejected")
    assert rejected.reason is not None
    assert "suppression list" in rejected.reason
    (alert,) = harness.outbox.to(harness.settings.operator_email)
    assert "rita@corp.com" in alert.subject or "rita@corp.com" in alert.text
    assert harness.outbox.to("rita@corp.com") == []

    # The address was fixed; the account fails again within the cooldown: this time the email goes out.
    notifier._mailer = harness.outbox  # type: ignore[attr-defined]
    again = AccountEvent(
        "evt-again", "v3", "grant.expired", "grant-1", iso(START + timedelta(hours=2)), "google", "rita@corp.com"
    )
    harness.service.record(again)
    harness.diagnose(again)
    assert [e.kind for e in harness.outbox.to("rita@corp.com")] == ["reconnect"]


def test_a_refused_event_is_retried_without_a_second_verdict_or_email(harness: Harness) -> None:
    harness.publisher.failures = 1
    event = harness.fail(1, "sam@corp.com", "google", minutes=0)
    with pytest.raises(PublishError):
        harness.diagnose(event)
    # The queue redelivers the message: the stored verdict is reused and published; nothing is sent twice.
    harness.service.diagnose(event)
    assert len(page_verdicts(harness.verdicts.account_verdicts("grant-1", limit=5))) == 1
    assert [v["event_id"] for v in harness.publisher.of_type("Verdict")] == ["evt-1"]
    assert len(harness.outbox.to("sam@corp.com")) == 1


def test_a_hard_bounce_reaches_the_verdict_and_the_operator_once(harness: Harness) -> None:
    """The real ledger on moto: a sent reconnect email, then SES's Bounce event as the rule delivers it."""
    assert harness.diagnose(harness.fail(1, "kim@shop.example", "google", minutes=0)) == "oauth_revoked"
    (verdict,) = page_verdicts(harness.verdicts.account_verdicts("grant-1", limit=5))
    (sent,) = [n for n in verdict.notifications if n.kind == "reconnect"]
    assert sent.status == "sent"

    settings = harness.settings
    client = dynamodb_client()
    ledger = NotificationLedger(
        Table(settings.notifications_table, client), verdicts=Table(settings.verdicts_table, client)
    )
    recorder = DeliveryRecorder(ledger, harness.outbox, settings)
    bounce = load_event("ses-bounce.json")
    bounce["detail"]["mail"]["messageId"] = sent.message_id
    for _ in range(2):  # EventBridge delivers at least once
        recorder.handle(bounce)

    (verdict,) = page_verdicts(harness.verdicts.account_verdicts("grant-1", limit=5))
    (bounced,) = [n for n in verdict.notifications if n.kind == "reconnect"]
    assert bounced.status == "bounced"
    assert bounced.reason
    alerts = harness.outbox.to(settings.operator_email)
    assert len(alerts) == 1
    assert "kim@shop.example" in alerts[0].subject

    # A late Delivery event for the same message never hides the bounce.
    delivered = load_event("ses-delivery.json")
    delivered["detail"]["mail"]["messageId"] = sent.message_id
    recorder.handle(delivered)
    (verdict,) = page_verdicts(harness.verdicts.account_verdicts("grant-1", limit=5))
    assert [n.status for n in verdict.notifications if n.kind == "reconnect"] == ["bounced"]
