"""The notifier: sends a verdict's emails through the ledger, so that each goes out at most once.

Held emails (a connector incident is open) are only recorded; a permanent SES rejection of the customer is
recorded as `rejected`, frees the customer's cooldown and tells the operator which customer could not be
reached. SES refusing our sender is nobody's rejection: every unsent email is given back for the retry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from aws_lambda_powertools import Logger

from account_doctor.addresses import mask_addresses, mask_email
from account_doctor.credentials import NylasCredentials, load_credentials
from account_doctor.models import IncidentBrief, Notification, Occasion, Verdict, iso
from account_doctor.notifications import links
from account_doctor.notifications.audience import Recipient, recipients
from account_doctor.notifications.render import render_email
from account_doctor.ports import Mailer, VerdictNotifications
from account_doctor.settings import Settings
from account_doctor.stores.ledger import NotificationLedger
from account_doctor.tally import tally

logger = Logger(child=True)

# The message_id recorded for an email NotificationMode=dry-run rendered but did not send.
DRY_RUN_MESSAGE_ID = "dry-run"
# The ledger audience of the operator alert about a customer SES refused.
UNREACHABLE = "operator-unreachable"


class NotificationError(RuntimeError):
    """An email could not be sent; the queue record is retried and only what is still unsent goes out."""


class EmailRejected(Exception):
    """SES refused the message for good (rejected, suppressed or invalid address): never retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SenderRejected(Exception):
    """SES refuses to send anything for us: the sender identity failed verification, sending is paused, or the
    stack may not send. Not any customer's refusal: nothing is recorded, the message is retried until the
    operator fixes it (SenderRejectedAlarm) and dead-letters if that takes longer than the queue's retries."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"SES refuses to send for this stack ({reason}): verify SenderEmail's identity in SES and check the "
            "account's sending status; the emails go out on a retry or `account-doctor redrive` once it is fixed"
        )
        self.reason = reason


class ReconnectLinks:
    """Builds the reconnect link; reads the Nylas secret only when hosted auth needs it."""

    def __init__(self, settings: Settings, load: Callable[[str], NylasCredentials] | None = None) -> None:
        self._settings = settings
        self._load = load or load_credentials

    def __call__(self, verdict: Verdict) -> str:
        email = verdict.email or ""
        template = self._settings.reauth_url_template
        if template:
            return links.from_template(template, email=email, provider=verdict.provider, account_id=verdict.account_id)
        credentials = self._load(self._settings.nylas_secret_name)
        if not credentials.client_id or not credentials.redirect_uri:
            raise NotificationError(
                "Nylas hosted auth needs client_id and redirect_uri in the stack's secret "
                f"({self._settings.nylas_secret_name}); add them, or set the ReauthUrlTemplate parameter."
            )
        return links.nylas_hosted_auth(
            self._settings.nylas_api_uri,
            client_id=credentials.client_id,
            redirect_uri=credentials.redirect_uri,
            provider=verdict.provider,
            email=email,
        )


class EmailNotifier:
    """Implements ports.Notifier. In dry-run (mailer None) it renders and records but never sends."""

    def __init__(
        self,
        settings: Settings,
        *,
        ledger: NotificationLedger,
        mailer: Mailer | None,
        reconnect_link: Callable[[Verdict], str],
        verdicts: VerdictNotifications,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._mailer = mailer
        self._reconnect_link = reconnect_link
        self._verdicts = verdicts
        self._clock = clock

    def notify(
        self, verdict: Verdict, occasion: Occasion | None = None, *, incident: IncidentBrief | None = None
    ) -> list[Notification]:
        """Every notification of the verdict afterwards (earlier ones kept), each email sent at most once.

        Each email's outcome is written with its ledger record; whatever the verdict does not hold yet (held
        emails, or what a racing attempt sent) is written once at the end, so a retry always leaves the
        verdict listing everything that went out.
        """
        planned = recipients(verdict, self._settings.operator_email, occasion)
        notifications = [n for n in verdict.notifications if not _replaced(n, planned)]
        persisted = list(verdict.notifications)
        failures: list[Exception] = []
        link = self._reconnect_link(verdict) if any(r.audience == "customer" and not r.held for r in planned) else ""
        # Every email is attempted even when an earlier one failed: the operator still hears about a verdict
        # whose customer email SES refused, and the retry sends only what is missing.
        for recipient in planned:
            if recipient.held:
                notifications.append(Notification(kind=recipient.kind, to=recipient.to, status="held"))
                tally.count("EmailsHeld", "kind", recipient.kind)
                continue
            try:
                delivered = self._deliver(verdict, recipient, link, incident, notifications)
            except SenderRejected as error:
                failures.append(error)
                break  # every other email, the operator's alert included, would be refused the same way
            except Exception as error:
                failures.append(error)
                continue
            for outcome, written in delivered:
                if not any(_same_email(outcome, known) for known in notifications):
                    notifications.append(outcome)
                if written:
                    persisted = list(notifications)
        if notifications != persisted:
            self._verdicts.set_notifications(verdict, notifications)
        if failures:
            raise NotificationError(
                f"{len(failures)} email(s) of event {verdict.event_id} were not sent "
                f"({mask_addresses(str(failures[0]))}); the record will be retried and only the unsent ones go out"
            ) from None
        return notifications

    def _deliver(
        self,
        verdict: Verdict,
        recipient: Recipient,
        link: str,
        incident: IncidentBrief | None,
        so_far: list[Notification],
        *,
        audience: str | None = None,
        rejected: Notification | None = None,
    ) -> list[tuple[Notification, bool]]:
        """What became of the email (and of the operator's alert when SES refused it), each with whether this
        call wrote it on the verdict."""
        # A revision's follow-up is its own ledger entry: the original's email for the same event went out already.
        audience = (
            audience
            or recipient.ledger_audience
            or (f"{recipient.audience}#revision" if verdict.revises else recipient.audience)
        )
        log = {"event_id": verdict.event_id, "kind": recipient.kind, "to": mask_email(recipient.to)}
        now = self._clock()
        cooldown = (verdict.account_id, self._settings.notify_cooldown_hours) if recipient.gate == "cooldown" else None
        begun = self._ledger.begin(verdict.event_id, audience, recipient.kind, recipient.to, now, cooldown=cooldown)
        if isinstance(begun, Notification):
            logger.info("email already sent for this event", extra=log)
            return [(begun, False)]
        if begun == "cooling_down":
            logger.info("email held back by the customer's cooldown", extra=log)
            tally.count("EmailsHeldBack", "kind", recipient.kind)
            return []
        if begun == "unreachable":
            # The operator was told when SES reported it; the verdict says why this one did not go out.
            logger.info("email not sent: SES reported this address as undeliverable", extra=log)
            tally.count("EmailsNotSentToUnreachable", "kind", recipient.kind)
            reason = "not sent: SES reported this address as a hard bounce or a complaint before"
            return [
                (
                    Notification(
                        kind=recipient.kind, to=recipient.to, status="rejected", sent_at=iso(now), reason=reason
                    ),
                    False,
                )
            ]
        email = render_email(recipient, verdict, self._settings, link, incident=incident, rejected=rejected)
        try:
            if self._mailer is None:
                notification = Notification(
                    kind=recipient.kind,
                    to=recipient.to,
                    message_id=DRY_RUN_MESSAGE_ID,
                    status="dry_run",
                    sent_at=iso(now),
                )
            else:
                notification = Notification(
                    kind=recipient.kind,
                    to=recipient.to,
                    message_id=self._mailer.send(email),
                    status="sent",
                    sent_at=iso(self._clock()),
                )
        except EmailRejected as rejected:
            notification = Notification(
                kind=recipient.kind, to=recipient.to, status="rejected", sent_at=iso(now), reason=rejected.reason
            )
            logger.warning("SES refused the email for good", extra={**log, "reason": rejected.reason})
            tally.count("EmailsRejected", "kind", recipient.kind)
            if cooldown:
                self._ledger.free_cooldown(verdict.account_id, verdict.event_id)
        except Exception as error:
            if not isinstance(error, SenderRejected):  # the mailer reported that one, once for all emails
                logger.exception("SES did not send the email", extra=log)
            self._ledger.give_back(
                verdict.event_id, audience, cooldown_account=verdict.account_id if cooldown else None
            )
            raise
        if recipient.reminder is not None:
            notification = replace(notification, sequence=recipient.reminder.sequence)
        self._ledger.complete(
            verdict.event_id,
            audience,
            notification,
            also=[self._verdicts.notifications_write(verdict, [*so_far, notification])],
            verdict=(verdict.account_id, verdict.key, len(so_far)),
        )
        logger.info(f"email {notification.status}", extra={**log, "message_id": notification.message_id})
        if notification.status == "sent":
            tally.count("EmailsSent", "kind", recipient.kind)
        delivered = [(notification, True)]
        if notification.status == "rejected":
            delivered += self._tell_operator_unreachable(verdict, notification, [*so_far, notification])
        return delivered

    def _tell_operator_unreachable(
        self, verdict: Verdict, rejected: Notification, so_far: list[Notification]
    ) -> list[tuple[Notification, bool]]:
        recipient = Recipient("operator_alert", self._settings.operator_email, "operator", "event")
        return self._deliver(verdict, recipient, "", None, so_far, audience=UNREACHABLE, rejected=rejected)


def _same_email(one: Notification, other: Notification) -> bool:
    """The same email, whatever SES has said of it since (delivered, bounced…)."""
    return (one.kind, one.to, one.message_id, one.sent_at) == (other.kind, other.to, other.message_id, other.sent_at)


def _replaced(notification: Notification, planned: list[Recipient]) -> bool:
    """A held email is replaced by its delivery when the incident is released."""
    return notification.status == "held" and any(r.kind == notification.kind and not r.held for r in planned)
