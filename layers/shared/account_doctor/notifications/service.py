"""The Notifier: sends a verdict's emails through the ledger so that each goes out at most once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from aws_lambda_powertools import Logger

from account_doctor.accounts import mask_email
from account_doctor.credentials import NylasCredentials, load_credentials
from account_doctor.models import Notification, Verdict
from account_doctor.notifications import links
from account_doctor.notifications.audience import recipients
from account_doctor.notifications.ledger import NotificationLedger
from account_doctor.notifications.render import OutgoingEmail, RenderedEmail, compose
from account_doctor.settings import Settings
from account_doctor.tally import tally

logger = Logger(child=True)

# The message_id recorded for an email NotificationMode=dry-run rendered but did not send.
DRY_RUN_MESSAGE_ID = "dry-run"


class NotificationError(RuntimeError):
    """An email could not be sent; the queue record is retried and only what is still unsent goes out."""


class Mailer(Protocol):
    def send(self, email: RenderedEmail) -> str: ...


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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._mailer = mailer
        self._reconnect_link = reconnect_link
        self._clock = clock

    def notify(self, verdict: Verdict, *, fresh: bool = False) -> list[Notification]:
        if verdict.cause == "recovered":
            return []
        planned = recipients(verdict, self._settings.operator_email)
        link = self._reconnect_link(verdict) if any(r.audience == "customer" for r in planned) else None
        notifications: list[Notification] = []
        failures: list[Exception] = []
        # Every email is attempted even when an earlier one failed: the operator still hears about
        # a verdict whose customer email SES refused, and the retry sends only what is missing.
        for outgoing in compose(verdict, self._settings, link):
            try:
                notification = self._deliver(verdict, outgoing, fresh=fresh)
            except Exception as error:
                failures.append(error)
                continue
            if notification is not None:
                notifications.append(notification)
        if failures:
            raise NotificationError(
                f"{len(failures)} email(s) of event {verdict.event_id} were not sent ({failures[0]}); "
                "the record will be retried and only the unsent ones go out"
            ) from failures[0]
        return notifications

    def _deliver(self, verdict: Verdict, outgoing: OutgoingEmail, *, fresh: bool) -> Notification | None:
        recipient, email = outgoing.recipient, outgoing.email
        log = {"event_id": verdict.event_id, "kind": recipient.kind, "to": mask_email(recipient.to)}
        # A retry finds what an earlier attempt sent before its gate is asked again (a cooldown may
        # have passed to another event since). A fresh verdict has nothing sent: one read saved.
        already = None if fresh else self._ledger.sent(verdict.event_id, recipient.audience)
        if already is not None:
            logger.info("email already sent for this event", extra=log)
            return already
        now = self._clock()
        if not self._passes_gate(verdict, outgoing, now):
            logger.info(f"email held back by its {recipient.gate} gate", extra=log)
            tally.count("EmailsHeldBack", "kind", recipient.kind)
            return None
        already = self._ledger.begin(verdict.event_id, recipient.audience, recipient.kind, recipient.to, now)
        if already is not None:
            return already
        try:
            message_id = DRY_RUN_MESSAGE_ID if self._mailer is None else self._mailer.send(email)
        except Exception:
            logger.exception("SES did not send the email", extra=log)
            self._ledger.release(verdict.event_id, recipient.audience)
            raise
        notification = self._ledger.mark_sent(
            verdict.event_id, recipient.audience, recipient.kind, recipient.to, message_id, self._clock()
        )
        logger.info(
            "email sent" if self._mailer else "email rendered (dry-run)", extra={**log, "message_id": message_id}
        )
        if self._mailer is not None:
            tally.count("EmailsSent", "kind", recipient.kind)
        return notification

    def _passes_gate(self, verdict: Verdict, outgoing: OutgoingEmail, now: datetime) -> bool:
        gate = outgoing.recipient.gate
        if gate == "cooldown":
            return self._ledger.claim_cooldown(
                verdict.account_id, verdict.event_id, now, self._settings.notify_cooldown_hours
            )
        if gate == "incident" and verdict.domain:
            window = (
                timedelta(minutes=self._settings.domain_burst_minutes)
                if verdict.cause == "admin_disconnected"
                else timedelta(days=self._settings.domain_window_days)
            )
            return self._ledger.claim_incident(verdict.cause, verdict.domain, verdict.event_id, now, window)
        return True
