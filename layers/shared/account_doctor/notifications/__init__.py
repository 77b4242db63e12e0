"""Notifications (SPEC §5): who is told, what the email says, and sending it through SES exactly once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3

from account_doctor.notifications.mailer import SesMailer
from account_doctor.notifications.notifier import DRY_RUN_MESSAGE_ID, EmailNotifier, NotificationError, ReconnectLinks
from account_doctor.settings import Settings
from account_doctor.stores.dynamo import Table
from account_doctor.stores.ledger import NotificationInProgress, NotificationLedger
from account_doctor.stores.verdicts import VerdictStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

__all__ = ["DRY_RUN_MESSAGE_ID", "EmailNotifier", "NotificationError", "NotificationInProgress", "build_notifier"]


def build_notifier(
    settings: Settings, *, ses_client: Any | None = None, dynamodb: DynamoDBClient | None = None
) -> EmailNotifier:
    """The notifier for these settings.

    NotificationMode=dry-run renders and records every email (status dry_run) and never calls SES; its
    ledger records are kept apart from real ones, so a rehearsal never holds back a real email.
    """
    dry_run = settings.notification_mode == "dry-run"
    client = dynamodb or boto3.client("dynamodb")
    ledger = NotificationLedger(Table(settings.notifications_table, client), namespace="dry-run#" if dry_run else "")
    verdicts = VerdictStore(Table(settings.verdicts_table, client))
    mailer = None
    if not dry_run:
        mailer = SesMailer(ses_client if ses_client is not None else boto3.client("sesv2"), settings)
    return EmailNotifier(
        settings,
        ledger=ledger,
        mailer=mailer,
        reconnect_link=ReconnectLinks(settings),
        verdicts=verdicts,
    )
