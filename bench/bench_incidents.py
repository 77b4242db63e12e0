"""Incident figures (SPEC §4b): a diagnosis costs the same in a 2,000-account incident as in a 20-account one,
and one customer-emailed failure event costs a handful of AWS calls.

1. One organisation domain's incident of 2,000 accounts against 20-account ones, every member failing within
   DomainBurstMinutes (2–3 a second), Google accounts that Nylas reports invalid (an in-memory Nylas; the
   real notifier with an in-memory mailer). All incidents live in one moto stack, DomainWindowDays + 1 apart
   so that none is in another's domain or connector windows or baseline. Per diagnosis:
   - items DynamoDB reads, as it charges them (the items a Query examines, its ScannedCount; every key a
     GetItem or BatchGetItem asks for, found or not), counted by botocore hooks on the service's client:
     the median over the 2,000-account incident's last 15 members against the last 3 members of five
     20-account incidents; target ratio 1.1;
   - the function's own CPU time: the thread's CPU time minus the time spent inside the emulator (from
     `before-send` to `before-parse`, so botocore's parsing of what was read counts as the function's). moto
     scans every item of a table for each Query and deep-copies every table a transaction touches, so its
     time grows with the tables, which DynamoDB's does not. A run is the sum of 3 members' diagnoses, the
     large incident's alternating with a small one's (machine load hits both alike); target ratio 1.5.
   The first three members of each incident are diagnosed for real (the third opens it and revises the
   first two); the members up to the measured ones are recorded and joined through the stores (each event's
   record transaction and its member join, as a diagnosis writes them; no verdict of their own), because
   moto's per-table costs make 2,000 real diagnoses take the better part of an hour.
2. AWS calls for one failure event with a customer-emailed cause (oauth_revoked, an organisation-domain
   Google account), both of DiagnosisFunction's stages as Lambda runs them: functions/diagnosis/app.py
   cold-started on moto (real notifier on SES with NotificationMode=send, real event bus, Powertools
   idempotency), Nylas answered by the simulator over HTTP, one SQS record per stage. Counted by a
   botocore `before-call` hook on every client created, by service and operation, on a warm function
   (the Nylas secret read once per cold start is reported apart). Target: at most 12.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import botocore.session
import moto.dynamodb.models as moto_dynamodb
from botocore.client import BaseClient
from moto import mock_aws
from moto.dynamodb.models.table import Table as MotoTable

from account_doctor.consumer import DiagnosisService
from account_doctor.diagnosis import diagnose
from account_doctor.models import AccountEvent, IncidentKey, iso
from account_doctor.notifications.notifier import EmailNotifier, ReconnectLinks
from account_doctor.notifications.render import RenderedEmail
from account_doctor.settings import Settings, get_settings
from account_doctor.stores.dynamo import Table, dynamodb_client
from account_doctor.stores.events import EventHistory
from account_doctor.stores.incidents import SHARDS, IncidentStore
from account_doctor.stores.ledger import NotificationLedger
from account_doctor.stores.verdicts import VerdictStore, page_verdicts
from bench.environment import quiet_environment, use_function_settings
from bench.figures import Figure
from local_stack.payloads import TEST_SECRET, FakeLambdaContext, diagnosis_record, load_handler, sqs_event
from local_stack.simulator import Grant, NylasSimulator
from local_stack.template import ProvisionedStack, provision
from tests.fakes import FakeNylas, RecordingPublisher

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

LARGE = 2_000
SMALL = 20
# A diagnosis takes ~10 ms of CPU, and one run of it swings by a third on a shared machine: a run is the
# sum of PER_RUN members' diagnoses. Run r pairs the last PER_RUN members of the r-th 20-account incident
# with the next PER_RUN of the 2,000-account one's last RUNS × PER_RUN, diagnosed alternately.
RUNS = 5
PER_RUN = 3
OPENING = 3  # the first members, diagnosed for real: the third opens the incident (DomainClusterThreshold)
CALLS_TARGET = 12
# A day ago, on the hour: the incidents' failures are recent, as a live incident's are.
START = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
# Before the earliest failure, well past Google testing mode's 7 days: these are plain revocations.
ACCOUNT_AGE = timedelta(days=40)


@contextmanager
def _stack(parameters: dict[str, str], function: str | None = None) -> Iterator[ProvisionedStack]:
    """The template's resources in moto in-process, and the function's environment (every function's if None)."""
    with quiet_environment(), mock_aws():
        stack = provision(secret=TEST_SECRET, parameters=parameters)
        use_function_settings(stack, function)
        yield stack


def _logical_names(stack: ProvisionedStack) -> dict[str, str]:
    return {physical: logical for logical, physical in stack.physical.items()}


def _resource(operation: str, params: dict[str, Any], names: dict[str, str]) -> str:
    """The tables (logical ids) and index a DynamoDB request names; "" for other services."""
    if operation in ("BatchGetItem", "BatchWriteItem"):
        tables = list(params.get("RequestItems", {}))
    elif operation in ("TransactWriteItems", "TransactGetItems"):
        tables = [op["TableName"] for item in params.get("TransactItems", []) for op in item.values()]
    else:
        tables = [params["TableName"]] if "TableName" in params else []
    index = f" {params['IndexName']}" if "IndexName" in params else ""
    return ", ".join(sorted({names.get(t, t) for t in tables})) + index


# 1. A 2,000-account incident against a 20-account one ------------------------------------------------


class DynamoProbe:
    """Items read and emulator time of one DynamoDB client's calls, from botocore's event hooks."""

    def __init__(self, client: BaseClient, names: dict[str, str]) -> None:
        self._names = names
        self.reads: Counter[str] = Counter()  # items read, by operation (and table/index)
        self.calls = 0
        self.emulator_cpu = 0.0
        self._sent_at = 0.0
        events = client.meta.events
        events.register("before-parameter-build.dynamodb", self._label)
        events.register("after-call.dynamodb", self._count)
        # moto answers from a `before-send` handler (ours runs first); `before-parse` comes with its answer,
        # before botocore parses it (the function's own work, as with DynamoDB).
        events.register_first("before-send.dynamodb", self._sending)
        events.register_first("before-parse.dynamodb", self._answered)

    def reset(self) -> None:
        self.reads.clear()
        self.calls = 0
        self.emulator_cpu = 0.0

    @property
    def items_read(self) -> int:
        return sum(self.reads.values())

    def _label(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["bench_place"] = f"{model.name} {_resource(model.name, params, self._names)}"
        if model.name == "BatchGetItem":
            context["bench_keys"] = sum(len(request["Keys"]) for request in params["RequestItems"].values())

    def _count(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        self.calls += 1
        if model.name == "Query":
            read = int(parsed.get("ScannedCount", parsed.get("Count", 0)))
        elif model.name == "GetItem":
            read = 1  # DynamoDB charges a read for a key it does not find, too
        elif model.name == "BatchGetItem":
            # Every key asked for (each is a GetItem to DynamoDB), less those it left unprocessed.
            unprocessed = sum(len(r.get("Keys", [])) for r in (parsed.get("UnprocessedKeys") or {}).values())
            read = int(context.get("bench_keys", 0)) - unprocessed
        else:
            return
        self.reads[context.get("bench_place", model.name)] += read

    def _sending(self, **_: Any) -> None:
        self._sent_at = time.thread_time()

    def _answered(self, **_: Any) -> None:
        self.emulator_cpu += time.thread_time() - self._sent_at


@dataclass
class Outbox:
    """The notifier's mailer: every email counts as sent (SES is not what this figure is about)."""

    sent: int = 0

    def send(self, email: RenderedEmail) -> str:
        self.sent += 1
        return f"bench-{self.sent}"


@dataclass
class Sample:
    items: int
    own_cpu: float  # seconds
    wall: float  # seconds, emulator included
    calls: int
    reads: dict[str, int]


@dataclass
class Incident:
    """One organisation domain's failures, `spacing` apart from `start`."""

    domain: str
    size: int
    start: datetime
    spacing: timedelta
    incident_id: str = ""

    def event(self, n: int) -> AccountEvent:
        at = iso(self.start + n * self.spacing)
        tag = self.domain.split(".")[0]
        return AccountEvent(
            f"evt-{tag}-{n}", "v3", "grant.expired", f"grant-{tag}-{n:05}", at, "google", f"user{n}@{self.domain}"
        )

    @property
    def key(self) -> IncidentKey:
        return IncidentKey("domain", self.domain)


class Diagnoser:
    """The diagnosis service on the stack's tables, its clock following the events (GraceSeconds after each)."""

    def __init__(self, settings: Settings, client: DynamoDBClient, created_at: datetime) -> None:
        self.clock = START
        self.outbox = Outbox()
        verdicts = VerdictStore(Table(settings.verdicts_table, client))
        self.incidents = IncidentStore(Table(settings.incidents_table, client))
        self.incidents_table = Table(settings.incidents_table, client)
        self.service = DiagnosisService(
            history=EventHistory(Table(settings.events_table, client)),
            verdicts=verdicts,
            incidents=self.incidents,
            nylas=FakeNylas(created_at=iso(created_at)),
            notifier=EmailNotifier(
                settings,
                ledger=NotificationLedger(Table(settings.notifications_table, client)),
                mailer=self.outbox,
                reconnect_link=ReconnectLinks(settings),
                verdicts=verdicts,
                clock=lambda: self.clock,
            ),
            publisher=RecordingPublisher(),
            policy=settings.policy,
            procedure=diagnose,
            sweep_notify_days=settings.sweep_notify_days,
            clock=lambda: self.clock,
        )

    def diagnose(self, event: AccountEvent) -> tuple[str, str | None]:
        self.clock = datetime.fromisoformat(event.occurred_at.replace("Z", "+00:00")) + timedelta(minutes=2)
        verdict = self.service.diagnose(event, first_delivery=True)
        return verdict.cause, verdict.incident_id

    def shards_counting(self, incident: Incident) -> bool:
        """Every counter shard of the incident's key counts this incident (so no join needs to reset one)."""
        return all(
            (item := self.incidents_table.get(incident.key.shard(n))) is not None
            and item.get("incident_id") == incident.incident_id
            for n in range(SHARDS)
        )


@contextmanager
def _no_transaction_backups() -> Iterator[None]:
    """Seeding only: moto deep-copies every table a transaction touches, to roll back a cancelled one.

    That copy makes each write O(table) and a 2,000-member seed quadratic. Every seeded write is asserted to
    succeed (nothing to roll back), and the copy is back before anything is measured.
    """
    original = getattr(moto_dynamodb, "copy")  # noqa: B009 - moto's module, not ours

    class _Copy:
        copy = staticmethod(copy.copy)

        @staticmethod
        def deepcopy(value: Any) -> Any:
            return value if isinstance(value, MotoTable) else copy.deepcopy(value)

    setattr(moto_dynamodb, "copy", _Copy)  # noqa: B010
    try:
        yield
    finally:
        setattr(moto_dynamodb, "copy", original)  # noqa: B010


def _open(diagnoser: Diagnoser, incident: Incident) -> None:
    """The first members, diagnosed for real: the third opens the incident and revises the first two."""
    causes = []
    for n in range(OPENING):
        event = incident.event(n)
        diagnoser.service.record(event)
        cause, incident_id = diagnoser.diagnose(event)
        causes.append(cause)
        incident.incident_id = incident_id or ""
    assert causes == ["oauth_revoked", "oauth_revoked", "admin_disconnected"], causes
    assert incident.incident_id, "the third member opened no incident"


def _seed(diagnoser: Diagnoser, incident: Incident, measured: int) -> None:
    """Members up to the last `measured`: each failure recorded and joined, as its diagnosis would have done."""

    def member(n: int) -> None:
        event = incident.event(n)
        assert diagnoser.service.record(event), event.event_id
        joined = diagnoser.incidents.join(
            incident.key,
            incident.incident_id,
            event.account_id,
            event.email,
            incident.domain,
            "admin_disconnected",
            event.occurred_at,
        )
        assert joined, event.event_id

    members = iter(range(OPENING, incident.size - measured))
    # Until every counter shard counts this incident, a join may reset one in a cancelled transaction.
    for n in members:
        member(n)
        if diagnoser.shards_counting(incident):
            break
    with _no_transaction_backups():
        for n in members:
            member(n)


def _measure(diagnoser: Diagnoser, probe: DynamoProbe, incident: Incident, n: int) -> Sample:
    event = incident.event(n)
    with _no_transaction_backups():  # the "record" copy, processed GraceSeconds earlier: not measured
        assert diagnoser.service.record(event), event.event_id
    probe.reset()
    # As timeit does: no collection of the garbage others left (moto's, mostly) lands inside the measurement.
    gc.collect()
    gc.disable()
    try:
        cpu, wall = time.thread_time(), time.perf_counter()
        cause, incident_id = diagnoser.diagnose(event)
        wall = time.perf_counter() - wall
        cpu = time.thread_time() - cpu
    finally:
        gc.enable()
    assert (cause, incident_id) == ("admin_disconnected", incident.incident_id), (cause, incident_id)
    return Sample(probe.items_read, cpu - probe.emulator_cpu, wall, probe.calls, dict(probe.reads))


def incident_figures() -> list[Figure]:
    started = time.perf_counter()
    with _stack({"NotificationMode": "send"}) as stack:
        settings = get_settings()
        policy = settings.policy
        # The large incident's members all fail within DomainBurstMinutes; the small ones' at the same pace.
        spacing = timedelta(minutes=policy.domain_burst_minutes) * 0.9 / LARGE
        # Far enough apart that no incident is in another's domain or connector windows, nor its baseline.
        apart = timedelta(days=policy.domain_window_days + 1)
        large = Incident("acme.example", LARGE, START, spacing)
        smalls = [Incident(f"globex{r}.example", SMALL, START - (r + 1) * apart, spacing) for r in range(RUNS)]
        client = dynamodb_client()
        probe = DynamoProbe(client, _logical_names(stack))
        diagnoser = Diagnoser(settings, client, created_at=smalls[-1].start - ACCOUNT_AGE)
        for small in smalls:
            _open(diagnoser, small)
            _seed(diagnoser, small, PER_RUN)
        _open(diagnoser, large)
        _seed(diagnoser, large, RUNS * PER_RUN)
        seeded = time.perf_counter() - started
        gc.freeze()  # the tables' millions of objects: each collection before a measurement skips them
        pairs: list[tuple[list[Sample], list[Sample]]] = []
        for r, small in enumerate(smalls):
            mine: list[Sample] = []
            theirs: list[Sample] = []
            for k in range(PER_RUN):
                mine.append(_measure(diagnoser, probe, small, SMALL - PER_RUN + k))
                theirs.append(_measure(diagnoser, probe, large, LARGE - (RUNS - r) * PER_RUN + k))
            pairs.append((mine, theirs))
        gc.unfreeze()
        for incident in (*smalls, large):
            (live,) = diagnoser.incidents.live([incident.key]).values()
            assert live.accounts == incident.size, (incident.domain, live.accounts)
    total = time.perf_counter() - started
    print(f"incidents: seeded in {seeded:.0f} s, measured in {total - seeded:.0f} s", file=sys.stderr)

    small_samples = [sample for mine, _ in pairs for sample in mine]
    large_samples = [sample for _, theirs in pairs for sample in theirs]

    def median(samples: list[Sample], value: Callable[[Sample], float]) -> float:
        return statistics.median(value(s) for s in samples)

    def run_ms(samples: list[Sample]) -> float:
        return sum(s.own_cpu for s in samples) * 1000

    calls = f"{median(large_samples, lambda s: s.calls):.0f} vs {median(small_samples, lambda s: s.calls):.0f}"
    walls = (
        f"{median(large_samples, lambda s: s.wall) * 1000:.0f} vs "
        f"{median(small_samples, lambda s: s.wall) * 1000:.0f} ms"
    )
    measured = len(large_samples)
    return [
        Figure(
            name=(
                f"items DynamoDB read per diagnosis, {LARGE:,}-account domain incident vs {SMALL} (median over "
                f"the last {measured} members of one and the last {PER_RUN} of {RUNS}; DynamoDB calls {calls})"
            ),
            measured=median(large_samples, lambda s: s.items),
            reference=median(small_samples, lambda s: s.items),
            unit="items",
            target_ratio=1.1,
            reference_name=f"{SMALL}-account incidents",
            details=_reads_table(small_samples[-1], large_samples[-1]),
        ),
        Figure.timed(
            name=(
                f"diagnosis own CPU time, {LARGE:,}-account domain incident vs {SMALL}, a run being {PER_RUN} members' "
                f"diagnoses (wall time per diagnosis on moto, emulator included: {walls}; setup {total:.0f} s)"
            ),
            measured_runs=[run_ms(theirs) for _, theirs in pairs],
            reference_runs=[run_ms(mine) for mine, _ in pairs],
            unit=f"ms/{PER_RUN} diagnoses",
            target_ratio=1.5,
            reference_name=f"{SMALL}-account incidents",
            paired=True,
        ),
    ]


def _reads_table(small: Sample, large: Sample) -> str:
    """Items read by the last member of each incident, call by call."""
    mine, theirs = small.reads, large.reads
    lines = [
        f"#### Items read by the diagnosis of the last member of a {SMALL}- and of a {LARGE:,}-account incident\n",
        f"| call | {SMALL}-account incident | {LARGE:,}-account incident |",
        "|---|---|---|",
    ]
    for place in sorted(set(mine) | set(theirs)):
        lines.append(f"| {place} | {mine.get(place, 0)} | {theirs.get(place, 0)} |")
    return "\n".join(lines)


# 2. AWS calls per failure event ------------------------------------------------------------------------


class AwsCalls:
    """Every AWS call of every client created while counting, by (service, operation, resource)."""

    def __init__(self, names: dict[str, str]) -> None:
        self._names = names
        self.counts: Counter[tuple[str, str, str]] = Counter()

    @contextmanager
    def counting(self) -> Iterator[None]:
        # Powertools builds its own boto3 sessions (idempotency, secrets): every client of every session is
        # created here, so each gets the hooks.
        original = botocore.session.Session.create_client
        calls = self

        def create_client(session: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            client.meta.events.register("before-parameter-build", calls._label)
            client.meta.events.register("before-call", calls._count)
            return client

        setattr(botocore.session.Session, "create_client", create_client)  # noqa: B010
        try:
            yield
        finally:
            setattr(botocore.session.Session, "create_client", original)  # noqa: B010

    def _label(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["bench_resource"] = _resource(model.name, params, self._names)

    def _count(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        self.counts[(model.service_model.service_name, model.name, context.get("bench_resource", ""))] += 1


def _calls_table(stages: dict[str, Counter[tuple[str, str, str]]]) -> str:
    lines = [
        "#### AWS calls of one failure event (oauth_revoked, customer emailed; warm DiagnosisFunction)\n",
        "| service | operation | resource | record stage | diagnose stage | count |",
        "|---|---|---|---|---|---|",
    ]
    record, diagnosis = stages["record"], stages["diagnose"]
    for service, operation, resource in sorted(set(record) | set(diagnosis)):
        key = (service, operation, resource)
        counts = f"{record[key]} | {diagnosis[key]} | {record[key] + diagnosis[key]}"
        lines.append(f"| {service} | {operation} | {resource} | {counts} |")
    lines.append(
        f"| **total** | | | {sum(record.values())} | {sum(diagnosis.values())} "
        f"| {sum(record.values()) + sum(diagnosis.values())} |"
    )
    return "\n".join(lines)


def aws_calls_per_failure() -> Figure:
    now = datetime.now(UTC).replace(microsecond=0)
    created = int((now - ACCOUNT_AGE).timestamp())
    with NylasSimulator(
        api_key=TEST_SECRET["api_key"], client_id=TEST_SECRET["client_id"], client_secret=TEST_SECRET["client_secret"]
    ) as simulator:
        parameters = {"NylasApiUri": simulator.url, "NylasV2ApiUri": simulator.url, "NotificationMode": "send"}
        with _stack(parameters, "DiagnosisFunction") as stack:
            calls = AwsCalls(_logical_names(stack))
            events = []
            for n, name in enumerate(("first", "next")):  # the first event warms the function
                email = f"{name}@org{n}.example"
                simulator.add_grant(Grant(f"grant-{name}", email, "google", "invalid", created, created))
                at = iso(now - timedelta(minutes=3))
                events.append(AccountEvent(f"evt-{name}", "v3", "grant.expired", f"grant-{name}", at, "google", email))
            stages: list[dict[str, Counter[tuple[str, str, str]]]] = []
            with calls.counting(), contextlib.redirect_stdout(io.StringIO()):  # Powertools' metric blobs
                handler = load_handler("diagnosis")  # cold start: its clients built with the hooks
                context = FakeLambdaContext("DiagnosisFunction")
                for event in events:
                    per_stage: dict[str, Counter[tuple[str, str, str]]] = {}
                    for stage in ("record", "diagnose"):
                        before = Counter(calls.counts)
                        response = handler.lambda_handler(sqs_event([diagnosis_record(event, stage)]), context)
                        assert response["batchItemFailures"] == [], response
                        per_stage[stage] = calls.counts - before
                    stages.append(per_stage)
            verdicts = VerdictStore(Table(get_settings().verdicts_table))
            latest = page_verdicts(verdicts.account_verdicts("grant-next", limit=1))
            assert [v.cause for v in latest] == ["oauth_revoked"], latest
            sent = [(n.kind, n.status) for n in latest[0].notifications]
            assert ("reconnect", "sent") in sent, sent

    cold, warm = (sum(s["record"].values()) + sum(s["diagnose"].values()) for s in stages)
    cold_only = (stages[0]["record"] + stages[0]["diagnose"]) - (stages[1]["record"] + stages[1]["diagnose"])
    extra = ", ".join(f"{service} {operation}" for (service, operation, _), _n in sorted(cold_only.items()))
    by_operation = Counter[str]()
    for counts in stages[1].values():
        for (service, operation, _), count in counts.items():
            by_operation[f"{service} {operation}"] += count
    listed = ", ".join(f"{name} {count}" for name, count in sorted(by_operation.items()))
    return Figure(
        name=(
            f"AWS calls per failure event, customer emailed (oauth_revoked, record + diagnose stages, warm): {listed}"
            f" (cold start: {cold}{', +' + extra if extra else ''})"
        ),
        measured=warm,
        reference=CALLS_TARGET,
        unit="calls",
        target_ratio=1.0,
        reference_name="12 calls",
        details=_calls_table(stages[1]),
    )


def run() -> list[Figure]:
    return [*incident_figures(), aws_calls_per_failure()]
