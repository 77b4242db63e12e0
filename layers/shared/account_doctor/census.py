"""The grant census (SPEC §3c): every grant counted per organisation domain and per connector; pure.

Rule 2b needs to know how many mailboxes a domain has (3 failing of 4 is a policy, 3 of 812 a coincidence),
the read API and the report show it, and §3d needs the consent times of Google grants. A census lists every
grant (v3, and v2 accounts when v2 is configured) page by page and keeps only aggregates: a count per domain
and per connector, and the Google grants that consented within the last 7 days. Its cost is one Nylas call
per page of 200 grants and, when it ends, one write per domain and connector (batched), never one per grant.

Taking it (paging, pacing, resuming) is `census_run.py`; storing it, `stores/census.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from account_doctor.addresses import email_domain
from account_doctor.models import parse_iso
from account_doctor.providers import GOOGLE_PROVIDERS, connector

if TYPE_CHECKING:  # the listing's row type only: the read side never loads the HTTP client
    from account_doctor.nylas import ListedAccount

Source = Literal["v3", "v2"]
# Statuses of a working grant (v3 grant_status) or account (v2 sync_state); v2 counts as broken only what the
# sweep treats as broken (invalid, stopped), so `broken` means the same in both.
_BROKEN = {"v3": frozenset({"invalid"}), "v2": frozenset({"invalid", "stopped"})}
# Google testing-mode tokens die 7 days after consent (§3d): older consents put nothing at risk.
CONSENT_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Consent:
    """A Google grant's latest consent, while it can still die of testing mode."""

    account_id: str
    email: str | None
    consented_at: str


@dataclass
class Tally:
    """A census in progress: where the listing got to, and what it counted so far (the checkpoint)."""

    census_id: str  # when it started (ISO): a census is one day's
    source: Source = "v3"
    offset: int = 0
    grants: int = 0
    pages: int = 0
    domains: dict[str, list[int]] = field(default_factory=dict)  # domain -> [connected, broken]
    connectors: dict[str, list[int]] = field(default_factory=dict)  # connector -> [connected, broken]
    consents: dict[str, Consent] = field(default_factory=dict)  # account id -> its recent Google consent

    def add(self, account: ListedAccount, now: datetime) -> None:
        """Counts one listed grant: connected whatever its status, broken when Nylas says so. A row without an
        address counts under no domain; one of an unknown provider under no connector."""
        self.grants += 1
        broken = int(account.status in _BROKEN[account.api_version])
        domain = email_domain(account.email)
        if domain:
            _count(self.domains, domain, broken)
        kind = connector(account.provider)
        if kind:
            _count(self.connectors, kind, broken)
        if not broken and (account.provider or "").lower() in GOOGLE_PROVIDERS:
            consented = max((t for t in (account.created_at, account.updated_at) if t), default=None)
            if consented and parse_iso(consented) >= now - CONSENT_WINDOW:
                self.consents[account.account_id] = Consent(account.account_id, account.email, consented)

    def to_dict(self) -> dict[str, Any]:
        return {
            "census_id": self.census_id,
            "source": self.source,
            "offset": self.offset,
            "grants": self.grants,
            "pages": self.pages,
            "domains": self.domains,
            "connectors": self.connectors,
            "consents": [[c.account_id, c.email, c.consented_at] for c in self.consents.values()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tally:
        return cls(
            census_id=str(data["census_id"]),
            source=data["source"],
            offset=int(data["offset"]),
            grants=int(data["grants"]),
            pages=int(data.get("pages", 0)),
            domains={str(k): [int(n) for n in v] for k, v in data["domains"].items()},
            connectors={str(k): [int(n) for n in v] for k, v in data["connectors"].items()},
            consents={str(c[0]): Consent(str(c[0]), c[1], str(c[2])) for c in data["consents"]},
        )


def _count(counts: dict[str, list[int]], key: str, broken: int) -> None:
    entry = counts.setdefault(key, [0, 0])
    entry[0] += 1
    entry[1] += broken


def census_due(latest_started_at: str | None, in_progress: bool, now: datetime) -> bool:
    """A census is due on the first run after 00:00 UTC, on a deployment's first run (there is none yet), and
    on every run while one is in progress."""
    if in_progress or latest_started_at is None:
        return True
    return parse_iso(latest_started_at).date() < now.astimezone(UTC).date()
