"""The webhook feed's health (SPEC §3d): whether Nylas still delivers the failures this service acts on.

Pure: Nylas's `GET /v3/webhooks` answer in, the feed's status and the operator's alert out. Nylas marks a
destination `failing`, then `failed`, and stops delivering; a destination made without `grant.expired`
never delivers it at all. Either way the sweep silently becomes the only source of failures, so a change
of the feed's status is worth one alert in plain words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from account_doctor.models import WatchAlert

FeedStatus = Literal["healthy", "unhealthy", "unknown"]
# The triggers a failure or its end arrives by (SPEC §3d); grant.created only helps, the sweep finds recoveries.
REQUIRED_TRIGGERS = ("grant.expired", "grant.updated", "grant.deleted")
ACTIVE = "active"
_STATUS_WORDS = {
    "failing": "failing: Nylas is retrying deliveries it could not make",
    "failed": "failed: Nylas stopped delivering to it",
    "pause": "paused: Nylas delivers nothing to it",
}


@dataclass(frozen=True)
class Destination:
    """One webhook destination as `GET /v3/webhooks` lists it."""

    webhook_id: str
    status: str
    trigger_types: tuple[str, ...]
    webhook_url: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class DestinationHealth:
    """A destination as `GET /health` shows it: `missing` names the required triggers it does not subscribe."""

    id: str
    status: str
    trigger_types: tuple[str, ...]
    missing: tuple[str, ...]
    webhook_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "trigger_types": list(self.trigger_types),
            "missing": list(self.missing),
        }


@dataclass(frozen=True)
class FeedHealth:
    """The feed: `healthy` when every required trigger reaches an active destination."""

    status: FeedStatus
    destinations: tuple[DestinationHealth, ...] = ()
    # Required triggers that no active destination subscribes: what the feed no longer delivers.
    undelivered: tuple[str, ...] = ()

    def to_dict(self, checked_at: str | None) -> dict[str, Any]:
        return {
            "status": self.status,
            "checked_at": checked_at,
            "destinations": [destination.to_dict() for destination in self.destinations],
        }


def feed_health(destinations: Sequence[Destination] | None) -> FeedHealth:
    """The feed's status from Nylas's destinations; None (Nylas could not be asked) is `unknown`."""
    if destinations is None:
        return FeedHealth("unknown")
    shown = tuple(
        DestinationHealth(
            id=d.webhook_id,
            status=d.status,
            trigger_types=d.trigger_types,
            missing=tuple(t for t in REQUIRED_TRIGGERS if t not in d.trigger_types),
            webhook_url=d.webhook_url,
        )
        for d in destinations
    )
    delivered = {t for d in destinations if d.status == ACTIVE for t in d.trigger_types}
    undelivered = tuple(t for t in REQUIRED_TRIGGERS if t not in delivered)
    return FeedHealth("unhealthy" if undelivered else "healthy", shown, undelivered)


def feed_changed(previous: FeedStatus | None, health: FeedHealth) -> bool:
    """Whether this check is a change worth an alert: the first check that finds the feed unhealthy, and then
    each change between healthy and unhealthy. `unknown` is never a change (Nylas could not be asked)."""
    if health.status == "unknown":
        return False
    if previous is None:
        return health.status == "unhealthy"
    return previous != health.status


def feed_alert(health: FeedHealth, *, nylas_api_uri: str) -> WatchAlert:
    """The operator's alert for a feed that just became unhealthy, or healthy again."""
    if health.status == "healthy":
        return WatchAlert(
            key="feed",
            title="The Nylas webhook feed is healthy again",
            paragraphs=(
                "Every failure trigger (" + ", ".join(REQUIRED_TRIGGERS) + ") reaches an active webhook destination "
                "again: failures arrive within minutes once more, not only when the sweep finds them.",
            ),
            facts=_facts(health),
        )
    problems = [_destination_problem(d) for d in health.destinations if d.status != ACTIVE or d.missing]
    if not health.destinations:
        problems.append("Nylas lists no webhook destination at all for the application.")
    steps = [
        "Open the Nylas dashboard > Notifications (webhooks), find the destination and re-enable it once its URL "
        "answers again (it must answer the challenge GET).",
        f"Or with the API: PUT {nylas_api_uri}/v3/webhooks/{{webhook_id}} with "
        '{"status": "active", "trigger_types": ['
        + ", ".join(f'"{t}"' for t in (*REQUIRED_TRIGGERS, "grant.created"))
        + "]}.",
        "Check that the destination's URL is this stack's WebhookUrl output (https://…/v1/webhook).",
    ]
    return WatchAlert(
        key="feed",
        title="The Nylas webhook feed is not delivering failures",
        paragraphs=(
            "Nylas is not delivering " + ", ".join(health.undelivered) + " to any active webhook destination.",
            *problems,
            "Until it is fixed the sweep is the only source of failures: a broken mailbox is noticed only when the "
            "sweep next runs (every SweepIntervalMinutes), and a recovery only when the sweep looks.",
        ),
        steps=tuple(steps),
        facts=_facts(health),
    )


def _destination_problem(d: DestinationHealth) -> str:
    words = [f"Destination {d.id}" + (f" ({d.webhook_url})" if d.webhook_url else "")]
    if d.status != ACTIVE:
        words.append(f"is {_STATUS_WORDS.get(d.status, d.status)}")
    if d.missing:
        words.append(("and " if d.status != ACTIVE else "") + "does not subscribe " + ", ".join(d.missing))
    return " ".join(words) + "."


def _facts(health: FeedHealth) -> tuple[tuple[str, str], ...]:
    return tuple(
        (
            f"Destination {d.id}",
            f"{d.status}; triggers: {', '.join(d.trigger_types) or 'none'}"
            + (f"; missing: {', '.join(d.missing)}" if d.missing else ""),
        )
        for d in health.destinations
    )
