"""SES delivery feedback (SPEC §5): each event recorded on its notification; hard bounces and complaints told.

Driven by the events SES publishes to EventBridge (events/ses-*.json), against an in-memory ledger that
implements the DeliveryLedger protocol the notification ledger implements in DynamoDB.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError

from account_doctor.delivery import (
    DeliveredNotification,
    DeliveryLedger,
    DeliveryRecorder,
    DeliveryStatus,
    feedback_from,
)
from account_doctor.models import NotificationKind
from account_doctor.notifications.notifier import EmailRejected, SenderRejected
from account_doctor.notifications.render import RenderedEmail
from account_doctor.ports import Engagement

EVENTS = Path(__file__).resolve().parents[2] / "events"
CUSTOMER = "kim@shop.example"


def ses_event(name: str, **detail_changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"ses-{name}.json").read_text(encoding="utf-8"))
    for key, value in detail_changes.items():
        event["detail"][key] = {**event["detail"].get(key, {}), **value}
    return event


def message_id(event: dict[str, Any]) -> str:
    return str(event["detail"]["mail"]["messageId"])


# A later `delivered` never replaces these: SES events arrive in any order.
_FINAL: frozenset[str] = frozenset({"bounced", "complained", "rejected"})


@dataclass
class FakeLedger:
    """The notification ledger's delivery side, in memory: what was sent, and its status, by SES message id."""

    sent: dict[str, tuple[NotificationKind, str]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str | None] = field(default_factory=dict)
    alerts: set[str] = field(default_factory=set)
    blocked: dict[str, str | None] = field(default_factory=dict)
    engaged: set[tuple[str, str]] = field(default_factory=set)

    def send(self, message: str, *, kind: NotificationKind = "reconnect", to: str = CUSTOMER) -> None:
        self.sent[message] = (kind, to)
        self.status[message] = "sent"

    def record_delivery(
        self, message_id: str, status: DeliveryStatus, reason: str | None, at: str
    ) -> DeliveredNotification | None:
        if message_id not in self.sent:
            return None
        if not (status == "delivered" and self.status[message_id] in _FINAL):
            self.status[message_id], self.reasons[message_id] = status, reason
        kind, to = self.sent[message_id]
        recorded = cast(DeliveryStatus, self.status[message_id])
        return DeliveredNotification(
            message_id,
            "evt-grant-oauth_revoked",
            "grant-oauth_revoked",
            kind,
            to,
            recorded,
            self.reasons.get(message_id),
            summary="Access revoked.",
        )

    def claim_delivery_alert(self, message_id: str, at: str) -> bool:
        if message_id in self.alerts:
            return False
        self.alerts.add(message_id)
        return True

    def release_delivery_alert(self, message_id: str) -> None:
        self.alerts.discard(message_id)

    def block_address(self, address: str, reason: str | None, at: str) -> None:
        self.blocked[address] = reason

    def record_engagement(
        self, message_id: str, engagement: Engagement, at: str
    ) -> tuple[DeliveredNotification, bool] | None:
        found = self.record_delivery(message_id, cast(DeliveryStatus, self.status.get(message_id, "sent")), None, at)
        if found is None:
            return None
        first = (message_id, engagement) not in self.engaged
        self.engaged.add((message_id, engagement))
        return found, first


# Type-checked against the protocol the DynamoDB ledger implements, so the fake cannot drift from it.
_CONFORMS: DeliveryLedger = FakeLedger()


@dataclass
class FakeMailer:
    sent: list[RenderedEmail] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)

    def send(self, email: RenderedEmail) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(email)
        return f"alert-{len(self.sent)}"


@dataclass(frozen=True)
class AlertSettings:
    app_name: str = "Acme Sync"
    reply_to_email: str = "help@acme.dev"
    operator_email: str = "ops@acme.dev"


@pytest.fixture
def ledger() -> FakeLedger:
    fake = FakeLedger()
    for name in ("delivery", "bounce", "complaint"):
        fake.send(message_id(ses_event(name)))
    return fake


@pytest.fixture
def mailer() -> FakeMailer:
    return FakeMailer()


def recorder(ledger: DeliveryLedger, mailer: FakeMailer | None) -> DeliveryRecorder:
    return DeliveryRecorder(ledger, mailer, AlertSettings())


def test_a_delivery_is_recorded_and_tells_nobody(ledger: FakeLedger, mailer: FakeMailer) -> None:
    event = ses_event("delivery")
    outcome = recorder(ledger, mailer).handle(event)
    assert (outcome.status, outcome.recorded, outcome.operator_alerted) == ("delivered", True, False)
    assert ledger.status[message_id(event)] == "delivered"
    assert mailer.sent == []


def test_a_hard_bounce_is_recorded_and_alerts_the_operator_once(ledger: FakeLedger, mailer: FakeMailer) -> None:
    event = ses_event("bounce")
    handle = recorder(ledger, mailer).handle
    outcome = handle(event)
    assert (outcome.status, outcome.recorded, outcome.operator_alerted) == ("bounced", True, True)
    assert ledger.status[message_id(event)] == "bounced"
    reason = str(ledger.reasons[message_id(event)])
    assert reason.startswith("Permanent bounce (General): smtp; 550 5.1.1")
    assert CUSTOMER not in reason  # the receiving server quoted it; it is masked like in the logs
    assert "k***@shop.example" in reason
    (alert,) = mailer.sent
    assert alert.to == "ops@acme.dev"
    assert alert.kind == "operator_alert"
    assert (
        alert.subject == f"Acme Sync alert: Could not email {CUSTOMER} about grant-oauth_revoked: the address bounced"
    )
    assert "account-doctor verdicts grant-oauth_revoked" in alert.text
    assert "Access revoked." in alert.text
    # EventBridge delivers at least once: the same event again records nothing new and sends nothing.
    again = handle(event)
    assert (again.recorded, again.operator_alerted) == (True, False)
    assert len(mailer.sent) == 1


def test_a_complaint_is_recorded_and_alerts_the_operator(ledger: FakeLedger, mailer: FakeMailer) -> None:
    event = ses_event("complaint")
    outcome = recorder(ledger, mailer).handle(event)
    assert (outcome.status, outcome.operator_alerted) == ("complained", True)
    assert ledger.reasons[message_id(event)] == "The recipient reported the email as spam (abuse)."
    (alert,) = mailer.sent
    assert alert.subject == f"Acme Sync alert: {CUSTOMER} marked the email about grant-oauth_revoked as spam"


@pytest.mark.parametrize("bounce_type", ["Transient", "Undetermined"])
def test_a_soft_bounce_is_recorded_without_an_alert(ledger: FakeLedger, mailer: FakeMailer, bounce_type: str) -> None:
    event = ses_event("bounce", bounce={"bounceType": bounce_type, "bounceSubType": "MailboxFull"})
    outcome = recorder(ledger, mailer).handle(event)
    assert (outcome.status, outcome.recorded, outcome.operator_alerted) == ("bounced", True, False)
    assert str(ledger.reasons[message_id(event)]).startswith(f"{bounce_type} bounce (MailboxFull)")
    assert mailer.sent == []


def test_a_late_delivery_event_does_not_hide_a_bounce(ledger: FakeLedger, mailer: FakeMailer) -> None:
    bounce = ses_event("bounce")
    delivery = ses_event("delivery")
    delivery["detail"]["mail"]["messageId"] = message_id(bounce)
    handle = recorder(ledger, mailer).handle
    handle(bounce)
    handle(delivery)
    assert ledger.status[message_id(bounce)] == "bounced"


def test_an_email_that_is_not_ours_is_ignored(ledger: FakeLedger, mailer: FakeMailer) -> None:
    event = ses_event("bounce")
    event["detail"]["mail"]["messageId"] = "0100-sent-by-another-application"
    outcome = recorder(ledger, mailer).handle(event)
    assert (outcome.recorded, outcome.operator_alerted) == (False, False)
    assert mailer.sent == []


def test_a_bounced_operator_alert_does_not_alert_about_itself(ledger: FakeLedger, mailer: FakeMailer) -> None:
    event = ses_event("bounce")
    ledger.send(message_id(event), kind="operator_alert", to="ops@acme.dev")
    outcome = recorder(ledger, mailer).handle(event)
    assert (outcome.status, outcome.recorded, outcome.operator_alerted) == ("bounced", True, False)
    assert mailer.sent == []


@pytest.mark.parametrize(
    "refusal",
    [
        ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "slow down"}}, "SendEmail"),
        # SES refusing our own sender (unverified after a deploy) is not the operator's address refused for good.
        SenderRejected("MessageRejected: Email address is not verified. … d***@acme.dev"),
    ],
    ids=["throttled", "sender refused"],
)
def test_an_alert_ses_did_not_send_is_sent_when_the_event_is_retried(
    ledger: FakeLedger, mailer: FakeMailer, refusal: Exception
) -> None:
    mailer.failures.append(refusal)
    event = ses_event("bounce")
    handle = recorder(ledger, mailer).handle
    with pytest.raises(type(refusal)):
        handle(event)  # Lambda retries the event
    assert mailer.sent == []
    assert handle(event).operator_alerted
    assert len(mailer.sent) == 1


def test_an_operator_address_ses_refuses_is_not_retried_forever(ledger: FakeLedger, mailer: FakeMailer) -> None:
    mailer.failures.append(EmailRejected("MessageRejected: Address blacklisted."))
    outcome = recorder(ledger, mailer).handle(ses_event("bounce"))
    assert (outcome.status, outcome.recorded, outcome.operator_alerted) == ("bounced", True, False)


def test_in_dry_run_the_alert_is_rendered_not_sent(ledger: FakeLedger) -> None:
    outcome = recorder(ledger, None).handle(ses_event("complaint"))
    assert (outcome.status, outcome.recorded) == ("complained", True)


# --- Reading the events SES publishes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "alerts"),
    [("delivery", "delivered", False), ("bounce", "bounced", True), ("complaint", "complained", True)],
)
def test_the_sample_events_are_what_ses_publishes(name: str, status: str, alerts: bool) -> None:
    event = ses_event(name)
    assert event["source"] == "aws.ses"
    assert event["detail"]["mail"]["tags"]["ses:configuration-set"] == ["account-doctor-emails"]
    feedback = feedback_from(event)
    assert feedback is not None
    assert (feedback.status, feedback.alerts_operator, feedback.message_id) == (status, alerts, message_id(event))
    assert feedback.at.endswith("Z")
    assert len(feedback.at) == len("2024-11-19T10:02:05Z")


def test_a_reject_event_is_recorded_as_rejected() -> None:
    event = ses_event("delivery")
    event["detail-type"] = "Email Rejected"
    detail = event["detail"]
    detail["eventType"] = "Reject"
    del detail["delivery"]
    detail["reject"] = {"reason": "Bad content"}
    feedback = feedback_from(event)
    assert feedback is not None
    assert (feedback.status, feedback.reason, feedback.alerts_operator) == (
        "rejected",
        "SES rejected the email: Bad content",
        False,
    )


def test_the_detail_type_serves_when_the_detail_has_no_event_type() -> None:
    event = ses_event("complaint")
    del event["detail"]["eventType"]
    feedback = feedback_from(event)
    assert feedback is not None
    assert feedback.status == "complained"


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"detail-type": "Email Opened", "detail": {"eventType": "Open", "mail": {"messageId": "m"}}},
        {"detail-type": "Email Bounced", "detail": {"eventType": "Bounce", "mail": {}}},
        {"detail-type": "Email Bounced", "detail": "not an object"},
    ],
)
def test_anything_else_is_ignored(ledger: FakeLedger, mailer: FakeMailer, broken: dict[str, Any]) -> None:
    assert feedback_from(broken) is None
    assert recorder(ledger, mailer).handle(copy.deepcopy(broken)).recorded is False
