"""In-memory stand-ins for the adapters, for unit tests of the code that calls them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from account_doctor.events_out import (
    VERDICT,
    DetailType,
    IncidentChange,
    PublishError,
    incident_detail,
    verdict_detail,
)
from account_doctor.models import AccountEvent, AccountState
from account_doctor.ports import NylasApi, Publisher


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


@dataclass
class FakeNylas:
    """Nylas answering from memory: every grant invalid unless recovered, as the webhook described it."""

    created_at: str = "2026-10-01T00:00:00Z"
    recovered: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)

    def account_state(self, event: AccountEvent) -> AccountState:
        if event.account_id in self.gone:
            return AccountState(exists=False)
        status = "valid" if event.account_id in self.recovered else "invalid"
        return AccountState(
            exists=True, status=status, provider=event.provider, email=event.email, created_at=self.created_at
        )


_nylas: type[NylasApi] = FakeNylas
