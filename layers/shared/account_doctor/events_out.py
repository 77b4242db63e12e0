"""Puts verdicts, incident changes and recoveries on the stack's EventBridge bus (SPEC §6b).

Events go out after the verdict (or incident) is stored, so a failed put loses nothing: it raises
`PublishError`, the queue message is retried, and the retry publishes from what was stored.
EventBridge has no deduplication id, so a retry after a put that did succeed delivers the same event
twice: consumers dedupe verdicts on `detail.event_id` + `detail.diagnosed_at` (a revision has its own
`diagnosed_at`), incident changes on `detail.incident_id` + `detail-type`, and recoveries on
`detail.account_id` + `detail.failed_at`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from account_doctor.ports import Publisher

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient

SOURCE: Final = "account-doctor"
VERDICT: Final = "Verdict"
INCIDENT_OPENED: Final = "IncidentOpened"
INCIDENT_RESOLVED: Final = "IncidentResolved"
ACCOUNT_RECOVERED: Final = "AccountRecovered"
DetailType = Literal["Verdict", "IncidentOpened", "IncidentResolved", "AccountRecovered"]
IncidentChange = Literal["IncidentOpened", "IncidentResolved"]

# PutEvents takes at most 256 KB per entry (detail, detail type and source together). A verdict's
# evidence and steps are the only parts that can grow; above this size they are left out, so the
# event still arrives and says it is incomplete (the stored verdict keeps everything).
MAX_DETAIL_BYTES = 200_000

# Slack reads `<…>` as a mention or a link and `&` as an entity, so a crafted account id, provider or domain
# could post `<!channel>` or a disguised link. An EventBridge input transformer cannot escape: each event
# carries, under `slack`, an escaped copy of the free-text fields the Slack message shows, and template.yaml's
# Slack rules read those, besides fields whose values are enumerated (cause, kind) or written by this code.
SLACK_VERDICT_FIELDS = ("account_id", "provider", "domain", "summary")
SLACK_INCIDENT_FIELDS = ("incident_id", "key")

logger = Logger(child=True)
_BULKY_VERDICT_FIELDS = ("evidence", "steps")


class PublishError(RuntimeError):
    """EventBridge did not take an event. Retrying the queue message publishes it again."""

    def __init__(self, detail_type: str, reason: str) -> None:
        super().__init__(f"could not put the {detail_type} event on the event bus: {reason}")
        self.detail_type = detail_type
        self.reason = reason


def verdict_detail(verdict: Mapping[str, Any]) -> dict[str, Any]:
    """The verdict as JSON-ready detail, without evidence and steps if it would be too large to put."""
    detail = {**_json_ready(verdict), "slack": slack_fields(verdict, SLACK_VERDICT_FIELDS)}
    size = _size(detail)
    if size <= MAX_DETAIL_BYTES:
        return detail
    logger.warning(
        "verdict event too large: evidence and steps left out",
        extra={"event_id": detail.get("event_id"), "detail_bytes": size},
    )
    slim = {key: value for key, value in detail.items() if key not in _BULKY_VERDICT_FIELDS}
    slim["truncated"] = True
    return slim


def incident_detail(incident: Mapping[str, Any]) -> dict[str, Any]:
    """The incident without its members: the count fields say how many there are."""
    detail = _json_ready({key: value for key, value in incident.items() if key != "members"})
    return {**detail, "slack": slack_fields(incident, SLACK_INCIDENT_FIELDS)}


def slack_escape(text: str) -> str:
    """Text Slack shows as written: the three characters its message format gives a meaning (api.slack.com)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_fields(record: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, str | None]:
    return {name: None if record.get(name) is None else slack_escape(str(record[name])) for name in fields}


class EventPublisher:
    """Puts one event per call on the bus (`EVENT_BUS_NAME`), with `Source: account-doctor`."""

    def __init__(self, bus_name: str, client: EventBridgeClient | None = None) -> None:
        self._bus_name = bus_name
        self._client: EventBridgeClient = client or boto3.client("events")

    def publish_verdict(self, verdict: Mapping[str, Any]) -> None:
        self.publish(VERDICT, verdict_detail(verdict))

    def publish_incident(self, change: IncidentChange, incident: Mapping[str, Any]) -> None:
        self.publish(change, incident_detail(incident))

    def publish_recovery(self, recovered: Mapping[str, Any]) -> None:
        self.publish(ACCOUNT_RECOVERED, _json_ready(recovered))

    def publish(self, detail_type: DetailType, detail: Mapping[str, Any]) -> None:
        body = _to_json(detail)
        size = len(body.encode("utf-8"))
        if size > MAX_DETAIL_BYTES:
            # Not retryable: the same detail will be as large next time; the DLQ shows it to the operator.
            raise PublishError(detail_type, f"the detail is {size} bytes, over the limit of {MAX_DETAIL_BYTES}")
        try:
            # boto3's own retries have already absorbed throttling by the time an error arrives here.
            response = self._client.put_events(
                Entries=[{"Source": SOURCE, "DetailType": detail_type, "Detail": body, "EventBusName": self._bus_name}]
            )
        except (ClientError, BotoCoreError) as error:
            raise PublishError(detail_type, str(error)) from error
        if response.get("FailedEntryCount", 0):
            failed = response.get("Entries", [{}])[0]
            reason = f"{failed.get('ErrorCode', 'unknown error')}: {failed.get('ErrorMessage', '')}".rstrip(": ")
            raise PublishError(detail_type, reason)


class NoPublisher:
    """Announces nothing: for a process without a bus (EVENT_BUS_NAME empty, e.g. the CLI's dry runs)."""

    def publish_verdict(self, verdict: Mapping[str, Any]) -> None:
        return None

    def publish_incident(self, change: IncidentChange, incident: Mapping[str, Any]) -> None:
        return None

    def publish_recovery(self, recovered: Mapping[str, Any]) -> None:
        return None


def publisher_for(bus_name: str, client: EventBridgeClient | None = None) -> Publisher:
    return EventPublisher(bus_name, client) if bus_name else NoPublisher()


def _json_ready(values: Mapping[str, Any]) -> dict[str, Any]:
    ready: dict[str, Any] = json.loads(_to_json(values))
    return ready


def _to_json(values: Mapping[str, Any]) -> str:
    return json.dumps(values, default=_json_value, separators=(",", ":"), ensure_ascii=False)


def _size(detail: Mapping[str, Any]) -> int:
    return len(_to_json(detail).encode("utf-8"))


def _json_value(value: Any) -> Any:
    """What json cannot write by itself: DynamoDB's Decimals and sets, and dataclasses (Step, Notification)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
