"""In-memory stand-ins for the adapters, for unit tests of the code that calls them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from account_doctor.addresses import email_domain, is_free_mail
from account_doctor.events_out import (
    ACCOUNT_RECOVERED,
    VERDICT,
    DetailType,
    IncidentChange,
    PublishError,
    incident_detail,
    verdict_detail,
)
from account_doctor.models import (
    AccountEvent,
    AccountState,
    IncidentBrief,
    IncidentKey,
    Notification,
    Occasion,
    Verdict,
    event_key,
)
from account_doctor.notifications.audience import recipients
from account_doctor.ports import (
    ConnectorCounts,
    DomainCensus,
    History,
    IncidentRecords,
    Notifier,
    NylasApi,
    Publisher,
    Verdicts,
)
from account_doctor.providers import connector
from account_doctor.stores.census import Counted
from account_doctor.stores.connectors import Burst
from account_doctor.stores.dynamo import Page
from account_doctor.stores.events import Cluster
from account_doctor.stores.incidents import Incident, Live, Member, incident_id_for


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

    def publish_recovery(self, recovered: Mapping[str, Any]) -> None:
        self._record(ACCOUNT_RECOVERED, json.loads(json.dumps(dict(recovered))))

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


@dataclass
class FakeCensus:
    """ports.DomainCensus in memory."""

    counted: dict[str, Counted]

    def domain(self, domain: str) -> Counted | None:
        return self.counted.get(domain)


@dataclass
class FakeConnectors:
    """A connector's failures counted from the fake history's events (no baseline: a quiet connector)."""

    history: FakeHistory

    def burst(self, failure_connector: str, start: str, end: str) -> Burst:
        cluster = self.history.connector_failures(failure_connector, start, end)
        return Burst(failures=len(cluster.failures), domains=cluster.domains_between(start, end))

    def usual(self, failure_connector: str, start: str, end: str, window: Any) -> float:
        return 0.0


@dataclass
class FakeHistory:
    """The event history in memory: every event once, each account's latest state."""

    events: dict[str, AccountEvent] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The grant census's count of each domain (rule 2b's share).
    counted: dict[str, Counted] = field(default_factory=dict)
    # The failures whose diagnosis confirmed a broken grant: only they count toward clusters.
    counted_failures: set[str] = field(default_factory=set)

    @property
    def connectors(self) -> ConnectorCounts:
        return FakeConnectors(self)

    @property
    def census(self) -> DomainCensus:
        return FakeCensus(self.counted)

    def put_event(self, event: AccountEvent) -> bool:
        if event.event_id in self.events:
            return False
        self.events[event.event_id] = event
        latest = self.states.get(event.account_id)
        if latest is None or latest["latest_at"] <= event.occurred_at:
            # As the store: what an event does not say (a recovery's address) is kept from before.
            known = {"email": event.email, "provider": event.provider, "domain": email_domain(event.email)}
            self.states[event.account_id] = {
                **(latest or {}),
                **{name: value for name, value in known.items() if value},
                "latest_at": event.occurred_at,
                "latest_kind": event.kind,
            }
        return True

    def count_failure(self, event: AccountEvent) -> bool:
        if event.event_id in self.counted_failures or event.event_id not in self.events:
            return False
        self.events[event.event_id] = event
        self.counted_failures.add(event.event_id)
        return True

    def account_events(self, account_id: str, since: str) -> list[AccountEvent]:
        mine = [e for e in self.events.values() if e.account_id == account_id and e.occurred_at >= since]
        return sorted(mine, key=lambda e: event_key(e.occurred_at, e.event_id))

    def state(self, account_id: str) -> dict[str, Any] | None:
        return self.states.get(account_id)

    def recovery_after(self, account_id: str, occurred_at: str) -> str | None:
        later = [e.occurred_at for e in self.account_events(account_id, occurred_at) if e.kind == "recovery"]
        return next((at for at in later if at > occurred_at), None)

    def domain_failures(self, domain: str, start: str, end: str) -> Cluster:
        return self._failures(lambda e: not is_free_mail(domain) and email_domain(e.email) == domain, start, end)

    def connector_failures(self, failure_connector: str, start: str, end: str) -> Cluster:
        return self._failures(lambda e: connector(e.provider) == failure_connector, start, end)

    def _failures(self, belongs: Callable[[AccountEvent], bool], start: str, end: str) -> Cluster:
        found = sorted(
            (
                e
                for e in self.events.values()
                if e.event_id in self.counted_failures and start <= e.occurred_at <= end and belongs(e)
            ),
            key=lambda e: e.occurred_at,
        )
        return Cluster(tuple((e.account_id, e.occurred_at, email_domain(e.email), e.email) for e in found), len(found))


@dataclass
class FakeVerdicts:
    """The verdicts in memory, by sort key per account, as the store keeps them."""

    stored: dict[str, dict[str, Verdict]] = field(default_factory=dict)
    announced_keys: set[tuple[str, str]] = field(default_factory=set)

    def announced(self, verdict: Verdict) -> bool:
        return (verdict.account_id, verdict.key) in self.announced_keys

    def mark_announced(self, verdict: Verdict) -> None:
        self.announced_keys.add((verdict.account_id, verdict.key))

    def put(self, verdict: Verdict, *, provided: Sequence[dict[str, Any]] = ()) -> bool:
        mine = self.stored.setdefault(verdict.account_id, {})
        if verdict.key in mine:
            return False
        mine[verdict.key] = verdict
        return True

    def latest_for_event(self, account_id: str, occurred_at: str, event_id: str) -> Verdict | None:
        mine = [v for v in self.newest(account_id, 1_000) if v.event_id == event_id]
        return mine[0] if mine else None

    def newest(self, account_id: str, count: int) -> list[Verdict]:
        mine = self.stored.get(account_id, {})
        return [mine[key] for key in sorted(mine, reverse=True)[:count]]

    def revise(self, earlier: Verdict, revision: Verdict) -> bool:
        stored = self.put(revision)
        self.stored[earlier.account_id][earlier.key] = replace(
            self.stored[earlier.account_id][earlier.key], superseded=True
        )
        return stored

    def account_verdicts(self, account_id: str, limit: int, cursor: str | None = None) -> Page:
        return Page([v.to_dict() for v in self.newest(account_id, limit)], None, limit)

    def notifications_write(self, verdict: Verdict, notifications: list[Notification]) -> dict[str, Any]:
        return {"notifications": notifications}

    def set_notifications(self, verdict: Verdict, notifications: list[Notification]) -> None:
        mine = self.stored[verdict.account_id]
        mine[verdict.key] = replace(mine[verdict.key], notifications=list(notifications))


@dataclass
class FakeIncidents:
    """Incidents in memory: one open incident per key, each member counted once.

    The store's ConditionCheck items cannot be evaluated in memory: `none_opened` answers none, and a fake
    verdict store writes regardless (the race it guards is tested on moto).
    """

    incidents: dict[str, Incident] = field(default_factory=dict)
    open_ids: dict[IncidentKey, str] = field(default_factory=dict)
    opened_counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    joined: dict[str, dict[str, Member]] = field(default_factory=dict)

    def live(self, keys: Iterable[IncidentKey]) -> dict[IncidentKey, Live]:
        found = {}
        for key in keys:
            if key not in self.open_ids:
                continue
            incident = self.get(self.open_ids[key])
            assert incident is not None
            accounts, domains = self.opened_counts[incident.incident_id]
            members = self.joined.get(incident.incident_id, {}).values()
            found[key] = Live(
                incident_id=incident.incident_id,
                cause=incident.cause,
                opened_at=incident.opened_at,
                accounts=max(incident.accounts, accounts),
                domains=frozenset(incident.domain_names),
                last_failure_at=incident.last_failure_at,
                opened_by_event=incident.opened_by_event,
                recovered=sum(1 for m in members if m.recovered),
                domains_at_open=domains,
            )
        return found

    def none_opened(self, seen: dict[IncidentKey, str | None]) -> list[dict[str, Any]]:
        return []

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
        current = self.open_ids.get(key)
        if current is not None and current != replacing:
            return current, self.incidents[current].opened_by_event == event_id
        if replacing is not None:
            self.incidents[replacing] = replace(self.incidents[replacing], status="closed", resolved_at=opened_at)
        incident_id = incident_id_for(key, opened_at)
        self.incidents[incident_id] = Incident(
            incident_id=incident_id,
            kind=key.kind,
            key=key.key,
            cause=cause,
            status="open",
            opened_at=opened_at,
            last_failure_at=opened_at,
            accounts=0,
            domains=0,
            opened_by_event=event_id,
        )
        self.open_ids[key] = incident_id
        self.opened_counts[incident_id] = (accounts, domains)
        return incident_id, True

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
        members = self.joined.setdefault(incident_id, {})
        if account_id in members:
            return False
        members[account_id] = Member(account_id, email, at, cause, recovered=False, held=held)
        incident = self.incidents[incident_id]
        names = tuple(sorted({*incident.domain_names, *([domain] if domain else [])}))
        self.incidents[incident_id] = replace(
            incident,
            accounts=incident.accounts + 1,
            domains=len(names),
            domain_names=names,
            last_failure_at=max(incident.last_failure_at, at),
            held_emails=incident.held_emails + (1 if held else 0),
        )
        return True

    def hold(self, key: IncidentKey, incident_id: str, account_id: str) -> bool:
        member = self.joined.get(incident_id, {}).get(account_id)
        if member is None or member.held:
            return False
        self.joined[incident_id][account_id] = replace(member, held=True)
        incident = self.incidents[incident_id]
        self.incidents[incident_id] = replace(incident, held_emails=incident.held_emails + 1)
        return True

    def member_recovered(self, key: IncidentKey, incident_id: str, account_id: str) -> bool:
        member = self.joined.get(incident_id, {}).get(account_id)
        if member is None or member.recovered:
            return False
        self.joined[incident_id][account_id] = replace(member, recovered=True)
        return True

    def get(self, incident_id: str) -> Incident | None:
        incident = self.incidents.get(incident_id)
        return replace(incident, held_emails=0) if incident and incident.released_at else incident

    def members(self, incident_id: str, limit: int, cursor: str | None = None) -> tuple[list[Member], str | None]:
        everyone = sorted(self.joined.get(incident_id, {}).values(), key=lambda m: m.account_id)
        start = int(cursor or 0)
        following = str(start + limit) if start + limit < len(everyone) else None
        return everyone[start : start + limit], following

    def resolve(self, incident_id: str, at: str) -> Incident | None:
        incident = self.incidents.get(incident_id)
        if incident is None or incident.status != "open":
            return None
        self.incidents[incident_id] = replace(incident, status="resolved", resolved_at=at)
        key = IncidentKey(incident.kind, incident.key)
        if self.open_ids.get(key) == incident_id:
            del self.open_ids[key]
        return self.get(incident_id)

    def mark_released(self, incident_id: str, at: str) -> bool:
        incident = self.incidents.get(incident_id)
        if incident is None or incident.released_at:
            return False
        self.incidents[incident_id] = replace(incident, released_at=at)
        return True

    def mark_resolution_announced(self, incident_id: str) -> bool:
        incident = self.incidents.get(incident_id)
        if incident is None or incident.resolution_announced:
            return False
        self.incidents[incident_id] = replace(incident, resolution_announced=True)
        return True


@dataclass
class FakeNotifier:
    """Sends what audience.recipients plans, each (event, kind, audience) once; held emails wait for the release.

    Like the real notifier, it writes the verdict's notifications back to its store (`verdicts`).
    """

    operator_email: str = "ops@example.com"
    verdicts: FakeVerdicts | None = None
    sent: list[tuple[str, str]] = field(default_factory=list)  # (to, kind), in order
    briefs: list[IncidentBrief] = field(default_factory=list)
    _kept: dict[str, list[Notification]] = field(default_factory=dict)
    _once: set[tuple[str, str, str]] = field(default_factory=set)

    def notify(
        self, verdict: Verdict, occasion: Occasion | None = None, *, incident: IncidentBrief | None = None
    ) -> list[Notification]:
        kept = self._kept.setdefault(verdict.key, list(verdict.notifications))
        if incident is not None:
            self.briefs.append(incident)
        for recipient in recipients(verdict, self.operator_email, occasion):
            gate = verdict.incident_id if recipient.gate == "incident" else verdict.event_id
            once = (str(gate), recipient.kind, recipient.audience)
            if once in self._once:
                continue
            if recipient.held:
                kept.append(Notification(kind=recipient.kind, to=recipient.to, status="held"))
                continue
            self._once.add(once)
            self.sent.append((recipient.to, recipient.kind))
            kept[:] = [n for n in kept if not (n.kind == recipient.kind and n.status == "held")]
            kept.append(Notification(kind=recipient.kind, to=recipient.to, status="sent"))
        if self.verdicts is not None:
            self.verdicts.set_notifications(verdict, kept)
        return list(kept)

    def kinds(self, to: str) -> list[str]:
        return [kind for address, kind in self.sent if address == to]


_history: type[History] = FakeHistory
_verdicts: type[Verdicts] = FakeVerdicts
_incidents: type[IncidentRecords] = FakeIncidents
_notifier: type[Notifier] = FakeNotifier
