"""Incident figures (SPEC §4b): a diagnosis costs the same in a 2,000-account incident as in a 20-account one,
and what one customer-emailed failure event costs: AWS calls, DynamoDB request units, CPU, dollars.

1. One organisation domain's incident of 2,000 accounts against 20-account ones, every member failing within
   DomainBurstMinutes (2–3 a second), Google accounts that Nylas reports invalid (an in-memory Nylas; the
   real notifier with an in-memory mailer). All incidents live in one moto stack, DomainWindowDays + 1 apart
   so that none is in another's domain or connector windows or baseline. Per diagnosis:
   - items DynamoDB reads, as it charges them (the items a Query examines, its ScannedCount; every key a
     GetItem or BatchGetItem asks for, found or not), counted by botocore hooks on the service's client:
     the median over the 2,000-account incident's last 15 members against the last 3 members of five
     20-account incidents; target ratio 1.1;
   - the function's own CPU time: the thread's CPU time minus the time spent inside the emulator (from
     `before-send` to `before-parse`, so botocore's parsing of what was read counts as the function's). A run
     is the sum of 3 members' diagnoses, the large incident's alternating with a small one's (machine load
     hits both alike); target ratio 1.5.
   The first three members of each incident are diagnosed for real (the third opens it and revises the
   first two); the members up to the measured ones are recorded and joined through the stores (each event's
   record transaction and its member join, as a diagnosis writes them; no verdict of their own), which keeps
   the seed to a minute.
2. One failure event with a customer-emailed cause (oauth_revoked, each in its own organisation domain, a
   Google account), both of DiagnosisFunction's stages as Lambda runs them: functions/diagnosis/app.py
   cold-started on moto (real notifier on SES with NotificationMode=send, real event bus, Powertools
   idempotency), Nylas answered by the simulator over HTTP, one SQS record per stage; WARM_EVENTS such events
   after the cold one, each asserted to make the same calls and spend the same units:
   - AWS calls, by a botocore `before-call` hook on every client created, by service and operation (the
     Nylas secret read once per cold start is reported apart); target at most 12;
   - DynamoDB read and write request units of those calls, priced from moto's items by DynamoDB's rules
     (bench/capacity.py); target: the write units when the figure was added;
   - DiagnosisFunction's own CPU for the event: the CPU clocks of the handler's thread and of its record
     threads, less the emulator's time on them (the Nylas simulator runs on threads of its own); the median
     over the warm events, against a budget;
   - the cost of 1,000 such events at us-east-1 list prices, from the counts above (the Lambda compute from
     the CPU time: a lower bound, since Lambda bills the waits too), against what their 1,000 emails alone
     cost on SES.
"""

from __future__ import annotations

import contextlib
import gc
import io
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.client import BaseClient
from moto import mock_aws

from account_doctor.consumer import DiagnosisService
from account_doctor.diagnosis import diagnose
from account_doctor.models import AccountEvent, IncidentKey, iso
from account_doctor.notifications.notifier import EmailNotifier, ReconnectLinks
from account_doctor.notifications.render import RenderedEmail
from account_doctor.settings import Settings, get_settings
from account_doctor.stores.dynamo import Table, dynamodb_client
from account_doctor.stores.events import EventHistory
from account_doctor.stores.incidents import IncidentStore
from account_doctor.stores.ledger import NotificationLedger
from account_doctor.stores.verdicts import VerdictStore, page_verdicts
from bench.capacity import CapacityMeter, Units
from bench.environment import quiet_environment, use_function_settings
from bench.figures import Figure
from local_stack.payloads import TEST_SECRET, FakeLambdaContext, diagnosis_record, load_handler, sqs_event
from local_stack.simulator import Grant, NylasSimulator
from local_stack.template import ProvisionedStack, load_template, provision
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
WARM_EVENTS = 7  # failure events after the cold one: the CPU figure is their median
WRU_TARGET = 44  # the write request units of one failure event when this figure was added: a change may not add
CPU_BUDGET_MS = 100.0  # DiagnosisFunction's own CPU for one failure event, both stages
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
        assert diagnoser.service.history.count_failure(event), event.event_id  # its diagnosis counted it
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

    for n in range(OPENING, incident.size - measured):
        member(n)


def _measure(diagnoser: Diagnoser, probe: DynamoProbe, incident: Incident, n: int) -> Sample:
    event = incident.event(n)
    assert diagnoser.service.record(event), event.event_id  # the "record" copy, GraceSeconds earlier: not measured
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
    # Wall time on moto measures the emulator and the machine as much as the diagnosis: printed, not a figure.
    large_wall, small_wall = (median(samples, lambda s: s.wall) * 1000 for samples in (large_samples, small_samples))
    print(f"incidents: wall ms per diagnosis on moto: {large_wall:.0f} vs {small_wall:.0f}", file=sys.stderr)
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
                "diagnoses (the emulator's time left out)"
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


# 2. What one failure event costs ---------------------------------------------------------------------


class AwsCalls:
    """Every AWS call of every client created while counting, by (service, operation, resource); the request
    units of its DynamoDB calls (bench/capacity.py); and the CPU time the emulator spent answering them."""

    def __init__(self, names: dict[str, str], meter: CapacityMeter) -> None:
        self._names = names
        self._meter = meter
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.emulator_cpu = 0.0
        self._lock = threading.Lock()
        self._local = threading.local()

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
            # moto answers from a `before-send` handler (ours runs first); `before-parse` comes with its answer.
            client.meta.events.register_first("before-send", calls._sending)
            client.meta.events.register_first("before-parse", calls._answered)
            return client

        setattr(botocore.session.Session, "create_client", create_client)  # noqa: B010
        try:
            with self._meter.metering():
                yield
        finally:
            setattr(botocore.session.Session, "create_client", original)  # noqa: B010

    def _label(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        call = (model.service_model.service_name, model.name, _resource(model.name, params, self._names))
        context["bench_call"] = call
        self._meter.charge_to(call, model.name, params)

    def _count(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.counts[context.get("bench_call", (model.service_model.service_name, model.name, ""))] += 1

    def _sending(self, **_: Any) -> None:
        self._local.sent_at = time.thread_time()

    def _answered(self, **_: Any) -> None:
        spent = time.thread_time() - self._local.sent_at
        with self._lock:
            self.emulator_cpu += spent


def _thread_cpu(thread: threading.Thread) -> float:
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def _function_cpu(handler: Any, invoke: Callable[[], Any], calls: AwsCalls) -> float:
    """Seconds of CPU the invocation spent on the handler's thread and its record threads, less the emulator's."""
    record_threads = handler.executor._threads  # the function's own pool (private attribute: a bench-only probe)
    before = {thread.ident: _thread_cpu(thread) for thread in record_threads}
    emulator, mine = calls.emulator_cpu, time.thread_time()
    invoke()
    mine = time.thread_time() - mine
    spent = sum(_thread_cpu(thread) - before.get(thread.ident, 0.0) for thread in record_threads)
    return mine + spent - (calls.emulator_cpu - emulator)


@dataclass
class FailureEvent:
    """The calls, request units and function CPU of one failure event's two stages."""

    calls: dict[str, Counter[tuple[str, str, str]]]  # by stage
    units: dict[tuple[str, str, str], Units]  # by call, both stages
    cpu: float  # seconds, both stages

    @property
    def total_calls(self) -> int:
        return sum(sum(counts.values()) for counts in self.calls.values())

    @property
    def total_units(self) -> Units:
        return sum(self.units.values(), Units())


def _calls_table(event: FailureEvent) -> str:
    lines = [
        "#### AWS calls and DynamoDB request units of one failure event (oauth_revoked, customer emailed; warm)\n",
        "| service | operation | resource | record stage | diagnose stage | calls | RRU | WRU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    record, diagnosis = event.calls["record"], event.calls["diagnose"]
    for key in sorted(set(record) | set(diagnosis)):
        service, operation, resource = key
        units = event.units.get(key, Units())
        counts = f"{record[key]} | {diagnosis[key]} | {record[key] + diagnosis[key]}"
        rru, wru = (f"{units.read:g}", f"{units.write:g}") if service == "dynamodb" else ("", "")
        lines.append(f"| {service} | {operation} | {resource} | {counts} | {rru} | {wru} |")
    total = event.total_units
    lines.append(
        f"| **total** | | | {sum(record.values())} | {sum(diagnosis.values())} | {event.total_calls} "
        f"| {total.read:g} | {total.write:g} |"
    )
    return "\n".join(lines)


def _failure_events(count: int) -> tuple[list[FailureEvent], int, str]:
    """`count` + 1 failure events through DiagnosisFunction, the first cold: the warm ones, and the cold one's
    call count and the calls only it made."""
    now = datetime.now(UTC).replace(microsecond=0)
    created = int((now - ACCOUNT_AGE).timestamp())
    with NylasSimulator(
        api_key=TEST_SECRET["api_key"], client_id=TEST_SECRET["client_id"], client_secret=TEST_SECRET["client_secret"]
    ) as simulator:
        parameters = {"NylasApiUri": simulator.url, "NylasV2ApiUri": simulator.url, "NotificationMode": "send"}
        with _stack(parameters, "DiagnosisFunction") as stack:
            meter = CapacityMeter()
            calls = AwsCalls(_logical_names(stack), meter)
            events = []
            for n in range(count + 1):  # each in its own organisation: no domain cluster
                email = f"user{n}@org{n}.example"
                simulator.add_grant(Grant(f"grant-{n}", email, "google", "invalid", created, created))
                at = iso(now - timedelta(minutes=3))
                events.append(AccountEvent(f"evt-{n}", "v3", "grant.expired", f"grant-{n}", at, "google", email))
            measured: list[FailureEvent] = []
            with calls.counting(), contextlib.redirect_stdout(io.StringIO()):  # Powertools' metric blobs
                handler = load_handler("diagnosis")  # cold start: its clients built with the hooks
                context = FakeLambdaContext("DiagnosisFunction")
                for event in events:
                    stages: dict[str, Counter[tuple[str, str, str]]] = {}
                    meter.units.clear()
                    cpu = 0.0
                    for stage in ("record", "diagnose"):
                        before = Counter(calls.counts)
                        batch = sqs_event([diagnosis_record(event, stage)])

                        def invoke(batch: dict[str, Any] = batch) -> None:
                            response = handler.lambda_handler(batch, context)
                            assert response["batchItemFailures"] == [], response

                        cpu += _function_cpu(handler, invoke, calls)
                        stages[stage] = calls.counts - before
                    measured.append(FailureEvent(stages, dict(meter.units), cpu))
            verdicts = VerdictStore(Table(get_settings().verdicts_table))
            latest = page_verdicts(verdicts.account_verdicts(f"grant-{count}", limit=1))
            assert [v.cause for v in latest] == ["oauth_revoked"], latest
            sent = [(n.kind, n.status) for n in latest[0].notifications]
            assert ("reconnect", "sent") in sent, sent

    cold, warm = measured[0], measured[1:]
    # Counts are exact: every warm event of this kind makes the same calls and spends the same units.
    assert all(e.calls == warm[0].calls and e.units == warm[0].units for e in warm), "warm events differ"
    cold_only = sum(cold.calls.values(), Counter()) - sum(warm[0].calls.values(), Counter())
    extra = ", ".join(f"{service} {operation}" for (service, operation, _), _n in sorted(cold_only.items()))
    return warm, cold.total_calls, extra


# List prices, us-east-1, per unit (AWS pricing pages; DynamoDB's on-demand prices since November 2024).
PRICES = {
    "API Gateway REST request (the webhook POST)": 3.50e-6,
    "Lambda request": 0.20e-6,
    "Lambda compute, GB-second (arm64)": 0.0000133334,
    "SQS request": 0.40e-6,
    "DynamoDB read request unit": 0.125e-6,
    "DynamoDB write request unit": 0.625e-6,
    "EventBridge event published": 1.00e-6,
    "SES email sent": 0.10e-3,
}
SES_PER_1000 = PRICES["SES email sent"] * 1000


def _memory_gb(function: str) -> float:
    template = load_template()
    default = template["Globals"]["Function"].get("MemorySize", 128)
    return int(template["Resources"][function]["Properties"].get("MemorySize", default)) / 1024


def _cost_lines(event: FailureEvent, cpu_seconds: float) -> list[tuple[str, float, str]]:
    """(price, quantity per failure event, where the quantity comes from) for a lone failure event."""
    by_operation = Counter[tuple[str, str]]()
    for counts in event.calls.values():
        for (service, operation, _), n in counts.items():
            by_operation[(service, operation)] += n
    units = event.total_units
    return [
        ("API Gateway REST request (the webhook POST)", 1, "one webhook"),
        ("Lambda request", 3, "the webhook, and DiagnosisFunction's record and diagnose stages (batches of 1)"),
        (
            "Lambda compute, GB-second (arm64)",
            cpu_seconds * _memory_gb("DiagnosisFunction"),
            f"DiagnosisFunction's own CPU ({cpu_seconds * 1000:.1f} ms) at {_memory_gb('DiagnosisFunction'):g} GB: a "
            "lower bound, billed duration adds the waits on DynamoDB, Nylas and SES; the webhook's ~0.1 ms is left out",
        ),
        ("SQS request", 5, "one SendMessageBatch (both copies), a receive and a delete per stage"),
        ("DynamoDB read request unit", units.read, "bench/capacity.py, every DynamoDB call above"),
        ("DynamoDB write request unit", units.write, "bench/capacity.py, every DynamoDB call above"),
        ("EventBridge event published", by_operation[("events", "PutEvents")], "PutEvents calls (one entry each)"),
        ("SES email sent", by_operation[("sesv2", "SendEmail")], "SendEmail calls"),
    ]


def _cost_table(lines: list[tuple[str, float, str]]) -> str:
    rows = [
        "#### Cost of 1,000 failure events (lone events, us-east-1 list prices; CloudWatch left out)\n",
        "| item | per failure event | price per unit | per 1,000 failures | from |",
        "|---|---|---|---|---|",
    ]
    for item, quantity, source in lines:
        price = PRICES[item]
        rows.append(f"| {item} | {quantity:.6g} | ${price:.10g} | ${quantity * price * 1000:.5f} | {source} |")
    total = sum(quantity * PRICES[item] * 1000 for item, quantity, _ in lines)
    rows.append(f"| **total** | | | **${total:.4f}** | |")
    return "\n".join(rows)


def failure_event_figures() -> list[Figure]:
    warm, cold_calls, extra = _failure_events(WARM_EVENTS)
    event = warm[0]
    cpu_ms = [e.cpu * 1000 for e in warm]
    by_operation = Counter[str]()
    for counts in event.calls.values():
        for (service, operation, _), count in counts.items():
            by_operation[f"{service} {operation}"] += count
    listed = ", ".join(f"{name} {count}" for name, count in sorted(by_operation.items()))
    units = event.total_units
    lines = _cost_lines(event, statistics.median(cpu_ms) / 1000)
    cost = sum(quantity * PRICES[item] * 1000 for item, quantity, _ in lines)
    return [
        Figure(
            name=(
                "AWS calls per failure event, customer emailed (oauth_revoked, record + diagnose stages, warm): "
                f"{listed} (cold start: {cold_calls}{', +' + extra if extra else ''})"
            ),
            measured=event.total_calls,
            reference=CALLS_TARGET,
            unit="calls",
            target_ratio=1.0,
            reference_name=f"{CALLS_TARGET} calls",
            details=_calls_table(event),
        ),
        Figure(
            name=(
                f"DynamoDB request units per failure event, same event: {units.read:g} RRU + {units.write:g} WRU "
                "(priced from moto's items by DynamoDB's rules, bench/capacity.py)"
            ),
            measured=units.write,
            reference=WRU_TARGET,
            unit="WRU",
            target_ratio=1.0,
            reference_name=f"{WRU_TARGET} WRU",
        ),
        Figure.timed(
            name=(
                f"DiagnosisFunction own CPU per failure event, same event (record + diagnose, warm, emulator excluded;"
                f" median of {len(warm)} events)"
            ),
            measured_runs=cpu_ms,
            reference_runs=[CPU_BUDGET_MS],
            unit="ms",
            target_ratio=1.0,
            reference_name=f"{CPU_BUDGET_MS:g} ms",
        ),
        Figure(
            name="cost of 1,000 failure events, lone (every AWS charge above at list price; table below)",
            measured=cost,
            reference=SES_PER_1000,
            unit="$",
            target_ratio=1.5,
            reference_name="the 1,000 emails' own SES price",
            details=_cost_table(lines),
        ),
    ]


def run(full: bool = False) -> list[Figure]:
    return [*incident_figures(), *failure_event_figures()]
