"""Sends the sweep's operator alerts about inputs and clocks (SPEC §3d) through SES, or logs them in dry-run."""

from __future__ import annotations

from aws_lambda_powertools import Logger

from account_doctor.models import WatchAlert
from account_doctor.notifications.mailer import SesMailer
from account_doctor.notifications.notifier import EmailRejected
from account_doctor.notifications.render import AlertSettings, render_watch_alert

logger = Logger(child=True)


class OperatorAlerts:
    """Implements watch.AlertSender. Without a mailer (NotificationMode=dry-run) it renders and logs only."""

    def __init__(self, settings: AlertSettings, mailer: SesMailer | None) -> None:
        self._settings = settings
        self._mailer = mailer

    def send_alert(self, alert: WatchAlert) -> None:
        email = render_watch_alert(self._settings, alert)
        if self._mailer is None:
            logger.info(f"dry-run: operator alert not sent: {email.subject}", extra={"alert": alert.key})
            return
        try:
            message_id = self._mailer.send(email)
        except EmailRejected as error:
            # The operator's own address refused for good: retrying cannot help, and the log is what is left.
            logger.error(f"SES refused the operator alert {alert.key!r}: {error}")
            return
        logger.info(f"operator alert sent: {email.subject}", extra={"alert": alert.key, "message_id": message_id})
