"""`python -m local_stack demo|serve`: the local stack for `make demo` and `make serve`."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from account_doctor.settings import get_settings
from account_doctor_console import DEFAULT_PORT as CONSOLE_PORT
from account_doctor_console.pages import build_sources
from account_doctor_console.serve import console_in_thread
from local_stack.demo import run_demo, verdict_table
from local_stack.incident_demo import run_second_act, seed_incidents
from local_stack.payloads import v3_notification
from local_stack.scenarios import SCENARIOS, load_simulator
from local_stack.simulator import Grant
from local_stack.stack import RunningStack, StackOptions, running_stack

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out"
# A Google grant that is not a scenario, for the signed curl example `serve` prints.
CURL_EXAMPLE_GRANT = Grant(
    grant_id="grant-curl-example",
    email="casey.curl@gmail.com",
    provider="google",
    grant_status="invalid",
    created_at=int(time.time()) - 90 * 86_400,
    updated_at=int(time.time()) - 40 * 86_400,
)
# Fixed ports for `serve`, so events/env.local.json can point `sam local invoke` at them.
SERVE_AWS_PORT = 4566
SERVE_NYLAS_PORT = 4010


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run every scenario through the local stack, check the verdicts, exit")
    serve = commands.add_parser("serve", help="start the local stack and keep it up for curl and the CLI")
    for command in (demo, serve):
        command.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        command.add_argument("--port", type=int, default=3000, help="API port (default 3000, as sam local start-api)")
        command.add_argument("--grace-seconds", type=int, default=2, help="GraceSeconds for the run (default 2)")
    demo.add_argument("--out", type=Path, default=OUT / "demo", help="where to write the emails (default out/demo)")
    serve.add_argument("--aws-port", type=int, default=SERVE_AWS_PORT, help="moto server port (default 4566)")
    serve.add_argument("--empty", action="store_true", help="do not post the demo's scenarios at start")
    serve.add_argument("--nylas-port", type=int, default=SERVE_NYLAS_PORT, help="Nylas simulator port (default 4010)")
    serve.add_argument(
        "--console-port", type=int, default=CONSOLE_PORT, help=f"operator console port (default {CONSOLE_PORT})"
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo_command(args)
    return serve_command(args)


def demo_command(args: argparse.Namespace) -> int:
    started = time.monotonic()
    console = sys.stdout
    OUT.mkdir(exist_ok=True)
    log_path = OUT / "local-stack.log"

    def report(line: str) -> None:
        print(line, file=console, flush=True)

    # The functions log JSON lines and EMF metrics to stdout (warnings to stderr), as on Lambda;
    # keep them in a file so the report stays readable.
    with (
        log_path.open("w", encoding="utf-8") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        port = args.port
        if port and not _port_free(args.host, port):
            report(f"Port {port} is in use; serving the API on a free port instead.")
            port = 0
        options = StackOptions(host=args.host, api_port=port, grace_seconds=args.grace_seconds)
        with running_stack(options) as stack:
            report(f"Local stack up: API {stack.api_url}, AWS (moto) {stack.moto.url}, Nylas {stack.simulator.url}")
            result = run_demo(stack, out_dir=args.out, report=report)
            operator = stack.resources.parameters["OperatorEmail"]
            second = run_second_act(stack, report)
    report("")
    report(verdict_table(result.outcomes, operator))
    report("")
    for outcome in result.outcomes:
        for problem in outcome.problems:
            report(f"✗ {outcome.scenario.account_id}: {problem}")
    for problem in result.problems:
        report(f"✗ {problem}")
    report("Incidents, the sweep and the events out:")
    for line in second.lines:
        report(line)
    for problem in second.problems:
        report(f"✗ {problem}")
    relative_out = args.out.resolve().relative_to(ROOT) if args.out.resolve().is_relative_to(ROOT) else args.out
    report(
        f"{len(result.emails)} emails written to {relative_out}/ (.html and .txt); function log: out/{log_path.name}"
    )
    passed = sum(outcome.ok for outcome in result.outcomes)
    report(
        f"{passed}/{len(result.outcomes)} scenarios as expected"
        f"{'' if result.ok else ' — DEMO FAILED'} in {time.monotonic() - started:.1f} s"
    )
    return 0 if result.ok and not second.problems else 1


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def serve_command(args: argparse.Namespace) -> int:
    console = sys.stdout
    options = StackOptions(
        host=args.host,
        api_port=args.port,
        aws_port=args.aws_port,
        nylas_port=args.nylas_port,
        grace_seconds=args.grace_seconds,
    )

    def report(line: str) -> None:
        print(line, file=console, flush=True)

    OUT.mkdir(exist_ok=True)
    log_path = OUT / "local-stack.log"
    stop = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop.set())
    try:
        with (
            log_path.open("w", encoding="utf-8", buffering=1) as log,
            contextlib.redirect_stdout(log),
            contextlib.redirect_stderr(log),
            running_stack(options) as stack,
        ):
            stack.simulator.add_grant(CURL_EXAMPLE_GRANT)
            if args.empty:
                load_simulator(stack.simulator, SCENARIOS)
            else:
                result = run_demo(stack, out_dir=OUT / "serve", report=report)
                passed = sum(outcome.ok for outcome in result.outcomes)
                report(f"Seeded the demo's scenarios: {passed}/{len(result.outcomes)} verdicts as expected.")
                for problem in seed_incidents(stack, report).problems:
                    report(f"✗ {problem}")
            env_file = write_env_file(stack, OUT / "local-stack.env")
            with console_in_thread(build_sources(get_settings()), port=_console_port(args, report)) as console_url:
                report(serve_instructions(stack, env_file, log_path, console_url))
                stop.wait()
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            report(f"A port is already in use ({error}). Is `make serve` already running?")
            return 1
        raise
    report("Local stack stopped.")
    return 0


def _console_port(args: argparse.Namespace, report: Callable[[str], None]) -> int:
    if args.console_port and not _port_free(args.host, args.console_port):
        report(f"Port {args.console_port} is in use; serving the console on a free port instead.")
        return 0
    return int(args.console_port)


def write_env_file(stack: RunningStack, path: Path) -> Path:
    """The functions' environment, for the CLI (`account-doctor --env-file out/local-stack.env …`)."""
    path.parent.mkdir(exist_ok=True)
    lines = [f"{name}={value}" for name, value in sorted(_cli_environment(stack).items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cli_environment(stack: RunningStack) -> dict[str, str]:
    return {
        **stack.environment,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DIAGNOSIS_DLQ_URL": stack.dlq_url,
    }


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def sam_env_vars(stack: RunningStack) -> dict[str, dict[str, str]]:
    """events/env.local.json: each function's own environment (as the template gives it) pointing at `make serve`.

    Per function, as in AWS: the webhook's NYLAS_SECRET_NAME is its own secret, not the diagnosis function's.
    """
    local = {name: stack.environment[name] for name in ("AWS_ENDPOINT_URL", "POWERTOOLS_LOG_LEVEL")}
    return {
        logical_id: dict(sorted({**stack.resources.function_environment(logical_id), **local}.items()))
        for logical_id in sorted(stack.functions)
    }


def serve_instructions(stack: RunningStack, env_file: Path, log_path: Path, console_url: str | None = None) -> str:
    from account_doctor.webhook import sign

    grant = CURL_EXAMPLE_GRANT
    example = v3_notification(
        "grant.expired",
        grant_id=grant.grant_id,
        provider=grant.provider,
        email=grant.email,
        occurred=time.time(),
        grant_updated_at=grant.updated_at,
    )
    body = json.dumps(example, separators=(",", ":"))
    signature = sign(body.encode(), stack.secret("webhook_secret"))
    env = _shown(env_file)
    return "\n".join(
        [
            "",
            f"Account Doctor local stack is up (GraceSeconds={stack.options.grace_seconds}). Ctrl-C stops it.",
            *([f"  Console   {console_url}   (the operator console: open it in a browser)"] if console_url else []),
            f"  API       {stack.api_url}   (GET/POST /webhook, GET /accounts/{{id}}, GET /domains/{{domain}})",
            f"  AWS       {stack.moto.url}   (moto; dashboard at {stack.moto.url}/moto-api/)",
            f"  Nylas     {stack.simulator.url}   (simulator, loaded with the demo's scenario accounts)",
            f"  Logs      tail -f {_shown(log_path)}   (the functions' JSON logs and metrics)",
            f"  Emails    {_shown(OUT / 'serve')}/ (the seeded scenarios'; later ones: {stack.moto.url}/moto-api/)",
            "",
            "Answer a challenge:",
            f"  curl -s '{stack.webhook_url}?challenge=hello'",
            "",
            "Post a signed v3 grant.expired (signature = hex HMAC-SHA256 of the body with the webhook_secret):",
            f"  curl -s -X POST {stack.webhook_url} -H 'Content-Type: application/json' \\",
            f"    -H 'X-Nylas-Signature: {signature}' \\",
            f"    --data-raw {shlex.quote(body)}",
            "",
            f"After {stack.options.grace_seconds} s, read the verdict:",
            f"  curl -s {stack.api_url}/accounts/{grant.grant_id}",
            "",
            "The operator CLI against this stack (from the repository root):",
            f'  ad() {{ .venv/bin/account-doctor --env-file {env} "$@"; }}',
            f"  ad verdicts {grant.grant_id}",
            "  ad domain acme.example",
            "  ad diagnose grant-acme-1        # dry run: prints the steps, sends nothing",
            "  ad redrive                      # dead-letter queue back onto the diagnosis queue",
            "  ad broken                       # every account whose latest event is a failure",
            "  ad incidents --status all       # domain, connector and testing-mode incidents",
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
