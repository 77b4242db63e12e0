"""DiagnosisFunction as deployed, in-process: moto for AWS (with SES), Nylas at its real URLs, faults on demand.

Unlike tests/integration/diagnosis_stack.py (which records notifications), this wires the real
SES notifier, so "nothing sent twice" is read from moto's SES outbox. Faults on AWS calls are
botocore event hooks on the default session the handler's clients are built from.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from email.utils import parseaddr
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError
from moto.dynamodb.models import DynamoDBBackend

from account_doctor.models import AccountEvent, Verdict
from account_doctor.settings import get_settings
from account_doctor.stores.dynamo import Table
from account_doctor.stores.verdicts import VerdictStore, page_verdicts
from local_stack.payloads import FakeLambdaContext, diagnosis_record, load_handler, sqs_event
from tests.integration.diagnosis_stack import failed_ids
from tests.integration.ses import ses_outbox

__all__ = ["AwsFaults", "Pipeline", "atomic_moto_dynamodb", "failed_ids", "ses_outbox"]


class AwsFaults:
    """botocore hooks on the default session: SES answers TooManyRequests to the next `ses_throttles` sends,
    and MessageRejected to every send from or to an identity in `ses_unverified`, naming them as SES does
    (an unverified sender right after a deploy; an unverified recipient in the SES sandbox)."""

    def __init__(self, session: boto3.Session) -> None:
        self.ses_throttles = 0
        self.ses_unverified: set[str] = set()
        self.ses_attempts = 0
        # Before the request is built: the hook sees SendEmail's own parameters (From, Destination).
        session.events.register("before-parameter-build.sesv2.SendEmail", self._send_email)

    def _send_email(self, params: dict[str, Any], **_: Any) -> None:
        self.ses_attempts += 1
        sender = parseaddr(params["FromEmailAddress"])[1]
        failed = [a for a in (sender, *params["Destination"]["ToAddresses"]) if a in self.ses_unverified]
        if failed:
            raise ClientError(
                {
                    "Error": {
                        "Code": "MessageRejected",
                        "Message": "Email address is not verified. The following identities failed the check in "
                        f"region US-EAST-1: {', '.join(failed)}",
                    },
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                "SendEmail",
            )
        if self.ses_throttles:
            self.ses_throttles -= 1
            # What the client raises once botocore's own retries of a throttled send are used up.
            raise ClientError(
                {
                    "Error": {"Code": "TooManyRequestsException", "Message": "Maximum sending rate exceeded."},
                    "ResponseMetadata": {"HTTPStatusCode": 429},
                },
                "SendEmail",
            )


def atomic_moto_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes moto's conditional writes atomic, as DynamoDB's are (moto checks then writes without a lock).

    Without this, two threads could both pass a condition inside moto: a race of the test double,
    not of the code under test.
    """
    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item"):
        original = getattr(DynamoDBBackend, name)

        def locked(*args: Any, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            with lock:
                return _original(*args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


class Pipeline:
    """One cold-started DiagnosisFunction and what a user can observe of it: verdicts and sent emails."""

    def __init__(self, context: FakeLambdaContext) -> None:
        self.handler: ModuleType = load_handler("diagnosis")
        self.context = context
        self.verdict_store = VerdictStore(Table(get_settings().verdicts_table))

    def deliver(self, *records: tuple[AccountEvent, str], receive_count: int = 1) -> list[str]:
        """Invokes the function with these (event, stage) records; returns the ids that failed back to SQS."""
        event = sqs_event(diagnosis_record(e, stage, receive_count=receive_count) for e, stage in records)  # type: ignore[arg-type]
        try:
            return failed_ids(self.handler.lambda_handler(event, self.context))
        except BatchProcessingError:
            # Powertools raises when every record failed: the whole batch goes back to the queue.
            return sorted(r["messageId"] for r in event["Records"])

    def verdicts(self, event: AccountEvent) -> list[Verdict]:
        every = page_verdicts(self.verdict_store.account_verdicts(event.account_id, limit=100))
        return [v for v in every if v.event_id == event.event_id]

    @staticmethod
    def emails() -> Counter[str]:
        """How many emails each address received."""
        return Counter(m.to[0] for m in ses_outbox())
