"""Google testing mode, before it bites (SPEC §3d): which grants die next unless the OAuth app is published.

While a `testing_mode` incident is open, every Google grant whose last consent lies within the last 7 days and
which has not failed is at risk: it expires at consent + 7 days. The incident's list starts from the census's
recent Google consents when it opens (less the grants whose latest event is a failure), gains each consent the
history records while it is open (a grant.created or re-authentication), and loses each grant that fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from account_doctor.census import Consent
from account_doctor.incidents import TESTING_MODE_KEY
from account_doctor.models import AccountEvent, AtRisk, IncidentKey, iso, parse_iso

if TYPE_CHECKING:
    from account_doctor.stores.at_risk import AtRiskStore

# Google ends a testing-mode app's refresh tokens 7 days after consent (rule 4a).
TOKEN_LIFETIME = timedelta(days=7)
# The one testing_mode incident there can be: publishing the Google OAuth app is one fix for all (SPEC §4b).
TESTING_MODE = IncidentKey("testing_mode", TESTING_MODE_KEY)


def at_risk_from(consents: Iterable[Consent], latest: Mapping[str, AccountEvent | None], now: datetime) -> list[AtRisk]:
    """The consents whose grant will still die of testing mode: not expired yet, and not failed since."""
    found = []
    for consent in consents:
        expires_at = iso(parse_iso(consent.consented_at) + TOKEN_LIFETIME)
        event = latest.get(consent.account_id)
        failed = event is not None and event.kind == "failure" and event.occurred_at >= consent.consented_at
        if expires_at > iso(now) and not failed:
            found.append(AtRisk(consent.account_id, consent.email, expires_at))
    return sorted(found, key=lambda g: (g.expires_at, g.account_id))


def risk_sentence(grants: Sequence[AtRisk]) -> str | None:
    """What the operator alert says: "3 more grants expire by 2026-12-08 unless you publish the app"."""
    if not grants:
        return None
    last = max(g.expires_at for g in grants)[:10]
    grants_expire = "grant expires" if len(grants) == 1 else "grants expire"
    return f"{len(grants)} more {grants_expire} by {last} unless you publish the app"


class AtRiskWatch:
    """Implements ports.AtRiskGrants over the incident's stored list, the census's consents and the history."""

    def __init__(
        self,
        store: AtRiskStore,
        consents: Callable[[], Sequence[Consent]],
        latest_events: Callable[[Sequence[str]], Mapping[str, AccountEvent]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._consents = consents
        self._latest_events = latest_events
        self._clock = clock

    def opened(self, incident_id: str) -> list[AtRisk]:
        """Seeds the new incident's list from the census (a retried opener keeps the first list)."""
        consents = list(self._consents())
        latest = self._latest_events([c.account_id for c in consents]) if consents else {}
        grants = at_risk_from(consents, latest, self._clock())
        self._store.seed(incident_id, grants)
        return grants

    def consented(self, incident_id: str, account_id: str, email: str | None, at: str) -> None:
        """A consent recorded while the incident is open: the grant dies 7 days after it, unless published."""
        expires_at = iso(parse_iso(at) + TOKEN_LIFETIME)
        if expires_at > iso(self._clock()):
            self._store.add(incident_id, AtRisk(account_id, email, expires_at))

    def failed(self, incident_id: str, account_id: str) -> None:
        self._store.remove(incident_id, account_id)

    def at_risk(self, incident_id: str) -> list[AtRisk]:
        return self._store.at_risk(incident_id, iso(self._clock()))

    def in_words(self, incident_id: str) -> str | None:
        return risk_sentence(self.at_risk(incident_id))
