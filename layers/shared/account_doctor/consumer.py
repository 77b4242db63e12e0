"""The queue consumer: one DiagnosisQueue message → record the event, diagnose it, release an incident, or
send a due reminder.

The consumer records and diagnoses; what follows from a stored verdict or a recovery across accounts is the
incidents' (account_doctor.incidents), handed on in one place (`_hand_on`, `_recovered`), and the recovery
episodes' (account_doctor.episodes), handed each stored verdict and recorded recovery in one place too
(`_to_episodes`).

Every step can be repeated safely, so a message retried after any failure ends in exactly one verdict
(plus its revisions) and no second email: events, verdicts and incident members are written with
conditions, an existing verdict is reused, the notifier sends each email at most once, and Powertools
idempotency (keyed on event id and stage) makes a redelivered diagnosis a no-op. The record stage needs no
idempotency record of its own: its one transactional write is already conditional.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from account_doctor.addresses import mask_email
from account_doctor.episodes import EpisodeEnd, Recovery
from account_doctor.events_out import publisher_for
from account_doctor.evidence import UNCOUNTED_CAUSES, EvidenceGatherer
from account_doctor.incidents import Clock, Diagnose, IncidentLifecycle, Placement
from account_doctor.models import (
    REMINDER_STAGE,
    STAGE_ATTRIBUTE,
    AccountEvent,
    Evidence,
    IncidentKey,
    Occasion,
    Policy,
    Release,
    Verdict,
    iso,
)
from account_doctor.nylas import NylasClient, NylasConfigError
from account_doctor.ports import AtRiskGrants, History, IncidentRecords, Notifier, NylasApi, Publisher, Verdicts
from account_doctor.queue import ReleaseQueue, from_queue
from account_doctor.reminders import DueReminder, Reminders
from account_doctor.settings import Settings
from account_doctor.stores.at_risk import AtRiskStore
from account_doctor.stores.dynamo import Table, dynamodb_client
from account_doctor.stores.episodes import EpisodeRecords
from account_doctor.stores.events import EventHistory
from account_doctor.stores.incidents import IncidentStore
from account_doctor.stores.verdicts import ChangedMeanwhile, VerdictStore
from account_doctor.sweep import is_too_old_to_notify
from account_doctor.tally import tally
from account_doctor.testing_mode import AtRiskWatch

logger = Logger(child=True)

# A redelivered message within this long is recognised without touching the tables; after it,
# the conditional writes and the verdict reuse still keep it from doing anything twice.
IDEMPOTENCY_SECONDS = 24 * 3600


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(kw_only=True, eq=False)
class DiagnosisService:
    """Records, diagnoses and hands on, over the stores, Nylas and the notifier it is given."""

    history: History
    verdicts: Verdicts
    incidents: IncidentRecords
    nylas: NylasApi
    notifier: Notifier
    publisher: Publisher
    policy: Policy
    procedure: Diagnose
    sweep_notify_days: int
    enqueue_release: Callable[[Release], None] | None = None
    # Recovery episodes (SPEC §4c); None only where a test or bench does not look at them.
    recovery: Recovery | None = None
    clock: Clock = _now
    # The grants a testing_mode incident puts at risk (SPEC §3d); None where nobody asks (some tests).
    at_risk: AtRiskGrants | None = None
    _evidence: EvidenceGatherer = field(init=False, repr=False)
    _incidents: IncidentLifecycle = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._evidence = EvidenceGatherer(self.nylas, self.history, self.incidents, self.policy)
        self._incidents = IncidentLifecycle(
            store=self.incidents,
            verdicts=self.verdicts,
            history=self.history,
            notifier=self.notifier,
            publisher=self.publisher,
            policy=self.policy,
            procedure=self.procedure,
            clock=self.clock,
            too_old_to_notify=self._too_old_to_notify,
            tell=self._tell,
            enqueue_release=self.enqueue_release,
            emailed=lambda verdict: self._to_episodes(verdict=verdict),
            at_risk=self.at_risk,
        )

    def process(self, event: AccountEvent, stage: str | None, *, first_delivery: bool = False) -> dict[str, Any]:
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
            state = self.nylas.account_state(event)
            event = replace(event, email=state.email, provider=event.provider or state.provider)
        stored = self.history.put_event(event)
        logger.info(
            "event recorded" if stored else "event already recorded",
            extra={"trigger": event.trigger, "kind": event.kind, "email": mask_email(event.email)},
        )
        if event.kind == "recovery":
            self._recovered(event, redelivered=not stored)
            self._to_episodes(recovery=event)  # also when already stored: a retry finishes what it began
        return stored

    def diagnose(self, event: AccountEvent, *, first_delivery: bool = False, again: bool = False) -> Verdict:
        """The verdict of a failure event (made once, reused on retries), its incident, events and emails.

        `again`: made a second time because an incident opened while it was being made (see
        IncidentLifecycle.no_racer).
        """
        verdict = (
            None
            if first_delivery
            else self.verdicts.latest_for_event(event.account_id, event.occurred_at, event.event_id)
        )
        if verdict is not None:
            logger.info("reusing the verdict of an earlier attempt", extra={"cause": verdict.cause})
            recovered_at = self.history.recovery_after(event.account_id, event.occurred_at)
            if recovered_at is not None:
                logger.info("account recovered since the verdict; nobody is told", extra={"recovered_at": recovered_at})
                if not self.verdicts.announced(verdict):
                    self._publish(verdict)  # the earlier attempt's publish failed: the event is still owed
                return verdict
            return self._hand_on(verdict, event)
        gathered = self._evidence.gather(event, self._count)
        evidence = gathered.evidence
        diagnosis = self.procedure(evidence, self.policy)
        placed = self._incidents.place(diagnosis.cause, event, gathered)
        verdict = Verdict.of(evidence, diagnosis, diagnosed_at=iso(self.clock()), incident_id=placed.incident_id)
        try:
            stored_now = self.verdicts.put(verdict, provided=self._incidents.no_racer(gathered, placed.incident_id))
        except ChangedMeanwhile:
            # A racer opened an incident this failure belongs to after the evidence was read (and could only
            # count this failure, whose verdict did not exist yet): made again, the verdict joins it.
            if again:
                raise RuntimeError(
                    f"event {event.event_id}: incidents kept opening while diagnosing; retrying"
                ) from None
            logger.info("an incident opened while diagnosing; diagnosing again")
            return self.diagnose(event, first_delivery=first_delivery, again=True)
        if not stored_now:
            stored = self.verdicts.latest_for_event(event.account_id, event.occurred_at, event.event_id)
            if stored is None:  # pragma: no cover - a put that failed its condition left a verdict
                raise RuntimeError(f"event {event.event_id}: the verdict exists but cannot be read; retrying")
            return self._hand_on(stored, event)
        tally.count("Verdicts", "cause", verdict.cause)
        logger.info(
            "verdict",
            extra={"cause": verdict.cause, "confidence": verdict.confidence, "email": mask_email(verdict.email)},
        )
        return self._hand_on(verdict, event, placed)

    def _count(self, alone: Evidence, recorded: bool) -> bool:
        """Records the failure if its "record" copy has not run (yet), and counts it toward its domain's and
        connector's clusters when the account alone is not explained by rules 0 and 1: whether it counts."""
        established = replace(alone.event, email=alone.email, provider=alone.provider)
        if not recorded:
            self.history.put_event(established)
        if self.procedure(alone, self.policy).cause in UNCOUNTED_CAUSES:
            return False
        self.history.count_failure(established)
        return True

    def release(self, request: Release) -> int:
        """Sends the held reconnect emails of one page of an incident's members; queues the next page."""
        return self._incidents.release(request)

    # Handing on: where a stored verdict and a recovery leave the consumer -----------------------------

    def _hand_on(self, verdict: Verdict, event: AccountEvent, placed: Placement | None = None) -> Verdict:
        """A stored verdict goes to its incident, which tells it (`placed` None: a retry of a stored verdict)."""
        return self._incidents.verdict_stored(verdict, event, placed)

    def _recovered(self, event: AccountEvent, *, redelivered: bool) -> None:
        """A recovery recorded (now or by an earlier delivery): its account's open incidents count it once (and
        resolve when all recovered)."""
        self._incidents.recovered(event, redelivered=redelivered)

    def _to_episodes(self, *, verdict: Verdict | None = None, recovery: AccountEvent | None = None) -> None:
        """Hands recovery episodes what happened: each stored verdict (its cause, its emails; `recovered`
        heals it) and each recorded recovery (re-authenticates its account, replaces another's grant).
        An account whose episode ends so, without a recovery event of its own, is marked on its incidents
        like one that recovered."""
        if self.recovery is None:
            return
        ended: list[EpisodeEnd] = []
        if verdict is not None:
            healed = self.recovery.verdict_stored(verdict)
            ended += [healed] if healed else []
        if recovery is not None:
            ended += self.recovery.recovery_recorded(recovery)
        for end in ended:
            self._recovered(end.as_recovery_event(), redelivered=False)

    # Telling --------------------------------------------------------------------------------------

    def _tell(self, verdict: Verdict, occasion: Occasion) -> Verdict:
        """Publishes the verdict and sends its emails (the verdict is stored before either)."""
        if verdict.cause != "recovered":
            brief = self._incidents.brief(verdict) if occasion.incident_opened else None
            verdict = replace(verdict, notifications=self.notifier.notify(verdict, occasion, incident=brief))
        self._publish(verdict)
        self._to_episodes(verdict=verdict)
        return verdict

    def _publish(self, verdict: Verdict) -> None:
        """Puts the verdict on the bus and records that it went out, so a retry whose verdict is otherwise done
        (its account recovered meanwhile) still publishes what a failed attempt could not."""
        self.publisher.publish_verdict(verdict.to_dict())
        self.verdicts.mark_announced(verdict)

    def _too_old_to_notify(self, event: AccountEvent) -> bool:
        """A failure the sweep found long after it happened: recorded, but its customer left long ago."""
        return is_too_old_to_notify(event, self.clock(), self.sweep_notify_days)


class QueueConsumer:
    """One SQS record → the service, diagnoses at most once per (event id, stage)."""

    def __init__(
        self,
        service: DiagnosisService,
        persistence: DynamoDBPersistenceLayer,
        *,
        release_queue_url: str = "",
        reminders: Reminders | None = None,
    ) -> None:
        self._service = service
        self._release_queue_url = release_queue_url
        self._reminders = reminders
        self.idempotency = IdempotencyConfig(
            event_key_jmespath="[event_id, stage]", expires_after_seconds=IDEMPOTENCY_SECONDS
        )
        self._diagnose_once = idempotent_function(
            data_keyword_argument="message", persistence_store=persistence, config=self.idempotency
        )(self._diagnose_message)

    def handle(self, record: SQSRecord) -> dict[str, Any]:
        attribute = record.message_attributes[STAGE_ATTRIBUTE]
        value = attribute.string_value if attribute else None
        if value == "release":
            request = Release(**_release_request(record.body))
            return {"incident_id": request.incident_id, "released": self._service.release(request)}
        if from_queue(record.event_source_arn, self._release_queue_url):
            # Whoever may release incidents may send here: anything but a release is dropped, not failed, so it
            # never reaches the DLQ, from where a redrive would put it on the diagnosis queue.
            logger.warning("not a release: dropped from the release queue", extra={"message_id": record.message_id})
            return {"dropped": record.message_id}
        if value == REMINDER_STAGE and self._reminders is not None:
            # From the diagnosis queue only (the sweep's run). The ledger's entry per (event, reminder entry)
            # makes a redelivered reminder send nothing again.
            return {"reminder": self._reminders.send(DueReminder.from_json(record.body))}
        event = AccountEvent.from_json(record.body)
        stage = value if value in ("record", "diagnose") else None
        # Records run on several threads: the correlation id belongs to this thread's logs only.
        logger.thread_safe_append_keys(correlation_id=event.event_id, stage=stage or "record+diagnose")
        # Outside the idempotency key ([event_id, stage]): only a hint that no earlier attempt ran.
        first_delivery = record.attributes.approximate_receive_count == "1"
        try:
            if stage == "record":
                return {"event_id": event.event_id, "recorded": self._service.record(event)}
            result: dict[str, Any] = self._diagnose_once(
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

    def _diagnose_message(self, message: dict[str, Any]) -> dict[str, Any]:
        return self._service.process(
            AccountEvent.from_dict(message["event"]),
            message["stage"],
            first_delivery=bool(message.get("first_delivery")),
        )


def _release_request(body: str) -> dict[str, Any]:
    value = json.loads(body)
    if not isinstance(value, dict) or "incident_id" not in value:
        raise ValueError("a release message carries {'incident_id': …, 'cursor': …}")
    return {"incident_id": str(value["incident_id"]), "cursor": value.get("cursor")}


def build_consumer(settings: Settings, notifier: Notifier, *, diagnose: Diagnose | None = None) -> QueueConsumer:
    """The consumer a DiagnosisFunction cold start builds: real adapters from the settings."""
    if diagnose is None:
        from account_doctor.diagnosis import diagnose as procedure

        diagnose = procedure
    client = dynamodb_client()
    queue = ReleaseQueue(settings.release_queue_url)
    publisher = publisher_for(settings.event_bus_name)
    recovery = Recovery(
        EpisodeRecords(Table(settings.events_table, client)), publisher, reminder_hours=settings.reminder_schedule
    )
    history = EventHistory(Table(settings.events_table, client))
    incidents = IncidentStore(Table(settings.incidents_table, client))
    verdicts = VerdictStore(Table(settings.verdicts_table, client))
    service = DiagnosisService(
        history=history,
        verdicts=verdicts,
        incidents=incidents,
        nylas=NylasClient(settings),
        notifier=notifier,
        publisher=publisher,
        policy=settings.policy,
        procedure=diagnose,
        sweep_notify_days=settings.sweep_notify_days,
        enqueue_release=queue.send,
        at_risk=AtRiskWatch(
            AtRiskStore(Table(settings.incidents_table, client)),
            history.census.recent_consents,
            history.latest_from_states,
        ),
        recovery=recovery,
    )
    reminders = Reminders(
        recovery=recovery,
        latest_verdict=verdicts.latest,
        connector_incident_open=lambda through: incidents.is_open(IncidentKey("connector", through)),
        notifier=notifier,
    )
    return QueueConsumer(
        service,
        DynamoDBPersistenceLayer(table_name=settings.idempotency_table),
        release_queue_url=settings.release_queue_url,
        reminders=reminders,
    )


def build_evidence(settings: Settings) -> tuple[EventHistory, EvidenceGatherer]:
    """The history and the evidence gatherer over the stack's tables and Nylas, as a DiagnosisFunction reads
    them (the CLI's `diagnose` reads with them, writing and sending nothing)."""
    client = dynamodb_client()
    history = EventHistory(Table(settings.events_table, client))
    incidents = IncidentStore(Table(settings.incidents_table, client))
    return history, EvidenceGatherer(NylasClient(settings), history, incidents, settings.policy)
