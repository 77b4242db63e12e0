"""The sweep's watch over what the service depends on (SPEC §3d): the webhook feed and the client secret's clock.

Each sweep run checks both; what changed since the last run (kept in `stores/watch.py`) is one operator alert.
A change is claimed before its alert is sent and given back if the alert cannot be sent, so the next run tries
again and two overlapping runs send it once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol, cast

import boto3

from account_doctor.census import Source
from account_doctor.census_run import Census, CensusSummary
from account_doctor.clocks import days_left, due_alert_day, secret_alert, secret_expiry
from account_doctor.feed import Destination, FeedHealth, FeedStatus, feed_alert, feed_changed, feed_health
from account_doctor.models import WatchAlert, iso
from account_doctor.notifications.mailer import SesMailer
from account_doctor.notifications.watch_alerts import OperatorAlerts
from account_doctor.nylas import NylasClient
from account_doctor.settings import SweepSettings
from account_doctor.stores.census import CensusAggregates
from account_doctor.stores.dynamo import Table, dynamodb_client
from account_doctor.stores.watch import WatchStore


class AlertSender(Protocol):
    def send_alert(self, alert: WatchAlert) -> None:
        """Emails the operator (in dry-run: renders and logs it)."""
        ...


@dataclass(frozen=True)
class FeedCheck:
    health: FeedHealth
    checked_at: str
    alerted: bool


@dataclass(frozen=True)
class SecretCheck:
    expires_on: date
    days_left: int
    alerted_for: int | None  # the threshold (days before) alerted by this run


class InputsWatch:
    def __init__(
        self,
        *,
        store: WatchStore,
        alerts: AlertSender,
        nylas_api_uri: str,
        secret_expires_on: date | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._alerts = alerts
        self._nylas_api_uri = nylas_api_uri
        self._secret_expires_on = secret_expires_on
        self._clock = clock

    def check_feed(self, destinations: Sequence[Destination] | None) -> FeedCheck:
        """Records the feed's health and alerts the operator when it changed (the first unhealthy check, then
        each change between healthy and unhealthy). Nylas not answering (`unknown`) changes nothing."""
        health = feed_health(destinations)
        checked_at = iso(self._clock())
        stored = self._store.feed()
        previous = cast(FeedStatus | None, stored.status if stored else None)
        changed = feed_changed(previous, health)
        known = health.status != "unknown"
        claimed = self._store.record_feed_check(
            previous=previous,
            status=health.status,
            checked_at=checked_at,
            destinations=health.to_dict(checked_at)["destinations"] if known else None,
            changed=known and previous != health.status,
        )
        alerted = False
        if changed and claimed:
            try:
                self._alerts.send_alert(feed_alert(health, nylas_api_uri=self._nylas_api_uri))
            except Exception:
                self._store.undo_feed_change(status=health.status, previous=previous)
                raise
            alerted = True
        return FeedCheck(health, checked_at, alerted)

    def check_client_secret(self) -> SecretCheck | None:
        """Alerts 30, 7 and 1 days before the secret expires and on the day, once each (SPEC §3d)."""
        expires_on = self._secret_expires_on
        if expires_on is None:
            return None
        left = days_left(expires_on, self._clock())
        due = due_alert_day(left)
        if due is None:
            return SecretCheck(expires_on, left, None)
        before = self._store.secret_alerted()
        if not self._store.claim_secret_alert(expires_on.isoformat(), due):
            return SecretCheck(expires_on, left, None)
        try:
            self._alerts.send_alert(secret_alert(expires_on, left))
        except Exception:
            earlier = before[1] if before and before[0] == expires_on.isoformat() else None
            self._store.undo_secret_alert(expires_on.isoformat(), due, earlier)
            raise
        return SecretCheck(expires_on, left, due)


@dataclass
class WatchSummary:
    """What a sweep run found beside the broken grants: the feed, and the census's progress."""

    feed: FeedCheck | None = None
    census: CensusSummary | None = None
    # What ended the watch early (rejected credentials, an AWS error): the handler raises it after logging.
    error: Exception | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SweepWatch:
    """What each SweepFunction run does after the sweep (SPEC §3c, §3d): the feed, the clock, the census."""

    inputs: InputsWatch
    census: Census
    nylas: NylasClient

    def run(self, *, seconds_left: Callable[[], float] | None = None) -> WatchSummary:
        summary = WatchSummary()
        try:
            summary.feed = self.inputs.check_feed(self.nylas.webhook_destinations())
            self.inputs.check_client_secret()
            summary.census = self.census.run(seconds_left=seconds_left)
            summary.error = summary.census.error
        except Exception as error:  # kept in `error`, raised by the caller after logging
            summary.error = error
        return summary


def build_watch(settings: SweepSettings, nylas: NylasClient) -> SweepWatch:
    """The watch a SweepFunction cold start builds beside its sweep, over the same Nylas client."""
    events = Table(settings.events_table, dynamodb_client())
    mailer = None if settings.notification_mode == "dry-run" else SesMailer(boto3.client("sesv2"), settings)
    inputs = InputsWatch(
        store=WatchStore(events),
        alerts=OperatorAlerts(settings, mailer),
        nylas_api_uri=settings.nylas_api_uri,
        secret_expires_on=secret_expiry(settings.microsoft_client_secret_expires_on),
    )

    def sources() -> Sequence[Source]:
        return ("v3", "v2") if nylas.v2_configured() else ("v3",)

    census = Census(
        store=CensusAggregates(events),
        pages={"v3": nylas.grants_page, "v2": nylas.v2_accounts_page},
        sources=sources,
    )
    return SweepWatch(inputs, census, nylas)
