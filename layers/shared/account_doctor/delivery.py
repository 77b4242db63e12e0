"""SES delivery feedback (SPEC §5): what became of each email, recorded on its notification.

SES publishes the configuration set's events to the default EventBridge bus ("Email Delivered", "Email
Bounced", "Email Complaint Received", "Email Rejected", and with EmailTracking "Email Opened" / "Email
Clicked"; detail = SES's event record). Each is recorded on
the notification that SES message id belongs to (`delivered` | `bounced` | `complained` | `rejected`), and a
customer's hard bounce or complaint alerts the operator, once per message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger

from account_doctor.addresses import mask_addresses, mask_email
from account_doctor.episodes import Recovery
from account_doctor.events_out import NoPublisher
from account_doctor.models import DeliveredNotification, iso, parse_iso
from account_doctor.notifications.mailer import SesMailer
from account_doctor.notifications.notifier import EmailRejected
from account_doctor.notifications.render import AlertProblem, AlertSettings, render_undeliverable
from account_doctor.ports import DeliveryLedger, Engagement, Mailer
from account_doctor.settings import SesEventsSettings
from account_doctor.stores.dynamo import Table, dynamodb_client
from account_doctor.stores.episodes import EpisodeRecords
from account_doctor.stores.ledger import NotificationLedger
from account_doctor.tally import tally

logger = Logger(child=True)

# `rejected` here is SES's own Reject event (it found a virus and sent nothing); SPEC §6's statuses hold it.
DeliveryStatus = Literal["delivered", "bounced", "complained", "rejected"]

# SES's eventType → the notification status it records.
_STATUS_OF: dict[str, DeliveryStatus] = {
    "Delivery": "delivered",
    "Bounce": "bounced",
    "Complaint": "complained",
    "Reject": "rejected",
}
# EventBridge's detail-type → the same, for an event whose detail lacks eventType.
DETAIL_TYPES: dict[str, DeliveryStatus] = {
    "Email Delivered": "delivered",
    "Email Bounced": "bounced",
    "Email Complaint Received": "complained",
    "Email Rejected": "rejected",
}
# SES's open and click tracking (EmailTracking): what the event's eventType (or detail-type) records.
_ENGAGEMENT_OF: dict[str, Engagement] = {
    "Open": "opened",
    "Click": "clicked",
    "Email Opened": "opened",
    "Email Clicked": "clicked",
}


def engagement_from(event: Mapping[str, Any]) -> tuple[str, Engagement, str] | None:
    """(SES message id, opened|clicked, when) of an SES open or click event (EmailTracking); None otherwise."""
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return None
    engagement = _ENGAGEMENT_OF.get(str(detail.get("eventType"))) or _ENGAGEMENT_OF.get(str(event.get("detail-type")))
    message_id = _mapping(detail, "mail").get("messageId")
    if engagement is None or not isinstance(message_id, str) or not message_id:
        return None
    happened = _mapping(detail, "open" if engagement == "opened" else "click")
    return message_id, engagement, _at(_field_text(happened, "timestamp") or _field_text(event, "time"))


@dataclass(frozen=True)
class Feedback:
    """One SES event, reduced to what the notification records."""

    message_id: str
    status: DeliveryStatus
    reason: str | None
    at: str
    alerts_operator: bool  # a hard bounce or a complaint: the customer was not reached, or must not be again


@dataclass(frozen=True)
class DeliveryOutcome:
    status: DeliveryStatus | None = None
    recorded: bool = False
    operator_alerted: bool = False


def feedback_from(event: Mapping[str, Any]) -> Feedback | None:
    """The feedback an EventBridge SES event carries; None for anything else (another type, a broken shape)."""
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return None
    status = _STATUS_OF.get(str(detail.get("eventType"))) or DETAIL_TYPES.get(str(event.get("detail-type")))
    mail = _mapping(detail, "mail")
    message_id = mail.get("messageId")
    if status is None or not isinstance(message_id, str) or not message_id:
        return None
    fallback = _field_text(mail, "timestamp") or _field_text(event, "time")
    if status == "bounced":
        bounce = _mapping(detail, "bounce")
        permanent = bounce.get("bounceType") == "Permanent"
        return Feedback(
            message_id, status, _bounce_reason(bounce), _at(_field_text(bounce, "timestamp") or fallback), permanent
        )
    if status == "complained":
        complaint = _mapping(detail, "complaint")
        kind = _field_text(complaint, "complaintFeedbackType")
        reason = (
            f"The recipient reported the email as spam ({kind})."
            if kind
            else "The recipient reported the email as spam."
        )
        return Feedback(message_id, status, reason, _at(_field_text(complaint, "timestamp") or fallback), True)
    if status == "rejected":
        reject = _mapping(detail, "reject")
        reason = f"SES rejected the email: {_field_text(reject, 'reason') or 'no reason given'}"
        return Feedback(message_id, status, mask_addresses(reason), _at(fallback), False)
    delivery = _mapping(detail, "delivery")
    return Feedback(message_id, status, None, _at(_field_text(delivery, "timestamp") or fallback), False)


class DeliveryRecorder:
    """Records SES feedback on the notifications and alerts the operator of a customer's hard bounce or complaint.

    `mailer` is None in NotificationMode=dry-run: the alert is then rendered and logged, not sent.
    """

    def __init__(
        self,
        ledger: DeliveryLedger,
        mailer: Mailer | None,
        settings: AlertSettings,
        *,
        clicked: Callable[[str], object] | None = None,
    ) -> None:
        self._ledger = ledger
        self._mailer = mailer
        self._settings = settings
        # A customer's first click on one of an account's emails: its episode counts as clicked (the report).
        self._clicked = clicked

    def handle(self, event: Mapping[str, Any]) -> DeliveryOutcome:
        tally.count("SesEvents")
        engagement = engagement_from(event)
        if engagement is not None:
            return self._engaged(*engagement)
        feedback = feedback_from(event)
        if feedback is None:
            logger.warning("not an SES delivery event; ignored", extra={"detail_type": str(event.get("detail-type"))})
            return DeliveryOutcome()
        log = {"ses_message_id": feedback.message_id, "status": feedback.status}
        found = self._ledger.record_delivery(feedback.message_id, feedback.status, feedback.reason, feedback.at)
        if found is None:
            logger.info("no notification of ours has this SES message id; ignored", extra=log)
            return DeliveryOutcome(feedback.status)
        log.update(event_id=found.event_id, kind=found.kind, to=mask_email(found.to) or "")
        logger.info(f"email {feedback.status}", extra={**log, "reason": feedback.reason})
        tally.count(f"Emails{feedback.status.capitalize()}", "kind", found.kind)
        # An operator alert that bounced cannot tell the operator about itself.
        if not feedback.alerts_operator or found.kind == "operator_alert":
            return DeliveryOutcome(feedback.status, recorded=True)
        # A hard bounce (an address on SES's suppression list included) or a complaint: nothing more goes to it.
        self._ledger.block_address(found.to, feedback.reason, feedback.at)
        return DeliveryOutcome(feedback.status, recorded=True, operator_alerted=self._alert(found, feedback, log))

    def _engaged(self, message_id: str, engagement: Engagement, at: str) -> DeliveryOutcome:
        recorded = self._ledger.record_engagement(message_id, engagement, at)
        if recorded is None:
            logger.info(
                "no notification of ours has this SES message id; ignored", extra={"ses_message_id": message_id}
            )
            return DeliveryOutcome()
        found, first = recorded
        if first:
            tally.count(f"Emails{engagement.capitalize()}", "kind", found.kind)
            logger.info(f"email {engagement}", extra={"ses_message_id": message_id, "kind": found.kind})
        if first and engagement == "clicked" and found.kind != "operator_alert" and self._clicked is not None:
            self._clicked(found.account_id)
        return DeliveryOutcome(recorded=first)

    def _alert(self, found: DeliveredNotification, feedback: Feedback, log: dict[str, str]) -> bool:
        if not self._ledger.claim_delivery_alert(feedback.message_id, feedback.at):
            logger.info("the operator was already told about this email", extra=log)
            return False
        problem: AlertProblem = "complained" if feedback.status == "complained" else "bounced"
        email = render_undeliverable(self._settings, problem, replace(found, reason=feedback.reason))
        if self._mailer is None:
            logger.info("operator alert rendered (dry-run)", extra=log)
            return True
        try:
            self._mailer.send(email)
        except EmailRejected as rejected:
            # The operator's own address is refused: retrying cannot help, and the status is recorded.
            logger.error("SES refused the operator alert", extra={**log, "reason": rejected.reason})
            return False
        except Exception:
            self._ledger.release_delivery_alert(feedback.message_id)
            raise
        tally.count("EmailsSent", "kind", "operator_alert")
        logger.info("operator alerted", extra=log)
        return True


def _mapping(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, Mapping) else {}


def _field_text(parent: Mapping[str, Any], key: str) -> str | None:
    value = parent.get(key)
    return value if isinstance(value, str) and value else None


def _at(timestamp: str | None) -> str:
    """SES's millisecond timestamps as the service's ISO seconds (sortable with every other instant)."""
    if timestamp:
        try:
            return iso(parse_iso(timestamp))
        except ValueError:
            pass
    return iso(datetime.now(UTC))


def _bounce_reason(bounce: Mapping[str, Any]) -> str:
    kind = f"{bounce.get('bounceType') or 'Undetermined'} bounce ({bounce.get('bounceSubType') or 'General'})"
    recipients = bounce.get("bouncedRecipients")
    first = recipients[0] if isinstance(recipients, list) and recipients and isinstance(recipients[0], Mapping) else {}
    said = _field_text(first, "diagnosticCode") or _field_text(first, "status")
    # A receiving server's diagnostic often quotes the address: masked, as it reaches the logs.
    return mask_addresses(f"{kind}: {said}" if said else kind)


def build_delivery_recorder(settings: SesEventsSettings) -> DeliveryRecorder:
    """The recorder a SesEventsFunction cold start builds: the ledger (and its verdicts) and, unless in dry-run,
    SES for the operator's alert. Only real sends come back from SES: the ledger's dry-run namespace never
    receives feedback."""
    dynamodb = dynamodb_client()
    ledger = NotificationLedger(
        Table(settings.notifications_table, dynamodb), verdicts=Table(settings.verdicts_table, dynamodb)
    )
    mailer = None if settings.notification_mode == "dry-run" else SesMailer(boto3.client("sesv2"), settings)
    # A customer's first click (EmailTracking) counts the account's episode as clicked in the report.
    recovery = Recovery(EpisodeRecords(Table(settings.events_table, dynamodb)), NoPublisher())
    return DeliveryRecorder(ledger, mailer, settings, clicked=recovery.email_clicked)
