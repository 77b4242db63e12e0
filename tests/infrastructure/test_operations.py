"""Alarms and dashboard in template.yaml: every function and the DLQ watched, every charted metric emitted."""

from __future__ import annotations

import itertools
import json
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


# --- Dead letters: every new one alarms ------------------------------------------------------------


def _series_math(expression: str, series: dict[str, list[float | None]]) -> list[float | None]:
    """Evaluates the few CloudWatch metric-math functions the alarm may use, on one value per period.

    DIFF(x): each value minus the one before (none for the first or after a gap); FILL(x, c): gaps become c.
    Anything else is refused, so a changed expression fails here instead of being half-understood.
    """
    expression = expression.replace(" ", "")
    if expression in series:
        return series[expression]
    name, _, argument = expression.partition("(")
    inner = argument[:-1]
    if name == "DIFF":
        values = _series_math(inner, series)
        return [None] + [
            None if now is None or before is None else now - before for before, now in itertools.pairwise(values)
        ]
    if name == "FILL":
        target, _, constant = inner.rpartition(",")
        return [float(constant) if value is None else value for value in _series_math(target, series)]
    raise AssertionError(f"the test does not know the metric-math function in {expression!r}")


def _alarm_states(alarm: dict[str, Any], depth: list[float | None]) -> list[bool]:
    """Whether each period breaches, given the DLQ depth per period (None: SQS published nothing)."""
    (returned,) = [query for query in alarm["Metrics"] if query.get("ReturnData", True)]
    (stat,) = [query for query in alarm["Metrics"] if "MetricStat" in query]
    values = _series_math(returned["Expression"], {stat["Id"]: depth})
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    return [value is not None and value >= alarm["Threshold"] for value in values]


def test_dead_letter_queue_alarm_watches_the_depth_of_the_dlq() -> None:
    alarm = ALARMS["DeadLetterQueueAlarm"]
    (stat,) = [query["MetricStat"] for query in alarm["Metrics"] if "MetricStat" in query]
    assert stat["Metric"] == {
        "Namespace": "AWS/SQS",
        # Not NumberOfMessagesSent: SQS does not count messages its redrive policy moves into a DLQ.
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DiagnosisDLQ", "QueueName"]}}],
    }
    assert stat["Stat"] == "Maximum"
    assert alarm["EvaluationPeriods"] == 1
    # Going back to OK only means the depth stopped growing: no email for that.
    assert "OKActions" not in alarm


@pytest.mark.parametrize(
    ("case", "depth", "breaching"),
    [
        ("first dead letter", [0, 0, 1, 1], [False, False, True, False]),
        ("another while the first still waits", [0, 1, 1, 2, 2], [False, True, False, True, False]),
        ("several at once, then more", [0, 3, 3, 5], [False, True, False, True]),
        ("a redrive empties the DLQ", [4, 4, 0, 0], [False, False, False, False]),
        ("after the DLQ went quiet (SQS published nothing)", [None, None, 1, 1], [False, False, True, False]),
        ("after a quiet spell, older letters still waiting", [2, None, None, 3], [False, False, False, True]),
    ],
)
def test_dead_letter_queue_alarm_fires_again_for_each_new_dead_letter(
    case: str, depth: list[float | None], breaching: list[bool]
) -> None:
    assert _alarm_states(ALARMS["DeadLetterQueueAlarm"], depth) == breaching, case


# --- Rejected Nylas credentials, SES refusing our sender: alarms on counts the code takes ------------

# (alarm, the metric it watches): counted with `tally.count(metric)`, no dimension of its own.
COUNTED_ALARMS = [("NylasCredentialsAlarm", "NylasConfigErrors"), ("SenderRejectedAlarm", "SenderRejected")]


def _emitted(capsys: pytest.CaptureFixture[str], metric: str) -> list[dict[str, Any]]:
    """The EMF blobs DiagnosisFunction writes after a batch that counted the metric once."""
    from aws_lambda_powertools import Metrics

    from account_doctor.tally import Tally

    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    metrics = Metrics(namespace=variables["POWERTOOLS_METRICS_NAMESPACE"], service=variables["POWERTOOLS_SERVICE_NAME"])
    tally = Tally()
    capsys.readouterr()
    try:
        tally.count(metric)  # as the consumer and the mailer count them (no dimension of their own)
        tally.publish(metrics)
        metrics.flush_metrics()
    finally:
        metrics.clear_metrics()
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [blob for blob in blobs if metric in blob]


@pytest.mark.parametrize(("alarm_name", "metric"), COUNTED_ALARMS)
def test_the_code_counts_the_alarmed_metric_without_a_dimension_of_its_own(alarm_name: str, metric: str) -> None:
    code = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "layers" / "shared").rglob("*.py"))
    assert re.search(rf"""tally\.count\(\s*["']{metric}["']\s*\)""", code)


@pytest.mark.parametrize(("alarm_name", "metric"), COUNTED_ALARMS)
def test_the_alarm_watches_the_metric_exactly_as_emitted(
    capsys: pytest.CaptureFixture[str], alarm_name: str, metric: str
) -> None:
    alarm = ALARMS[alarm_name]
    (blob,) = _emitted(capsys, metric)
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    (dimension_names,) = directive["Dimensions"]
    emitted = {
        "Namespace": directive["Namespace"],
        "Dimensions": [{"Name": name, "Value": blob[name]} for name in dimension_names],
    }
    # CloudWatch matches a metric by namespace, name and the complete dimension set.
    assert {"Namespace": alarm["Namespace"], "Dimensions": alarm["Dimensions"]} == emitted
    assert alarm["MetricName"] == metric
    assert alarm["Statistic"] == "Sum"
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


@pytest.mark.parametrize(("alarm_name", "metric"), COUNTED_ALARMS)
def test_the_alarm_fires_within_five_minutes_of_the_first_count(alarm_name: str, metric: str) -> None:
    alarm = ALARMS[alarm_name]
    assert alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"]) * alarm["Period"] <= 300
    assert alarm["TreatMissingData"] == "notBreaching"


# --- The oldest queued message ----------------------------------------------------------------------


def test_queue_age_alarm_fires_on_old_messages_but_not_on_the_grace_period() -> None:
    alarm = ALARMS["DiagnosisQueueAgeAlarm"]
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DiagnosisQueue", "QueueName"]}}]
    assert alarm["Statistic"] == "Maximum"
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    # Every failure waits out GraceSeconds (at most its MaxValue) and may be retried after a visibility timeout:
    # neither alone is a backlog. Well above both, and still within the hour.
    longest_grace = TEMPLATE["Parameters"]["GraceSeconds"]["MaxValue"]
    visibility = RESOURCES["DiagnosisQueue"]["Properties"]["VisibilityTimeout"]
    assert longest_grace + visibility < alarm["Threshold"] <= 3600


@pytest.mark.parametrize(
    "queue",
    sorted(
        r["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    ),
)
def test_every_queue_a_function_consumes_alarms_on_its_oldest_message(queue: str) -> None:
    # A stuck release holds an incident's customer emails as surely as a stuck diagnosis holds its verdict.
    watching = [
        alarm
        for alarm in ALARMS.values()
        if alarm.get("MetricName") == "ApproximateAgeOfOldestMessage"
        and alarm.get("Dimensions") == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    ]
    assert len(watching) == 1
    assert watching[0]["Threshold"] <= 3600


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
