"""The DiagnosisQueue adapter: one SendMessageBatch per webhook POST, following the queue contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from account_doctor.models import (
    FAILURE_TRIGGERS,
    RELEASE_STAGE,
    REMINDER_STAGE,
    STAGE_ATTRIBUTE,
    AccountEvent,
    Release,
    Stage,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

    from account_doctor.reminders import DueReminder

SQS_BATCH_LIMIT = 10


class QueueError(RuntimeError):
    """The events could not all be enqueued: answer 5xx so Nylas delivers the webhook again.

    A retry may enqueue some events twice; the consumer is idempotent on event_id, so that is harmless.
    """


def queue_entries(events: Sequence[AccountEvent], grace_seconds: int) -> list[SendMessageBatchRequestEntryTypeDef]:
    """Every event gets a `record` message at once; a failure also gets a `diagnose` message after the grace period."""
    entries: list[SendMessageBatchRequestEntryTypeDef] = []
    for index, event in enumerate(events):
        body = event.to_json()
        stages: list[tuple[Stage, int]] = [("record", 0)]
        if event.trigger in FAILURE_TRIGGERS:
            stages.append(("diagnose", grace_seconds))
        for stage, delay in stages:
            entries.append(
                {
                    "Id": f"{index}-{stage}",
                    "MessageBody": body,
                    "DelaySeconds": delay,
                    "MessageAttributes": {STAGE_ATTRIBUTE: {"DataType": "String", "StringValue": stage}},
                }
            )
    return entries


class DiagnosisQueue:
    def __init__(self, client: SQSClient, queue_url: str, grace_seconds: int) -> None:
        self._client = client
        self._queue_url = queue_url
        self._grace_seconds = grace_seconds

    def enqueue(self, events: Sequence[AccountEvent]) -> int:
        """Sends the events' messages; returns how many. One call unless more than five failures came at once."""
        entries = queue_entries(events, self._grace_seconds)
        for start in range(0, len(entries), SQS_BATCH_LIMIT):
            chunk = entries[start : start + SQS_BATCH_LIMIT]
            try:
                response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=chunk)
            except (ClientError, BotoCoreError) as error:
                raise QueueError(f"SendMessageBatch to the diagnosis queue failed: {error}") from error
            failed = response.get("Failed") or []
            if failed:
                reasons = ", ".join(f"{f['Id']}: {f.get('Code', '?')}" for f in failed)
                raise QueueError(f"SQS refused {len(failed)} of {len(chunk)} messages ({reasons})")
        return len(entries)


def from_queue(event_source_arn: str, queue_url: str) -> bool:
    """Whether an SQS record came from the queue at `queue_url`: its ARN and URL both end with the queue's name."""
    return bool(queue_url) and event_source_arn.rsplit(":", 1)[-1] == queue_url.rstrip("/").rsplit("/", 1)[-1]


class _StageQueue:
    """Sends one message of a stage of its own to the diagnosis function."""

    stage = ""
    queue = ""  # which queue, in the error an operator reads

    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self._queue_url = queue_url
        self._client = client

    def _send(self, body: str) -> None:
        if self._client is None:
            import boto3

            self._client = boto3.client("sqs")
        try:
            self._client.send_message(
                QueueUrl=self._queue_url,
                MessageBody=body,
                MessageAttributes={STAGE_ATTRIBUTE: {"DataType": "String", "StringValue": self.stage}},
            )
        except (ClientError, BotoCoreError) as error:
            raise QueueError(f"SendMessage to the {self.queue} queue failed: {error}") from error


class ReleaseQueue(_StageQueue):
    """Asks the diagnosis function to send an incident's held emails: one message per page of members.

    Its own queue (template.yaml's ReleaseQueue), the only one the read API may send to: the consumer takes
    nothing but releases from it, so whoever can release an incident cannot also queue a diagnosis.
    """

    stage = RELEASE_STAGE
    queue = "release"

    def send(self, request: Release) -> None:
        self._send(request.to_json())


class ReminderQueue(_StageQueue):
    """Asks the diagnosis function to send one due reminder (SPEC §5), on the diagnosis queue: the sweep's
    scheduled run only finds them."""

    stage = REMINDER_STAGE
    queue = "diagnosis"

    def send(self, reminder: DueReminder) -> None:
        self._send(reminder.to_json())
