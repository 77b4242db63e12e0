"""End-to-end local throughput: the whole stack (HTTP API, webhook, moto SQS/DynamoDB/SES, diagnosis, simulator).

Only with BENCH=full: every figure here is wall clock on the local stack, moto's throughput and the
machine's load as much as this code's (and about ten minutes).

One local stack (grace period 0, so a verdict is due as soon as the queue delivers), three figures:
(a) webhook HTTP cost: the load workload (mixed v2/v3, 20 % repeats, recoveries first) POSTed with
    8 workers while the queue pollers are paused, vs. bare round trips through the same server
    and function (the `?challenge=` GET: no signature, no AWS call) at the same concurrency, in
    5 alternating pairs of 60 requests: the median and spread over the pairs.
    Seconds per request = elapsed / requests, i.e. the inverse of throughput.
(b) accepted-to-verdict: N failures of N accounts (each in its own organisation, so no domain
    cluster adds work) posted at once, time until all N verdicts are stored, per event, vs. the
    same for 1 lone failure (5 runs). Batching (10 per SQS batch) should make an event in a burst
    cost no more than a lone event does.
(c) end-to-end throughput: the load workload on new accounts with the diagnosis running, first POST
    until the queue is drained, per failure event, vs. (b)'s burst per event: repeats and recoveries
    should add little (target 1.5×). Webhook p50/p99 here include waiting for the diagnosis, since
    the local stack runs one invocation at a time (as one Lambda sandbox would, not as AWS scales).
    (b)'s burst and (c) are one run each: repeating them on the same stack grows its tables until
    the local gateway times out. (b)'s spread comes from its lone runs; (c) has none.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from bench.figures import Figure
from local_stack import load
from local_stack.poller import SqsPoller
from local_stack.scenarios import Webhook
from local_stack.stack import RunningStack, StackOptions, running_stack

ROOT = Path(__file__).resolve().parent.parent
LOAD_WEBHOOKS = 300
BURST = 100
LONE_RUNS = 5  # a lone failure's accepted-to-verdict time is the median of this many
WORKERS = 8
# (a) runs in this many alternating pairs of CHUNK requests each.
CHUNKS = 5
CHUNK = LOAD_WEBHOOKS // CHUNKS


def _verdict_count(stack: RunningStack, dynamodb: Any) -> int:
    table = stack.environment["VERDICTS_TABLE"]
    # Every page: a Scan counts at most 1 MB of items per call (about 450 verdicts).
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, Select="COUNT", ConsistentRead=True)
    return sum(int(page["Count"]) for page in pages)


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
    """`count` distinct failures of `count` accounts nobody has seen (no repeats, no recoveries), each
    in its own organisation: a burst event does a lone event's work (no cluster verdicts or alerts)."""
    workload = load.build(count, duplicate_share=0, mixed=False, own_domains=True, prefix=prefix)
    return workload, workload.posts


def _pause_diagnosis(stack: RunningStack) -> list[SqsPoller]:
    """Stops the queue pollers; returns fresh ones, not yet started, to resume with."""
    for poller in stack.pollers:
        poller.stop()
    return [
        SqsPoller(
            function=p.function,
            queue_url=p.queue_url,
            queue_arn=p.queue_arn,
            batch_size=p.batch_size,
            visibility_timeout=p.visibility_timeout,
        )
        for p in stack.pollers
    ]


def _latencies(m: dict[str, list[float]], results: load.PostResults, name: str) -> None:
    """Appends one run's seconds per request, p50 and p99 to the runs of `name`."""
    m.setdefault(f"{name}_per_request", []).append(results.elapsed / len(results.statuses))
    m.setdefault(f"{name}_p50", []).append(results.percentile(0.5))
    m.setdefault(f"{name}_p99", []).append(results.percentile(0.99))


def measure() -> dict[str, list[float]]:
    """Every measured run, by name (one run for the burst and the live workload)."""
    m: dict[str, list[float]] = {}
    # Every burst here fails within minutes through the Google and Microsoft connectors; at the default
    # ConnectorOutageThreshold that is a connector incident (rule 1b: held emails, revisions), which these
    # figures are not about. Domain clusters still form in the mixed workload, as before.
    options = StackOptions(api_port=0, grace_seconds=0, log_level="ERROR", parameters={})
    with running_stack(options) as stack:
        dynamodb = boto3.client("dynamodb", endpoint_url=stack.moto.url)
        # (b) one lone failure, then a burst of BURST, each on accounts nobody has seen.
        singles = [_burst(f"single{n}-", 1) for n in range(LONE_RUNS)]
        burst, burst_hooks = _burst("burst-", BURST)
        warm, warm_hooks = _burst("warm-", 1)
        for workload in (warm, burst, *(single for single, _ in singles)):
            load.register(stack, workload)
        _accepted_to_verdicts(stack, warm_hooks, dynamodb)  # both functions imported: the lone event runs warm
        m["single"] = [_accepted_to_verdicts(stack, hooks, dynamodb) for _, hooks in singles]
        m["burst"] = [_accepted_to_verdicts(stack, burst_hooks, dynamodb)]
        assert stack.wait_until_drained(timeout=120)

        # (a) with the diagnosis paused: bare round trips, then the workload, at the same concurrency, in
        # CHUNKS alternating pairs (run k of each side side by side).
        resume = _pause_diagnosis(stack)
        try:
            for k in range(CHUNKS):
                bare = load.post_all(f"{stack.webhook_url}?challenge=bench", [(b"", {})] * CHUNK, method="GET")
                assert set(bare.statuses) == {200}, bare.statuses
                _latencies(m, bare, "bare")
                paused = load.build(CHUNK, prefix=f"paused{k}-")
                load.register(stack, paused)
                posted = load.post_workload(stack, paused, workers=WORKERS)
                assert set(posted.statuses) == {200}, posted.statuses
                _latencies(m, posted, "paused")
        finally:
            stack.pollers[:] = [poller.start() for poller in resume]
        assert stack.wait_until_drained(timeout=300)

        # (c) the same workload on new accounts with the diagnosis running: first POST to last verdict.
        workload = load.build(LOAD_WEBHOOKS, prefix="live-")
        load.register(stack, workload)
        start = time.perf_counter()
        live = load.post_workload(stack, workload, workers=WORKERS)
        assert set(live.statuses) == {200}, live.statuses
        assert stack.wait_until_drained(timeout=300)
        m["live_total"] = [time.perf_counter() - start]
        m["live_events"] = [len(workload.failures)]
        _latencies(m, live, "live")
        for poller in stack.pollers:
            poller.stop()
    return m


def measure_in_fresh_interpreter() -> dict[str, list[float]]:
    """measure() in its own process: the stack must not share boto3 clients, moto mocks or module caches
    with the other benchmarks of `make bench` (one stack per process, and a clean one)."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "figures.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "shared"), str(ROOT)])}
        subprocess.run(
            [sys.executable, "-m", "bench.bench_e2e", str(out)],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,  # the functions' log and metric lines
            timeout=1800,
        )
        runs: dict[str, list[float]] = json.loads(out.read_text(encoding="utf-8"))
        return runs


def run(full: bool = False) -> list[Figure]:
    if not full:  # wall-clock figures of the whole local stack: BENCH=full only
        return []
    runs = measure_in_fresh_interpreter()
    ms = 1000.0

    def median(name: str) -> float:
        return statistics.median(runs[name])

    burst_per_event = [burst / BURST * ms for burst in runs["burst"]]
    live_per_event = [
        total / events * ms for total, events in zip(runs["live_total"], runs["live_events"], strict=True)
    ]
    return [
        Figure.timed(
            (
                f"webhook over HTTP, {CHUNKS}×{CHUNK} mixed webhooks, {WORKERS} workers, diagnosis paused: "
                f"{1 / median('paused_per_request'):.0f}/s, p50 {median('paused_p50') * ms:.0f} ms, "
                f"p99 {median('paused_p99') * ms:.0f} ms (bare GET: {1 / median('bare_per_request'):.0f}/s, "
                f"p50 {median('bare_p50') * ms:.0f} ms, p99 {median('bare_p99') * ms:.0f} ms)"
            ),
            [seconds * ms for seconds in runs["paused_per_request"]],
            [seconds * ms for seconds in runs["bare_per_request"]],
            unit="ms/request",
            target_ratio=5,
            reference_name="bare ?challenge= GET round trip, same server and concurrency",
            paired=True,
        ),
        Figure.timed(
            (
                f"accepted-to-verdict per event, burst of {BURST} failures ({median('burst'):.1f} s in all) "
                f"vs 1 lone failure ({median('single') * ms:.0f} ms, {LONE_RUNS} runs), grace 0"
            ),
            burst_per_event,
            [seconds * ms for seconds in runs["single"]],
            unit="ms/event",
            target_ratio=1.0,
            reference_name="1 lone failure, accepted to verdict",
        ),
        Figure.timed(
            (
                f"end-to-end, {LOAD_WEBHOOKS} mixed webhooks (20% repeats, recoveries first) with the diagnosis "
                f"running, first POST to queue drained: {LOAD_WEBHOOKS / median('live_total'):.1f} webhooks/s, "
                f"{median('live_events'):.0f} failure verdicts in {median('live_total'):.1f} s; webhook p50 "
                f"{median('live_p50') * ms:.0f} ms, p99 {median('live_p99') * ms:.0f} ms"
            ),
            live_per_event,
            burst_per_event,
            unit="ms/failure event",
            target_ratio=1.5,
            reference_name=f"burst of {BURST} plain failures, per event",
        ),
    ]


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(measure()), encoding="utf-8")
