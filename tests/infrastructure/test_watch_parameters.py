"""The template refuses a malformed MicrosoftClientSecretExpiresOn before deploying (SPEC §3d), and keeps the
webhook feed's alarm on the metric the sweep emits."""

from __future__ import annotations

import re

import pytest

from local_stack.template import load_template


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("", True),
        ("2027-03-31", True),
        ("2027-12-01", True),
        ("31/03/2027", False),
        ("2027-3-31", False),
        ("2027-13-01", False),
        ("2027-03-32", False),
        ("2027-03-31T00:00:00Z", False),
        ("soon", False),
    ],
)
def test_the_client_secret_date_must_be_a_date(value: str, accepted: bool) -> None:
    parameter = load_template()["Parameters"]["MicrosoftClientSecretExpiresOn"]
    assert parameter["Default"] == ""
    # CloudFormation matches AllowedPattern against the whole value.
    assert (re.fullmatch(parameter["AllowedPattern"], value) is not None) is accepted


def test_the_feed_alarm_reads_the_sweeps_metric() -> None:
    template = load_template()
    alarm = template["Resources"]["WebhookFeedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AccountDoctor", "WebhookFeedUnhealthy")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "account-doctor"}]
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Threshold"] == 1
    # Unknown (Nylas not answering) is no datapoint: it must neither raise nor clear the alarm.
    assert alarm["TreatMissingData"] == "ignore"
