"""End-to-end local throughput: the whole stack (HTTP API, webhook, moto SQS/DynamoDB/SES, diagnosis, simulator).

One local stack (grace period 0, so a verdict is due as soon as the queue delivers), two figures:
(a) webhook HTTP cost: the load workload (mixed v2/v3, 20 % repeats, recoveries first) POSTed with
    8 workers while the diagnosis drains the queue, vs. bare round trips through the same server
    and function (the `?challenge=` GET: no signature, no AWS call) at the same concurrency.
    Seconds per request = elapsed / requests, i.e. the inverse of throughput.
(b) accepted-to-verdict: N failures of N accounts posted at once, time until all N verdicts are
    stored, per event, vs. the same for 1 lone failure. Batching (10 per SQS batch) should make
    an event in a burst cost no more than a lone event does.
"""

from __future__ import annotations

import time
from typing import Any

import boto3

from bench.figures import Figure
from local_stack import load
from local_stack.scenarios import Webhook
from local_stack.stack import RunningStack, StackOptions, running_stack

LOAD_WEBHOOKS = 300
BURST = 100
WORKERS = 8


def _verdict_count(stack: RunningStack, dynamodb: Any) -> int:
    table = stack.environment["VERDICTS_TABLE"]
    return int(dynamodb.scan(TableName=table, Select="COUNT", ConsistentRead=True)["Count"])


def _accepted_to_verdicts(stack: RunningStack, webhooks: list[Webhook], dynamodb: Any) -> float:
    """Seconds from the first POST until every one of these webhooks' failures has its verdict."""
    before = _verdict_count(stack, dynamodb)
    start = time.perf_counter()
    results = load.post_all(stack.webhook_url, load.signed(stack, webhooks), workers=WORKERS)
    assert set(results.statuses) == {200}, results.statuses
    done = load.wait_for(lambda: _verdict_count(stack, dynamodb) >= before + len(webhooks), timeout=300, interval=0.05)
    assert done, "verdicts did not all arrive"
    return time.perf_counter() - start


def _burst(prefix: str, count: int) -> tuple[load.Workload, list[Webhook]]:
    """`count` distinct failures of `count` accounts nobody has seen (no repeats, no recoveries)."""
    workload = load.build(count, duplicate_share=0, mixed=False, prefix=prefix)
    return workload, workload.posts


def measure() -> dict[str, float]:
    figures: dict[str, float] = {}
    with running_stack(StackOptions(api_port=0, grace_seconds=0, log_level="ERROR")) as stack:
        dynamodb = boto3.client("dynamodb", endpoint_url=stack.moto.url)
        # (b) one lone failure, then a burst of BURST (each on accounts nobody has seen).
        single, single_hooks = _burst("single-", 1)
        burst, burst_hooks = _burst("burst-", BURST)
        load.register(stack, single)
        load.register(stack, burst)
        figures["single"] = _accepted_to_verdicts(stack, single_hooks, dynamodb)
        figures["burst"] = _accepted_to_verdicts(stack, burst_hooks, dynamodb)
        assert stack.wait_until_drained(timeout=120)
        # (a) bare round trips, then the load workload, at the same concurrency.
        bare = load.post_all(f"{stack.webhook_url}?challenge=bench", [(b"", {})] * LOAD_WEBHOOKS, method="GET")
        assert set(bare.statuses) == {200}, bare.statuses
        workload = load.build(LOAD_WEBHOOKS)
        load.register(stack, workload)
        posted = load.post_workload(stack, workload, workers=WORKERS)
        assert set(posted.statuses) == {200}, posted.statuses
        assert stack.wait_until_drained(timeout=300)
        for name, results in (("bare", bare), ("webhook", posted)):
            figures[f"{name}_per_request"] = results.elapsed / len(results.statuses)
            figures[f"{name}_p50"] = results.percentile(0.5)
            figures[f"{name}_p99"] = results.percentile(0.99)
    return figures


def run() -> list[Figure]:
    m = measure()
    ms = 1000.0
    return [
        Figure(
            name=(
                f"end-to-end webhook over HTTP, {LOAD_WEBHOOKS} mixed webhooks, {WORKERS} workers, diagnosis running: "
                f"{1 / m['webhook_per_request']:.0f} webhooks/s, p50 {m['webhook_p50'] * ms:.0f} ms, "
                f"p99 {m['webhook_p99'] * ms:.0f} ms (bare: {1 / m['bare_per_request']:.0f}/s, "
                f"p50 {m['bare_p50'] * ms:.0f} ms, p99 {m['bare_p99'] * ms:.0f} ms)"
            ),
            measured=m["webhook_per_request"] * ms,
            reference=m["bare_per_request"] * ms,
            unit="ms/request",
            target_ratio=5,
            reference_name="bare ?challenge= GET round trip, same server and concurrency",
        ),
        Figure(
            name=(
                f"accepted-to-verdict per event, burst of {BURST} failures ({m['burst']:.1f} s in all) "
                f"vs 1 lone failure ({m['single'] * ms:.0f} ms), grace 0"
            ),
            measured=m["burst"] / BURST * ms,
            reference=m["single"] * ms,
            unit="ms/event",
            target_ratio=1.0,
            reference_name="1 lone failure, accepted to verdict",
        ),
    ]
