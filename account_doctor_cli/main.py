"""`account-doctor`: the command line, and the one place an error becomes a line on stderr and an exit status."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from account_doctor.accounts_api import DEFAULT_LIMIT, INCIDENT_STATUSES, MAX_LIMIT
from account_doctor.ports import ReadApi
from account_doctor.recovery_report import DEFAULT_DAYS, MAX_DAYS, InvalidDays, report_days
from account_doctor.settings import Settings
from account_doctor_cli.commands import (
    FAILURE_TRIGGER_CHOICES,
    Context,
    broken_command,
    console_command,
    diagnose_command,
    domain_command,
    health_command,
    incident_command,
    incidents_command,
    redrive_command,
    report_command,
    verdicts_command,
)
from account_doctor_cli.errors import explain
from account_doctor_cli.stack import SAMCONFIG, StackOptions, find_target
from account_doctor_console import DEFAULT_PORT

PROG = "account-doctor"


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    read_api: Callable[[Settings], ReadApi] | None = None,
) -> int:
    """Runs one command; `read_api` replaces the read API (tests)."""
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    _route_library_logs(debug=args.debug)
    try:
        options = StackOptions(
            env_file=args.env_file,
            config_env=args.config_env,
            samconfig=args.samconfig,
            stack_name=args.stack_name,
            region=args.region,
            profile=args.profile,
        )
        target = find_target(options)
        context = Context(target) if read_api is None else Context(target, read_api)
        status: int = args.run(args, context, out)
        return status
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        failure = explain(error)
        if failure is None or args.debug:
            raise
        print(f"{PROG}: {failure.message}", file=sys.stderr)
        return failure.status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Operate Account Doctor: diagnose an account (dry run), read verdicts and incidents, "
        "redrive the dead-letter queue.",
        epilog=f"Against the local stack: {PROG} --env-file out/local-stack.env verdicts ACCOUNT_ID",
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        help="KEY=VALUE lines to use as the functions' environment (`make serve` writes out/local-stack.env)",
    )
    parser.add_argument("--config-env", default="default", help="samconfig.toml environment (default: default)")
    parser.add_argument(
        "--samconfig", type=Path, default=Path(SAMCONFIG), help="path to samconfig.toml (default: ./samconfig.toml)"
    )
    parser.add_argument("--stack-name", help="CloudFormation stack (default: samconfig.toml's stack_name)")
    parser.add_argument("--region", help="AWS region (default: samconfig.toml's, then AWS_REGION)")
    parser.add_argument("--profile", help="AWS profile (default: samconfig.toml's, then AWS_PROFILE)")
    parser.add_argument("--debug", action="store_true", help="show the service's logs and full tracebacks")

    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON (the read API's answer, where there is one)")
    paged = argparse.ArgumentParser(add_help=False)
    paged.add_argument(
        "--limit", type=_limit, default=DEFAULT_LIMIT, help=f"items per page, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT})"
    )
    paged.add_argument("--all", action="store_true", help="follow `next` to the last page")
    paged.add_argument("--cursor", help="start at this page (the `next` of an earlier answer)")

    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    diagnose = commands.add_parser(
        "diagnose",
        parents=[as_json],
        help="run the procedure on an account's latest failure (dry run: records nothing, sends no email)",
    )
    diagnose.add_argument("account_id", metavar="ACCOUNT_ID", help="v3 grant id, or v2 account id")
    diagnose.add_argument("--v2", action="store_true", help="a v2 account the history has not seen")
    diagnose.add_argument("--email", help="the account's address, if Nylas no longer knows it")
    diagnose.add_argument("--provider", help="the account's provider, if Nylas no longer knows it")
    diagnose.add_argument(
        "--trigger",
        choices=FAILURE_TRIGGER_CHOICES,
        help="the failure to diagnose (default: the latest recorded one, else grant.expired / account.invalid)",
    )
    diagnose.set_defaults(run=diagnose_command)

    verdicts = commands.add_parser(
        "verdicts", parents=[as_json, paged], help="an account's status and verdicts, newest first"
    )
    verdicts.add_argument("account_id", metavar="ACCOUNT_ID")
    verdicts.set_defaults(run=verdicts_command)

    domain = commands.add_parser(
        "domain", parents=[as_json, paged], help="a domain's failing accounts and recent verdicts"
    )
    domain.add_argument("domain", metavar="DOMAIN")
    domain.set_defaults(run=domain_command)

    broken = commands.add_parser(
        "broken", parents=[as_json, paged], help="every account whose latest event is a failure, newest first"
    )
    broken.set_defaults(run=broken_command)

    incidents = commands.add_parser("incidents", parents=[as_json, paged], help="incidents, newest first")
    incidents.add_argument("--status", choices=INCIDENT_STATUSES, default="open", help="(default: open)")
    incidents.set_defaults(run=incidents_command)

    incident = commands.add_parser(
        "incident",
        parents=[as_json, paged],
        help="one incident and its accounts; `incident release ID` sends its held emails, `incident resolve ID` "
        "closes it",
    )
    incident.add_argument("words", nargs="+", metavar="[release|resolve] INCIDENT_ID")
    incident.set_defaults(run=incident_command)

    console = commands.add_parser(
        "console",
        help="serve the operator console on 127.0.0.1 (overview, broken accounts, accounts, incidents, domains)",
    )
    console.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0: any free one)"
    )
    console.add_argument("--read-only", action="store_true", help="hide and refuse Release and Resolve")
    console.set_defaults(run=console_command)
    report = commands.add_parser(
        "report", parents=[as_json], help="how many broken accounts came back, how fast, by cause (the recovery report)"
    )
    report.add_argument("--days", type=_days, default=DEFAULT_DAYS, help=f"the span, 1 to {MAX_DAYS} (default: 30)")
    report.set_defaults(run=report_command)
    health = commands.add_parser(
        "health", parents=[as_json], help="the webhook feed, each connector's mailboxes and clock, testing mode at risk"
    )
    health.set_defaults(run=health_command)

    redrive = commands.add_parser(
        "redrive", parents=[as_json], help="move dead-lettered messages back to the diagnosis queue"
    )
    redrive.add_argument("--max", type=_positive, default=None, help="move at most this many")
    redrive.set_defaults(run=redrive_command)
    return parser


def _limit(text: str) -> int:
    number = _positive(text)
    if number > MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"at most {MAX_LIMIT} per page (use --all for more), got {text}")
    return number


def _port(text: str) -> int:
    """A TCP port; 0 asks for any free one."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a port number, got {text!r}") from None
    if not 0 <= number <= 65_535:
        raise argparse.ArgumentTypeError(f"a TCP port is 0 (any free one) to 65535, got {text}")
    return number


def _days(text: str) -> int:
    try:
        return report_days(text)
    except InvalidDays as error:
        raise argparse.ArgumentTypeError(f"{error}, got {text!r}") from None


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number, got {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"at least 1, got {text}")
    return number


def _route_library_logs(*, debug: bool) -> None:
    """The core logs for CloudWatch; here they stay quiet unless --debug: main reports each error once."""
    root = logging.getLogger()
    if debug:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    elif not root.handlers:
        # Without any handler, Python prints warnings and errors on stderr by itself ("last resort").
        root.addHandler(logging.NullHandler())
