"""Gathers the evidence for one failure event: Nylas's current state, the account's history, the domain cluster."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from account_doctor.accounts import auth_method, email_domain, is_free_mail
from account_doctor.history import History, StoredEvent
from account_doctor.models import AccountEvent, AccountState, Evidence, Policy, iso, parse_iso
from account_doctor.nylas import NylasClient

RECURRING_WINDOW_DAYS = 30
# How far back the account's own history is read: the last re-authentication matters up to
# the Microsoft rule's 90 days; the history keeps 180.
ACCOUNT_LOOKBACK_DAYS = 120


def evidence_from(
    event: AccountEvent,
    state: AccountState,
    account_events: Iterable[StoredEvent],
    *,
    domain_burst_accounts: int,
    domain_window_accounts: int,
) -> Evidence:
    """The evidence, from what was read: no I/O here."""
    provider = state.provider or event.provider
    email = event.email or state.email
    domain = email_domain(email)
    failed_at = event.occurred_at
    month_ago = iso(parse_iso(failed_at) - timedelta(days=RECURRING_WINDOW_DAYS))
    events = list(account_events)

    recoveries_after = sorted(e.occurred_at for e in events if e.kind == "recovery" and e.occurred_at > failed_at)
    recoveries_before = [e.occurred_at for e in events if e.kind == "recovery" and e.occurred_at <= failed_at]
    # This failure counts even if its "record" copy has not been stored yet.
    failures = {e.event_id for e in events if e.kind == "failure" and month_ago <= e.occurred_at <= failed_at}
    failures.add(event.event_id)
    authenticated = [
        moment
        for moment in (event.grant_updated_at, state.created_at, *recoveries_before)
        if moment is not None and moment <= failed_at
    ]
    return Evidence(
        event=event,
        state=state,
        provider=provider,
        email=email,
        domain=domain,
        auth_method=auth_method(provider),
        free_mail=bool(domain) and is_free_mail(domain or ""),
        recovered_at=recoveries_after[0] if recoveries_after else None,
        removed_by_app=any(e.kind == "removal" for e in events),
        failures_last_30_days=len(failures),
        last_authenticated_at=max(authenticated) if authenticated else None,
        domain_burst_accounts=domain_burst_accounts,
        domain_window_accounts=domain_window_accounts,
    )


class EvidenceGatherer:
    def __init__(self, nylas: NylasClient, history: History, policy: Policy) -> None:
        self._nylas = nylas
        self._history = history
        self._policy = policy

    def gather(self, event: AccountEvent) -> tuple[Evidence, bool]:
        """The evidence, and whether the history already holds this failure."""
        state = self._nylas.account_state(event)
        failed_at = parse_iso(event.occurred_at)
        events = self._history.account_events(
            event.account_id, since=iso(failed_at - timedelta(days=ACCOUNT_LOOKBACK_DAYS))
        )
        domain = email_domain(event.email or state.email)
        burst = window = 1  # this account alone: no organisation domain, no cluster
        if domain and not is_free_mail(domain):
            burst_span = timedelta(minutes=self._policy.domain_burst_minutes)
            window_start = iso(failed_at - timedelta(days=self._policy.domain_window_days))
            # One query covers both windows: the long one before the failure, the burst around it.
            cluster = self._history.domain_failures(domain, window_start, iso(failed_at + burst_span))
            mine = frozenset({event.account_id})
            burst = len(cluster.accounts_between(iso(failed_at - burst_span), iso(failed_at + burst_span)) | mine)
            window = len(cluster.accounts_between(window_start, event.occurred_at) | mine)
        evidence = evidence_from(event, state, events, domain_burst_accounts=burst, domain_window_accounts=window)
        return evidence, any(e.event_id == event.event_id for e in events)
