"""DiagnosisFunction figures: a batch's Nylas calls overlap; a domain-cluster query reads O(cluster) items.

1. (BENCH=full only: wall clock, moto's throughput as much as the function's.)
   A batch of 10 diagnose records whose Nylas calls each take 100 ms, against one such record
   (target: the batch takes at most 2× as long). Nylas is a local HTTP server that sleeps 100 ms
   per answer; AWS is a moto server in its own process with the template's tables, so DynamoDB
   calls are I/O for the function as in Lambda; the notifier is the real one in NotificationMode
   dry-run (it renders and records every email in the ledger, without SES). The record copies
   are processed first, untimed, as in production where they run GraceSeconds before the diagnosis.
   The AWS calls per diagnosed record, and the CPU the function and the moto server spent, are printed.
   On a 2-core machine the moto server's CPU (several ms per DynamoDB call, for ~9 calls a record)
   runs one call at a time and dominates the batch; in Lambda those calls are network waits that
   overlap like the Nylas ones. So the same runs are also made with an instant Nylas, and a second
   figure isolates what the issue is about: the time 100 ms of Nylas latency adds to a batch of 10
   against what it adds to one record (about 100 ms each when the calls overlap; 10× when serial).
   Each of RUNS runs times the four cases one after the other (batch of 10 and one record, with and
   without latency), so a figure pairs run r of both sides: its median and spread are over the runs.
2. The items one domain-cluster query reads with 1,000 and with 100,000 events in the history
   (target: ratio ≤ 1.1), from DynamoDB's ScannedCount.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from botocore.client import BaseClient
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends as moto_dynamodb_backends

from account_doctor.models import AccountEvent, event_key, iso
from account_doctor.settings import get_settings
from account_doctor.stores.dynamo import Table
from account_doctor.stores.events import EVENT_RETENTION_DAYS, EventHistory
from bench.environment import quiet_environment, use_function_settings
from bench.figures import Figure
from local_stack.payloads import (
    TEST_SECRET,
    FakeLambdaContext,
    diagnosis_record,
    load_handler,
    nylas_v3_answer,
    nylas_v3_grant,
    sqs_event,
)
from local_stack.template import provision

ROOT = Path(__file__).resolve().parent.parent
NYLAS_LATENCY_SECONDS = 0.100
RUNS = 7
# Every bench failure is an hour apart from every other: all are Google accounts, and failures of one
# connector within DomainBurstMinutes would form a connector incident (rule 1b), which is not what this
# figure is about. The records of a batch still run concurrently; only their failure times differ.
_FAILED_AT = datetime(2024, 11, 19, 10, tzinfo=UTC)
_HOURS_BEFORE = itertools.count()


class _SlowNylas(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Nylas's API: the client reuses its connections
    latency = NYLAS_LATENCY_SECONDS  # the bench sets it between runs

    def do_GET(self) -> None:
        time.sleep(self.latency)
        grant_id = self.path.rstrip("/").rsplit("/", 1)[-1]
        grant = nylas_v3_grant(
            grant_id,
            status="invalid",
            email=f"{grant_id}@bench.example",
            created_at=1_700_000_000,
            updated_at=1_731_000_000,
        )
        body = json.dumps(nylas_v3_answer(grant, request_id="bench")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _stack(parameters: dict[str, str]) -> Iterator[None]:
    """The template's resources in moto in-process."""
    with quiet_environment(), mock_aws():
        use_function_settings(provision(secret=TEST_SECRET, parameters=parameters))
        yield


@contextmanager
def _moto_server_stack(parameters: dict[str, str]) -> Iterator[int]:
    """The template's resources in a moto server in its own process: DynamoDB calls are I/O, as in Lambda."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        with quiet_environment({"AWS_ENDPOINT_URL": endpoint}):
            stack = provision(secret=TEST_SECRET, parameters=parameters)
            # The template declares AWS_ENDPOINT_URL empty (for `sam local invoke`): keep moto's.
            use_function_settings(stack, AWS_ENDPOINT_URL=endpoint)
            yield server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine: its request threads still busy
            server.kill()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"the moto server (pid {server.pid}) did not stop; left running", file=sys.stderr)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of another process (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _events(run: int, size: int, latency: float) -> list[AccountEvent]:
    batch = f"{run}-{size}-{latency * 1000:.0f}"
    return [
        AccountEvent(
            event_id=f"bench-{batch}-{index}",
            api_version="v3",
            trigger="grant.expired",
            account_id=f"grant-{batch}-{index}",
            occurred_at=iso(_FAILED_AT - timedelta(hours=next(_HOURS_BEFORE))),
            provider="google",
            # One organisation each: every record does the single one's work (no domain cluster,
            # whose verdict sends more email), so the ratio measures overlap, not extra work.
            email=f"user@bench{batch}-{index}.example",
            grant_updated_at="2024-10-01T00:00:00Z",
        )
        for index in range(size)
    ]


def _batches(run: int, size: int, latency: float = NYLAS_LATENCY_SECONDS) -> tuple[dict[str, Any], dict[str, Any]]:
    """The record copies (in production processed on receipt, GraceSeconds earlier) and the diagnose copies."""
    events = _events(run, size, latency)
    return (
        sqs_event(diagnosis_record(event, "record") for event in events),
        sqs_event(diagnosis_record(event, "diagnose") for event in events),
    )


class _AwsCalls:
    """Counts every AWS API call this process makes (all clients, all sessions), by operation."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def counting(self) -> Iterator[None]:
        # botocore's one funnel for every API call (private, hence getattr): a bench-only probe.
        original = getattr(BaseClient, "_make_api_call")  # noqa: B009
        calls = self

        def counted(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            with calls._lock:
                calls.counts[f"{client.meta.service_model.service_name}.{operation}"] += 1
            return original(client, operation, params)

        setattr(BaseClient, "_make_api_call", counted)  # noqa: B010
        try:
            yield
        finally:
            setattr(BaseClient, "_make_api_call", original)  # noqa: B010


def batch_latency() -> list[Figure]:
    """The batch figure, and the same figure for the time the Nylas latency adds (see the module docstring)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowNylas)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Wall seconds, by (records in the batch, Nylas latency), one per run.
    walls: dict[tuple[int, float], list[float]] = {(size, latency): [] for size in (1, 10) for latency in (0.0, 0.1)}
    # CPU seconds of this process (the function) and of the moto server, by batch size (100 ms runs).
    cpu: dict[int, list[tuple[float, float]]] = {1: [], 10: []}
    try:
        with (
            _moto_server_stack(
                {"NylasApiUri": f"http://127.0.0.1:{server.server_port}", "NotificationMode": "dry-run"}
            ) as moto_pid,
            # Powertools prints its metric blobs (the ColdStart one even with metrics disabled).
            contextlib.redirect_stdout(io.StringIO()),
        ):
            # functions/diagnosis/app.py as a cold start builds it: the real notifier (NotificationMode=dry-run).
            handler = load_handler("diagnosis")
            context = FakeLambdaContext("bench")
            for warm in _batches(0, 1):  # warm: secret, connections, imports
                handler.lambda_handler(warm, context)
            calls = _AwsCalls()
            for run in range(1, RUNS + 1):
                for (size, latency), timings in walls.items():
                    _SlowNylas.latency = latency
                    record, diagnose = _batches(run, size, latency)
                    assert handler.lambda_handler(record, context)["batchItemFailures"] == []
                    calls.counts.clear()
                    with calls.counting():
                        ours, moto = time.process_time(), _cpu_seconds(moto_pid)
                        started = time.perf_counter()
                        response = handler.lambda_handler(diagnose, context)
                        timings.append(time.perf_counter() - started)
                        if latency:
                            cpu[size].append((time.process_time() - ours, _cpu_seconds(moto_pid) - moto))
                    assert response["batchItemFailures"] == [], response
                    if run == 1 and latency:
                        per_record = {name: count / size for name, count in sorted(calls.counts.items())}
                        print(
                            f"diagnose, batch of {size}: {sum(per_record.values()):.1f} AWS calls per record",
                            per_record,
                            file=sys.stderr,
                        )
        for size, spent in cpu.items():
            print(
                f"diagnose, batch of {size}, Nylas 100 ms: CPU ms, median: function "
                f"{statistics.median(ours for ours, _ in spent) * 1000:.0f}, "
                f"moto server {statistics.median(moto for _, moto in spent) * 1000:.0f}",
                file=sys.stderr,
            )
    finally:
        server.shutdown()

    def added_by_nylas(size: int) -> list[float]:
        """Per run: wall with 100 ms Nylas − wall with an instant Nylas, in ms (measured in the same run)."""
        return [(slow - instant) * 1000 for slow, instant in zip(walls[(size, 0.1)], walls[(size, 0.0)], strict=True)]

    return [
        Figure.timed(
            "diagnosis batch of 10, Nylas 100 ms each",
            [wall * 1000 for wall in walls[(10, 0.1)]],
            [wall * 1000 for wall in walls[(1, 0.1)]],
            unit="ms",
            target_ratio=2.0,
            reference_name="one record",
            paired=True,
        ),
        Figure.timed(
            "time 100 ms of Nylas latency adds to a batch of 10",
            added_by_nylas(10),
            added_by_nylas(1),
            unit="ms",
            target_ratio=2.0,
            reference_name="to one record",
            paired=True,
        ),
    ]


def _fill(table: str, total: int) -> None:
    """`total` failure events: a few in the queried domain's window, the rest elsewhere or earlier.

    Written into moto's backend directly: 100,000 items through the API (4,000 BatchWriteItem calls,
    each serialized and parsed twice) took two minutes, and the figure is about the query, not the fill.
    """
    backend = moto_dynamodb_backends[DEFAULT_ACCOUNT_ID][os.environ["AWS_DEFAULT_REGION"]]
    expires = str(1_732_000_000 + EVENT_RETENTION_DAYS * 86_400)
    for index in range(total):
        if index < 5:  # the cluster the query is about: 5 accounts of cluster.example in the window
            domain, at = "cluster.example", f"2024-11-19T10:0{index}:00Z"
        elif index % 100 == 0:  # the same domain, months earlier: outside the window
            domain, at = "cluster.example", f"2024-0{1 + index % 8}-01T00:00:00Z"
        else:
            domain, at = f"org{index % 997}.example", f"2024-11-{10 + index % 10:02d}T{index % 24:02d}:00:00Z"
        event_id = f"e{index}"
        account_id = f"a{index}"
        backend.put_item(
            table,
            {
                "account_id": {"S": account_id},
                "sk": {"S": event_key(at, event_id)},
                "event_id": {"S": event_id},
                "trigger": {"S": "grant.expired"},
                "kind": {"S": "failure"},
                "occurred_at": {"S": at},
                "failure_domain": {"S": domain},
                "expires_at": {"N": expires},
            },
        )


def cluster_items_read(total: int) -> int:
    with _stack({}):
        settings = get_settings()
        _fill(settings.events_table, total)
        history = EventHistory(Table(settings.events_table))
        cluster = history.domain_failures("cluster.example", "2024-11-19T09:45:00Z", "2024-11-19T10:15:00Z")
        assert len(cluster.accounts) == 5, cluster
        return cluster.items_read


def run(full: bool = False) -> list[Figure]:
    small = cluster_items_read(1_000)
    large = cluster_items_read(100_000)
    return [
        *(batch_latency() if full else []),  # wall clock against a moto server: BENCH=full only
        Figure(
            name="domain-cluster query, items read with 100,000 history items",
            measured=large,
            reference=small,
            unit="items",
            target_ratio=1.1,
            reference_name="1,000 history items",
        ),
    ]
