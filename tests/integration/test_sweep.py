"""The reconciliation sweep (SPEC §3b): SweepFunction and DiagnosisFunction in-process, on the template's queue
and tables in moto, against the Nylas simulator over real HTTP (its list endpoints, their paging and faults).

What a user sees: which failures land on the diagnosis queue, the verdicts they end as and the emails sent.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
import pytest
import responses
from responses import matchers

from account_doctor.models import AccountEvent, from_epoch, iso
from account_doctor.nylas import NylasClient
from account_doctor.settings import SweepSettings, get_settings
from account_doctor.stores.dynamo import Table
from account_doctor.stores.events import EventHistory
from account_doctor.stores.incidents import IncidentStore
from account_doctor.stores.verdicts import VerdictStore, page_verdicts
from account_doctor.sweep import sweep_event_id
from local_stack.bus import capture_bus, drain
from local_stack.payloads import (
    TEST_SECRET,
    FakeLambdaContext,
    json_body,
    load_handler,
    nylas_v2_account,
    nylas_v3_grant,
    signed_webhook_event,
)
from local_stack.payloads import v3_notification as v3_webhook
from local_stack.poller import sqs_event
from local_stack.simulator import V2_LIST, V3_LIST, Grant, NylasSimulator, V2Account
from local_stack.sweep_demo import scheduled_event
from local_stack.template import ProvisionedStack, default_parameters, load_template
from tests.conftest import EVENTS_DIR, load_event
from tests.integration.ses import ses_outbox

DAY = 86_400
NOW = time.time()


@pytest.fixture
def stack_parameters() -> dict[str, str]:
    # No grace period: a failure's diagnose message is visible at once, so the test can drain the queue.
    return {"GraceSeconds": "0"}


@pytest.fixture
def simulator(aws: ProvisionedStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[NylasSimulator]:
    with NylasSimulator(
        api_key=TEST_SECRET["api_key"], client_id=TEST_SECRET["client_id"], client_secret=TEST_SECRET["client_secret"]
    ) as running:
        monkeypatch.setenv("NYLAS_API_URI", running.url)
        monkeypatch.setenv("NYLAS_V2_API_URI", running.url)
        get_settings.cache_clear()
        yield running


class Stack:
    """The sweep, the webhook and the diagnosis, cold-started on moto; the diagnosis queue drained by hand."""

    def __init__(self, aws: ProvisionedStack, monkeypatch: pytest.MonkeyPatch) -> None:
        # Every message the functions send to SQS, as (event, stage): reading 460 messages back from moto's
        # queue takes longer than the sweep that sent them. A fresh default session: only this test's clients.
        self.sent: list[tuple[AccountEvent, str]] = []
        session = boto3.Session()
        session.events.register("before-parameter-build.sqs.SendMessageBatch", self._sending)
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
        self.sweeper: ModuleType = load_handler("sweep")
        self._diagnosis: ModuleType | None = None
        self._webhook: ModuleType | None = None
        self.sqs = boto3.client("sqs")
        self.queue_url = aws.physical["DiagnosisQueue"]
        self.queue_arn = aws.attributes[("DiagnosisQueue", "Arn")]
        self.verdict_store = VerdictStore(Table(aws.physical["VerdictsTable"]))
        self.history = EventHistory(Table(aws.physical["EventsTable"]))

    def sweep(self) -> dict[str, Any]:
        summary: dict[str, Any] = self.sweeper.lambda_handler(
            load_event("sweep-scheduled.json"), FakeLambdaContext("SweepFunction", 300)
        )
        return summary

    def _sending(self, params: dict[str, Any], **_: Any) -> None:
        for entry in params["Entries"]:
            stage = entry["MessageAttributes"]["stage"]["StringValue"]
            self.sent.append((AccountEvent.from_json(entry["MessageBody"]), stage))

    def sent_since(self, start: int) -> list[tuple[AccountEvent, str]]:
        return self.sent[start:]

    def webhook(self, payload: dict[str, Any]) -> None:
        self._webhook = self._webhook or load_handler("webhook")
        event = signed_webhook_event(json_body(payload), TEST_SECRET["webhook_secret"])
        assert self._webhook.lambda_handler(event, FakeLambdaContext("WebhookFunction", 10))["statusCode"] == 200

    def drain(self, *, diagnose: bool) -> list[tuple[AccountEvent, str]]:
        """Every message on the queue as (event, stage); with `diagnose`, DiagnosisFunction processes each batch
        first, as its event source mapping would: a record it reports failed stays and comes back (at once
        here), and the queue must end empty."""
        taken: list[tuple[AccountEvent, str]] = []
        for _ in range(100):
            messages: list[dict[str, Any]] = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
                VisibilityTimeout=0,
            ).get("Messages", [])  # type: ignore[assignment]
            if not messages:
                return taken
            failed: set[str] = set()
            if diagnose:
                self._diagnosis = self._diagnosis or load_handler("diagnosis")
                response = self._diagnosis.lambda_handler(
                    sqs_event(messages, self.queue_arn), FakeLambdaContext("DiagnosisFunction", 60)
                )
                failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
            done = [m for m in messages if m["MessageId"] not in failed]
            for message in done:
                stage = message["MessageAttributes"]["stage"]["StringValue"]
                taken.append((AccountEvent.from_json(message["Body"]), stage))
            if done:
                self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
        raise AssertionError("the diagnosis queue never drained: some record keeps failing")

    def record(self, messages: list[tuple[AccountEvent, str]]) -> None:
        """What the `record` copies do, without diagnosing: store each event in the history."""
        for event, stage in messages:
            if stage == "record":
                self.history.put_event(event)

    def verdicts(self, account_id: str) -> list[Any]:
        return page_verdicts(self.verdict_store.account_verdicts(account_id, limit=50))


@pytest.fixture
def stack(aws: ProvisionedStack, simulator: NylasSimulator, monkeypatch: pytest.MonkeyPatch) -> Stack:
    return Stack(aws, monkeypatch)


def broken_grant(grant_id: str, email: str, *, provider: str = "yahoo", broke_days_ago: float = 0.1) -> Grant:
    """An invalid grant that broke `broke_days_ago` (its updated_at), connected 60 days ago."""
    return Grant(grant_id, email, provider, "invalid", int(NOW - 60 * DAY), int(NOW - broke_days_ago * DAY))


def diagnosed(messages: list[tuple[AccountEvent, str]]) -> list[AccountEvent]:
    return [event for event, stage in messages if stage == "diagnose"]


def emails_to(address: str) -> int:
    return sum(1 for message in ses_outbox() if address in message.to)


# --- Missed webhooks are found, once --------------------------------------------------------------------------


def test_a_missed_grant_is_diagnosed_and_emailed_once_across_two_sweeps(
    stack: Stack, simulator: NylasSimulator, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    grant = broken_grant("g-missed", "sam.missed@yahoo.com", broke_days_ago=0.1)
    simulator.add_grant(grant)
    simulator.add_grant(Grant("g-fine", "val.fine@yahoo.com", "yahoo", "valid", int(NOW - DAY), int(NOW - DAY)))

    first = stack.sweep()
    assert (first["listed"], first["already_known"], first["enqueued"], first["complete"]) == (1, 0, 1, True)
    # One page of v3 grants, one (empty) page of v2 accounts: the secret holds v2 credentials.
    assert "sweep: 1 broken listed, 0 already known, 1 enqueued (0 too old to notify), 2 pages" in caplog.text
    assert '"MissedFailuresFound":[1.0]' in capsys.readouterr().out

    messages = stack.drain(diagnose=True)
    # Exactly as the webhook enqueues a failure: a record copy and a diagnose copy of one event.
    assert sorted(stage for _, stage in messages) == ["diagnose", "record"]
    event = messages[0][0]
    occurred_at = from_epoch(grant.updated_at)
    assert event == AccountEvent(
        event_id=sweep_event_id("g-missed", occurred_at),
        api_version="v3",
        trigger="grant.expired",
        account_id="g-missed",
        occurred_at=occurred_at,
        provider="yahoo",
        email="sam.missed@yahoo.com",
        source="sweep",
    )

    second = stack.sweep()
    assert (second["listed"], second["already_known"], second["enqueued"]) == (1, 1, 0)
    assert '"MissedFailuresFound":[0.0]' in capsys.readouterr().out
    assert stack.drain(diagnose=True) == []

    verdicts = stack.verdicts("g-missed")
    assert [v.cause for v in verdicts] == ["password_changed"]
    assert emails_to("sam.missed@yahoo.com") == 1


def test_two_sweeps_before_the_diagnosis_runs_still_make_one_verdict_and_one_email(
    stack: Stack, simulator: NylasSimulator
) -> None:
    simulator.add_grant(broken_grant("g-twice", "tia.twice@yahoo.com"))
    stack.sweep()
    stack.sweep()  # nothing recorded yet: the same event (same id) is found again
    messages = stack.drain(diagnose=True)
    assert {event.event_id for event, _ in messages} == {sweep_event_id("g-twice", from_epoch(NOW - 0.1 * DAY))}
    assert len(stack.verdicts("g-twice")) == 1
    assert emails_to("tia.twice@yahoo.com") == 1


def failure_webhook(grant_id: str, email: str, *, days_ago: float = 0) -> dict[str, Any]:
    return v3_webhook("grant.expired", grant_id=grant_id, provider="yahoo", email=email, occurred=NOW - days_ago * DAY)


def test_a_grant_already_failed_from_its_webhook_is_left_alone(stack: Stack, simulator: NylasSimulator) -> None:
    simulator.add_grant(broken_grant("g-told", "una.told@yahoo.com", broke_days_ago=0.2))
    stack.webhook(failure_webhook("g-told", "una.told@yahoo.com"))
    stack.drain(diagnose=True)
    assert emails_to("una.told@yahoo.com") == 1

    summary = stack.sweep()
    assert (summary["listed"], summary["already_known"], summary["enqueued"]) == (1, 1, 0)
    assert stack.drain(diagnose=True) == []
    assert len(stack.verdicts("g-told")) == 1
    assert emails_to("una.told@yahoo.com") == 1


def test_a_grant_that_broke_again_after_recovering_is_found(stack: Stack, simulator: NylasSimulator) -> None:
    """Failed (webhook), re-authenticated (webhook), broke again with no webhook: the new failure is missed."""
    email = "vic.again@yahoo.com"
    simulator.add_grant(broken_grant("g-again", email, broke_days_ago=0.05))
    stack.webhook(failure_webhook("g-again", email, days_ago=3))
    reauthenticated = v3_webhook(
        "grant.updated", grant_id="g-again", provider="yahoo", email=email, occurred=NOW - 2 * DAY
    )
    reauthenticated["data"]["object"]["reauthentication_flag"] = True
    stack.webhook(reauthenticated)
    stack.drain(diagnose=True)

    assert stack.sweep()["enqueued"] == 1
    new = diagnosed(stack.drain(diagnose=True))
    assert [(e.trigger, e.occurred_at) for e in new] == [("grant.expired", from_epoch(NOW - 0.05 * DAY))]
    assert stack.sweep()["enqueued"] == 0


# --- Every page, and Nylas's rate limits ----------------------------------------------------------------------


def test_230_grants_over_several_pages_are_all_found(stack: Stack, simulator: NylasSimulator) -> None:
    for n in range(230):
        simulator.add_grant(broken_grant(f"g-many-{n:03}", f"user{n}@yahoo.com"))
    for n in range(20):  # valid grants are not listed (grant_status=invalid)
        simulator.add_grant(Grant(f"g-ok-{n:03}", f"ok{n}@yahoo.com", "yahoo", "valid", int(NOW), int(NOW)))

    summary = stack.sweep()
    assert (summary["listed"], summary["enqueued"], summary["complete"]) == (230, 230, True)
    assert simulator.calls[V3_LIST] == 2  # 200 + 30, one request each
    found = Counter(event.account_id for event in diagnosed(stack.sent))
    assert found == Counter({f"g-many-{n:03}": 1 for n in range(230)})


def test_a_429_that_outlasts_the_retries_ends_the_run_and_the_next_run_resumes(
    stack: Stack, simulator: NylasSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(230):
        simulator.add_grant(broken_grant(f"g-rl-{n:03}", f"rl{n}@yahoo.com"))
    # Nylas asks for a minute's pause on the second page: longer than a run waits for.
    simulator.inject_page_fault("v3", offset=200, status=429, retry_after=60)

    first = stack.sweep()
    assert (first["complete"], first["enqueued"], first["pages"]) == (False, 200, 1)
    assert "Nylas is unavailable" in first["stopped"]
    assert "stopped early: Nylas is unavailable" in caplog.text
    first_run = list(stack.sent)
    stack.record(first_run)  # the diagnosis' record copies run before the next scheduled sweep

    second = stack.sweep()
    assert (second["complete"], second["already_known"], second["enqueued"]) == (True, 200, 30)
    second_run = stack.sent_since(len(first_run))
    stack.record(second_run)

    found = Counter(event.account_id for event in diagnosed(first_run + second_run))
    assert found == Counter({f"g-rl-{n:03}": 1 for n in range(230)})  # nothing lost, nothing twice


def test_a_short_429_is_waited_out_within_the_run(stack: Stack, simulator: NylasSimulator) -> None:
    simulator.add_grant(broken_grant("g-wait", "wes.wait@yahoo.com"))
    simulator.inject_page_fault("v3", offset=0, status=429, retry_after=1)
    started = time.monotonic()
    summary = stack.sweep()
    assert time.monotonic() - started >= 1.0  # Retry-After honoured
    assert (summary["complete"], summary["enqueued"]) == (True, 1)
    assert simulator.calls[V3_LIST] == 2


# --- Old failures, v2 -----------------------------------------------------------------------------------------


def test_an_old_broken_grant_is_diagnosed_and_recorded_without_a_customer_email(
    stack: Stack, simulator: NylasSimulator
) -> None:
    simulator.add_grant(broken_grant("g-old", "oda.old@yahoo.com", broke_days_ago=30))
    summary = stack.sweep()
    assert (summary["enqueued"], summary["too_old_to_notify"]) == (1, 1)

    (event,) = diagnosed(stack.drain(diagnose=True))
    assert (event.source, event.occurred_at) == ("sweep", from_epoch(NOW - 30 * DAY))
    assert [v.cause for v in stack.verdicts("g-old")] == ["password_changed"]
    assert emails_to("oda.old@yahoo.com") == 0


def test_a_listing_without_updated_at_dates_the_failure_from_the_grant_and_emails_no_one_who_left(
    stack: Stack, simulator: NylasSimulator
) -> None:
    simulator.list_rows_with_updated_at = False
    simulator.add_grant(broken_grant("g-old", "oda.old@yahoo.com", broke_days_ago=30))
    summary = stack.sweep()
    assert (summary["enqueued"], summary["too_old_to_notify"]) == (1, 1)
    (event,) = diagnosed(stack.drain(diagnose=True))
    assert event.occurred_at == from_epoch(NOW - 30 * DAY)  # the grant's updated_at, not "now"
    assert emails_to("oda.old@yahoo.com") == 0


# --- The sweep closes what it sees (SPEC §3b, §4c) ------------------------------------------------------------


def test_a_broken_account_nylas_no_longer_lists_is_looked_up_once_and_closed(
    aws: ProvisionedStack, stack: Stack, simulator: NylasSimulator
) -> None:
    bus = capture_bus(aws)
    for grant_id, email in (
        ("g-back", "bea.back@yahoo.com"),
        ("g-gone", "gil.gone@yahoo.com"),
        ("g-still", "sam@yahoo.com"),
    ):
        simulator.add_grant(broken_grant(grant_id, email))
    stack.sweep()
    stack.drain(diagnose=True)
    assert sorted(str(a["account_id"]) for a in stack.history.broken_accounts(10).items) == [
        "g-back",
        "g-gone",
        "g-still",
    ]
    simulator.grants["g-back"].grant_status = "valid"  # reconnected; its webhook never came
    del simulator.grants["g-gone"]  # the app deleted it
    summary = stack.sweep()
    assert (summary["recovered"], summary["removed"], summary["enqueued"]) == (1, 1, 0)
    recovered = [e["detail"] for e in drain(bus) if e["detail-type"] == "AccountRecovered"]
    assert [(e["account_id"], e["recovered_by"]) for e in recovered] == [("g-back", "sweep")]  # gone: no event
    assert [str(a["account_id"]) for a in stack.history.broken_accounts(10).items] == ["g-still"]
    looked_up = simulator.calls["g-back"], simulator.calls["g-gone"]
    again = stack.sweep()
    assert (again["recovered"], again["removed"]) == (0, 0)
    assert (simulator.calls["g-back"], simulator.calls["g-gone"]) == looked_up  # not looked up again


def test_v2_invalid_and_stopped_accounts_are_listed_page_by_page(stack: Stack, simulator: NylasSimulator) -> None:
    simulator.add_account(V2Account("acc-invalid", "ivy.invalid@yahoo.com", "yahoo", "invalid"))
    simulator.add_account(V2Account("acc-stopped", "stu.stopped@gmail.com", "gmail", "stopped"))
    for n in range(120):  # healthy accounts fill the pages around them (v2 lists every account)
        simulator.add_account(V2Account(f"acc-running-{n:03}", f"run{n}@yahoo.com", "yahoo", "running"))
    simulator.add_account(V2Account("acc-sync-error", "sy.error@example.org", "imap", "sync-error"))

    before = datetime.now(UTC)
    summary = stack.sweep()
    assert (summary["listed"], summary["enqueued"], summary["complete"]) == (2, 2, True)
    # 123 accounts, 100 a page: twice, since a deployment's first run also takes the grant census (SPEC §3c).
    assert simulator.calls[V2_LIST] == 4

    events = {event.account_id: event for event in diagnosed(stack.drain(diagnose=True))}
    assert {account: (e.api_version, e.trigger) for account, e in events.items()} == {
        "acc-invalid": ("v2", "account.invalid"),
        "acc-stopped": ("v2", "account.stopped"),
    }
    # v2 says nothing about when the account broke: the failure is dated when the sweep found it.
    assert all(iso(before) <= e.occurred_at <= iso(datetime.now(UTC)) for e in events.values())
    assert [v.cause for v in stack.verdicts("acc-invalid")] == ["password_changed"]
    assert [v.cause for v in stack.verdicts("acc-stopped")] == ["sync_stopped"]
    assert stack.sweep()["enqueued"] == 0


def test_without_v2_credentials_only_v3_grants_are_listed(
    aws: ProvisionedStack, simulator: NylasSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws.physical["NylasSecret"], SecretString=json.dumps({**TEST_SECRET, "client_secret": ""})
    )
    simulator.add_account(V2Account("acc-v2-only", "vi.only@yahoo.com", "yahoo", "invalid"))
    summary = Stack(aws, monkeypatch).sweep()
    assert (summary["listed"], summary["complete"]) == (0, True)
    assert simulator.calls[V2_LIST] == 0


# --- At Nylas's real URLs ---------------------------------------------------------------------------------------


def test_the_lists_are_asked_for_as_nylas_documents_them(aws: ProvisionedStack) -> None:
    """v3: Bearer api_key, grant_status=invalid, limit=200, offset by page; v2: Basic client_secret, limit/offset."""
    client = NylasClient(get_settings(SweepSettings))
    v3, v2 = "https://api.us.nylas.com/v3/grants", f"https://api.nylas.com/a/{TEST_SECRET['client_id']}/accounts"
    grant = nylas_v3_grant("g-real", status="invalid", updated_at=1_731_000_000)
    v2_basic = "Basic " + base64.b64encode(f"{TEST_SECRET['client_secret']}:".encode()).decode()
    with responses.RequestsMock() as nylas:
        for offset, count in ((0, 200), (200, 1)):
            nylas.get(
                v3,
                match=[
                    matchers.query_param_matcher({"grant_status": "invalid", "limit": "200", "offset": str(offset)}),
                    matchers.header_matcher({"Authorization": f"Bearer {TEST_SECRET['api_key']}"}),
                ],
                json={"request_id": "r", "data": [grant] * count, "limit": 200, "offset": offset},
            )
        nylas.get(
            v2,
            match=[
                matchers.query_param_matcher({"limit": "100", "offset": "0"}),
                matchers.header_matcher({"Authorization": v2_basic}),
            ],
            json=[nylas_v2_account("a-real", sync_state="stopped"), nylas_v2_account("a-ok", sync_state="running")],
        )
        v3_pages = list(client.invalid_grants())
        v2_pages = list(client.broken_v2_accounts())
    assert [len(page) for page in v3_pages] == [200, 1]
    assert v3_pages[1][0].updated_at == "2024-11-07T17:20:00Z"
    assert [[a.account_id for a in page] for page in v2_pages] == [["a-real"]]


# --- Operator mistakes, and the sample event --------------------------------------------------------------------


def test_rejected_credentials_fail_the_run_loudly(
    aws: ProvisionedStack,
    simulator: NylasSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws.physical["NylasSecret"], SecretString=json.dumps({**TEST_SECRET, "api_key": "wrong"})
    )
    with pytest.raises(Exception, match="check api_key"):
        Stack(aws, monkeypatch).sweep()
    assert '"NylasConfigErrors":[1.0]' in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(p.name for p in EVENTS_DIR.glob("sweep-*.json")))
def test_every_sweep_sample_event_runs(name: str, stack: Stack, simulator: NylasSimulator) -> None:
    simulator.add_grant(broken_grant("g-sample", "sol.sample@yahoo.com"))
    summary = stack.sweeper.lambda_handler(load_event(name), FakeLambdaContext("SweepFunction", 300))
    assert (summary["complete"], summary["enqueued"]) == (True, 1)


def test_the_sample_scheduled_event_is_what_eventbridge_delivers() -> None:
    assert load_event("sweep-scheduled.json") == scheduled_event()


# --- The schedule -----------------------------------------------------------------------------------------------


def _evaluate(value: Any, parameters: dict[str, str], conditions: dict[str, bool]) -> Any:
    """The intrinsic functions the sweep's schedule uses, as CloudFormation evaluates them at deploy time."""
    if isinstance(value, dict) and len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref":
            return parameters[argument]
        if name == "Fn::Equals":
            left, right = (_evaluate(item, parameters, conditions) for item in argument)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not _evaluate(argument[0], parameters, conditions)
        if name == "Fn::If":
            condition, when_true, when_false = argument
            return _evaluate(when_true if conditions[condition] else when_false, parameters, conditions)
        if name == "Fn::Sub":
            return re.sub(r"\$\{(\w+)\}", lambda match: parameters[match[1]], argument)
    return value


@pytest.mark.parametrize(("minutes", "expression"), [("0", None), ("1", "rate(1 minute)"), ("60", "rate(60 minutes)")])
def test_the_schedule_follows_sweep_interval_minutes(minutes: str, expression: str | None) -> None:
    template = load_template()
    parameters = {**default_parameters(template), "SweepIntervalMinutes": minutes}
    conditions: dict[str, bool] = {}
    for name, definition in template["Conditions"].items():
        conditions[name] = bool(_evaluate(definition, parameters, conditions))
    resources = template["Resources"]
    created = {
        logical_id: resource
        for logical_id, resource in resources.items()
        if conditions.get(resource.get("Condition", ""), "Condition" not in resource)
    }
    schedules = [
        r for r in created.values() if r["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in r["Properties"]
    ]
    invoking = [
        r
        for r in created.values()
        if r["Type"] == "AWS::Lambda::Permission" and r["Properties"]["FunctionName"] == {"Ref": "SweepFunction"}
    ]
    if expression is None:  # 0 turns the sweep off: nothing schedules or may invoke it
        assert (schedules, invoking) == ([], [])
        return
    (schedule,) = schedules
    assert _evaluate(schedule["Properties"]["ScheduleExpression"], parameters, conditions) == expression
    assert [t["Arn"] for t in schedule["Properties"]["Targets"]] == [{"Fn::GetAtt": ["SweepFunction", "Arn"]}]
    assert [p["Properties"]["Principal"] for p in invoking] == ["events.amazonaws.com"]


def recovered_members(incidents: IncidentStore, incident_id: str) -> list[str]:
    return sorted(m.account_id for m in incidents.members(incident_id, 10)[0] if m.recovered)


def test_an_account_the_sweep_finds_valid_is_counted_recovered_on_its_domain_incident(
    aws: ProvisionedStack, stack: Stack, simulator: NylasSimulator
) -> None:
    bus = capture_bus(aws)
    members = ("g-ana", "g-ben", "g-cy")
    for grant_id in members:
        simulator.add_grant(broken_grant(grant_id, f"{grant_id[2:]}@contoso-sweep.com", provider="microsoft"))
    stack.sweep()
    stack.drain(diagnose=True)
    incidents = IncidentStore(Table(aws.physical["IncidentsTable"]))
    (incident,) = incidents.by_status("open", 10)[0]
    assert (incident.kind, incident.key, incident.accounts) == ("domain", "contoso-sweep.com", 3)
    drain(bus)

    simulator.grants["g-ana"].grant_status = "valid"  # its admin reconnected it; no webhook came
    assert stack.sweep()["recovered"] == 1
    found = incidents.get(incident.incident_id)
    assert found is not None
    assert found.status == "open"
    assert recovered_members(incidents, incident.incident_id) == ["g-ana"]

    for grant_id in members[1:]:
        simulator.grants[grant_id].grant_status = "valid"
    assert stack.sweep()["recovered"] == 2
    resolved = incidents.get(incident.incident_id)
    assert resolved is not None
    assert resolved.status == "resolved"
    assert recovered_members(incidents, incident.incident_id) == list(members)
    announced = [e["detail"]["incident_id"] for e in drain(bus) if e["detail-type"] == "IncidentResolved"]
    assert announced == [incident.incident_id]


def test_an_account_the_sweep_finds_gone_is_not_counted_recovered_on_its_incident(
    aws: ProvisionedStack, stack: Stack, simulator: NylasSimulator
) -> None:
    for grant_id in ("g-dan", "g-eve", "g-fay"):
        simulator.add_grant(broken_grant(grant_id, f"{grant_id[2:]}@fabrikam-sweep.com", provider="microsoft"))
    stack.sweep()
    stack.drain(diagnose=True)
    incidents = IncidentStore(Table(aws.physical["IncidentsTable"]))
    (incident,) = incidents.by_status("open", 10)[0]
    del simulator.grants["g-dan"]  # the app deleted it: it did not recover (SPEC §4c)
    assert stack.sweep()["removed"] == 1
    found = incidents.get(incident.incident_id)
    assert found is not None
    assert found.status == "open"
    assert recovered_members(incidents, incident.incident_id) == []
