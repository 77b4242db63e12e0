"""In-memory stand-ins for the adapters, for unit tests of the code that calls them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from account_doctor.events_out import (
    VERDICT,
    DetailType,
    IncidentChange,
    Publisher,
    PublishError,
    incident_detail,
    verdict_detail,
)


@dataclass(frozen=True)
class PublishedEvent:
    detail_type: DetailType
    detail: dict[str, Any]


@dataclass
class RecordingPublisher:
    """Keeps every event as it would have gone on the bus (same JSON detail, same truncation).

    `failures`: how many of the next calls raise `PublishError` instead, as a failed PutEvents does.
    """

    events: list[PublishedEvent] = field(default_factory=list)
    failures: int = 0

    def publish_verdict(self, verdict: Mapping[str, Any]) -> None:
        self._record(VERDICT, verdict_detail(verdict))

    def publish_incident(self, change: IncidentChange, incident: Mapping[str, Any]) -> None:
        self._record(change, incident_detail(incident))

    def of_type(self, detail_type: DetailType) -> list[dict[str, Any]]:
        return [event.detail for event in self.events if event.detail_type == detail_type]

    def _record(self, detail_type: DetailType, detail: dict[str, Any]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise PublishError(detail_type, "InternalFailure: injected by the test")
        self.events.append(PublishedEvent(detail_type, detail))


# mypy (`mypy tests/fakes.py`) checks the fake still matches the interface the code depends on.
_: type[Publisher] = RecordingPublisher
