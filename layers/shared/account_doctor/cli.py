"""The operator CLI: diagnose an account on demand (dry run), read verdicts, and redrive the dead-letter queue.

It finds the stack's tables, queues and secret, in this order: the functions' environment
variables when they are set (`--env-file out/local-stack.env` while `make serve` runs),
otherwise the deployed CloudFormation stack named by --stack-name or by samconfig.toml's
--config-env (region and profile likewise). In AWS the settings are the deployed
DiagnosisFunction's own environment, so the CLI diagnoses with the thresholds and endpoints
the service uses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from account_doctor.settings import Settings, SettingsError

SAMCONFIG = "samconfig.toml"
DLQ_ENV = "DIAGNOSIS_DLQ_URL"
DIAGNOSIS_FUNCTION = "DiagnosisFunction"
# The variables that say "the functions' environment is here": the local stack's, or a deployed one's copied.
_ENVIRONMENT_MARKERS = ("VERDICTS_TABLE", "DIAGNOSIS_QUEUE_URL")


class OperatorError(RuntimeError):
    """Something the operator can fix; the message says how."""


@dataclass(frozen=True)
class Target:
    """Where the commands act: the functions' settings, the dead-letter queue, and what they were found from."""

    settings: Settings
    dlq_url: str
    source: str


# ---------------------------------------------------------------------------------------------
# Finding the stack


def load_samconfig(path: Path, config_env: str) -> dict[str, Any]:
    """samconfig.toml's global parameters (stack_name, region, profile) for one environment; {} if none."""
    if not path.exists():
        return {}
    with path.open("rb") as handle:
        config = tomllib.load(handle)
    if config_env not in config:
        known = ", ".join(k for k in config if isinstance(config[k], dict)) or "none"
        raise OperatorError(f"{path} has no [{config_env}] environment (known: {known}); pass --config-env")
    parameters: dict[str, Any] = config[config_env].get("global", {}).get("parameters", {})
    return parameters


def read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        raise OperatorError(f"{path} does not exist: start the local stack with `make serve` first")
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, separator, value = line.partition("=")
        if separator and name.strip() and not name.lstrip().startswith("#"):
            values[name.strip()] = value
    return values


def resolve_target(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> Target:
    if not args.stack_name and all(environ.get(name) for name in _ENVIRONMENT_MARKERS):
        return _target_from_environment(environ)
    samconfig = load_samconfig(Path(args.samconfig), args.config_env)
    stack_name = args.stack_name or samconfig.get("stack_name")
    if not stack_name:
        raise OperatorError(
            "No stack to act on: pass --stack-name, set stack_name in samconfig.toml, or run with the local "
            "stack's environment (`account-doctor --env-file out/local-stack.env …` while `make serve` runs)."
        )
    region = args.region or samconfig.get("region") or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    profile = args.profile or samconfig.get("profile")
    # Every client of this process (the History store, Powertools' secret reader) follows these.
    if profile:
        os.environ["AWS_PROFILE"] = str(profile)
    if region:
        os.environ["AWS_DEFAULT_REGION"] = str(region)
    return _target_from_stack(str(stack_name), boto3.Session(profile_name=profile, region_name=region))


def _target_from_environment(environ: Mapping[str, str]) -> Target:
    try:
        settings = Settings.from_env(environ)
    except SettingsError as error:
        raise OperatorError(f"{error} (or unset VERDICTS_TABLE to use the deployed stack instead)") from error
    endpoint = environ.get("AWS_ENDPOINT_URL")
    return Target(settings, environ.get(DLQ_ENV, ""), f"environment ({endpoint or 'AWS'})")


def _target_from_stack(stack_name: str, session: boto3.Session) -> Target:
    """The settings the deployed DiagnosisFunction runs with: its own environment variables."""
    cloudformation = session.client("cloudformation")
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        function_name = cloudformation.describe_stack_resource(
            StackName=stack_name, LogicalResourceId=DIAGNOSIS_FUNCTION
        )["StackResourceDetail"]["PhysicalResourceId"]
    except ClientError as error:
        if "does not exist" in str(error):
            raise OperatorError(
                f"Stack {stack_name} (or its {DIAGNOSIS_FUNCTION}) does not exist in {session.region_name}: "
                "deploy it with `sam deploy`, or pass --stack-name/--region/--config-env."
            ) from error
        raise
    configuration = session.client("lambda").get_function_configuration(FunctionName=function_name)
    environment = configuration.get("Environment", {}).get("Variables", {})
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    try:
        settings = Settings.from_env(environment)
    except SettingsError as error:
        raise OperatorError(f"{function_name} of stack {stack_name} is not configured as expected: {error}") from error
    return Target(settings, outputs.get("DiagnosisDLQUrl", ""), f"stack {stack_name} ({session.region_name})")


# ---------------------------------------------------------------------------------------------
# Commands


def diagnose_command(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    """Runs the procedure on the account as it is now. Records nothing and sends nothing."""
    from account_doctor.diagnosis import diagnose
    from account_doctor.evidence import EvidenceGatherer
    from account_doctor.history import History
    from account_doctor.models import AccountEvent, ApiVersion, iso
    from account_doctor.nylas import NylasClient, NylasError
    from account_doctor.service import policy_from

    settings = target.settings
    api_version: ApiVersion = "v2" if args.v2 else "v3"
    event = AccountEvent(
        event_id=f"cli-{uuid.uuid4()}",
        api_version=api_version,
        trigger=args.trigger or ("account.invalid" if args.v2 else "grant.expired"),
        account_id=args.account_id,
        occurred_at=iso(datetime.now(UTC)),
        provider=args.provider,
        email=args.email,
    )
    policy = policy_from(settings)
    history = History(settings.events_table, settings.verdicts_table)
    try:
        evidence, _recorded = EvidenceGatherer(NylasClient(settings), history, policy).gather(event)
    except NylasError as error:
        raise OperatorError(f"Nylas did not answer for {args.account_id}: {error}") from error
    diagnosis = diagnose(evidence, policy)
    if args.json:
        json.dump({"evidence": evidence.to_dict(), "diagnosis": _plain(diagnosis)}, out, indent=2, default=str)
        out.write("\n")
        return 0
    state = evidence.state
    out.write(f"Diagnosing {api_version} account {args.account_id} as if it reported {event.trigger} now ")
    out.write(f"({target.source}).\n")
    out.write(
        f"Nylas says: {'exists' if state.exists else 'not found'}, status {state.status or '-'}, "
        f"provider {evidence.provider or '-'}, domain {evidence.domain or '-'}"
        f"{' (free mail)' if evidence.free_mail else ''}.\n\n"
    )
    for number, step in enumerate(diagnosis.steps, start=1):
        out.write(f"{number:>2}. [{step.step}] {step.question}\n    {step.answer}\n")
    out.write(f"\nVerdict: {diagnosis.cause} (confidence {diagnosis.confidence})")
    out.write(" — recurring\n" if diagnosis.recurring else "\n")
    out.write(f"  {diagnosis.summary}\n")
    for action in diagnosis.actions:
        out.write(f"  - {action}\n")
    out.write("\nDry run: nothing was recorded and no email was sent.\n")
    return 0


def _write_json(answer: Any, out: TextIO) -> int:
    json.dump(answer, out, indent=2, default=str)
    out.write("\n")
    return 0


def verdicts_command(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    api = _accounts_api(target)
    answer = api.account(args.account_id)
    if answer is None:
        raise OperatorError(f"No events or verdicts for account {args.account_id} in {target.source}.")
    if args.json:
        return _write_json(answer, out)
    out.write(f"Account {answer['account_id']}: {answer['status']} ({len(answer['verdicts'])} verdicts)\n")
    for verdict in answer["verdicts"]:
        out.write(
            f"\n{verdict['occurred_at']}  {verdict['trigger']}  →  {verdict['cause']} "
            f"({verdict['confidence']}{', recurring' if verdict.get('recurring') else ''})\n"
        )
        out.write(f"  {verdict['summary']}\n")
        for action in verdict.get("actions", []):
            out.write(f"  - {action}\n")
        for notification in verdict.get("notifications", []):
            sent = notification.get("sent_at") or "not sent"
            out.write(f"  ✉ {notification['kind']} to {_mask(notification['to'])} ({sent})\n")
    return 0


def domain_command(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    api = _accounts_api(target)
    answer = api.domain(args.domain)
    if answer is None:
        raise OperatorError(f"No failures or verdicts for domain {args.domain} in {target.source}.")
    if args.json:
        return _write_json(answer, out)
    out.write(f"Domain {answer['domain']}{' (free mail: never clusters)' if answer.get('free_mail') else ''}\n")
    for window in ("burst", "window"):
        part = answer.get(window) or {}
        span = f"{part['minutes']} min" if "minutes" in part else f"{part.get('days', '?')} days"
        out.write(
            f"  failing accounts in the last {span}: {part.get('failing_accounts', 0)} "
            f"(threshold {answer.get('cluster_threshold')})\n"
        )
    for verdict in answer.get("verdicts", []):
        out.write(f"  {verdict['occurred_at']}  {verdict['account_id']}  {verdict['cause']}\n")
    return 0


def redrive_command(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    """Moves dead-lettered messages back onto the diagnosis queue, body and attributes intact."""
    if not target.dlq_url:
        raise OperatorError(f"The dead-letter queue's URL is unknown: set {DLQ_ENV} or use a deployed stack.")

    def progress(done: int, total: int) -> None:
        out.write(f"\r  moved {done}/{total}")
        out.flush()

    moved = redrive(
        boto3.client("sqs"),
        source_url=target.dlq_url,
        destination_url=target.settings.diagnosis_queue_url,
        limit=args.max,
        progress=progress,
    )
    out.write(
        f"\nRedrove {moved} message{'s' if moved != 1 else ''} from the dead-letter queue to the diagnosis queue.\n"
    )
    return 0


def redrive(
    sqs: Any,
    *,
    source_url: str,
    destination_url: str,
    limit: int | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> int:
    """Receive, send, then delete: a message is only removed from the source once it is on the destination."""
    total = int(
        sqs.get_queue_attributes(QueueUrl=source_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
    )
    total = min(total, limit) if limit is not None else total
    moved = 0
    if progress:
        progress(moved, total)
    while limit is None or moved < limit:
        batch = min(10, limit - moved) if limit is not None else 10
        messages = sqs.receive_message(
            QueueUrl=source_url,
            MaxNumberOfMessages=batch,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            # Long enough to send them on; if this process dies they reappear on the source.
            VisibilityTimeout=60,
        ).get("Messages", [])
        if not messages:
            break
        sent = sqs.send_message_batch(
            QueueUrl=destination_url,
            Entries=[
                {
                    "Id": str(index),
                    "MessageBody": message["Body"],
                    **({"MessageAttributes": _attributes(message)} if message.get("MessageAttributes") else {}),
                }
                for index, message in enumerate(messages)
            ],
        )
        done = [messages[int(entry["Id"])] for entry in sent.get("Successful", [])]
        if done:
            sqs.delete_message_batch(
                QueueUrl=source_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        moved += len(done)
        if progress:
            progress(moved, max(total, moved))
        if sent.get("Failed"):
            reasons = "; ".join(f"{f.get('Code')}: {f.get('Message', '')}" for f in sent["Failed"])
            raise OperatorError(f"moved {moved}, then the diagnosis queue refused messages ({reasons})")
    return moved


def _attributes(message: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, value in message["MessageAttributes"].items()
    }


def _accounts_api(target: Target) -> Any:
    from account_doctor.accounts_api import AccountsApi
    from account_doctor.history import History
    from account_doctor.service import policy_from

    settings = target.settings
    return AccountsApi(History(settings.events_table, settings.verdicts_table), policy_from(settings))


def _plain(value: Any) -> Any:
    from dataclasses import asdict, is_dataclass

    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


def _mask(address: str | None) -> str | None:
    from account_doctor.accounts import mask_email

    return mask_email(address)


# ---------------------------------------------------------------------------------------------
# Entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="account-doctor",
        description="Operate Account Doctor: diagnose an account (dry run), read verdicts, redrive the DLQ.",
        epilog="Against the local stack: account-doctor --env-file out/local-stack.env verdicts ACCOUNT_ID",
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        help="KEY=VALUE lines to use as the functions' environment (the local stack writes out/local-stack.env)",
    )
    parser.add_argument("--config-env", default="default", help="samconfig.toml environment (default: default)")
    parser.add_argument("--samconfig", default=SAMCONFIG, help="path to samconfig.toml (default: ./samconfig.toml)")
    parser.add_argument("--stack-name", help="CloudFormation stack (default: samconfig.toml's stack_name)")
    parser.add_argument("--region", help="AWS region (default: samconfig.toml's, then AWS_REGION)")
    parser.add_argument("--profile", help="AWS profile (default: samconfig.toml's, then AWS_PROFILE)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    diagnose = commands.add_parser("diagnose", help="run the procedure on an account now (dry run: no email)")
    diagnose.add_argument("account_id", metavar="ACCOUNT_ID", help="v3 grant id, or v2 account id with --v2")
    diagnose.add_argument("--v2", action="store_true", help="the account is on the Nylas v2 API")
    diagnose.add_argument("--email", help="the account's address, if Nylas no longer knows it")
    diagnose.add_argument("--provider", help="the account's provider, if Nylas no longer knows it")
    diagnose.add_argument("--trigger", help="the failure to diagnose (default grant.expired, or account.invalid)")
    diagnose.add_argument("--json", action="store_true", help="print the evidence and diagnosis as JSON")
    diagnose.set_defaults(run=diagnose_command)

    verdicts = commands.add_parser("verdicts", help="an account's status and verdicts, newest first")
    verdicts.add_argument("account_id", metavar="ACCOUNT_ID")
    verdicts.add_argument("--json", action="store_true", help="print the read API's JSON")
    verdicts.set_defaults(run=verdicts_command)

    domain = commands.add_parser("domain", help="a domain's failing accounts and recent verdicts")
    domain.add_argument("domain", metavar="DOMAIN")
    domain.add_argument("--json", action="store_true", help="print the read API's JSON")
    domain.set_defaults(run=domain_command)

    redrive_parser = commands.add_parser("redrive", help="move dead-lettered messages back to the diagnosis queue")
    redrive_parser.add_argument("--max", type=int, default=None, help="move at most this many")
    redrive_parser.set_defaults(run=redrive_command)
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        if args.env_file:
            os.environ.update(read_env_file(args.env_file))
        target = resolve_target(args)
        code: int = args.run(args, target, out)
        return code
    except OperatorError as error:
        print(f"account-doctor: {error}", file=sys.stderr)
        return 2
    except NoCredentialsError:
        print("account-doctor: no AWS credentials: pass --profile or set AWS_PROFILE (aws sso login).", file=sys.stderr)
        return 2
    except NoRegionError:
        print("account-doctor: no AWS region: pass --region or set it in samconfig.toml.", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as error:
        print(f"account-doctor: AWS refused the call: {error}", file=sys.stderr)
        return 1
