"""SweepFunction figures (SPEC §3b): what one sweep costs per 1,000 broken grants Nylas lists.

SweepFunction runs in-process against the template's resources in moto and the Nylas simulator over
HTTP, holding 1,000 invalid grants (and 200 valid ones, which the list's grant_status filter leaves out).
Nylas calls are counted by the simulator; AWS calls by a botocore `before-call` hook on the session the
function's clients are built from, by service and operation.

1. Nylas calls: the list requests against one per page of 200, plus the short page that ends the list
   (target 1×: no per-grant lookups).
2. AWS calls, first sweep (every grant missed: each one's latest event read, two messages each enqueued in
   batches of 10) against one history read per grant (target 1.25×).
3. AWS calls, the next sweep (every failure recorded by then) against one history read per grant (target 1×,
   with room for nothing but a re-read secret).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

import boto3
from moto import mock_aws

from account_doctor.models import AccountEvent
from account_doctor.nylas import GRANTS_PAGE_SIZE
from account_doctor.stores.dynamo import Table
from account_doctor.stores.events import EventHistory
from bench.environment import quiet_environment, use_function_settings
from bench.figures import Figure
from local_stack.payloads import TEST_SECRET, FakeLambdaContext, load_handler
from local_stack.simulator import V3_LIST, Grant, NylasSimulator
from local_stack.sweep_demo import scheduled_event
from local_stack.template import provision

GRANTS = 1000
DAY = 86_400


class AwsCalls:
    """Every AWS call made by clients of `session`, by service and operation; and the events enqueued."""

    def __init__(self, session: boto3.Session) -> None:
        self.counts: Counter[str] = Counter()
        self.enqueued: dict[str, AccountEvent] = {}
        session.events.register("before-call", self._count)
        session.events.register("before-parameter-build.sqs.SendMessageBatch", self._enqueuing)

    def _count(self, model: Any, **_: Any) -> None:
        self.counts[f"{model.service_model.service_name}:{model.name}"] += 1

    def _enqueuing(self, params: dict[str, Any], **_: Any) -> None:
        for entry in params["Entries"]:
            event = AccountEvent.from_json(entry["MessageBody"])
            self.enqueued[event.event_id] = event

    def since(self, before: Counter[str]) -> Counter[str]:
        return self.counts - before


def _by_operation(counts: Counter[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))


def run(full: bool = False) -> list[Figure]:
    # A v3-only application (no v2 client_secret): the figures are the grants list's.
    secret = {**TEST_SECRET, "client_secret": ""}
    with (
        quiet_environment(),
        mock_aws(),
        NylasSimulator(api_key=secret["api_key"], client_id=secret["client_id"], client_secret="") as simulator,
    ):
        stack = provision(secret=secret, parameters={"NylasApiUri": simulator.url, "NylasV2ApiUri": simulator.url})
        use_function_settings(stack)
        now = int(time.time())
        for n in range(GRANTS):
            simulator.add_grant(
                Grant(f"g-{n:04}", f"user{n}@bench.example", "google", "invalid", now - 90 * DAY, now - DAY)
            )
        for n in range(GRANTS // 5):
            simulator.add_grant(Grant(f"ok-{n:04}", f"ok{n}@bench.example", "google", "valid", now - 90 * DAY, now))

        session = boto3.Session()
        aws = AwsCalls(session)
        boto3.DEFAULT_SESSION = session  # the function's clients, built at its cold start, count
        try:
            nylas_calls, first_calls, second_calls, seconds = _two_sweeps(simulator, aws, stack.physical["EventsTable"])
        finally:
            boto3.DEFAULT_SESSION = None

    # A page shorter than the limit ends the list (Nylas gives no total), so a full last page costs one more.
    pages = GRANTS // GRANTS_PAGE_SIZE + 1
    first_seconds, second_seconds = seconds
    # Seconds on moto are the emulator's and the machine's as much as the sweep's: printed, not figures.
    print(f"sweep on moto: first {first_seconds:.1f} s, next {second_seconds:.1f} s", file=sys.stderr)

    return [
        Figure(
            name=f"sweep, Nylas calls per {GRANTS:,} listed invalid grants (+{GRANTS // 5} valid, filtered out)",
            measured=nylas_calls,
            reference=pages,
            unit="calls",
            target_ratio=1.0,
            reference_name=f"one list request per page of {GRANTS_PAGE_SIZE}, and the short page that ends the list",
        ),
        Figure(
            name=(
                f"sweep, AWS calls per {GRANTS:,} listed grants, first sweep (all missed): {_by_operation(first_calls)}"
            ),
            measured=sum(first_calls.values()),
            reference=GRANTS,
            unit="calls",
            target_ratio=1.25,
            reference_name="one history read per listed grant",
        ),
        Figure(
            name=(
                f"sweep, AWS calls per {GRANTS:,} listed grants, next sweep (all known): {_by_operation(second_calls)}"
            ),
            measured=sum(second_calls.values()),
            reference=GRANTS,
            unit="calls",
            target_ratio=1.01,
            reference_name="one history read per listed grant",
        ),
    ]


def _two_sweeps(
    simulator: NylasSimulator, aws: AwsCalls, events_table: str
) -> tuple[int, Counter[str], Counter[str], tuple[float, float]]:
    """(Nylas calls of the first sweep, AWS calls of the first and of the next sweep, their seconds)."""
    sweeper = load_handler("sweep")
    started = time.perf_counter()
    first = sweeper.lambda_handler(scheduled_event(), FakeLambdaContext("SweepFunction", 300))
    first_seconds = time.perf_counter() - started
    first_calls = aws.since(Counter())
    nylas_calls = simulator.calls[V3_LIST]
    assert first["enqueued"] == GRANTS, first

    # What the diagnosis' record copies do before the next scheduled run: not the sweep's calls, not counted.
    history = EventHistory(Table(events_table, boto3.Session().client("dynamodb")))
    for event in aws.enqueued.values():
        history.put_event(event)

    before = Counter(aws.counts)
    started = time.perf_counter()
    second = sweeper.lambda_handler(scheduled_event(), FakeLambdaContext("SweepFunction", 300))
    second_seconds = time.perf_counter() - started
    assert (second["enqueued"], second["already_known"]) == (0, GRANTS), second
    return nylas_calls, first_calls, aws.since(before), (first_seconds, second_seconds)
