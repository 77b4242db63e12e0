"""Notifications (SPEC §5): who is told, what the email says, and sending it through SES exactly once."""

from __future__ import annotations

from typing import Any

import boto3

from account_doctor.notifications.ledger import NotificationInProgress, NotificationLedger
from account_doctor.notifications.mailer import SesMailer
from account_doctor.notifications.service import (
    DRY_RUN_MESSAGE_ID,
    EmailNotifier,
    NotificationError,
    ReconnectLinks,
)
from account_doctor.ports import Notifier
from account_doctor.settings import Settings

__all__ = [
    "DRY_RUN_MESSAGE_ID",
    "EmailNotifier",
    "NotificationError",
    "NotificationInProgress",
    "build_notifier",
]


def build_notifier(settings: Settings, *, ses_client: Any | None = None, dynamodb: Any | None = None) -> Notifier:
    """The notifier for these settings. `dynamodb` may be a boto3 DynamoDB client or resource.

    NotificationMode=dry-run renders and records every email (message_id "dry-run") and never calls
    SES; its records are kept apart from real ones, so a rehearsal never holds back a real email.
    """
    dry_run = settings.notification_mode == "dry-run"
    client = _dynamodb_client(dynamodb)
    ledger = NotificationLedger(settings.notifications_table, client, namespace="dry-run#" if dry_run else "")
    mailer = None
    if not dry_run:
        mailer = SesMailer(
            ses_client if ses_client is not None else boto3.client("sesv2"),
            sender_email=settings.sender_email,
            app_name=settings.app_name,
        )
    return EmailNotifier(settings, ledger=ledger, mailer=mailer, reconnect_link=ReconnectLinks(settings))


def _dynamodb_client(dynamodb: Any | None) -> Any:
    """The ledger speaks the low-level API. A resource's own client marshals values itself,
    so a resource is replaced by a plain client of the same region and endpoint."""
    if dynamodb is None:
        return boto3.client("dynamodb")
    resource_client = getattr(getattr(dynamodb, "meta", None), "client", None)
    if resource_client is None:
        return dynamodb
    return boto3.client(
        "dynamodb",
        region_name=resource_client.meta.region_name,
        endpoint_url=resource_client.meta.endpoint_url,
    )
