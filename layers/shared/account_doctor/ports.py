"""The small interfaces between the core and its adapters; in-memory fakes in tests implement them too.

Interfaces import no implementation: what an adapter returns is named for the type checker only, so
importing this module (or the pure code that depends on it) loads neither boto3, jinja2 nor a store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from account_doctor.models import (
    AccountEvent,
    AccountState,
    AtRisk,
    DeliveredNotification,
    IncidentBrief,
    IncidentKey,
    Notification,
    Occasion,
    Verdict,
)

if TYPE_CHECKING:
    from account_doctor.delivery import DeliveryStatus
    from account_doctor.events_out import IncidentChange
    from account_doctor.notifications.render import RenderedEmail
    from account_doctor.stores.census import Counted
    from account_doctor.stores.connectors import Burst
    from account_doctor.stores.dynamo import Page
    from account_doctor.stores.events import Cluster
    from account_doctor.stores.incidents import Incident, Live, Member


class NylasApi(Protocol):
    def account_state(self, event: AccountEvent) -> AccountState:
        """What Nylas says about the event's grant (v3) or account (v2) now."""
        ...


class Notifier(Protocol):
    def notify(
        self, verdict: Verdict, occasion: Occasion | None = None, *, incident: IncidentBrief | None = None
    ) -> list[Notification]:
        """Sends the verdict's emails (in dry-run: renders and records them) at most once each.

        Safe to call again for the same verdict after a failure: what an earlier attempt already sent is
        returned, not sent again. Returns every notification of the verdict.
        """
        ...


class Mailer(Protocol):
    def send(self, email: RenderedEmail) -> str:
        """Sends one rendered email; its SES message id."""
        ...


class Publisher(Protocol):
    """Where verdicts and incident changes are announced; raises `PublishError` when that failed."""

    def publish_verdict(self, verdict: Mapping[str, Any]) -> None:
        """`verdict` is the stored verdict record (`Verdict.to_dict()`), new or revised."""
        ...

    def publish_incident(self, change: IncidentChange, incident: Mapping[str, Any]) -> None:
        """`incident` is the stored incident; its members, if given, are not published."""
        ...

    def publish_recovery(self, recovered: Mapping[str, Any]) -> None:
        """`recovered` is an episode's end (SPEC §4c `AccountRecovered`, `episodes.EpisodeEnd.detail`)."""
        ...


# Stores (stores/*.py implement them) ---------------------------------------------------------------


class ConnectorCounts(Protocol):
    """A connector's failure counters (rule 1b), written with each failure (stores.connectors)."""

    def burst(self, failure_connector: str, start: str, end: str) -> Burst: ...

    def usual(self, failure_connector: str, start: str, end: str, window: Any) -> float: ...


class DomainCensus(Protocol):
    """How many mailboxes a domain has, as the daily grant census counted them (stores.census)."""

    def domain(self, domain: str) -> Counted | None: ...


class History(Protocol):
    """The event history and each account's current state (stores.events.EventHistory)."""

    @property
    def connectors(self) -> ConnectorCounts: ...

    @property
    def census(self) -> DomainCensus: ...

    def put_event(self, event: AccountEvent) -> bool:
        """Stores the event once; False when it was already there."""
        ...

    def count_failure(self, event: AccountEvent) -> bool:
        """Counts a diagnosed failure toward its domain's and connector's clusters once; False when it was."""
        ...

    def account_events(self, account_id: str, since: str) -> list[AccountEvent]: ...

    def state(self, account_id: str) -> dict[str, Any] | None: ...

    def recovery_after(self, account_id: str, occurred_at: str) -> str | None:
        """When the account recovered after `occurred_at`; None while it has not."""
        ...

    def domain_failures(self, domain: str, start: str, end: str) -> Cluster: ...

    def connector_failures(self, failure_connector: str, start: str, end: str) -> Cluster: ...


class Verdicts(Protocol):
    """The verdicts and their revisions (stores.verdicts.VerdictStore)."""

    def put(self, verdict: Verdict, *, provided: Sequence[dict[str, Any]] = ()) -> bool:
        """Stores the verdict once (False when it existed); ChangedMeanwhile when a `provided` check failed."""
        ...

    def latest_for_event(self, account_id: str, occurred_at: str, event_id: str) -> Verdict | None: ...

    def newest(self, account_id: str, count: int) -> list[Verdict]:
        """The account's `count` newest verdicts (a revision before what it revises)."""
        ...

    def announced(self, verdict: Verdict) -> bool:
        """Whether the stored verdict was published (marked after a successful publish)."""
        ...

    def mark_announced(self, verdict: Verdict) -> None: ...

    def revise(self, earlier: Verdict, revision: Verdict) -> bool:
        """Stores the revision and marks the earlier verdict superseded; False when the revision existed."""
        ...

    def account_verdicts(self, account_id: str, limit: int, cursor: str | None = None) -> Page: ...


class VerdictNotifications(Protocol):
    """Where a verdict's notifications are kept (stores.verdicts.VerdictStore)."""

    def notifications_write(self, verdict: Verdict, notifications: list[Notification]) -> dict[str, Any]:
        """The update as one write of a transaction (the ledger records an email and its verdict at once)."""
        ...

    def set_notifications(self, verdict: Verdict, notifications: list[Notification]) -> None: ...


class IncidentRecords(Protocol):
    """Incidents, their pointers, counters and members (stores.incidents.IncidentStore)."""

    def live(self, keys: Iterable[IncidentKey]) -> dict[IncidentKey, Live]:
        """The open incident of each key with its counts, in one read."""
        ...

    def none_opened(self, seen: dict[IncidentKey, str | None]) -> list[dict[str, Any]]:
        """Checks (for a verdict's transaction) that no incident opened for these keys since they were read."""
        ...

    def open(
        self,
        key: IncidentKey,
        cause: str,
        opened_at: str,
        event_id: str,
        replacing: str | None,
        *,
        accounts: int = 1,
        domains: int = 1,
    ) -> tuple[str, bool]:
        """Opens an incident of the key unless a racer did: its id, and whether this event opened it."""
        ...

    def join(
        self,
        key: IncidentKey,
        incident_id: str,
        account_id: str,
        email: str | None,
        domain: str | None,
        cause: str,
        at: str,
        *,
        held: bool = False,
    ) -> bool:
        """Counts the account as a member once; False when it already was one."""
        ...

    def hold(self, key: IncidentKey, incident_id: str, account_id: str) -> bool: ...

    def member_recovered(self, key: IncidentKey, incident_id: str, account_id: str) -> bool: ...

    def get(self, incident_id: str) -> Incident | None: ...

    def members(self, incident_id: str, limit: int, cursor: str | None = None) -> tuple[list[Member], str | None]: ...

    def resolve(self, incident_id: str, at: str) -> Incident | None:
        """Resolves an open incident; the incident when this call resolved it, else None."""
        ...

    def mark_released(self, incident_id: str, at: str) -> bool:
        """Records the release once; False when it was already released."""
        ...

    def mark_resolution_announced(self, incident_id: str) -> bool:
        """Records that IncidentResolved went out; False when it already was recorded."""
        ...


# SES's open and click tracking (EmailTracking): what a customer did with an email.
Engagement = Literal["opened", "clicked"]


class DeliveryLedger(Protocol):
    """What the notification ledger offers for delivery feedback (stores/ledger.py implements it)."""

    def record_delivery(
        self, message_id: str, status: DeliveryStatus, reason: str | None, at: str
    ) -> DeliveredNotification | None:
        """Records the status on the notification sent with this SES message id and on its verdict.

        The notification is found through the item `message#{message_id}` written when it was sent; None
        when no notification of ours has that id (sent before this feature, or a dry-run). SES events arrive
        in any order and more than once: `delivered` never replaces `bounced` or `complained`, and recording
        a status again changes nothing.
        """
        ...

    def claim_delivery_alert(self, message_id: str, at: str) -> bool:
        """True for the first caller only, per message id: that caller sends the operator alert (a
        conditional UpdateItem on the `message#{message_id}` item)."""
        ...

    def release_delivery_alert(self, message_id: str) -> None:
        """Gives the claim back after the alert could not be sent, so the retried event sends it."""
        ...

    def block_address(self, address: str, reason: str | None, at: str) -> None:
        """No customer email goes to this address again (a hard bounce, the suppression list's, or a complaint)."""
        ...

    def record_engagement(
        self, message_id: str, engagement: Engagement, at: str
    ) -> tuple[DeliveredNotification, bool] | None:
        """Records the first open or click of the email (EmailTracking), and whether this was the first; None
        when no notification of ours has that SES message id."""
        ...


class KnownEvent(Protocol):
    """What the sweep needs of an account's latest stored event."""

    @property
    def kind(self) -> str: ...

    @property
    def occurred_at(self) -> str: ...


class ReadApi(Protocol):
    """The read API's answers (account_doctor.accounts_api.AccountsApi); every list pages with `next`, and an
    unknown account, domain or incident raises NotFound."""

    def account(self, account_id: str, *, limit: int, cursor: str | None) -> dict[str, Any]: ...

    def domain(self, domain: str, *, limit: int, cursor: str | None) -> dict[str, Any]: ...

    def broken_accounts(self, *, limit: int, cursor: str | None) -> dict[str, Any]: ...

    def incidents_list(self, *, status: str, limit: int, cursor: str | None) -> dict[str, Any]: ...

    def incident(self, incident_id: str, *, limit: int, cursor: str | None) -> dict[str, Any]: ...

    def release_incident(self, incident_id: str) -> dict[str, Any]: ...

    def resolve_incident(self, incident_id: str) -> dict[str, Any]: ...

    def recovery_report(self, days: str | int | None = None) -> dict[str, Any]: ...
    def health(self) -> dict[str, Any]: ...


class AtRiskGrants(Protocol):
    """The Google grants an open testing_mode incident puts at risk (testing_mode.AtRiskWatch)."""

    def opened(self, incident_id: str) -> list[AtRisk]:
        """Starts the new incident's list (from the census's recent consents); a retried opener keeps the first."""
        ...

    def consented(self, incident_id: str, account_id: str, email: str | None, at: str) -> None: ...

    def failed(self, incident_id: str, account_id: str) -> None: ...

    def at_risk(self, incident_id: str) -> list[AtRisk]:
        """Every grant still at risk, soonest expiry first."""
        ...

    def in_words(self, incident_id: str) -> str | None:
        """What the incident's alert says of them: "3 more grants expire by 2026-12-08 unless …"; None: none."""
        ...
