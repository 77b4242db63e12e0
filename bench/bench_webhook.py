"""Webhook speed (SPEC §9): warm invocation own CPU time, and handler import CPU time in a fresh interpreter.

(a) The handler runs in-process on a signed v3 grant.expired event with the SQS client replaced by
    a no-op, so the figure is its own work (verify, parse, normalize, log, metrics); the reference is
    HMAC-SHA256 + json.loads of the same body alone. A second figure compares it with 1 ms.
(b) `import app` in a fresh interpreter, in a Lambda-like environment (LAMBDA_TASK_ROOT set, so the
    X-Ray SDK takes its Lambda path as it does when deployed), against
    `import boto3; boto3.client('sqs')`. Runs alternate so machine load hits both alike.
Each figure is the median of its runs, with their spread (bench/figures.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.figures import Figure
from local_stack.payloads import SAMPLE_TIME, TEST_SECRET, FakeLambdaContext, load_handler

ROOT = Path(__file__).resolve().parent.parent
EVENT = ROOT / "events" / "webhook-v3-grant-expired.json"
BASELINE = "import boto3; boto3.client('sqs', region_name='us-east-1')"


class NoOpSQS:
    """Accepts every batch instantly: the SQS round trip is not the handler's own time."""

    def send_message_batch(self, **request: Any) -> dict[str, Any]:
        return {"Successful": [{"Id": e["Id"], "MessageId": "m", "MD5OfMessageBody": ""} for e in request["Entries"]]}


ROUNDS = 7


def _per_call(fn: Any, calls: int) -> float:
    """CPU seconds per call on this thread: what other processes on the machine do is not counted."""
    start = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - start) / calls


def warm_invocation() -> tuple[list[float], list[float]]:
    """Seconds per warm invocation, and per HMAC + json.loads of the same body: one of each per round."""
    from moto import mock_aws

    from account_doctor.queue import DiagnosisQueue
    from local_stack.template import provision

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")  # noqa: S106 - moto
    os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
    event = json.loads(EVENT.read_text(encoding="utf-8"))
    body = event["body"].encode()
    with mock_aws():
        stack = provision(secret=TEST_SECRET)
        os.environ.update(stack.function_environment())
        # The same fresh import the tests use; its module-level queue is replaced below.
        handler: Any = load_handler("webhook")
        handler.intake.enqueue = DiagnosisQueue(NoOpSQS(), "https://sqs.invalid/q", 120).enqueue  # type: ignore[arg-type]
        # At the sample event's own time: dated 2024, it would otherwise be stale and never reach the queue.
        handler.intake.clock = lambda: SAMPLE_TIME + 600
        handler.logger.registered_handler.setStream(io.StringIO())
        sink = io.StringIO()
        context = FakeLambdaContext("bench")

        def invoke() -> None:
            with contextlib.redirect_stdout(sink):  # the EMF metrics line
                assert handler.lambda_handler(event, context)["statusCode"] == 200
            sink.seek(0)
            sink.truncate()

        key = TEST_SECRET["webhook_secret"].encode()

        def reference() -> None:
            hmac.compare_digest(hmac.new(key, body, hashlib.sha256).hexdigest(), "0" * 64)
            json.loads(body)

        invoke()  # the first call reads the secret (then cached, as when warm)
        handler_times, reference_times = [], []
        for _ in range(ROUNDS):  # alternating, so machine load hits both alike
            handler_times.append(_per_call(invoke, 500))
            reference_times.append(_per_call(reference, 5000))
    return handler_times, reference_times


def import_times(rounds: int = 15) -> tuple[list[float], list[float]]:
    """CPU times (user + system) of `import app` and of the boto3 baseline, each in a fresh interpreter, one of
    each per round. CPU rather than wall time: on a shared machine a fresh process waits for a core."""
    with tempfile.TemporaryDirectory() as task_root:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / "webhook"), str(ROOT / "layers" / "shared")]),
            "LAMBDA_TASK_ROOT": task_root,
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "POWERTOOLS_SERVICE_NAME": "account-doctor",
            "POWERTOOLS_METRICS_NAMESPACE": "AccountDoctor",
            **dict.fromkeys(
                (
                    "GRACE_SECONDS",
                    "DOMAIN_CLUSTER_THRESHOLD",
                    "DOMAIN_BURST_MINUTES",
                    "DOMAIN_WINDOW_DAYS",
                    "NOTIFY_COOLDOWN_HOURS",
                ),
                "1",
            ),
            "NYLAS_API_URI": "https://api.us.nylas.com",
            "NYLAS_V2_API_URI": "https://api.nylas.com",
            "APP_NAME": "Account Doctor",
            "SENDER_EMAIL": "a@example.com",
            "OPERATOR_EMAIL": "o@example.com",
            "REAUTH_URL_TEMPLATE": "",
            "NOTIFICATION_MODE": "dry-run",
            "NYLAS_SECRET_NAME": "secret",
            "DIAGNOSIS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
            "EVENTS_TABLE": "e",
            "VERDICTS_TABLE": "v",
            "NOTIFICATIONS_TABLE": "n",
            "IDEMPOTENCY_TABLE": "i",
        }
        env.pop("POWERTOOLS_TRACE_DISABLED", None)

        def once(code: str) -> float:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=task_root)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

        once("import app")  # warm the OS file cache and bytecode for both
        once(BASELINE)
        handler, baseline = [], []
        for _ in range(rounds):
            handler.append(once("import app"))
            baseline.append(once(BASELINE))
        return handler, baseline


def run(full: bool = False) -> list[Figure]:
    handler, reference = warm_invocation()
    handler_us, reference_us = [t * 1e6 for t in handler], [t * 1e6 for t in reference]
    imported, baseline = import_times()
    own, hashing = statistics.median(handler_us), statistics.median(reference_us)
    return [
        Figure.timed(
            name=f"webhook warm invocation own CPU ({own:.0f} µs) vs HMAC+json.loads ({hashing:.1f} µs)",
            measured_runs=handler_us,
            reference_runs=reference_us,
            unit="µs",
            target_ratio=100,
            reference_name="HMAC-SHA256 + json.loads of the same body",
            paired=True,
        ),
        Figure.timed(
            name=f"webhook warm invocation own CPU ({own:.0f} µs), target < 1 ms",
            measured_runs=handler_us,
            reference_runs=[1000.0],
            unit="µs",
            target_ratio=1.0,
            reference_name="1 ms",
        ),
        Figure.timed(
            name="webhook handler import, CPU of a fresh interpreter (Lambda-like env)",
            measured_runs=[t * 1000 for t in imported],
            reference_runs=[t * 1000 for t in baseline],
            unit="ms",
            target_ratio=1.3,
            reference_name="import boto3 + SQS client",
            paired=True,
        ),
    ]
