"""Alarms and dashboard in template.yaml: every function and the DLQ watched, every charted metric emitted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from local_stack.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = [name for name, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"]
ALARMS = {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def test_alarms_mail_the_operator_email() -> None:
    topic = RESOURCES["AlarmTopic"]["Properties"]
    assert topic["Subscription"] == [{"Protocol": "email", "Endpoint": {"Ref": "OperatorEmail"}}]
    for name, alarm in ALARMS.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name


def test_dead_letter_queue_alarm_fires_on_the_first_message() -> None:
    alarm = ALARMS["DeadLetterQueueAlarm"]
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DiagnosisDLQ", "QueueName"]}}]
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_errors_and_throttles_alarms(function: str, metric: str) -> None:
    watching = [
        name
        for name, alarm in ALARMS.items()
        if alarm.get("Namespace") == "AWS/Lambda"
        and alarm.get("MetricName") == metric
        and alarm.get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    ]
    assert len(watching) == 1


def _emitted_metric_names() -> set[str]:
    code = "\n".join(
        path.read_text(encoding="utf-8")
        for folder in (ROOT / "functions", ROOT / "layers" / "shared" / "account_doctor")
        for path in folder.rglob("*.py")
    )
    # Metric names are string literals next to add_metric/single_metric (the webhook's come from a tuple).
    return set(re.findall(r"""["']([A-Z][A-Za-z]+)["']""", code))


def test_every_dashboard_metric_is_one_the_code_emits() -> None:
    body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    charted = set(re.findall(r'MetricName=\\"(\w+)\\"', body)) | set(re.findall(r'\["AccountDoctor", "(\w+)"', body))
    assert {"Webhooks", "Verdicts", "EmailsSent"} <= charted
    assert charted <= _emitted_metric_names()
    # Webhooks are charted by their "type" dimension, as the webhook function emits them.
    assert "{AccountDoctor,service,type}" in body
