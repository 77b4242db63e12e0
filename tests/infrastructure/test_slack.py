"""Slack (SPEC §6b): with SlackWebhookUrl set, EventBridge posts IncidentOpened and operator-audience verdicts.

No code runs: an EventBridge rule on the stack's bus, an API destination and an input transformer. The tests
read that wiring from template.yaml, match events as the code puts them on the bus against the rules, and
render the Slack message the way EventBridge fills an input template.
"""

from __future__ import annotations

import json
import re
from typing import Any, get_args

import pytest

from account_doctor import events_out
from account_doctor.models import Cause, Verdict
from account_doctor.notifications.audience import OPERATOR_ALERTED
from local_stack.template import load_template

TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
SLACK_RULES = ("SlackIncidentsRule", "SlackVerdictsRule")
# SPEC §4's "who is told" column: the causes the operating team hears about.
OPERATOR_AUDIENCE = {
    "app_revoked",
    "connector_outage",
    "admin_disconnected",
    "admin_session_policy",
    "eas_sparse_inbox",
    "imap_sync_errors",
    "google_testing_mode",
    "sync_stopped",
    "unknown",
}
# SPEC §6: an incident as events and the read API show it (members are never in the event).
INCIDENT_FIELDS = {
    "incident_id", "kind", "key", "cause", "status", "accounts", "domains", "opened_at", "last_failure_at",
    "held_emails",
}  # fmt: skip
VERDICT_FIELDS = set(Verdict.__dataclass_fields__)


def properties(logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = RESOURCES[logical_id]["Properties"]
    return found


def slack_resources() -> list[str]:
    return [name for name, item in RESOURCES.items() if item.get("Condition") == "SlackEnabled"]


def references(value: Any) -> set[str]:
    if isinstance(value, dict):
        if "Ref" in value:
            return {str(value["Ref"])}
        if "Fn::GetAtt" in value:
            return {str(value["Fn::GetAtt"][0])}
        return {name for inner in value.values() for name in references(inner)}
    if isinstance(value, list):
        return {name for inner in value for name in references(inner)}
    return set()


def matches(pattern: Any, event: Any) -> bool:
    """EventBridge's matching for the pattern forms used here: a list of allowed values, or nested fields."""
    if isinstance(pattern, list):
        assert all(isinstance(value, (str, int, float)) for value in pattern), "the test only knows exact values"
        return event in pattern
    return isinstance(event, dict) and all(
        key in event and matches(value, event[key]) for key, value in pattern.items()
    )


def bus_event(detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    """An event as the bus delivers it to rules, from what events_out puts (Source, DetailType, Detail)."""
    return {"source": events_out.SOURCE, "detail-type": detail_type, "detail": detail, "account": "123456789012"}


def verdict(cause: str, **changes: Any) -> dict[str, Any]:
    record = Verdict(
        event_id="evt-1",
        account_id="grant-acme-1",
        api_version="v3",
        trigger="grant.expired",
        occurred_at="2026-11-22T08:00:00Z",
        diagnosed_at="2026-11-22T08:02:00Z",
        email="jane.doe@acme.io",
        domain="acme.io",
        provider="microsoft",
        auth_method="oauth",
        cause=cause,  # type: ignore[arg-type]
        confidence="high",
        summary='3 accounts at acme.io failed within 15 minutes: "admin" consent was withdrawn.',
        actions=["Ask the administrator"],
        steps=[],
        evidence={},
        recurring=False,
    ).to_dict()
    return events_out.verdict_detail({**record, **changes})


def _crafted_incident() -> dict[str, Any]:
    """What a crafted email domain becomes in an incident: its key and id (details carry the escaped copy)."""
    return events_out.incident_detail({**incident(), "incident_id": "domain-<!channel>-1", "key": "<!channel>"})


def incident() -> dict[str, Any]:
    return events_out.incident_detail(
        {
            "incident_id": "inc-1",
            "kind": "domain",
            "key": "acme.io",
            "cause": "admin_disconnected",
            "status": "open",
            "accounts": 3,
            "domains": 1,
            "opened_at": "2026-11-22T08:02:00Z",
            "last_failure_at": "2026-11-22T08:01:00Z",
            "held_emails": 0,
            "members": [{"account_id": "grant-acme-1", "email": "jane.doe@acme.io"}],
        }
    )


def target(rule: str) -> dict[str, Any]:
    (only,) = properties(rule)["Targets"]
    found: dict[str, Any] = only
    return found


def render(transformer: dict[str, Any], event: dict[str, Any]) -> str:
    """Fills the input template as EventBridge does: a string value between quotes is JSON-escaped in place."""
    values = {}
    for name, path in transformer["InputPathsMap"].items():
        assert path.startswith("$."), path
        value: Any = event
        for part in path[2:].split("."):
            value = value[part]  # a path the event does not have is a KeyError: the test fails
        values[name] = value

    def fill(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        return json.dumps(value)[1:-1] if isinstance(value, str) else json.dumps(value)

    return re.sub(r"<([\w.-]+)>", fill, transformer["InputTemplate"])


# --- Only with a webhook URL ---------------------------------------------------------------------------


def test_slack_is_on_only_when_a_webhook_url_is_given() -> None:
    assert TEMPLATE["Conditions"]["SlackEnabled"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "SlackWebhookUrl"}, ""]}]}
    assert TEMPLATE["Parameters"]["SlackWebhookUrl"]["Default"] == ""
    assert TEMPLATE["Parameters"]["SlackWebhookUrl"].get("NoEcho") is True
    kinds = {RESOURCES[name]["Type"] for name in slack_resources()}
    assert {
        "AWS::Events::Connection",
        "AWS::Events::ApiDestination",
        "AWS::IAM::Role",
        "AWS::Events::Rule",
        "AWS::SQS::Queue",
        "AWS::SQS::QueuePolicy",
    } <= kinds


def test_nothing_unconditional_depends_on_a_slack_resource() -> None:
    # CloudFormation refuses a template whose unconditional resource or output points at a resource that may not exist.
    conditional = set(slack_resources())
    for name, item in RESOURCES.items():
        if item.get("Condition") != "SlackEnabled":
            assert not references(item) & conditional, name
    for name, output in TEMPLATE.get("Outputs", {}).items():
        if output.get("Condition") != "SlackEnabled":
            assert not references(output) & conditional, name


# --- The destination ------------------------------------------------------------------------------------


def test_the_destination_posts_to_the_webhook_url() -> None:
    destination = properties("SlackDestination")
    assert destination["InvocationEndpoint"] == {"Ref": "SlackWebhookUrl"}
    assert destination["HttpMethod"] == "POST"
    assert destination["ConnectionArn"] == {"Fn::GetAtt": ["SlackConnection", "Arn"]}
    # Slack accepts about one message a second per incoming webhook.
    assert 1 <= destination["InvocationRateLimitPerSecond"] <= 1


def test_the_connection_sends_no_credential() -> None:
    connection = properties("SlackConnection")
    # EventBridge insists on an authorization type; Slack's incoming webhooks need none (the URL is the secret).
    assert connection["AuthorizationType"] == "API_KEY"
    assert set(connection["AuthParameters"]) == {"ApiKeyAuthParameters"}


def test_eventbridge_may_only_invoke_the_slack_destination() -> None:
    role = properties("SlackInvokeRole")
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    assert statements == [
        {
            "Effect": "Allow",
            "Action": "events:InvokeApiDestination",
            "Resource": {"Fn::GetAtt": ["SlackDestination", "Arn"]},
        }
    ]


# --- The rules --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", SLACK_RULES)
def test_each_rule_watches_the_stack_bus_and_targets_the_slack_destination(rule: str) -> None:
    assert properties(rule)["EventBusName"] == {"Ref": "EventBus"}
    assert properties(rule)["EventPattern"]["source"] == [events_out.SOURCE]
    slack = target(rule)
    assert slack["Arn"] == {"Fn::GetAtt": ["SlackDestination", "Arn"]}
    assert slack["RoleArn"] == {"Fn::GetAtt": ["SlackInvokeRole", "Arn"]}
    # Posts Slack keeps refusing are kept, not dropped, and the queue lets EventBridge put them there.
    assert slack["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["SlackDLQ", "Arn"]}
    (allowed,) = properties("SlackDLQPolicy")["PolicyDocument"]["Statement"]
    assert allowed["Principal"] == {"Service": "events.amazonaws.com"}
    assert {"Fn::GetAtt": [rule, "Arn"]} in allowed["Condition"]["ArnEquals"]["aws:SourceArn"]


def test_the_verdict_rule_takes_exactly_the_operator_audience_causes() -> None:
    causes = set(properties("SlackVerdictsRule")["EventPattern"]["detail"]["cause"])
    assert causes == OPERATOR_AUDIENCE
    assert causes <= set(get_args(Cause))
    # Whatever the code alerts the operator about by email, Slack hears about too.
    assert set(OPERATOR_ALERTED) <= causes


@pytest.mark.parametrize(
    ("detail_type", "detail", "posted_by"),
    [
        (events_out.INCIDENT_OPENED, incident(), "SlackIncidentsRule"),
        (events_out.INCIDENT_RESOLVED, {**incident(), "status": "resolved"}, None),
        (events_out.VERDICT, verdict("admin_disconnected"), "SlackVerdictsRule"),
        (events_out.VERDICT, verdict("unknown"), "SlackVerdictsRule"),
        (events_out.VERDICT, verdict("connector_outage"), "SlackVerdictsRule"),
        (events_out.VERDICT, verdict("password_changed"), None),
        (events_out.VERDICT, verdict("recovered"), None),
        (events_out.VERDICT, verdict("oauth_revoked"), None),
        # SPEC §6b: a recovery reaches Slack only if the operator routes it there, not by default.
        (events_out.ACCOUNT_RECOVERED, {"account_id": "grant-1", "cause": "admin_disconnected"}, None),
    ],
)
def test_which_events_reach_slack(detail_type: str, detail: dict[str, Any], posted_by: str | None) -> None:
    event = bus_event(detail_type, detail)
    matched = [rule for rule in SLACK_RULES if matches(properties(rule)["EventPattern"], event)]
    assert matched == ([posted_by] if posted_by else [])


# --- The message ----------------------------------------------------------------------------------------


# Fields Slack may show as they are: enumerated values, counts and times this code writes. Anything else
# (ids, domains, providers, summaries) comes from the event's Slack-escaped copy, `detail.slack`.
AS_THEY_ARE = {"cause", "kind", "confidence", "accounts", "opened_at"}


@pytest.mark.parametrize(
    ("rule", "fields", "escaped"),
    [
        ("SlackIncidentsRule", INCIDENT_FIELDS, events_out.SLACK_INCIDENT_FIELDS),
        ("SlackVerdictsRule", VERDICT_FIELDS, events_out.SLACK_VERDICT_FIELDS),
    ],
)
def test_every_transformer_path_is_a_field_of_the_event_detail(
    rule: str, fields: set[str], escaped: tuple[str, ...]
) -> None:
    transformer = target(rule)["InputTransformer"]
    for path in transformer["InputPathsMap"].values():
        field = path.removeprefix("$.detail.")
        assert path.startswith("$.detail."), path
        if field not in AS_THEY_ARE:
            assert field.startswith("slack."), f"{path}: free text reaches Slack only from its escaped copy"
            assert field.removeprefix("slack.") in escaped, path
        assert field.removeprefix("slack.") in fields, path
    placeholders = set(re.findall(r"<([\w.-]+)>", transformer["InputTemplate"]))
    assert placeholders == set(transformer["InputPathsMap"])


@pytest.mark.parametrize(
    ("rule", "event", "expected"),
    [
        (
            "SlackIncidentsRule",
            bus_event(events_out.INCIDENT_OPENED, incident()),
            ["admin_disconnected", "acme.io", "3", "inc-1"],
        ),
        (
            "SlackVerdictsRule",
            bus_event(events_out.VERDICT, verdict("admin_disconnected")),
            ["admin_disconnected", "grant-acme-1", '"admin" consent was withdrawn', "acme.io"],
        ),
        (
            "SlackVerdictsRule",
            bus_event(events_out.VERDICT, verdict("unknown", domain=None, provider=None)),
            ["unknown"],
        ),
    ],
)
def test_the_message_is_the_json_slack_expects(rule: str, event: dict[str, Any], expected: list[str]) -> None:
    body = json.loads(render(target(rule)["InputTransformer"], event))
    assert set(body) == {"text"}
    for fragment in expected:
        assert fragment in body["text"]
    # A Slack channel is a wider audience than the alert inbox: no customer address.
    assert "jane.doe@acme.io" not in body["text"]


# (rule, event with crafted free text) : what reaches Slack must not mention, link or hide anything.
CRAFTED = [
    (
        "SlackVerdictsRule",
        bus_event(
            events_out.VERDICT,
            verdict(
                "unknown",
                account_id="<!channel>",
                provider="<https://evil.example|google>",
                domain="acme.io> <!here",
                summary="Failed & <@U024BE7LH> was told: <https://evil.example|reconnect here>",
            ),
        ),
    ),
    ("SlackIncidentsRule", bus_event(events_out.INCIDENT_OPENED, _crafted_incident())),
]


@pytest.mark.parametrize(("rule", "event"), CRAFTED, ids=[rule for rule, _ in CRAFTED])
def test_crafted_text_cannot_mention_anyone_or_disguise_a_link(rule: str, event: dict[str, Any]) -> None:
    text = json.loads(render(target(rule)["InputTransformer"], event))["text"]
    # Slack's control sequences all start with "<" and entities with "&": none may come from the event.
    assert "<" not in text
    assert ">" not in text
    assert "&lt;!" in text
    assert "&amp;" in text or rule == "SlackIncidentsRule"
