"""The queue consumer: one DiagnosisQueue message → record the event, diagnose it, or release an incident.

Every step can be repeated safely, so a message retried after any failure ends in exactly one verdict
(plus its revisions) and no second email: events, verdicts and incident members are written with
conditions, an existing verdict is reused, the notifier sends each email at most once, and Powertools
idempotency (keyed on event id and stage) makes a redelivered diagnosis a no-op. The record stage needs no
idempotency record of its own: its one transactional write is already conditional.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from account_doctor.addresses import is_free_mail, mask_email
from account_doctor.events_out import Publisher, publisher_for
from account_doctor.evidence import EvidenceGatherer, Gathered, incident_keys, joinable
from account_doctor.models import (
    STAGE_ATTRIBUTE,
    AccountEvent,
    Cause,
    Diagnosis,
    Evidence,
    Notification,
    Policy,
    Release,
    Verdict,
    iso,
    parse_iso,
)
from account_doctor.notifications.audience import Occasion
from account_doctor.notifications.render import IncidentBrief, IncidentMember
from account_doctor.nylas import NylasClient, NylasConfigError
from account_doctor.ports import Notifier, NylasApi
from account_doctor.providers import GOOGLE_PROVIDERS, connector
from account_doctor.queue import ReleaseQueue
from account_doctor.settings import Settings
from account_doctor.stores.at_risk import AtRiskStore
from account_doctor.stores.dynamo import Table, dynamodb_client
from account_doctor.stores.events import Cluster, EventHistory
from account_doctor.stores.incidents import IncidentKey, IncidentStore
from account_doctor.stores.verdicts import ChangedMeanwhile, VerdictStore, page_verdicts
from account_doctor.sweep import is_too_old_to_notify
from account_doctor.tally import tally
from account_doctor.testing_mode import TESTING_MODE, AtRiskWatch, risk_sentence

logger = Logger(child=True)

Diagnose = Callable[[Evidence, Policy], Diagnosis]
Clock = Callable[[], datetime]

# A redelivered message within this long is recognised without touching the tables; after it,
# the conditional writes and the verdict reuse still keep it from doing anything twice.
IDEMPOTENCY_SECONDS = 24 * 3600
# Members released per message: a release of thousands continues in follow-up messages, each well
# inside the function's timeout.
RELEASE_PAGE = 25
# How many members an operator alert lists (the CLI and API show the rest).
ALERT_MEMBERS = 50


def _now() -> datetime:
    return datetime.now(UTC)


def incident_key_of(cause: Cause, evidence: Evidence) -> IncidentKey | None:
    """The incident a cause groups its failures into (SPEC §4b), if any."""
    if cause == "connector_outage" and evidence.connector:
        return IncidentKey("connector", evidence.connector)
    if cause in ("admin_disconnected", "admin_session_policy") and evidence.domain:
        return IncidentKey("domain", evidence.domain)
    if cause == "google_testing_mode":
        return IncidentKey("testing_mode", "google")
    return None


@dataclass(kw_only=True, eq=False)
class DiagnosisService:
    """Records, diagnoses and releases, over the stores, Nylas and the notifier it is given."""

    history: EventHistory
    verdicts: VerdictStore
    incidents: IncidentStore
    nylas: NylasApi
    notifier: Notifier
    publisher: Publisher
    policy: Policy
    procedure: Diagnose
    sweep_notify_days: int
    enqueue_release: Callable[[Release], None] | None = None
    clock: Clock = _now
    # The grants a testing_mode incident puts at risk (SPEC §3d); None where nobody asks (some tests).
    testing_mode: AtRiskWatch | None = None
    _evidence: EvidenceGatherer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._evidence = EvidenceGatherer(self.nylas, self.history, self.incidents, self.policy)

    def process(self, event: AccountEvent, stage: str | None, *, first_delivery: bool = False) -> dict[str, Any]:
        """Runs one stage (both when the message carries none, e.g. a hand-made redrive)."""
        outcome: dict[str, Any] = {"event_id": event.event_id}
        if stage in (None, "record"):
            outcome["recorded"] = self.record(event)
        if stage in (None, "diagnose") and event.kind == "failure":
            verdict = self.diagnose(event, first_delivery=first_delivery)
            outcome.update(cause=verdict.cause, notifications=len(verdict.notifications))
        return outcome

    # Recording ----------------------------------------------------------------------------------

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
        if stored and event.kind == "recovery":
            self._member_recovered(event)
            self._consented(event)
        return stored

    def _consented(self, event: AccountEvent) -> None:
        """A Google consent (grant creation, re-authentication) while a testing_mode incident is open is one
        more grant at risk: it dies 7 days later unless the app is published."""
        if self.testing_mode is None or (event.provider or "").lower() not in GOOGLE_PROVIDERS:
            return
        live = self.incidents.live([TESTING_MODE]).get(TESTING_MODE)
        if live is not None:
            self.testing_mode.consented(live.incident_id, event.account_id, event.email, event.occurred_at)

    def _member_recovered(self, event: AccountEvent) -> None:
        """A recovered account is marked on its open incidents; when every member has recovered, it is resolved."""
        state = self.history.state(event.account_id) or {}
        domain = state.get("domain")
        keys = incident_keys(domain, bool(domain) and is_free_mail(str(domain)), connector(state.get("provider")))
        for key, live in self.incidents.live(keys).items():
            if not self.incidents.member_recovered(key, live.incident_id, event.account_id):
                continue
            after = self.incidents.live([key]).get(key)
            if after is not None and after.incident_id == live.incident_id and after.recovered >= after.accounts:
                resolved = self.incidents.resolve(live.incident_id, event.occurred_at)
                if resolved is not None:
                    logger.info("incident resolved: every member recovered", extra={"incident_id": live.incident_id})
                    self.publisher.publish_incident("IncidentResolved", resolved.to_dict())

    # Diagnosing ---------------------------------------------------------------------------------

    def diagnose(self, event: AccountEvent, *, first_delivery: bool = False, again: bool = False) -> Verdict:
        """The verdict of a failure event (made once, reused on retries), its incident, events and emails.

        `again`: made a second time because an incident opened while it was being made (see `_no_racer`).
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
                return verdict
            return self._resume(verdict, event)
        gathered = self._evidence.gather(event)
        evidence = gathered.evidence
        testing = gathered.live.get(TESTING_MODE)
        if testing is not None and self.testing_mode is not None:
            self.testing_mode.failed(testing.incident_id, event.account_id)  # broken now, no longer at risk
        if not gathered.recorded:
            # The "record" copy has not run (yet): this failure must be in the history for its neighbours.
            self.history.put_event(replace(event, email=evidence.email, provider=evidence.provider))
        diagnosis = self.procedure(evidence, self.policy)
        key = incident_key_of(diagnosis.cause, evidence)
        incident_id, opened = self._incident_for(key, diagnosis.cause, event, gathered)
        verdict = Verdict.of(evidence, diagnosis, diagnosed_at=iso(self.clock()), incident_id=incident_id)
        try:
            stored_now = self.verdicts.put(verdict, provided=self._no_racer(gathered, incident_id))
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
            return self._resume(stored, event)
        tally.count("Verdicts", "cause", verdict.cause)
        logger.info(
            "verdict",
            extra={"cause": verdict.cause, "confidence": verdict.confidence, "email": mask_email(verdict.email)},
        )
        if key is not None and incident_id is not None:
            self._join(key, incident_id, verdict, held=verdict.cause == "connector_outage")
            if opened:
                cluster = gathered.domain_cluster if key.kind == "domain" else self._failures_around(key, event)
                self._open_incident(key, incident_id, verdict, cluster)
                if key == TESTING_MODE and self.testing_mode is not None:
                    self.testing_mode.opened(incident_id)
        return self._finish(verdict, self._occasion_for(verdict, event, opened))

    def _no_racer(self, gathered: Gathered, incident_id: str | None) -> list[dict[str, Any]]:
        """The conditions a verdict outside any incident is stored on: no incident opened for its keys since
        its evidence was read. An opener revises the earlier members whose verdicts it finds; one still being
        made it can only count, so that verdict must not be stored as if alone. A lone failure (no neighbour
        in any cluster) cannot have been counted by a racer, and is stored unconditioned."""
        e = gathered.evidence
        if (
            incident_id is not None
            or max(e.domain_burst_accounts, e.domain_window_accounts, e.connector_burst_accounts) < 2
        ):
            return []
        keys = incident_keys(e.domain, e.free_mail, e.connector)
        seen = {key: gathered.live[key].incident_id if key in gathered.live else None for key in keys}
        return self.incidents.none_opened(seen)

    def _resume(self, verdict: Verdict, event: AccountEvent) -> Verdict:
        """A retry of a stored verdict: what the failed attempt may have left undone, each step safe to repeat.

        The attempt can fail after the verdict was stored (a transaction conflict counting the member, SES
        throttling a revision's follow-up): the member is counted now, and the incident's opener revises the
        earlier members again (those already revised only get a follow-up that did not go out).
        """
        incident = self.incidents.get(verdict.incident_id) if verdict.incident_id else None
        if incident is not None and incident.status == "open":
            key = IncidentKey(incident.kind, incident.key)
            self._join(key, incident.incident_id, verdict, held=verdict.cause == "connector_outage")
            if incident.opened_by_event == event.event_id:
                self._open_incident(key, incident.incident_id, verdict, self._failures_around(key, event))
                if key == TESTING_MODE and self.testing_mode is not None:
                    self.testing_mode.opened(incident.incident_id)
        return self._finish(verdict, self._occasion_of(verdict, event))

    def _join(self, key: IncidentKey, incident_id: str, verdict: Verdict, *, held: bool = False) -> None:
        """Counts the verdict's account as a member of the incident (once, however often it is called); a held
        email is counted too when the account had joined before its own diagnosis (counted by the opener)."""
        joined = self.incidents.join(
            key,
            incident_id,
            verdict.account_id,
            verdict.email,
            verdict.domain,
            verdict.cause,
            verdict.occurred_at,
            held=held,
        )
        if held and not joined:
            self.incidents.hold(key, incident_id, verdict.account_id)

    def _failures_around(self, key: IncidentKey, event: AccountEvent) -> Cluster:
        """The failures the opener's evidence counted (EvidenceGatherer's windows): the members it revises."""
        failed_at = parse_iso(event.occurred_at)
        burst = timedelta(minutes=self.policy.domain_burst_minutes)
        if key.kind == "domain":
            since = failed_at - timedelta(days=self.policy.domain_window_days)
            return self.history.domain_failures(key.key, iso(since), iso(failed_at + burst))
        # Connector and testing-mode incidents are keyed by the connector (testing mode: google).
        return self.history.connector_failures(key.key, iso(failed_at - burst), iso(failed_at + burst))

    def _incident_for(
        self, key: IncidentKey | None, cause: Cause, event: AccountEvent, gathered: Gathered
    ) -> tuple[str | None, bool]:
        """The incident this verdict belongs to (joined, or opened now), and whether this event opened it."""
        if key is None:
            return None, False
        live = gathered.live.get(key)
        current = joinable(live, event.occurred_at, self.policy)
        if current is not None:
            # Only a retry of the event that opened it sees its own incident as opened by itself.
            return current.incident_id, current.opened_by_event == event.event_id
        evidence = gathered.evidence
        connector = key.kind == "connector"
        # The whole cluster the opener counted (its burst reaches past its own failure, its window does not):
        # a member diagnosed before the opener's cluster has joined still sees an incident of this size.
        cluster_accounts = max(evidence.domain_burst_accounts, evidence.domain_window_accounts)
        incident_id, opened = self.incidents.open(
            key,
            cause,
            event.occurred_at,
            event.event_id,
            replacing=live.incident_id if live else None,
            accounts=evidence.connector_burst_accounts if connector else cluster_accounts,
            domains=evidence.connector_burst_domains if connector else 1,
        )
        if opened:
            tally.count("IncidentsOpened", "kind", key.kind)
            logger.info("incident opened", extra={"incident_id": incident_id, "cause": cause})
        return incident_id, opened

    def _occasion_for(self, verdict: Verdict, event: AccountEvent, opened: bool) -> Occasion:
        return Occasion(
            incident_opened=opened,
            hold_customer=verdict.cause == "connector_outage",
            notify_customer=not self._too_old_to_notify(event),
        )

    def _occasion_of(self, verdict: Verdict, event: AccountEvent) -> Occasion:
        """A retried verdict's occasion, from what is stored: its incident decides whether it opened it."""
        opened = False
        if verdict.incident_id:
            incident = self.incidents.get(verdict.incident_id)
            opened = incident is not None and incident.opened_by_event == event.event_id
            if incident is not None and incident.released_at and verdict.cause == "connector_outage":
                return Occasion(incident_opened=opened, notify_customer=not self._too_old_to_notify(event))
        return self._occasion_for(verdict, event, opened)

    def _too_old_to_notify(self, event: AccountEvent) -> bool:
        """A failure the sweep found long after it happened: recorded, but its customer left long ago."""
        return is_too_old_to_notify(event, self.clock(), self.sweep_notify_days)

    def _finish(self, verdict: Verdict, occasion: Occasion) -> Verdict:
        """Publishes the verdict and sends its emails (the verdict is stored before either)."""
        if verdict.cause == "recovered":
            self.publisher.publish_verdict(verdict.to_dict())
            return verdict
        brief = self._brief(verdict) if occasion.incident_opened else None
        verdict = replace(verdict, notifications=self.notifier.notify(verdict, occasion, incident=brief))
        self.publisher.publish_verdict(verdict.to_dict())
        return verdict

    def _brief(self, verdict: Verdict) -> IncidentBrief | None:
        if not verdict.incident_id:
            return None
        incident = self.incidents.get(verdict.incident_id)
        if incident is None:
            return None
        members, _ = self.incidents.members(incident.incident_id, ALERT_MEMBERS)
        return IncidentBrief(
            incident_id=incident.incident_id,
            kind=incident.kind,
            key=incident.key,
            accounts=incident.accounts,
            members=tuple(IncidentMember(m.account_id, m.email, m.latest_cause, m.recovered) for m in members),
            domains=incident.domains,
            at_risk=(
                risk_sentence(self.testing_mode.at_risk(incident.incident_id))
                if incident.kind == "testing_mode" and self.testing_mode is not None
                else None
            ),
        )

    # Incidents: opening revises the earlier members ----------------------------------------------------

    def _open_incident(self, key: IncidentKey, incident_id: str, opener: Verdict, cluster: Cluster | None) -> None:
        """Counts the failures that came before the incident existed as members, and revises their verdicts."""
        emails = cluster.emails() if cluster else {}
        for account_id in sorted(set(emails) - {opener.account_id}):
            self._revise_member(key, incident_id, account_id, emails[account_id], opener)
        incident = self.incidents.get(incident_id)
        if incident is not None:
            self.publisher.publish_incident("IncidentOpened", incident.to_dict())

    def _revise_member(
        self, key: IncidentKey, incident_id: str, account_id: str, email: str | None, opener: Verdict
    ) -> bool:
        """Revises the account's latest verdict to the opener's cause when the procedure, given the incident's
        counts, now reaches it; counts the account as a member either way. Whether it revised."""
        latest = page_verdicts(self.verdicts.account_verdicts(account_id, limit=1))
        if not latest:
            # Still in its grace period: counted now, so its own diagnosis finds the incident at full size.
            domain = key.key if key.kind == "domain" else None
            self.incidents.join(key, incident_id, account_id, email, domain, opener.cause, opener.occurred_at)
            return False
        earlier = latest[0]
        if earlier.cause == opener.cause or earlier.cause == "recovered" or earlier.superseded:
            self._join(key, incident_id, earlier)
            if earlier.revises is not None and earlier.incident_id == incident_id:
                self._finish_follow_up(account_id, earlier)  # the opener's retry: its email may not have gone out
            return False
        if self.history.recovery_after(account_id, earlier.occurred_at) is not None:
            return False
        evidence = Evidence.from_dict(earlier.evidence).in_incident(incident_id, Evidence.from_dict(opener.evidence))
        judged = self.procedure(evidence, self.policy)
        if judged.cause != opener.cause:
            return False  # an earlier rule still explains this account (e.g. the app removed the grant)
        revision = replace(
            earlier,
            diagnosed_at=iso(self.clock()),
            cause=judged.cause,
            confidence=judged.confidence,
            summary=judged.summary,
            actions=list(judged.actions),
            steps=list(judged.steps),
            incident_id=incident_id,
            revises=earlier.diagnosed_at,
            revision_reason=f"incident {incident_id} opened: {opener.summary}",
            superseded=False,
            notifications=[],
        )
        if revision.diagnosed_at <= earlier.diagnosed_at:  # keys must differ even within the same second
            revision = replace(revision, diagnosed_at=iso(parse_iso(earlier.diagnosed_at) + timedelta(seconds=1)))
        if not self.verdicts.revise(earlier, revision):
            return False
        tally.count("VerdictsRevised", "cause", revision.cause)
        # A member never asked to reconnect (its verdict was revised before its email went out) waits for the
        # connector's release like those diagnosed after the incident opened.
        hold = revision.cause == "connector_outage" and not _asked_to_reconnect(earlier)
        self._join(key, incident_id, revision, held=hold)
        self._finish(revision, Occasion(follow_up=_follow_up(earlier, revision), hold_customer=hold))
        return True

    def _finish_follow_up(self, account_id: str, revision: Verdict) -> None:
        """Sends a stored revision's follow-up email if it did not go out (the ledger keeps it to once)."""
        newest = page_verdicts(self.verdicts.account_verdicts(account_id, limit=2))
        revised = [v for v in newest if v.event_id == revision.event_id and v.diagnosed_at == revision.revises]
        follow_up = _follow_up(revised[0], revision) if revised else None
        if follow_up and not any(n.kind == follow_up for n in revision.notifications):
            self._finish(revision, Occasion(follow_up=follow_up))

    # Releasing held emails ------------------------------------------------------------------------

    def release(self, request: Release) -> int:
        """Sends the held reconnect emails of one page of members still broken; queues the next page."""
        members, cursor = self.incidents.members(request.incident_id, RELEASE_PAGE, request.cursor)
        sent = 0
        for member in members:
            if member.recovered:
                continue
            latest = page_verdicts(self.verdicts.account_verdicts(member.account_id, limit=1))
            if not latest or not any(n.status == "held" for n in latest[0].notifications):
                continue
            if self.history.recovery_after(member.account_id, latest[0].occurred_at) is not None:
                continue
            notifications = self.notifier.notify(latest[0], Occasion(released=True))
            sent += sum(1 for n in notifications if n.status in ("sent", "dry_run") and n.kind == "reconnect")
        if cursor is not None and self.enqueue_release is not None:
            self.enqueue_release(Release(request.incident_id, cursor))
        return sent


def _asked_to_reconnect(verdict: Verdict) -> bool:
    return any(n.kind == "reconnect" and n.status in ("sent", "dry_run", "delivered") for n in verdict.notifications)


def _follow_up(earlier: Verdict, revision: Verdict) -> Any:
    """The revision's single customer email, only when the advice changed (SPEC §4b)."""
    if revision.cause == "connector_outage":
        return "outage_notice" if _asked_to_reconnect(earlier) else None
    if revision.cause in ("admin_disconnected", "admin_session_policy"):
        told_admin = any(n.kind == "admin_contact" for n in earlier.notifications)
        return None if told_admin else "admin_contact"
    return None


class QueueConsumer:
    """One SQS record → the service, diagnoses at most once per (event id, stage)."""

    def __init__(self, service: DiagnosisService, persistence: DynamoDBPersistenceLayer) -> None:
        self._service = service
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
    import json

    value = json.loads(body)
    if not isinstance(value, dict) or "incident_id" not in value:
        raise ValueError("a release message carries {'incident_id': …, 'cursor': …}")
    return {"incident_id": str(value["incident_id"]), "cursor": value.get("cursor")}


def verdicts_newest_first(verdicts: list[Verdict]) -> list[Verdict]:
    return sorted(verdicts, key=lambda v: v.key, reverse=True)


def notifications_of(verdict: Verdict) -> list[Notification]:
    return list(verdict.notifications)


def build_consumer(settings: Settings, notifier: Notifier, *, diagnose: Diagnose | None = None) -> QueueConsumer:
    """The consumer a DiagnosisFunction cold start builds: real adapters from the settings."""
    if diagnose is None:
        from account_doctor.diagnosis import diagnose as procedure

        diagnose = procedure
    client = dynamodb_client()
    queue = ReleaseQueue(settings.diagnosis_queue_url)
    history = EventHistory(Table(settings.events_table, client))
    service = DiagnosisService(
        history=history,
        verdicts=VerdictStore(Table(settings.verdicts_table, client)),
        incidents=IncidentStore(Table(settings.incidents_table, client)),
        nylas=NylasClient(settings),
        notifier=notifier,
        publisher=publisher_for(settings.event_bus_name),
        policy=settings.policy,
        procedure=diagnose,
        sweep_notify_days=settings.sweep_notify_days,
        enqueue_release=queue.send,
        testing_mode=AtRiskWatch(
            AtRiskStore(Table(settings.incidents_table, client)),
            history.census.recent_consents,
            history.latest_from_states,
        ),
    )
    return QueueConsumer(service, DynamoDBPersistenceLayer(table_name=settings.idempotency_table))
