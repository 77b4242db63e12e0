"""Gathers the evidence for one failure event: Nylas's current state, the account's history, the clusters.

A failure counts toward the clusters only once its diagnosis confirmed a grant that exists and is broken: the
account alone is judged first, and a failure rules 0 and 1 explain (working again, or removed by the app: a
404 for a grant the app deleted, or an id someone made up) never makes anyone else's failure look like an
outage. The cluster questions (rules 1b, 2a, 2b) are answered from an open incident's counts when one exists, so
a diagnosis reads the same few items whether its incident has 3 members or 5,000. Before a domain incident
opens, the domain's failures around this one are read from the history's sparse index (a handful, by
definition); the connector's are always counted from its counters, since a burst at one large organisation
fails through one connector without ever opening a connector incident.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from account_doctor.addresses import email_domain, is_free_mail
from account_doctor.diagnosis import GOOGLE_TESTING_MARGIN, GOOGLE_TESTING_TOKEN_LIFETIME
from account_doctor.incidents import incident_keys, joinable
from account_doctor.models import AccountEvent, AccountState, Evidence, IncidentKey, Policy, iso, parse_iso
from account_doctor.ports import History, IncidentRecords, NylasApi
from account_doctor.providers import auth_method, connector

if TYPE_CHECKING:
    from account_doctor.stores.events import Cluster
    from account_doctor.stores.incidents import Live

# The causes that need no other account (rules 0 and 1): their failures are not broken grants, and never count.
UNCOUNTED_CAUSES = frozenset({"recovered", "app_revoked"})
RECURRING_WINDOW_DAYS = 30
# The latest consents a verdict keeps besides the grant's creation and rule 4a's (see _consents_read).
RECENT_CONSENTS = 5
# How far back the account's own history is read: the last re-authentication matters up to
# the Microsoft rule's 90 days; the history keeps 180.
ACCOUNT_LOOKBACK_DAYS = 120


@dataclass(frozen=True)
class Gathered:
    """The evidence, and what was read on the way that the incident logic needs again."""

    evidence: Evidence
    recorded: bool  # the history already holds this failure
    live: dict[IncidentKey, Live] = field(default_factory=dict)
    domain_cluster: Cluster | None = None  # read before a domain incident opens; its opener revises them
    counted: bool = True  # counted toward its clusters (False: rules 0 and 1 explain it alone)


# Given the evidence of the account alone and whether the history holds the failure: records it, counts it
# toward its clusters when it is a broken grant, and says whether it did (then the clusters are read).
Count = Callable[["Evidence", bool], bool]


@dataclass(frozen=True)
class Mailbox:
    """Whose failure it is: the address, its domain (and whether that is free mail) and the provider's connector."""

    provider: str | None
    email: str | None
    domain: str | None
    free_mail: bool
    connector: str | None


def mailbox_of(event: AccountEvent, state: AccountState) -> Mailbox:
    """What Nylas says now, completed by the event.

    The address the emails go to is the one Nylas reports for the grant, the payload's only when Nylas has none:
    anyone holding the webhook secret can put any address in a payload, and with one real broken grant id would
    otherwise have a reconnect email and its login hint sent wherever they like."""
    provider = state.provider or event.provider
    email = state.email or event.email
    domain = email_domain(email)
    return Mailbox(provider, email, domain, bool(domain) and is_free_mail(domain or ""), connector(provider))


def evidence_from(
    event: AccountEvent,
    state: AccountState,
    account_events: Iterable[AccountEvent],
    *,
    domain_burst_accounts: int,
    domain_window_accounts: int,
    connector_burst_accounts: int = 1,
    connector_burst_domains: int = 1,
    connector_usual_failures: float = 0.0,
    incident_id: str | None = None,
    domain_connected: int | None = None,
    domain_census_at: str | None = None,
) -> Evidence:
    """The evidence, from what was read: no I/O here."""
    who = mailbox_of(event, state)
    failed_at = event.occurred_at
    month_ago = iso(parse_iso(failed_at) - timedelta(days=RECURRING_WINDOW_DAYS))
    events = list(account_events)

    recoveries_after = sorted(e.occurred_at for e in events if e.kind == "recovery" and e.occurred_at > failed_at)
    recoveries_before = [e.occurred_at for e in events if e.kind == "recovery" and e.occurred_at <= failed_at]
    # This failure counts even if its "record" copy has not been stored yet.
    failures = {e.event_id for e in events if e.kind == "failure" and month_ago <= e.occurred_at <= failed_at}
    failures.add(event.event_id)
    refreshes = [m for m in (event.grant_updated_at, *recoveries_before) if m is not None and m <= failed_at]
    consents = _consents_read(
        state.created_at,
        sorted({m for m in (state.created_at, *refreshes) if m is not None and m <= failed_at}),
        failed_at,
    )
    return Evidence(
        event=event,
        state=state,
        provider=who.provider,
        email=who.email,
        domain=who.domain,
        auth_method=auth_method(who.provider),
        free_mail=who.free_mail,
        recovered_at=recoveries_after[0] if recoveries_after else None,
        removed_by_app=any(e.kind == "removal" for e in events),
        failures_last_30_days=len(failures),
        consents=consents,
        last_refreshed_at=max(refreshes) if refreshes else None,
        domain_burst_accounts=domain_burst_accounts,
        domain_window_accounts=domain_window_accounts,
        connector=who.connector,
        connector_burst_accounts=connector_burst_accounts,
        connector_burst_domains=connector_burst_domains,
        connector_usual_failures=connector_usual_failures,
        incident_id=incident_id,
        domain_connected=domain_connected,
        domain_census_at=domain_census_at,
    )


def _consents_read(created_at: str | None, consents: list[str], failed_at: str) -> tuple[str, ...]:
    """The consents the rules read: the grant's creation, the youngest one 7 days (± 12 h) before the failure
    (the one rule 4a names) and the RECENT_CONSENTS latest. A flapping account consents hundreds of times in
    ACCOUNT_LOOKBACK_DAYS; keeping them all grew its verdict past DynamoDB's 400 KB item limit."""
    failed = parse_iso(failed_at)
    testing_mode = [
        c for c in consents if abs(failed - parse_iso(c) - GOOGLE_TESTING_TOKEN_LIFETIME) <= GOOGLE_TESTING_MARGIN
    ]
    kept = set(consents[-RECENT_CONSENTS:]) | set(testing_mode[-1:])
    if created_at in consents:
        kept.add(created_at)
    return tuple(sorted(kept))


class EvidenceGatherer:
    def __init__(self, nylas: NylasApi, history: History, incidents: IncidentRecords, policy: Policy) -> None:
        self._nylas = nylas
        self._history = history
        self._incidents = incidents
        self._policy = policy

    def gather(self, event: AccountEvent, count: Count | None = None) -> Gathered:
        """The evidence of one failure. `count` (the diagnosis's) decides from the account alone whether the
        failure counts toward clusters; a failure it does not count reads none. Without it (the CLI's
        `diagnose`, which writes nothing) the clusters are read as if the failure counted."""
        policy = self._policy
        state = self._nylas.account_state(event)
        failed_at = parse_iso(event.occurred_at)
        events = self._history.account_events(
            event.account_id, since=iso(failed_at - timedelta(days=ACCOUNT_LOOKBACK_DAYS))
        )
        recorded = any(e.event_id == event.event_id for e in events)
        counted = False
        if count is not None:
            alone = evidence_from(event, state, events, domain_burst_accounts=1, domain_window_accounts=1)
            counted = count(alone, recorded)
            if not counted:
                return Gathered(alone, True, counted=False)
        who = mailbox_of(event, state)
        domain, free_mail, failure_connector = who.domain, who.free_mail, who.connector
        live = self._incidents.live(incident_keys(domain, free_mail, failure_connector))
        burst_span = timedelta(minutes=policy.domain_burst_minutes)
        mine = frozenset({event.account_id})

        burst = window = 1  # this account alone: no organisation domain, no cluster
        domain_cluster: Cluster | None = None
        domain_incident = joinable(live.get(IncidentKey("domain", domain or "")), event.occurred_at, policy)
        if domain_incident is not None:
            window = domain_incident.accounts + 1
            burst = window if domain_incident.cause == "admin_disconnected" else 1
        elif domain and not free_mail:
            window_start = iso(failed_at - timedelta(days=policy.domain_window_days))
            # One query covers both windows: the long one before the failure, the burst around it.
            domain_cluster = self._history.domain_failures(domain, window_start, iso(failed_at + burst_span))
            burst = len(
                domain_cluster.accounts_between(iso(failed_at - burst_span), iso(failed_at + burst_span)) | mine
            )
            window = len(domain_cluster.accounts_between(window_start, event.occurred_at) | mine)

        # Rule 2b's share needs the domain's size only once its failures reach the threshold, and only before a
        # domain incident exists (its opener's share holds for every later member: the failing only grow).
        mailboxes = None
        if domain_incident is None and domain and not free_mail and window >= policy.domain_cluster_threshold:
            mailboxes = self._history.census.domain(domain)

        connector_accounts, connector_domains, usual = 1, 1, 0.0
        connector_incident = joinable(
            live.get(IncidentKey("connector", failure_connector or "")), event.occurred_at, policy
        )
        if connector_incident is not None:
            connector_accounts = connector_incident.accounts + 1
            connector_domains = max(
                len(connector_incident.domains | ({domain} if domain else set())), connector_incident.domains_at_open
            )
        elif failure_connector:
            start = iso(failed_at - burst_span)
            burst_counts = self._history.connectors.burst(failure_connector, start, iso(failed_at + burst_span))
            connector_accounts = burst_counts.failures + (0 if counted else 1)
            connector_domains = len(burst_counts.domains | ({domain} if domain else set()))
            if connector_accounts >= policy.connector_outage_threshold:
                # Only a burst big enough to matter pays for reading the baseline; the burst's own hours are left out.
                usual = self._history.connectors.usual(
                    failure_connector,
                    iso(failed_at - timedelta(days=policy.domain_window_days)),
                    start,
                    burst_span * 2,
                )
        evidence = evidence_from(
            event,
            state,
            events,
            domain_burst_accounts=burst,
            domain_window_accounts=window,
            connector_burst_accounts=connector_accounts,
            connector_burst_domains=connector_domains,
            connector_usual_failures=usual,
            domain_connected=mailboxes.connected if mailboxes else None,
            domain_census_at=mailboxes.census_at if mailboxes else None,
        )
        return Gathered(evidence, recorded or counted, live, domain_cluster)
