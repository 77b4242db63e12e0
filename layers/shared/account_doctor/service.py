"""Processes one DiagnosisQueue message: record the event, or diagnose it, keep the verdict and notify.

Every step can be repeated safely, so a message retried after any failure ends in exactly one
verdict and no second email: events and verdicts are written with conditions, an existing
verdict is reused, the notifier sends each email at most once, and Powertools idempotency
(keyed on event id and stage) makes a redelivered message a no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from account_doctor.accounts import mask_email
from account_doctor.evidence import EvidenceGatherer
from account_doctor.history import History
from account_doctor.models import (
    STAGE_ATTRIBUTE,
    AccountEvent,
    Diagnosis,
    Evidence,
    Policy,
    Stage,
    Verdict,
    iso,
)
from account_doctor.nylas import NylasClient, NylasConfigError
from account_doctor.ports import Notifier
from account_doctor.settings import Settings
from account_doctor.tally import tally

logger = Logger(child=True)

Diagnose = Callable[[Evidence, Policy], Diagnosis]
Clock = Callable[[], datetime]

# A redelivered message within this long is recognised without touching the tables; after it,
# the conditional writes and the verdict reuse still keep it from doing anything twice.
IDEMPOTENCY_SECONDS = 24 * 3600


def policy_from(settings: Settings) -> Policy:
    return Policy(
        domain_cluster_threshold=settings.domain_cluster_threshold,
        domain_burst_minutes=settings.domain_burst_minutes,
        domain_window_days=settings.domain_window_days,
    )


def _now() -> datetime:
    return datetime.now(UTC)


class DiagnosisService:
    def __init__(
        self,
        *,
        history: History,
        nylas: NylasClient,
        notifier: Notifier,
        policy: Policy,
        diagnose: Diagnose,
        clock: Clock = _now,
    ) -> None:
        self._history = history
        self._nylas = nylas
        self._notifier = notifier
        self._policy = policy
        self._diagnose = diagnose
        self._clock = clock
        self._evidence = EvidenceGatherer(nylas, history, policy)

    def process(self, event: AccountEvent, stage: Stage | None, *, first_delivery: bool = False) -> dict[str, Any]:
        """Runs one stage (both when the message carries none, e.g. a hand-made redrive)."""
        outcome: dict[str, Any] = {"event_id": event.event_id}
        if stage in (None, "record"):
            outcome["recorded"] = self.record(event)
        if stage in (None, "diagnose") and event.kind == "failure":
            verdict = self.diagnose(event, first_delivery=first_delivery)
            outcome.update(cause=verdict.cause, notifications=len(verdict.notifications))
        return outcome

    def record(self, event: AccountEvent) -> bool:
        """Stores the event in the history; False when it already was there."""
        if event.kind == "failure" and not event.email:
            # v2 payloads carry no address: without it the failure would join no domain cluster.
            state = self._nylas.account_state(event)
            event = replace(event, email=state.email, provider=event.provider or state.provider)
        stored = self._history.put_event(event)
        logger.info(
            "event recorded" if stored else "event already recorded",
            extra={"trigger": event.trigger, "kind": event.kind, "email": mask_email(event.email)},
        )
        return stored

    def diagnose(self, event: AccountEvent, *, first_delivery: bool = False) -> Verdict:
        """The verdict of a failure event (made once, reused on retries), and its emails unless it healed.

        On a message's first delivery no earlier attempt can have left a verdict, so it is not looked
        up; a duplicate from elsewhere (a webhook retried by Nylas) still finds it when its own
        conditional write fails.
        """
        verdict = (
            None if first_delivery else self._history.get_verdict(event.account_id, event.occurred_at, event.event_id)
        )
        reused = verdict is not None
        if verdict is None:
            # Just gathered: a recovery recorded by now would have made the cause "recovered".
            verdict, reused = self._new_verdict(event)
        if reused:
            logger.info("reusing the verdict of an earlier attempt", extra={"cause": verdict.cause})
            recovered_at = self._history.recovery_after(event.account_id, event.occurred_at)
            if recovered_at is not None:
                logger.info("account recovered since the verdict; nobody is told", extra={"recovered_at": recovered_at})
                return verdict
        if verdict.cause == "recovered":
            return verdict
        notifications = self._notifier.notify(verdict, fresh=not reused)
        if notifications != verdict.notifications:
            self._history.set_notifications(verdict, notifications)
        return replace(verdict, notifications=notifications)

    def _new_verdict(self, event: AccountEvent) -> tuple[Verdict, bool]:
        """The verdict made now, or the one another attempt stored first (then True)."""
        evidence, recorded = self._evidence.gather(event)
        if not recorded:
            # The "record" copy has not run (yet): this failure must be in the history for the
            # diagnoses of its neighbours.
            self._history.put_event(replace(event, email=evidence.email, provider=evidence.provider))
        diagnosis = self._diagnose(evidence, self._policy)
        verdict = Verdict(
            event_id=event.event_id,
            account_id=event.account_id,
            api_version=event.api_version,
            trigger=event.trigger,
            occurred_at=event.occurred_at,
            diagnosed_at=iso(self._clock()),
            email=evidence.email,
            domain=evidence.domain,
            provider=evidence.provider,
            auth_method=evidence.auth_method,
            cause=diagnosis.cause,
            confidence=diagnosis.confidence,
            summary=diagnosis.summary,
            actions=list(diagnosis.actions),
            steps=list(diagnosis.steps),
            evidence=evidence.to_dict(),
            recurring=diagnosis.recurring,
        )
        if not self._history.put_verdict(verdict):
            # Another attempt got there first: its verdict is the one.
            stored = self._history.get_verdict(event.account_id, event.occurred_at, event.event_id)
            assert stored is not None
            return stored, True
        tally.count("Verdicts", "cause", verdict.cause)
        logger.info(
            "verdict",
            extra={"cause": verdict.cause, "confidence": verdict.confidence, "email": mask_email(verdict.email)},
        )
        return verdict, False


class QueueConsumer:
    """One SQS record → the service, at most once per (event id, stage)."""

    def __init__(self, service: DiagnosisService, persistence: DynamoDBPersistenceLayer) -> None:
        self._service = service
        self.idempotency = IdempotencyConfig(
            event_key_jmespath="[event_id, stage]", expires_after_seconds=IDEMPOTENCY_SECONDS
        )
        self._process_once = idempotent_function(
            data_keyword_argument="message", persistence_store=persistence, config=self.idempotency
        )(self._process_message)

    def handle(self, record: SQSRecord) -> dict[str, Any]:
        event = AccountEvent.from_json(record.body)
        attribute = record.message_attributes[STAGE_ATTRIBUTE]
        value = attribute.string_value if attribute else None
        stage: Stage | None = "record" if value == "record" else "diagnose" if value == "diagnose" else None
        # Records run on several threads: the correlation id belongs to this thread's logs only.
        logger.thread_safe_append_keys(correlation_id=event.event_id, stage=stage or "record+diagnose")
        # Outside the idempotency key ([event_id, stage]): only a hint that no earlier attempt ran.
        first_delivery = record.attributes.approximate_receive_count == "1"
        try:
            result: dict[str, Any] = self._process_once(
                message={
                    "event_id": event.event_id,
                    "stage": stage,
                    "event": asdict(event),
                    "first_delivery": first_delivery,
                }
            )
            return result
        except NylasConfigError:
            tally.count("NylasConfigErrors")
            raise
        finally:
            logger.thread_safe_remove_keys(["correlation_id", "stage"])

    def _process_message(self, message: dict[str, Any]) -> dict[str, Any]:
        return self._service.process(
            AccountEvent.from_dict(message["event"]),
            message["stage"],
            first_delivery=bool(message.get("first_delivery")),
        )


def build_consumer(settings: Settings, notifier: Notifier, *, diagnose: Diagnose | None = None) -> QueueConsumer:
    """The consumer a DiagnosisFunction cold start builds: real adapters from the settings."""
    if diagnose is None:
        from account_doctor.diagnosis import diagnose as procedure

        diagnose = procedure
    service = DiagnosisService(
        history=History(settings.events_table, settings.verdicts_table),
        nylas=NylasClient(settings),
        notifier=notifier,
        policy=policy_from(settings),
        diagnose=diagnose,
    )
    return QueueConsumer(service, DynamoDBPersistenceLayer(table_name=settings.idempotency_table))
