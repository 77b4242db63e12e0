"""The operator's commands: each reads its arguments, asks the core, and writes a compact answer (or --json).

The read commands print what the read API (`AccountsApi`, SPEC §6) answers, so `--json` here and
`GET /accounts/…` there are the same document; `diagnose` runs the procedure without recording or
sending anything; `redrive` moves dead letters back onto the diagnosis queue.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import boto3

from account_doctor.accounts_api import InvalidRequest, NotFound, account_id_of, build_read_api
from account_doctor.addresses import mask_email
from account_doctor.consumer import build_evidence
from account_doctor.diagnosis import diagnose
from account_doctor.models import FAILURE_TRIGGERS, AccountEvent, ApiVersion, iso
from account_doctor.ports import ReadApi
from account_doctor.settings import Settings
from account_doctor_cli.errors import OperatorError
from account_doctor_cli.stack import DLQ_ENV, Target

FAILURE_TRIGGER_CHOICES = sorted(FAILURE_TRIGGERS)
# The ids the read API accepts, checked here too for `diagnose`, which asks Nylas rather than the API.


def read_api(settings: Settings) -> ReadApi:
    """The read API exactly as AccountsApiFunction builds it."""
    return build_read_api(settings)


@dataclass(frozen=True)
class Context:
    """What a command acts on: the target stack, and how to reach its read API (tests pass a fake)."""

    target: Target
    build_read_api: Callable[[Settings], ReadApi] = read_api

    def api(self) -> ReadApi:
        return self.build_read_api(self.target.settings)


# ---------------------------------------------------------------------------------------------
# diagnose


def diagnose_command(args: argparse.Namespace, context: Context, out: TextIO) -> int:
    """Runs the procedure on the account's latest recorded failure (none recorded: as if it failed now).

    Records nothing and sends nothing: the evidence is only read.
    """
    account_id = _checked_account_id(args.account_id)
    settings = context.target.settings
    history, gatherer = build_evidence(settings)
    failure = history.latest_failure(account_id)
    latest = failure or history.latest_event(account_id)
    api_version = _api_version(args, account_id, latest)
    event = AccountEvent(
        # The recorded failure's own id and time: the evidence counts it once and sees the clusters
        # around it, as the service did.
        event_id=failure.event_id if failure else f"cli-{uuid.uuid4()}",
        api_version=api_version,
        trigger=args.trigger or (failure.trigger if failure else _DEFAULT_TRIGGER[api_version]),
        account_id=account_id,
        occurred_at=failure.occurred_at if failure else iso(datetime.now(UTC)),
        provider=args.provider or (latest.provider if latest else None),
        email=args.email or (latest.email if latest else None),
        grant_updated_at=latest.grant_updated_at if latest else None,
    )
    evidence = gatherer.gather(event).evidence
    if latest is None and not evidence.state.exists and not (args.email or args.provider):
        # A typo would otherwise be diagnosed as a grant the app removed (rule 1).
        raise OperatorError(
            f"unknown account {account_id}: Nylas has no {'v2 account' if api_version == 'v2' else 'grant'} of that "
            "id and Account Doctor has no event of it (check the id; a v2 account needs --v2; "
            "--email/--provider diagnose it anyway)"
        )
    diagnosis = diagnose(evidence, settings.policy)
    if args.json:
        answer = {"from_history": failure is not None, "evidence": evidence.to_dict(), "diagnosis": asdict(diagnosis)}
        return write_json(answer, out)

    state = evidence.state
    if failure:
        out.write(f"Diagnosing {api_version} account {account_id}: its latest failure, {event.trigger} at ")
        out.write(f"{event.occurred_at} ({context.target.source}).\n")
    else:
        out.write(f"Diagnosing {api_version} account {account_id} as if it reported {event.trigger} now: ")
        out.write(f"no failure in its history ({context.target.source}).\n")
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


_DEFAULT_TRIGGER: dict[ApiVersion, str] = {"v3": "grant.expired", "v2": "account.invalid"}


def _api_version(args: argparse.Namespace, account_id: str, latest: AccountEvent | None) -> ApiVersion:
    """The account's API version: what its history, --v2 and --trigger say, which must agree; v3 by default."""
    claims: dict[str, ApiVersion] = {}
    if latest is not None:
        recorded = latest.api_version or _version_of(latest.trigger)
        claims["its history"] = "v2" if recorded == "v2" else "v3"
    if args.v2:
        claims["--v2"] = "v2"
    if args.trigger:
        claims[f"--trigger {args.trigger}"] = _version_of(args.trigger)
    versions = set(claims.values())
    if len(versions) > 1:
        said = ", ".join(f"{source} says {version}" for source, version in claims.items())
        raise OperatorError(f"account {account_id}: {said}; drop the option that disagrees")
    return versions.pop() if versions else "v3"


def _version_of(trigger: str) -> ApiVersion:
    # The two generations share no trigger: v3 says grant.*, v2 account.* (SPEC §2).
    return "v3" if trigger.startswith("grant.") else "v2"


def _checked_account_id(account_id: str) -> str:
    try:
        return account_id_of(account_id)
    except InvalidRequest as error:
        raise OperatorError(f"{account_id!r} is not a Nylas grant or account id ({error})") from None


# ---------------------------------------------------------------------------------------------
# Reading: verdicts, domain, broken, incidents, incident


def verdicts_command(args: argparse.Namespace, context: Context, out: TextIO) -> int:
    api = context.api()
    try:
        answer = collect(args, "verdicts", lambda cursor: api.account(args.account_id, limit=args.limit, cursor=cursor))
    except NotFound:
        raise OperatorError(
            f"No events or verdicts for account {args.account_id} in {context.target.source}: check the id "
            "(`account-doctor broken` lists the broken accounts)"
        ) from None
    if args.json:
        return write_json(answer, out)
    verdicts = answer.get("verdicts") or []
    out.write(f"Account {answer['account_id']}: {answer['status']} ({len(verdicts)} verdicts)\n")
    for verdict in verdicts:
        marks = [verdict["confidence"]]
        if verdict.get("recurring"):
            marks.append("recurring")
        if verdict.get("superseded"):
            marks.append("superseded")
        if verdict.get("revises"):
            marks.append(f"revises {verdict['revises']}")
        out.write(f"\n{verdict['occurred_at']}  {verdict['trigger']}  →  {verdict['cause']} ({', '.join(marks)})\n")
        out.write(f"  {verdict['summary']}\n")
        if verdict.get("revision_reason"):
            out.write(f"  revised: {verdict['revision_reason']}\n")
        if verdict.get("incident_id"):
            out.write(f"  incident {verdict['incident_id']} (account-doctor incident {verdict['incident_id']})\n")
        for action in verdict.get("actions") or []:
            out.write(f"  - {action}\n")
        for notification in verdict.get("notifications") or []:
            when = ", ".join(str(part) for part in (notification.get("status"), notification.get("sent_at")) if part)
            out.write(f"  ✉ {notification['kind']} to {mask_email(notification.get('to'))} ({when or 'not sent'})\n")
    _more(answer, out)
    return 0


def domain_command(args: argparse.Namespace, context: Context, out: TextIO) -> int:
    api = context.api()
    try:
        answer = collect(args, "verdicts", lambda cursor: api.domain(args.domain, limit=args.limit, cursor=cursor))
    except NotFound:
        raise OperatorError(f"No failures or verdicts for domain {args.domain} in {context.target.source}") from None
    if args.json:
        return write_json(answer, out)
    out.write(f"Domain {answer['domain']}{' (free mail: never clusters)' if answer.get('free_mail') else ''}\n")
    for window in ("burst", "window"):
        part = answer.get(window) or {}
        span = f"{part['minutes']} min" if "minutes" in part else f"{part.get('days', '?')} days"
        out.write(
            f"  failing accounts in the last {span}: {part.get('failing_accounts', 0)} "
            f"(threshold {answer.get('cluster_threshold')})\n"
        )
    if answer.get("connected") is not None:
        out.write(f"  connected mailboxes: {answer['connected']} (census {answer.get('census_at')})\n")
    verdicts = answer.get("verdicts") or []
    if verdicts:
        out.write("\n")
        out.write(
            table(
                ("OCCURRED", "ACCOUNT", "CAUSE", "INCIDENT"),
                ((v["occurred_at"], v["account_id"], v["cause"], v.get("incident_id")) for v in verdicts),
            )
        )
    _more(answer, out)
    return 0


def health_command(args: argparse.Namespace, context: Context, out: TextIO) -> int:
    """The webhook feed, each connector's census counts and clock, and the testing-mode grants at risk."""
    answer = context.api().health()
    if args.json:
        return write_json(answer, out)
    feed = answer["webhook_feed"]
    out.write(f"Webhook feed: {feed['status']} (checked {feed.get('checked_at') or 'never'})\n")
    if feed["destinations"]:
        out.write(
            table(
                ("DESTINATION", "STATUS", "TRIGGERS", "MISSING"),
                (
                    (d["id"], d["status"], ",".join(d["trigger_types"]) or "none", ",".join(d["missing"]) or "-")
                    for d in feed["destinations"]
                ),
            )
        )
    out.write("\n")
    out.write(
        table(
            ("CONNECTOR", "CONNECTED", "BROKEN", "CENSUS", "SECRET EXPIRES", "DAYS LEFT"),
            (
                (
                    c["connector"],
                    c["connected"],
                    c["broken"],
                    c["census_at"],
                    c["client_secret_expires_on"],
                    c["days_left"],
                )
                for c in answer["connectors"]
            ),
        )
    )
    out.write(f"\nGoogle grants at risk of testing mode: {answer['testing_mode_at_risk']}\n")
    return 0


def broken_command(args: argparse.Namespace, context: Context, out: TextIO) -> int:
    api = context.api()
    answer = collect(args, "accounts", lambda cursor: api.broken_accounts(limit=args.limit, cursor=cursor))
    if args.json:
        return write_json(answer, out)
    accounts = answer.get("accounts") or []
    if not accounts:
        out.write(f"No broken accounts in {context.target.source}.\n")
        return 0
    out.write(
        table(
            ("ACCOUNT", "EMAIL", "PROVIDER", "SINCE", "CAUSE"),
            (
                (a["account_id"], mask_email(a.get("email")), a.get("provider"), a.get("since"), _cause(a))
                for a in accounts
            ),
        )
    )
    _more(answer, out)
    return 0


def incidents_command(args: argparse.Namespace, context: Context, out: TextIO) -> int:
    api = context.api()
    answer = collect(
        args, "incidents", lambda cursor: api.incidents_list(status=args.status, limit=args.limit, cursor=cursor)
    )
    if args.json:
        return write_json(answer, out)
    incidents = answer.get("incidents") or []
    if not incidents:
        shown = "" if args.status == "all" else f"{args.status} "
        out.write(f"No {shown}incidents in {context.target.source}.\n")
        return 0
    out.write(
        table(
            ("INCIDENT", "KIND", "KEY", "CAUSE", "STATUS", "ACCOUNTS", "DOMAINS", "OPENED", "LAST FAILURE", "HELD"),
            (
                (
                    i["incident_id"],
                    i.get("kind"),
                    i.get("key"),
                    i.get("cause"),
                    i.get("status"),
                    i.get("accounts"),
                    i.get("domains"),
                    i.get("opened_at"),
                    i.get("last_failure_at"),
                    i.get("held_emails"),
                )
                for i in incidents
            ),
        )
    )
    _more(answer, out)
    return 0


INCIDENT_ACTIONS = ("release", "resolve")
INCIDENT_USAGE = "usage: account-doctor incident [release|resolve] INCIDENT_ID"


def incident_command(args: argparse.Namespace, context: Context, out: TextIO) -> int:
    """`incident ID` shows one incident and its members; `incident release|resolve ID` acts on it."""
    words: list[str] = args.words
    if len(words) == 1:
        action, incident_id = None, words[0]
    elif len(words) == 2 and words[0] in INCIDENT_ACTIONS:
        action, incident_id = words[0], words[1]
    else:
        raise OperatorError(f"{' '.join(words)!r} is not an incident command ({INCIDENT_USAGE})")
    api = context.api()
    try:
        if action == "release":
            answer = api.release_incident(incident_id)
        elif action == "resolve":
            answer = api.resolve_incident(incident_id)
        else:
            answer = collect(args, "members", lambda cursor: api.incident(incident_id, limit=args.limit, cursor=cursor))
    except NotFound:
        raise OperatorError(
            f"unknown incident {incident_id} in {context.target.source}: `account-doctor incidents --status all` "
            "lists them"
        ) from None
    if args.json:
        return write_json(answer, out)
    if action == "release" and answer.get("release") == "already released":
        out.write(f"Incident {incident_id} was already released: nothing is sent twice.\n")
    elif action == "release":
        out.write(
            f"Released the held customer emails of incident {incident_id}: they go out to every member still broken.\n"
        )
    elif action == "resolve":
        out.write(f"Resolved incident {incident_id}.\n")
    _write_incident(answer, out)
    _more(answer, out)
    return 0


def _write_incident(incident: Mapping[str, Any], out: TextIO) -> None:
    out.write(
        f"Incident {incident.get('incident_id')}: {incident.get('kind')} {incident.get('key')}, "
        f"cause {incident.get('cause')}, {incident.get('status')}\n"
        f"  opened {incident.get('opened_at') or '-'}, last failure {incident.get('last_failure_at') or '-'}; "
        f"{incident.get('accounts')} accounts, {incident.get('domains')} domains, "
        f"{incident.get('held_emails') or 0} customer emails held\n"
    )
    for moment in ("released_at", "resolved_at"):
        if incident.get(moment):
            out.write(f"  {moment.removesuffix('_at')} {incident[moment]}\n")
    if incident.get("held_emails") and incident.get("status") == "open" and not incident.get("released_at"):
        out.write(f"  Once the cause is fixed: account-doctor incident release {incident.get('incident_id')}\n")
    members = incident.get("members")
    if members:
        out.write("\n")
        out.write(
            table(
                ("ACCOUNT", "EMAIL", "LATEST CAUSE", "RECOVERED"),
                (
                    (m["account_id"], mask_email(m.get("email")), m.get("latest_cause"), m.get("recovered"))
                    for m in members
                ),
            )
        )


# ---------------------------------------------------------------------------------------------
# redrive


# ---------------------------------------------------------------------------------------------
# report


REPORT_COLUMNS = (
    "CAUSE",
    "FAILURES",
    "RECOVERED",
    "MEDIAN H",
    "P90 H",
    "WITHIN 72H",
    "STILL BROKEN",
    "EMAILED",
    "REMINDED",
)


def report_command(args: argparse.Namespace, context: Context, out: TextIO) -> int:
    """The recovery report by cause (SPEC §6), exactly the read API's answer with --json."""
    answer = context.api().recovery_report(args.days)
    if args.json:
        return write_json(answer, out)
    write_report(answer, out)
    return 0


def write_report(answer: Mapping[str, Any], out: TextIO) -> None:
    """The report as a table by cause, then how the accounts came back."""
    out.write(f"Recovery of the accounts that broke {answer['since'][:10]} .. {answer['until'][:10]}")
    connected = answer.get("connected")
    out.write(f" ({answer['broken_now']} broken now" + (f" of {connected} connected" if connected else "") + ")\n\n")
    if not answer["causes"]:
        out.write("No account broke in this span.\n")
        return
    rows = [*answer["causes"], {"cause": "all", **answer["totals"]}]
    out.write(
        table(
            REPORT_COLUMNS,
            (
                (
                    row["cause"],
                    row["failures"],
                    row["recovered"],
                    _hours(row["median_hours_to_recover"], row["recovered"]),
                    _hours(row["p90_hours_to_recover"], row["recovered"]),
                    row["recovered_within_72h"],
                    row["still_broken"],
                    row["emailed"],
                    row["reminded"],
                )
                for row in rows
            ),
        )
    )
    by = answer["totals"]["recovered_by"]
    out.write(
        f"\nRecovered by re-authentication {by['reauthentication']}, healed {by['healed']}, "
        f"replaced by a new grant {by['replaced']}, found by the sweep {by['sweep']}; "
        f"removed {answer['totals']['removed']}; clicked {answer['totals']['clicked']}.\n"
        "Hours are the upper bound of the histogram bucket holding the median / 90th percentile.\n"
    )


def _hours(value: int | None, recovered: int) -> str:
    """A percentile's bound in hours: ≤ N; beyond the last bucket '> 720'; '-' with nothing recovered."""
    if not recovered:
        return "-"
    return "> 720" if value is None else f"≤ {value}"


def redrive_command(args: argparse.Namespace, context: Context, out: TextIO) -> int:
    """Moves dead-lettered messages back onto the diagnosis queue, body and attributes intact."""
    target = context.target
    if not target.dlq_url:
        raise OperatorError(f"the dead-letter queue's URL is unknown: set {DLQ_ENV}, or use a deployed stack")

    def progress(done: int, total: int) -> None:
        out.write(f"\r  moved {done}/{total}")
        out.flush()

    moved = redrive(
        boto3.client("sqs"),
        source_url=target.dlq_url,
        destination_url=target.settings.diagnosis_queue_url,
        limit=args.max,
        progress=None if args.json else progress,
    )
    if args.json:
        return write_json({"moved": moved, "from": target.dlq_url, "to": target.settings.diagnosis_queue_url}, out)
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


# ---------------------------------------------------------------------------------------------
# Output


def collect(args: argparse.Namespace, key: str, fetch: Callable[[str | None], dict[str, Any]]) -> dict[str, Any]:
    """One page of a read API answer from `--cursor`, or with `--all` every page merged (`next` then None)."""
    answer = fetch(args.cursor)
    if not args.all:
        return answer
    items = list(answer.get(key) or [])
    page = answer
    while page.get("next"):
        page = fetch(str(page["next"]))
        items.extend(page.get(key) or [])
    return {**answer, key: items, "next": None}


def write_json(answer: Any, out: TextIO) -> int:
    json.dump(answer, out, indent=2, default=str)
    out.write("\n")
    return 0


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Left-aligned columns two spaces apart; None as '-', booleans as yes/no."""
    cells = [list(headers), *([_cell(value) for value in row] for row in rows)]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    lines = ("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() for row in cells)
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _more(answer: Mapping[str, Any], out: TextIO) -> None:
    if answer.get("next"):
        out.write(f"\nMore: --all for every page, or --cursor {answer['next']} for the next.\n")


def _cause(account: Mapping[str, Any]) -> Any:
    latest = account.get("latest_verdict") or {}
    return latest.get("cause")


# ---------------------------------------------------------------------------------------------
# console


def console_command(args: argparse.Namespace, context: Context, out: TextIO) -> int:
    """Serves the operator console on 127.0.0.1 until Ctrl-C, over the same core as the read API."""
    # Imported here: the other commands never load Starlette and uvicorn.
    from account_doctor_console.pages import build_sources
    from account_doctor_console.serve import bind, probe, serve_forever, url_of

    sources = build_sources(context.target.settings)
    listener = bind(args.port)
    try:
        probe(sources)
        mode = " (read-only: Release and Resolve are hidden)" if args.read_only else ""
        out.write(f"Account Doctor console for {context.target.source}{mode}: {url_of(listener)}\n")
        out.write("Ctrl-C stops it.\n")
        out.flush()
        serve_forever(sources, listener, read_only=args.read_only)
    finally:
        listener.close()
    return 0
