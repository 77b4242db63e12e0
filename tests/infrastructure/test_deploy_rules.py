"""Safe deploys: `sam deploy` refuses to send for real from, or alert, the template's placeholder addresses.

CloudFormation evaluates a template's Rules before it changes anything. The rules are evaluated here with
the parameter values of each case (template defaults, then overrides), so the tests show which deploys pass.
"""

from __future__ import annotations

import json
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest

from local_stack.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()
RULES: dict[str, Any] = TEMPLATE["Rules"]
PLACEHOLDER_SENDER = "account-doctor@example.com"
PLACEHOLDER_OPERATOR = "operators@example.com"


def _value(expression: Any, parameters: dict[str, str]) -> Any:
    """The rule functions this template uses (any other fails the test rather than being guessed at)."""
    if not isinstance(expression, dict):
        return expression
    ((function, argument),) = expression.items()
    if function == "Ref":
        return parameters[argument]
    if function == "Fn::Equals":
        left, right = (_value(item, parameters) for item in argument)
        return str(left) == str(right)
    if function == "Fn::Not":
        (inner,) = argument
        return not _value(inner, parameters)
    if function == "Fn::And":
        return all(_value(item, parameters) for item in argument)
    if function == "Fn::Or":
        return any(_value(item, parameters) for item in argument)
    if function == "Fn::Contains":
        values, value = argument
        return _value(value, parameters) in [_value(item, parameters) for item in values]
    raise AssertionError(f"the test does not evaluate {function} yet")


def refusals(overrides: dict[str, str]) -> list[str]:
    """The AssertDescription of every failed assertion: what `sam deploy` would print. Empty: it deploys."""
    parameters = {name: str(spec.get("Default", "")) for name, spec in TEMPLATE["Parameters"].items()}
    parameters.update(overrides)
    failed = []
    for rule in RULES.values():
        if "RuleCondition" in rule and not _value(rule["RuleCondition"], parameters):
            continue
        failed += [item["AssertDescription"] for item in rule["Assertions"] if not _value(item["Assert"], parameters)]
    return failed


def samconfig_overrides(environment: str) -> dict[str, str]:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    pairs = shlex.split(config[environment]["deploy"]["parameters"]["parameter_overrides"])
    return dict(pair.split("=", 1) for pair in pairs)


def test_the_placeholders_are_the_template_defaults() -> None:
    assert TEMPLATE["Parameters"]["SenderEmail"]["Default"] == PLACEHOLDER_SENDER
    assert TEMPLATE["Parameters"]["OperatorEmail"]["Default"] == PLACEHOLDER_OPERATOR


@pytest.mark.parametrize(
    ("case", "overrides", "refused_because_of"),
    [
        ("template defaults: send with both placeholders", {}, ["SenderEmail", "OperatorEmail"]),
        ("dry-run with the placeholders", {"NotificationMode": "dry-run"}, []),
        (
            "send with real addresses",
            {"NotificationMode": "send", "SenderEmail": "doctor@acme.io", "OperatorEmail": "ops@acme.io"},
            [],
        ),
        ("send, real sender, placeholder operator", {"SenderEmail": "doctor@acme.io"}, ["OperatorEmail"]),
        ("send, placeholder sender, real operator", {"OperatorEmail": "ops@acme.io"}, ["SenderEmail"]),
        (
            "the placeholders swapped are still placeholders only where they are defaults",
            {"SenderEmail": PLACEHOLDER_OPERATOR, "OperatorEmail": "ops@acme.io"},
            [],
        ),
    ],
)
def test_send_mode_refuses_the_placeholder_addresses(
    case: str, overrides: dict[str, str], refused_because_of: list[str]
) -> None:
    failed = refusals(overrides)
    assert len(failed) == len(refused_because_of), case
    for reason, parameter in zip(failed, refused_because_of, strict=True):
        # The message names the parameter to set and the way out.
        assert parameter in reason
        assert "NotificationMode=dry-run" in reason


def test_the_rule_is_built_from_functions_cloudformation_allows_in_rules() -> None:
    allowed = {
        "Fn::And", "Fn::Contains", "Fn::EachMemberEquals", "Fn::EachMemberIn", "Fn::Equals", "Fn::Not",
        "Fn::Or", "Fn::RefAll", "Fn::ValueOf", "Fn::ValueOfAll", "Ref",
    }  # fmt: skip

    def functions(value: Any) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {name for inner in value.values() for name in functions(inner)}
        if isinstance(value, list):
            return {name for inner in value for name in functions(inner)}
        return set()

    def refs(value: Any) -> set[str]:
        if isinstance(value, dict):
            return {str(value["Ref"])} if "Ref" in value else {name for inner in value.values() for name in refs(inner)}
        if isinstance(value, list):
            return {name for inner in value for name in refs(inner)}
        return set()

    for rule in RULES.values():
        expressions = [rule.get("RuleCondition", {}), *(item["Assert"] for item in rule["Assertions"])]
        assert functions(expressions) <= allowed, functions(expressions) - allowed
        # Rules run before any resource exists: they may only refer to parameters.
        assert refs(expressions) <= set(TEMPLATE["Parameters"])


def test_cfn_lint_accepts_the_rules() -> None:
    # The rules alone, with the parameters they read: cfn-lint checks each function's arguments (E17xx).
    from cfnlint.api import lint

    alone = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": TEMPLATE["Parameters"],
        "Rules": RULES,
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    }
    findings = [(match.rule.id, match.message) for match in lint(json.dumps(alone))]
    assert [finding for finding in findings if finding[0] != "W2001"] == []  # W2001: the other parameters are unused


def test_the_default_samconfig_environment_deploys_in_dry_run() -> None:
    overrides = samconfig_overrides("default")
    assert overrides["NotificationMode"] == "dry-run"
    assert refusals(overrides) == []


def test_the_prod_environment_sends_and_is_refused_until_its_addresses_are_set() -> None:
    overrides = samconfig_overrides("prod")
    assert overrides["NotificationMode"] == "send"
    assert len(refusals(overrides)) == 2
    filled_in = {**overrides, "SenderEmail": "doctor@acme.io", "OperatorEmail": "ops@acme.io"}
    assert refusals(filled_in) == []


def test_the_prod_environment_says_what_to_set() -> None:
    text = (ROOT / "samconfig.toml").read_text(encoding="utf-8")
    prod = text[text.index("[prod.deploy.parameters]") :]
    comments = "\n".join(line for line in prod.splitlines() if line.lstrip().startswith("#"))
    for parameter in ("SenderEmail", "OperatorEmail", "AppName", "ReplyToEmail", "SlackWebhookUrl"):
        assert parameter in comments, parameter
