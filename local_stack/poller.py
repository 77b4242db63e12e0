"""Drives a function from an SQS queue the way Lambda's event source mapping does.

Receive up to BatchSize messages with a long poll, invoke the function with an SQS event, delete the
messages it processed, and leave the ones named in `batchItemFailures` on the queue: they come back
after the visibility timeout with a higher receive count, and the queue's redrive policy moves a
message that keeps failing to the dead-letter queue. If the invocation itself fails, the whole
batch is left for redelivery, as Lambda does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3

from local_stack import payloads
from local_stack.functions import LambdaFunction


@dataclass
class PollerStats:
    batches: int = 0
    received: int = 0
    deleted: int = 0
    failed: int = 0
    invocation_errors: int = 0
    last_error: str | None = None


@dataclass
class SqsPoller:
    function: LambdaFunction
    queue_url: str
    queue_arn: str
    batch_size: int = 10
    wait_seconds: int = 1
    # None: the queue's own visibility timeout, as Lambda uses. The local stack shortens it so a
    # retry happens within seconds rather than minutes.
    visibility_timeout: int | None = None
    on_error: Callable[[BaseException], None] | None = None
    stats: PollerStats = field(default_factory=PollerStats)
    _stop: threading.Event = field(default_factory=threading.Event)
    _idle: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SqsPoller:
        self._sqs = boto3.client("sqs")
        self._thread = threading.Thread(target=self._run, name=f"poller-{self.function.logical_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.wait_seconds + 30)

    @property
    def idle(self) -> bool:
        """True between batches: nothing received is waiting for its invocation to end."""
        return self._idle.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as error:  # keep polling, as the event source mapping does
                self.stats.last_error = f"{type(error).__name__}: {error}"
                if self.on_error:
                    self.on_error(error)
                self._stop.wait(1)

    def poll_once(self) -> int:
        """One receive-invoke-delete cycle; returns how many messages it received."""
        self._idle.set()
        request: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": self.batch_size,
            "WaitTimeSeconds": self.wait_seconds,
            "AttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if self.visibility_timeout is not None:
            request["VisibilityTimeout"] = self.visibility_timeout
        messages: list[dict[str, Any]] = self._sqs.receive_message(**request).get("Messages", [])  # type: ignore[assignment]
        if not messages:
            return 0
        self._idle.clear()
        try:
            self.stats.batches += 1
            self.stats.received += len(messages)
            try:
                response = self.function.invoke(sqs_event(messages, self.queue_arn))
            except Exception as error:
                self.stats.invocation_errors += 1
                self.stats.last_error = f"{type(error).__name__}: {error}"
                if self.on_error:
                    self.on_error(error)
                return len(messages)
            failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
            done = [m for m in messages if m["MessageId"] not in failed]
            self.stats.failed += len(messages) - len(done)
            if done:
                self._sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
                self.stats.deleted += len(done)
            return len(messages)
        finally:
            self._idle.set()


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda hands a function for a batch of received SQS messages."""
    return payloads.sqs_event(
        payloads.sqs_record(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            body=message["Body"],
            attributes={
                key: str(message.get("Attributes", {}).get(key, ""))
                for key in ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp")
            },
            message_attributes=message.get("MessageAttributes", {}),
            queue_arn=queue_arn,
            md5_of_body=message.get("MD5OfBody"),
        )
        for message in messages
    )


def queue_depth(queue_url: str, sqs: Any = None) -> int:
    """Messages on the queue in any state: visible, in flight, or still delayed."""
    sqs = sqs or boto3.client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def wait_until_drained(
    queue_urls: Sequence[str],
    pollers: list[SqsPoller],
    *,
    timeout: float,
    on_progress: Callable[[int], None] | None = None,
) -> bool:
    """Waits until every queue is empty and no poller is mid-batch; False if `timeout` passed first."""
    sqs = boto3.client("sqs")
    deadline = time.monotonic() + timeout
    quiet_checks = 0
    while time.monotonic() < deadline:
        # All at once: a release queued by the diagnosis (or its next page) is work still to do.
        depth = sum(queue_depth(url, sqs) for url in queue_urls)
        if on_progress:
            on_progress(depth)
        # Twice in a row: a batch just received is invisible, not gone, but check the pollers too.
        quiet_checks = quiet_checks + 1 if depth == 0 and all(p.idle for p in pollers) else 0
        if quiet_checks >= 2:
            return True
        time.sleep(0.25)
    return False
