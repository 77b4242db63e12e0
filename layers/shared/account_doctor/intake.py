"""POST /webhook's use case: a signed Nylas notification → its account events on the diagnosis queue.

The handler (functions/webhook/app.py) only shapes the HTTP answer and counts; this module decides. It is
on the webhook's cold-start path, so it imports nothing the handler did not already load.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from account_doctor import webhook
from account_doctor.credentials import SecretUnavailable, WebhookKeys, WebhookKeySource
from account_doctor.models import AccountEvent
from account_doctor.queue import DiagnosisQueue, QueueError
from account_doctor.settings import WebhookSettings

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

logger = Logger(child=True)


class NotEnqueued(Exception):
    """A genuine webhook whose events could not be queued: nothing is lost while Nylas retries it (503)."""

    def __init__(self, received: webhook.Webhook) -> None:
        super().__init__("could not enqueue the events; retry later")
        self.received = received


@dataclass(kw_only=True)
class Intake:
    """Verifies, screens and enqueues one POST /webhook; a refusal is a WebhookError carrying its status."""

    keys: Callable[[], WebhookKeys]
    enqueue: Callable[[Sequence[AccountEvent]], int]
    max_age_hours: int
    secret_name: str
    # Now, in Unix seconds, for judging event times. Tests replaying the sample events (dated 2024) set it.
    clock: Callable[[], float] = time.time

    def receive(self, event: Mapping[str, Any]) -> tuple[webhook.Webhook, int]:
        """The webhook as received (its stale events left out of the queue) and the queue messages sent."""
        request = webhook.signed_request(event)  # an unsigned request is refused before the secret is read
        try:
            keys = self.keys()
        except SecretUnavailable as error:
            if not error.remembered:  # the read itself failed just now: its traceback once, not on every retry
                logger.exception("cannot read the Nylas webhook secret", extra={"secret_name": self.secret_name})
            raise webhook.NotConfigured("the Nylas webhook secret is unavailable; retry later") from error
        received = webhook.screen(
            webhook.verify(request, webhook_secret=keys.webhook_secret, client_secret=keys.client_secret),
            now=self.clock(),
            max_age_hours=self.max_age_hours,
        )
        try:
            return received, self.enqueue(received.events)
        except QueueError as error:
            raise NotEnqueued(received) from error


def build_intake(settings: WebhookSettings, sqs: SQSClient) -> Intake:
    """The intake a WebhookFunction cold start builds: its queue, and only the verification keys (this
    function's role cannot read the secret holding the Nylas api_key)."""
    return Intake(
        keys=WebhookKeySource(settings.nylas_secret_name),
        enqueue=DiagnosisQueue(sqs, settings.diagnosis_queue_url, settings.grace_seconds).enqueue,
        max_age_hours=settings.webhook_max_age_hours,
        secret_name=settings.nylas_secret_name,
    )
