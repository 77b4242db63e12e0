"""The operator CLI as an operator sees it: answers (tables, masked addresses, --json as the read API returns
it, paging), and every mistake as one line on stderr with exit status 2, never a traceback."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import responses
from botocore.exceptions import ClientError
from moto import mock_aws

from account_doctor.accounts_api import InvalidRequest, NotFound
from account_doctor.census import Tally
from account_doctor.feed import Destination, feed_health
from account_doctor.models import AccountEvent
from account_doctor.ports import ReadApi
from account_doctor.settings import Settings, get_settings
from account_doctor.stores.census import CensusAggregates
from account_doctor.stores.dynamo import Table
from account_doctor.stores.events import EventHistory
from account_doctor.stores.watch import WatchStore
from account_doctor_cli import main as cli
from account_doctor_cli import stack
from local_stack.template import ProvisionedStack
from tests.integration import nylas_api

ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,199}$")


# ---------------------------------------------------------------------------------------------
# An in-memory read API with the AccountsApi's interface: lists page by `limit` and an index cursor.


def _page(items: list[dict[str, Any]], limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    if cursor is not None and not cursor.isdigit():
        raise InvalidRequest("next is not a cursor this API returned; pass the `next` value of the previous page")
    start = int(cursor or 0)
    end = start + limit
    return items[start:end], (str(end) if end < len(items) else None)


@dataclass
class FakeReadApi:
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    domains: dict[str, dict[str, Any]] = field(default_factory=dict)
    broken: list[dict[str, Any]] = field(default_factory=list)
    incidents_by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def account(self, account_id: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
        if not ACCOUNT_ID.match(account_id):
            raise InvalidRequest("account_id must be a Nylas grant or account id (letters, digits, - _ . : @ + =)")
        found = self.accounts.get(account_id)
        if found is None:
            raise NotFound(f"no events or verdicts for account {account_id}")
        verdicts, following = _page(found["verdicts"], limit, cursor)
        return {**found, "verdicts": verdicts, "next": following}

    def domain(self, domain: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
        if "." not in domain or " " in domain:
            raise InvalidRequest("domain must be an email domain such as example.com")
        found = self.domains.get(domain)
        if found is None:
            raise NotFound(f"no failures or verdicts for domain {domain}")
        verdicts, following = _page(found["verdicts"], limit, cursor)
        return {**found, "verdicts": verdicts, "next": following}

    def broken_accounts(self, *, limit: int, cursor: str | None) -> dict[str, Any]:
        accounts, following = _page(self.broken, limit, cursor)
        return {"accounts": accounts, "next": following}

    def incidents_list(self, *, status: str, limit: int, cursor: str | None) -> dict[str, Any]:
        chosen = [_summary(i) for i in self.incidents_by_id.values() if status in ("all", i["status"])]
        incidents, following = _page(chosen, limit, cursor)
        return {"incidents": incidents, "next": following}

    def incident(self, incident_id: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
        found = self._incident(incident_id)
        members, following = _page(found["members"], limit, cursor)
        return {**found, "members": members, "next": following}

    def release_incident(self, incident_id: str) -> dict[str, Any]:
        self.calls.append(("release", incident_id))
        return {**_summary(self._incident(incident_id)), "released_at": "2026-11-20T11:00:00Z", "release": "started"}

    def resolve_incident(self, incident_id: str) -> dict[str, Any]:
        self.calls.append(("resolve", incident_id))
        return {**_summary(self._incident(incident_id)), "status": "resolved"}

    def recovery_report(self, days: str | int | None = None) -> dict[str, Any]:
        self.calls.append(("report", days))
        row = {
            "failures": 4,
            "recovered": 3,
            "recovered_by": {"reauthentication": 1, "healed": 0, "replaced": 1, "sweep": 1},
            "still_broken": 1,
            "removed": 0,
            "emailed": 4,
            "reminded": 2,
            "clicked": 1,
            "median_hours_to_recover": 8,
            "p90_hours_to_recover": None,
            "recovered_within_72h": 2,
        }
        return {
            "since": "2026-11-01T00:00:00Z",
            "until": "2026-11-30T12:00:00Z",
            "connected": None,
            "broken_now": 1,
            "causes": [{"cause": "password_changed", **row}],
            "totals": row,
            "daily": [],
        }

    def health(self) -> dict[str, Any]:
        self.calls.append(("health", None))
        return {"webhook_feed": {"status": "unknown", "checked_at": None, "destinations": []}, "connectors": [],
                "testing_mode_at_risk": 0}  # fmt: skip

    def _incident(self, incident_id: str) -> dict[str, Any]:
        if not incident_id.startswith(("domain-", "connector-", "testing_mode-")):
            raise InvalidRequest("incident_id must be an id the incidents list returned")
        if incident_id not in self.incidents_by_id:
            raise NotFound(f"no incident {incident_id}")
        return self.incidents_by_id[incident_id]


def _summary(incident: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in incident.items() if key != "members"}


def _verdict(n: int, cause: str = "password_changed") -> dict[str, Any]:
    return {
        "event_id": f"evt-{n}",
        "account_id": "grant-yahoo",
        "trigger": "grant.expired",
        "occurred_at": f"2026-11-{20 - n:02d}T10:00:00Z",
        "cause": cause,
        "confidence": "high",
        "summary": "The password changed.",
        "actions": ["Reconnect the mailbox."],
        "recurring": n == 0,
        "notifications": [
            {"kind": "reconnect", "to": "ivy.long@yahoo.com", "status": "sent", "sent_at": "2026-11-20T10:03:00Z"}
        ],
    }


INCIDENT_ID = "domain-acme.example-20261120T1000-1a2b3c"
UNKNOWN_INCIDENT = "domain-nope.example-20261120T1000-000000"
INCIDENT = {
    "incident_id": INCIDENT_ID,
    "kind": "domain",
    "key": "acme.example",
    "cause": "admin_disconnected",
    "status": "open",
    "accounts": 3,
    "domains": 1,
    "opened_at": "2026-11-20T10:00:00Z",
    "last_failure_at": "2026-11-20T10:09:00Z",
    "held_emails": 2,
    "members": [
        {"account_id": "grant-acme-1", "email": "ann.smith@acme.example", "latest_cause": "admin_disconnected",
         "recovered": False},
        {"account_id": "grant-acme-2", "email": "bob.jones@acme.example", "latest_cause": "admin_disconnected",
         "recovered": True},
    ],
}  # fmt: skip


def _fake() -> FakeReadApi:
    return FakeReadApi(
        accounts={
            "grant-yahoo": {
                "account_id": "grant-yahoo",
                "status": "broken",
                "latest_verdict": _verdict(0),
                "verdicts": [_verdict(n) for n in range(5)],
            }
        },
        domains={
            "acme.example": {
                "domain": "acme.example",
                "free_mail": False,
                "cluster_threshold": 3,
                "burst": {"minutes": 15, "failing_accounts": 3, "account_ids": ["grant-acme-1"]},
                "window": {"days": 7, "failing_accounts": 3, "account_ids": ["grant-acme-1"]},
                "verdicts": [{**_verdict(n, "admin_disconnected"), "account_id": f"grant-acme-{n}"} for n in range(3)],
            }
        },
        broken=[
            {
                "account_id": f"grant-{n}",
                "email": f"user{n}.name@example.org",
                "provider": "google",
                "since": f"2026-11-2{n}T08:00:00Z",
                "latest_verdict": _verdict(n, "oauth_revoked"),
            }
            for n in range(3)
        ],
        incidents_by_id={INCIDENT_ID: INCIDENT},
    )


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def environment(aws: ProvisionedStack) -> ProvisionedStack:
    """The stack's resources in moto, with the functions' environment set: the CLI's target is found from it."""
    return aws


@pytest.fixture
def cli_run(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., Run]]:
    # The CLI points the whole process at the chosen profile and region (os.environ), as a command should;
    # the environment is restored afterwards, so no later test (of any suite) runs under `--profile nope`.
    saved = dict(os.environ)

    def run(*argv: str, api: ReadApi | None = None) -> Run:
        out = io.StringIO()
        code = cli.main(list(argv), out=out, read_api=None if api is None else (lambda _settings: api))
        captured = capsys.readouterr()
        return Run(code, out.getvalue() + captured.out, captured.err)

    yield run
    os.environ.clear()
    os.environ.update(saved)


def assert_operator_mistake(run: Run, *expected: str) -> None:
    """Exit status 2, one line on stderr that starts with the program's name, nothing on stdout."""
    assert run.code == 2, run
    assert "Traceback" not in run.err
    assert run.err.startswith("account-doctor: "), run.err
    assert run.err.endswith("\n"), run.err
    assert run.err.count("\n") == 1, run.err
    assert run.out == ""
    for text in expected:
        assert text in run.err


# ---------------------------------------------------------------------------------------------
# Finding the stack: each mistake is one line and exit 2


def test_missing_stack_names_the_fix(cli_run: Callable[..., Run]) -> None:
    with mock_aws():
        run = cli_run("--stack-name", "nope", "--region", "eu-west-1", "verdicts", "grant-1")
    assert_operator_mistake(run, "stack nope", "eu-west-1", "sam deploy")


def test_unknown_config_env(cli_run: Callable[..., Run]) -> None:
    assert_operator_mistake(cli_run("--config-env", "staging", "redrive"), "no [staging] environment", "default, prod")


def test_samconfig_without_a_stack_name(cli_run: Callable[..., Run], tmp_path: Path) -> None:
    samconfig = tmp_path / "samconfig.toml"
    samconfig.write_text('version = 0.1\n[default.global.parameters]\nregion = "eu-west-1"\n', encoding="utf-8")
    assert_operator_mistake(cli_run("--samconfig", str(samconfig), "broken"), "--stack-name", "make serve")


def test_env_file_must_exist(cli_run: Callable[..., Run], tmp_path: Path) -> None:
    assert_operator_mistake(
        cli_run("--env-file", str(tmp_path / "missing.env"), "verdicts", "grant-1"), "missing.env", "make serve"
    )


def test_env_file_must_hold_the_functions_environment(cli_run: Callable[..., Run], tmp_path: Path) -> None:
    env_file = tmp_path / "other.env"
    env_file.write_text("# not ours\nFOO=bar\n", encoding="utf-8")
    assert_operator_mistake(cli_run("--env-file", str(env_file), "broken"), "VERDICTS_TABLE", "out/local-stack.env")


def test_incomplete_environment_names_the_missing_variables(
    cli_run: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERDICTS_TABLE", "verdicts")
    monkeypatch.setenv("DIAGNOSIS_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/1/q")
    assert_operator_mistake(cli_run("broken"), "EVENTS_TABLE is not set")


@pytest.fixture
def no_aws_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials or region from anywhere: environment, ~/.aws, or the instance metadata service."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("no_aws_configuration")
def test_no_aws_credentials(cli_run: Callable[..., Run]) -> None:
    assert_operator_mistake(
        cli_run("--stack-name", "account-doctor", "--region", "eu-west-1", "verdicts", "grant-1"),
        "no usable AWS credentials",
        "--profile",
    )


@pytest.mark.usefixtures("no_aws_configuration")
def test_no_aws_region(cli_run: Callable[..., Run], tmp_path: Path) -> None:
    run = cli_run("--samconfig", str(tmp_path / "none.toml"), "--stack-name", "account-doctor", "broken")
    assert_operator_mistake(run, "no AWS region", "--region")


@pytest.mark.usefixtures("no_aws_configuration")
def test_unknown_aws_profile(cli_run: Callable[..., Run]) -> None:
    run = cli_run("--stack-name", "account-doctor", "--profile", "nope", "--region", "eu-west-1", "broken")
    assert_operator_mistake(run, "nope", "--profile")


def test_access_denied_on_describe(cli_run: Callable[..., Run], monkeypatch: pytest.MonkeyPatch) -> None:
    class DeniedSession:
        region_name = "eu-west-1"

        def __init__(self, **_: Any) -> None:
            pass

        def client(self, _service: str) -> Any:
            return self

        def describe_stacks(self, **_: Any) -> Any:
            error = {"Code": "AccessDenied", "Message": "User: arn:aws:iam::1:user/x is not authorized\nto describe"}
            raise ClientError({"Error": error}, "DescribeStacks")

    monkeypatch.setattr(stack.boto3, "Session", DeniedSession)
    run = cli_run("--stack-name", "account-doctor", "broken")
    assert_operator_mistake(run, "AccessDenied", "not authorized to describe")


# ---------------------------------------------------------------------------------------------
# Reading through the read API: answers, --json, paging, and the mistakes


@pytest.mark.usefixtures("environment")
def test_verdicts_prints_the_account_with_masked_addresses(cli_run: Callable[..., Run]) -> None:
    run = cli_run("verdicts", "grant-yahoo", "--limit", "2", api=_fake())
    assert run.code == 0, run.err
    assert run.out.startswith("Account grant-yahoo: broken (2 verdicts)\n")
    assert "password_changed (high, recurring)" in run.out
    assert "✉ reconnect to i***@yahoo.com (sent, 2026-11-20T10:03:00Z)" in run.out
    assert "ivy.long" not in run.out
    assert "More: --all for every page, or --cursor 2 for the next." in run.out


@pytest.mark.usefixtures("environment")
def test_verdicts_all_follows_every_page(cli_run: Callable[..., Run]) -> None:
    run = cli_run("verdicts", "grant-yahoo", "--limit", "2", "--all", "--json", api=_fake())
    answer = json.loads(run.out)
    assert [v["event_id"] for v in answer["verdicts"]] == [f"evt-{n}" for n in range(5)]
    assert answer["next"] is None


@pytest.mark.usefixtures("environment")
def test_verdicts_cursor_starts_at_that_page(cli_run: Callable[..., Run]) -> None:
    run = cli_run("verdicts", "grant-yahoo", "--limit", "2", "--cursor", "4", "--json", api=_fake())
    assert [v["event_id"] for v in json.loads(run.out)["verdicts"]] == ["evt-4"]


@pytest.mark.usefixtures("environment")
def test_domain_prints_the_windows_and_a_verdict_table(cli_run: Callable[..., Run]) -> None:
    run = cli_run("domain", "acme.example", api=_fake())
    assert run.code == 0, run.err
    assert "failing accounts in the last 15 min: 3 (threshold 3)" in run.out
    assert re.search(r"^OCCURRED\s+ACCOUNT\s+CAUSE\s+INCIDENT$", run.out, re.MULTILINE)
    assert re.search(r"^2026-11-18T10:00:00Z\s+grant-acme-2\s+admin_disconnected\s+-$", run.out, re.MULTILINE)


@pytest.mark.usefixtures("environment")
def test_broken_is_a_table_with_masked_addresses(cli_run: Callable[..., Run]) -> None:
    run = cli_run("broken", api=_fake())
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert re.fullmatch(r"ACCOUNT\s+EMAIL\s+PROVIDER\s+SINCE\s+CAUSE", lines[0])
    assert re.fullmatch(r"grant-0\s+u\*\*\*@example\.org\s+google\s+2026-11-20T08:00:00Z\s+oauth_revoked", lines[1])
    assert "user0.name" not in run.out
    assert len(lines) == 4


@pytest.mark.usefixtures("environment")
def test_broken_pages(cli_run: Callable[..., Run]) -> None:
    first = json.loads(cli_run("broken", "--limit", "2", "--json", api=_fake()).out)
    assert [a["account_id"] for a in first["accounts"]] == ["grant-0", "grant-1"]
    assert first["next"] == "2"
    every = json.loads(cli_run("broken", "--limit", "1", "--all", "--json", api=_fake()).out)
    assert [a["account_id"] for a in every["accounts"]] == ["grant-0", "grant-1", "grant-2"]
    assert every["next"] is None


@pytest.mark.usefixtures("environment")
def test_no_broken_accounts_says_so(cli_run: Callable[..., Run]) -> None:
    run = cli_run("broken", api=FakeReadApi())
    assert run.code == 0
    assert run.out.startswith("No broken accounts in the environment")


@pytest.mark.usefixtures("environment")
def test_incidents_table_by_status(cli_run: Callable[..., Run]) -> None:
    run = cli_run("incidents", api=_fake())
    assert run.code == 0, run.err
    header, row = run.out.splitlines()
    assert header.split() == ["INCIDENT", "KIND", "KEY", "CAUSE", "STATUS", "ACCOUNTS", "DOMAINS", "OPENED", "LAST",
                              "FAILURE", "HELD"]  # fmt: skip
    assert row.split() == [INCIDENT_ID, "domain", "acme.example", "admin_disconnected", "open", "3", "1",
                           "2026-11-20T10:00:00Z", "2026-11-20T10:09:00Z", "2"]  # fmt: skip
    assert cli_run("incidents", "--status", "resolved", api=_fake()).out.startswith("No resolved incidents")


@pytest.mark.usefixtures("environment")
def test_incident_shows_its_members_masked_and_how_to_release(cli_run: Callable[..., Run]) -> None:
    run = cli_run("incident", INCIDENT_ID, api=_fake())
    assert run.code == 0, run.err
    assert (
        "Incident domain-acme.example-20261120T1000-1a2b3c: domain acme.example, cause admin_disconnected, open"
        in run.out
    )
    assert "2 customer emails held" in run.out
    assert "account-doctor incident release domain-acme.example-20261120T1000-1a2b3c" in run.out
    assert re.search(r"^grant-acme-1\s+a\*\*\*@acme\.example\s+admin_disconnected\s+no$", run.out, re.MULTILINE)
    assert re.search(r"^grant-acme-2\s+b\*\*\*@acme\.example\s+admin_disconnected\s+yes$", run.out, re.MULTILINE)
    assert "ann.smith" not in run.out


@pytest.mark.usefixtures("environment")
@pytest.mark.parametrize(
    ("action", "said"), [("release", "Released the held customer emails"), ("resolve", "Resolved")]
)
def test_incident_release_and_resolve_call_the_api(cli_run: Callable[..., Run], action: str, said: str) -> None:
    api = _fake()
    run = cli_run("incident", action, INCIDENT_ID, api=api)
    assert run.code == 0, run.err
    assert api.calls == [(action, INCIDENT_ID)]
    assert run.out.startswith(f"{said} ")


JSON_CASES: dict[str, tuple[list[str], Callable[[FakeReadApi], Any]]] = {
    "verdicts": (["verdicts", "grant-yahoo"], lambda api: api.account("grant-yahoo", limit=50, cursor=None)),
    "domain": (["domain", "acme.example"], lambda api: api.domain("acme.example", limit=50, cursor=None)),
    "broken": (["broken"], lambda api: api.broken_accounts(limit=50, cursor=None)),
    "incidents": (
        ["incidents", "--status", "all"],
        lambda api: api.incidents_list(status="all", limit=50, cursor=None),
    ),
    "incident": (["incident", INCIDENT_ID], lambda api: api.incident(INCIDENT_ID, limit=50, cursor=None)),
    "release": (["incident", "release", INCIDENT_ID], lambda api: api.release_incident(INCIDENT_ID)),
    "resolve": (["incident", "resolve", INCIDENT_ID], lambda api: api.resolve_incident(INCIDENT_ID)),
}


@pytest.mark.usefixtures("environment")
@pytest.mark.parametrize(("argv", "answer"), JSON_CASES.values(), ids=JSON_CASES.keys())
def test_json_is_the_read_api_answer(
    cli_run: Callable[..., Run], argv: list[str], answer: Callable[[FakeReadApi], Any]
) -> None:
    """--json prints exactly what the read API answers (here a fake of it), unmasked, and nothing else."""
    run = cli_run(*argv, "--json", api=_fake())
    assert run.code == 0, run.err
    assert json.loads(run.out) == answer(_fake())
    assert run.err == ""


@pytest.mark.usefixtures("environment")
def test_incident_all_pages_its_members(cli_run: Callable[..., Run]) -> None:
    run = cli_run("incident", INCIDENT_ID, "--limit", "1", "--all", "--json", api=_fake())
    answer = json.loads(run.out)
    assert [m["account_id"] for m in answer["members"]] == ["grant-acme-1", "grant-acme-2"]
    assert answer["next"] is None


@pytest.mark.usefixtures("environment")
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["verdicts", "grant never/seen"], "account_id must be a Nylas grant or account id"),
        (["verdicts", "grant-never-seen"], "No events or verdicts for account grant-never-seen"),
        (["domain", "not a domain"], "domain must be an email domain"),
        (["domain", "never.example"], "No failures or verdicts for domain never.example"),
        (["incident", UNKNOWN_INCIDENT], "unknown incident domain-nope.example-20261120T1000-000000"),
        (["incident", "release", UNKNOWN_INCIDENT], "unknown incident domain-nope.example-20261120T1000-000000"),
        (
            ["incident", "resolve", UNKNOWN_INCIDENT, "--json"],
            "unknown incident domain-nope.example-20261120T1000-000000",
        ),
        (["incident", "close", INCIDENT_ID], "incident [release|resolve] INCIDENT_ID"),
        (["incident", "acme"], "incident_id must be an id the incidents list returned"),
        (["broken", "--cursor", "not-ours"], "next is not a cursor this API returned"),
    ],
    ids=lambda value: value[0] if isinstance(value, list) and len(value) == 2 else None,
)
def test_read_mistakes_are_one_line(cli_run: Callable[..., Run], argv: list[str], expected: str) -> None:
    assert_operator_mistake(cli_run(*argv, api=_fake()), expected)


@pytest.mark.usefixtures("environment")
def test_report_is_a_table_by_cause_from_the_read_api(cli_run: Callable[..., Run]) -> None:
    api = _fake()
    run = cli_run("report", "--days", "30", api=api)
    assert run.code == 0, run.err
    assert ("report", 30) in api.calls
    lines = run.out.splitlines()
    assert lines[0] == "Recovery of the accounts that broke 2026-11-01 .. 2026-11-30 (1 broken now)"
    assert lines[2].split() == ["CAUSE", "FAILURES", "RECOVERED", "MEDIAN", "H", "P90", "H", "WITHIN", "72H", "STILL",
                                "BROKEN", "EMAILED", "REMINDED"]  # fmt: skip
    assert lines[3].split() == ["password_changed", "4", "3", "≤", "8", ">", "720", "2", "1", "4", "2"]
    assert lines[4].split()[0] == "all"
    assert "replaced by a new grant 1, found by the sweep 1" in run.out
    assert json.loads(cli_run("report", "--json", api=api).out)["totals"]["recovered"] == 3


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--days", "0"],
        ["report", "--days", "91"],
        ["report", "--days", "a week"],
        ["broken", "--limit", "0"],
        ["broken", "--limit", "101"],
        ["incidents", "--status", "closed"],
        ["redrive", "--max", "x"],
    ],
)
def test_usage_mistakes_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv, out=io.StringIO())
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if argv[0] == "report":
        assert "days must be a whole number from 1 to 90" in err


# ---------------------------------------------------------------------------------------------
# diagnose: the account's latest recorded failure, against moto and Nylas at its real URLs


@pytest.fixture
def nylas() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def _history(environment: ProvisionedStack) -> EventHistory:
    return EventHistory(Table(Settings.from_env(environment.function_environment()).events_table))


def _event(account_id: str, trigger: str, at: str, *, api_version: str, **extra: Any) -> AccountEvent:
    return AccountEvent.from_dict(
        {"event_id": f"{account_id}-{at}", "api_version": api_version, "trigger": trigger, "account_id": account_id,
         "occurred_at": at, **extra}
    )  # fmt: skip


def test_diagnose_uses_the_stored_version_and_failure_time(
    cli_run: Callable[..., Run], environment: ProvisionedStack, nylas: responses.RequestsMock
) -> None:
    history = _history(environment)
    history.put_event(_event("acct-imap", "account.running", "2026-11-01T09:00:00Z", api_version="v2"))
    history.put_event(
        _event("acct-imap", "account.stopped", "2026-11-10T09:00:00Z", api_version="v2", provider="imap",
               email="sam.stone@example.org")
    )  # fmt: skip
    nylas_api.v2_account(nylas, "acct-imap", sync_state="stopped", provider="imap", email="sam.stone@example.org")

    run = cli_run("diagnose", "acct-imap")
    assert run.code == 0, run.err
    assert run.out.startswith(
        "Diagnosing v2 account acct-imap: its latest failure, account.stopped at 2026-11-10T09:00:00Z"
    )
    assert "Verdict: imap_sync_errors" in run.out
    assert run.out.endswith("Dry run: nothing was recorded and no email was sent.\n")

    answer = json.loads(cli_run("diagnose", "acct-imap", "--json").out)
    assert answer["from_history"] is True
    assert answer["evidence"]["event"]["api_version"] == "v2"
    assert answer["evidence"]["event"]["occurred_at"] == "2026-11-10T09:00:00Z"
    assert answer["evidence"]["event"]["event_id"] == "acct-imap-2026-11-10T09:00:00Z"
    assert answer["evidence"]["failures_last_30_days"] == 1
    assert answer["diagnosis"]["cause"] == "imap_sync_errors"


@pytest.mark.usefixtures("environment")
def test_diagnose_without_history_diagnoses_as_of_now(
    cli_run: Callable[..., Run], nylas: responses.RequestsMock
) -> None:
    nylas_api.grant(nylas, "grant-fresh", provider="microsoft", email="kim.lee@example.org")
    run = cli_run("diagnose", "grant-fresh")
    assert run.code == 0, run.err
    assert run.out.startswith("Diagnosing v3 account grant-fresh as if it reported grant.expired now")
    assert "Verdict: " in run.out


@pytest.mark.usefixtures("environment")
def test_diagnose_unknown_account_is_a_mistake(cli_run: Callable[..., Run], nylas: responses.RequestsMock) -> None:
    nylas_api.grant_gone(nylas, "grant-typo")
    assert_operator_mistake(cli_run("diagnose", "grant-typo"), "unknown account grant-typo", "--v2")


@pytest.mark.usefixtures("environment")
def test_diagnose_malformed_account_id(cli_run: Callable[..., Run]) -> None:
    assert_operator_mistake(cli_run("diagnose", "../grants"), "not a Nylas grant or account id")


def test_diagnose_version_conflict_is_a_mistake(cli_run: Callable[..., Run], environment: ProvisionedStack) -> None:
    _history(environment).put_event(_event("grant-g", "grant.expired", "2026-11-10T09:00:00Z", api_version="v3"))
    assert_operator_mistake(cli_run("diagnose", "grant-g", "--v2"), "its history says v3", "--v2 says v2")


@pytest.mark.usefixtures("environment")
def test_diagnose_rejected_nylas_credentials(cli_run: Callable[..., Run], nylas: responses.RequestsMock) -> None:
    nylas.get(f"{nylas_api.V3}/v3/grants/grant-1", status=401, json={"error": {"type": "unauthorized"}})
    assert_operator_mistake(cli_run("diagnose", "grant-1"), "Nylas answered 401", "api_key")


# ---------------------------------------------------------------------------------------------
# redrive


def test_redrive_json_counts_the_moved_messages(cli_run: Callable[..., Run], environment: ProvisionedStack,
                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import boto3

    sqs = boto3.client("sqs")
    dlq_url = sqs.create_queue(QueueName="cli-test-dlq")["QueueUrl"]
    for n in range(3):
        sqs.send_message(QueueUrl=dlq_url, MessageBody=json.dumps({"n": n}))
    monkeypatch.setenv(stack.DLQ_ENV, dlq_url)
    run = cli_run("redrive", "--json")
    assert run.code == 0, run.err
    answer = json.loads(run.out)
    assert answer["moved"] == 3
    assert answer["from"] == dlq_url


@pytest.mark.usefixtures("environment")
def test_redrive_without_a_dlq_url(cli_run: Callable[..., Run], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(stack.DLQ_ENV, raising=False)
    assert_operator_mistake(cli_run("redrive"), stack.DLQ_ENV)


# ---------------------------------------------------------------------------------------------
# The real read API over the stack's tables in moto: the CLI builds it as AccountsApiFunction does


def test_the_real_read_api_answers_broken_and_verdicts(
    cli_run: Callable[..., Run], environment: ProvisionedStack
) -> None:
    _history(environment).put_event(
        _event("grant-broken", "grant.expired", "2026-11-21T07:00:00Z", api_version="v3", provider="google",
               email="lee.park@corp.example")
    )  # fmt: skip
    run = cli_run("broken")
    assert run.code == 0, run.err
    assert re.search(r"^grant-broken\s+l\*\*\*@corp\.example\s+google\s+2026-11-21T07:00:00Z\s+-$", run.out, re.M)
    answer = json.loads(cli_run("broken", "--json").out)
    assert [a["account_id"] for a in answer["accounts"]] == ["grant-broken"]
    assert answer["next"] is None
    verdicts = json.loads(cli_run("verdicts", "grant-broken", "--json").out)
    assert verdicts["status"] == "unknown"  # failed, not diagnosed yet
    assert verdicts["verdicts"] == []


@pytest.mark.usefixtures("environment")
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["verdicts", "grant never/seen"], "account_id must be a Nylas grant or account id"),
        (["verdicts", "grant-never-seen"], "No events or verdicts for account grant-never-seen"),
        (["domain", "not a domain"], "domain must be an email domain"),
        (["domain", "never.example"], "No failures or verdicts for domain never.example"),
        (["incident", UNKNOWN_INCIDENT], f"unknown incident {UNKNOWN_INCIDENT}"),
        (["incident", "resolve", UNKNOWN_INCIDENT], f"unknown incident {UNKNOWN_INCIDENT}"),
        (["incident", "acme"], "incident_id must be"),
        (["broken", "--cursor", "not-ours"], "next is not a cursor"),
    ],
)
def test_the_real_read_api_mistakes_are_one_line(cli_run: Callable[..., Run], argv: list[str], expected: str) -> None:
    assert_operator_mistake(cli_run(*argv), expected)


@pytest.mark.usefixtures("environment")
def test_health_prints_the_feed_the_connectors_and_the_clock(cli_run: Callable[..., Run]) -> None:
    """The real read API on moto: the feed as the sweep stored it, the census's counts, the secret's clock."""
    settings = get_settings()
    table = Table(settings.events_table)
    feed = feed_health([Destination("wh-1", "failing", ("grant.created", "grant.updated", "grant.deleted"))])
    WatchStore(table).record_feed_check(
        previous=None,
        status=feed.status,
        checked_at="2026-12-01T09:00:00Z",
        destinations=feed.to_dict(None)["destinations"],
        changed=True,
    )
    tally = Tally(census_id="2026-12-01T00:00:00Z", grants=12, connectors={"google": [10, 2], "microsoft": [2, 0]})
    CensusAggregates(table).publish(tally, "2026-12-01T00:01:00Z")

    run = cli_run("health")
    assert run.code == 0, run.err
    assert "Webhook feed: unhealthy (checked 2026-12-01T09:00:00Z)" in run.out
    assert re.search(r"^wh-1\s+failing\s+grant.created,grant.updated,grant.deleted\s+grant.expired$", run.out, re.M)
    assert re.search(r"^google\s+10\s+2\s+2026-12-01T00:01:00Z\s+-\s+-$", run.out, re.M)
    assert "Google grants at risk of testing mode: 0" in run.out

    answer = json.loads(cli_run("health", "--json").out)
    assert answer["webhook_feed"]["destinations"][0]["missing"] == ["grant.expired"]
    assert [c["connector"] for c in answer["connectors"]] == ["google", "microsoft", "ews", "imap", "yahoo", "icloud"]
