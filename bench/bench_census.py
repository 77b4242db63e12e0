"""The grant census's figures (SPEC §3c, §9): what a day's census costs for 10,000 grants over 500 domains.

SweepFunction runs in-process against the template's resources in moto and the Nylas simulator over HTTP, on
a deployment's first run (so it takes the census). Counts only, exact: no timing figure.

1. Nylas calls of the census (every grant listed, no status filter) against ⌈grants / 200⌉ + 1: one request per
   page, and the short page that ends the list (target 1×).
2. DynamoDB items the run writes against one per domain and connector, plus the run's few bookkeeping writes
   (the census lease and its release, the census pointer, the checkpoint reset, the webhook feed's check):
   O(domains), never O(grants) (target 1×). BatchWriteItem calls are shown beside it.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from typing import Any

import boto3
from moto import mock_aws

from account_doctor.nylas import GRANTS_PAGE_SIZE
from bench.environment import quiet_environment, use_function_settings
from bench.figures import Figure
from local_stack.payloads import TEST_SECRET, FakeLambdaContext, load_handler
from local_stack.simulator import V3_ALL, Grant, NylasSimulator
from local_stack.sweep_demo import scheduled_event
from local_stack.template import provision

GRANTS = 10_000
DOMAINS = 500
CONNECTORS = ("google", "microsoft")
BOOKKEEPING_WRITES = 5
DAY = 86_400


class Writes:
    """DynamoDB items written by clients of `session` (one per PutItem/UpdateItem, each item of a batch)."""

    def __init__(self, session: boto3.Session) -> None:
        self.items = 0
        self.calls: Counter[str] = Counter()
        session.events.register("before-parameter-build.dynamodb", self._count)

    def _count(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name == "BatchWriteItem":
            self.items += sum(len(requests) for requests in params["RequestItems"].values())
        elif model.name in ("PutItem", "UpdateItem", "DeleteItem"):
            self.items += 1
        else:
            return
        self.calls[model.name] += 1


def run(full: bool = False) -> list[Figure]:  # counts only: the same figures either way
    secret = {**TEST_SECRET, "client_secret": ""}  # v3 only: the figures are the grants list's
    with (
        quiet_environment(),
        mock_aws(),
        NylasSimulator(api_key=secret["api_key"], client_id=secret["client_id"], client_secret="") as simulator,
    ):
        stack = provision(secret=secret, parameters={"NylasApiUri": simulator.url, "NylasV2ApiUri": simulator.url})
        use_function_settings(stack)
        now = int(time.time())
        for n in range(GRANTS):
            provider = CONNECTORS[n % len(CONNECTORS)]
            status = "invalid" if n % 97 == 0 else "valid"
            simulator.add_grant(
                Grant(f"g-{n:05}", f"user{n}@org{n % DOMAINS}.example", provider, status, now - 90 * DAY)
            )
        session = boto3.Session()
        writes = Writes(session)
        boto3.DEFAULT_SESSION = session  # the function's clients, built at its cold start, count
        try:
            started = time.perf_counter()
            result = load_handler("sweep").lambda_handler(scheduled_event(), FakeLambdaContext("SweepFunction", 300))
            seconds = time.perf_counter() - started
        finally:
            boto3.DEFAULT_SESSION = None
        census = result["census"]
        assert (census["complete"], census["grants"], census["domains"]) == (True, GRANTS, DOMAINS), census
        nylas_calls = simulator.calls[V3_ALL]

    # Seconds on moto are the emulator's and the machine's as much as the census's: printed, not figures.
    print(f"census on moto: the whole sweep run {seconds:.1f} s", file=sys.stderr)
    pages = math.ceil(GRANTS / GRANTS_PAGE_SIZE) + 1
    aggregates = DOMAINS + len(CONNECTORS)
    by_call = ", ".join(f"{name} {count}" for name, count in sorted(writes.calls.items()))
    return [
        Figure(
            name=f"census, Nylas calls for {GRANTS:,} grants",
            measured=nylas_calls,
            reference=pages,
            unit="calls",
            target_ratio=1.0,
            reference_name=f"⌈grants / {GRANTS_PAGE_SIZE}⌉ + 1",
        ),
        Figure(
            name=f"census, DynamoDB items written for {GRANTS:,} grants over {DOMAINS} domains ({by_call})",
            measured=writes.items,
            reference=aggregates + BOOKKEEPING_WRITES,
            unit="items",
            target_ratio=1.0,
            reference_name=f"one per domain and connector, + {BOOKKEEPING_WRITES} bookkeeping writes",
        ),
    ]
