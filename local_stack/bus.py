"""Captures what the stack puts on its EventBridge bus, so the demo and the tests can show and check it.

A deployed stack's events go to whatever rules the operator adds; locally, one rule on the bus
(`source: account-doctor`) sends every event to a queue, and `captured_events` drains that queue:
each item is the event as an EventBridge target receives it (`detail-type`, `source`, `detail`, …).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from account_doctor.events_out import SOURCE
from local_stack.template import ProvisionedStack

if TYPE_CHECKING:
    from local_stack.stack import RunningStack

BUS = "EventBus"  # the bus's logical id in template.yaml


@dataclass(frozen=True)
class BusCapture:
    """The rule on the bus and the queue it delivers to."""

    bus_name: str
    rule_name: str
    queue_url: str


def capture_bus(resources: ProvisionedStack, session: boto3.Session | None = None) -> BusCapture:
    """Adds a rule to the provisioned bus that sends every Account Doctor event to a new capture queue."""
    session = session or boto3.Session(region_name="us-east-1")
    bus_name = resources.physical[BUS]
    sqs = session.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"{bus_name}-capture")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = session.client("events")
    rule_name = f"{bus_name}-capture"
    events.put_rule(Name=rule_name, EventBusName=bus_name, EventPattern=json.dumps({"source": [SOURCE]}))
    events.put_targets(Rule=rule_name, EventBusName=bus_name, Targets=[{"Id": "capture", "Arn": queue_arn}])
    return BusCapture(bus_name=bus_name, rule_name=rule_name, queue_url=queue_url)


def drain(capture: BusCapture, session: boto3.Session | None = None) -> list[dict[str, Any]]:
    """Every event captured since the last drain, oldest first, removed from the capture queue."""
    sqs = (session or boto3.Session(region_name="us-east-1")).client("sqs")
    captured: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=capture.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return captured
        for message in messages:
            captured.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=capture.queue_url, ReceiptHandle=message["ReceiptHandle"])


def captured_events(stack: RunningStack) -> list[dict[str, Any]]:
    """The events the running local stack put on its bus since the last call."""
    if stack.bus_capture is None:
        raise RuntimeError("this local stack was started without a capture of its event bus")
    return drain(stack.bus_capture)


def events_table(events: Iterable[Mapping[str, Any]]) -> str:
    """One line per event, in the demo's table style: what happened, to what, and why."""
    rows = [("event", "subject", "cause", "details")]
    for event in events:
        detail = event.get("detail", {})
        detail_type = str(event.get("detail-type", "?"))
        if detail_type == "Verdict":
            subject = str(detail.get("account_id", "?"))
            details = [f"{detail.get('confidence', '?')} confidence"]
            if detail.get("incident_id"):
                details.append(f"incident {detail['incident_id']}")
            if detail.get("revises"):
                details.append(f"revises the verdict of {detail['revises']}")
            if detail.get("truncated"):
                details.append("evidence left out (too large)")
        elif detail_type == "AccountRecovered":
            subject = str(detail.get("account_id", "?"))
            details = [f"{detail.get('recovered_by', '?')} after {detail.get('time_to_recover_seconds', '?')} s"]
            if detail.get("replaced_by"):
                details.append(f"replaced by {detail['replaced_by']}")
            if detail.get("data_gap"):
                details.append(f"data gap {detail.get('gap_from')} .. {detail.get('gap_to')}")
        else:
            subject = f"{detail.get('kind', '?')} {detail.get('key', '?')}"
            details = [
                str(detail.get("status", "?")),
                f"{detail.get('accounts', '?')} accounts",
                f"{detail.get('domains', '?')} domains",
            ]
            if detail.get("held_emails"):
                details.append(f"{detail['held_emails']} emails held")
        rows.append((detail_type, subject, str(detail.get("cause", "—")), ", ".join(details)))
    if len(rows) == 1:
        return "(no events)"
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
