"""The grant census (SPEC §3c): once a day, every grant counted per organisation domain and per connector.

Rule 2b needs to know how many mailboxes a domain has (3 failing of 4 is a policy, 3 of 812 a coincidence),
the read API and the report show it, and §3d needs the consent times of Google grants. A census lists every
grant (v3, and v2 accounts when v2 is configured) page by page and keeps only aggregates: a count per domain
and per connector, and the Google grants that consented within the last 7 days. Its cost is one Nylas call
per page of 200 grants and, when it ends, one write per domain and connector (batched), never one per grant.

It is resumable: a run that runs out of time, or that Nylas stops answering, keeps where it got to and what
it counted so far (a checkpoint), and the next sweep run goes on from there. A lease (a conditional write)
keeps two overlapping runs from counting the same census twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from account_doctor.addresses import email_domain
from account_doctor.models import iso, parse_iso
from account_doctor.nylas import GRANTS_PAGE_SIZE, V2_ACCOUNTS_PAGE_SIZE, ListedAccount, NylasUnavailable
from account_doctor.providers import GOOGLE_PROVIDERS, connector

Source = Literal["v3", "v2"]
PAGE_SIZES: Mapping[Source, int] = {"v3": GRANTS_PAGE_SIZE, "v2": V2_ACCOUNTS_PAGE_SIZE}
# Statuses of a working grant (v3 grant_status) or account (v2 sync_state); v2 counts as broken only what the
# sweep treats as broken (invalid, stopped), so `broken` means the same in both.
_BROKEN = {"v3": frozenset({"invalid"}), "v2": frozenset({"invalid", "stopped"})}
# Google testing-mode tokens die 7 days after consent (§3d): older consents put nothing at risk.
CONSENT_WINDOW = timedelta(days=7)
# Nylas allows 50 requests a second on the grants API, shared with the diagnosis' grant lookups.
REQUESTS_PER_SECOND = 50.0
# A page is not started with less time left than this: a run stops between pages, never inside one.
MIN_TIME_MARGIN_SECONDS = 10.0
# How long a run holds the census: beyond the sweep's timeout, so a crashed run's lease runs out by itself.
LEASE = timedelta(minutes=6)

PageReader = Callable[[int], tuple[int, list[ListedAccount]]]


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


class CensusStore(Protocol):
    def latest_started_at(self) -> str | None: ...

    def checkpoint(self) -> Tally | None: ...

    def claim(self, now: str, until: str) -> bool: ...

    def release(self) -> None: ...

    def save_checkpoint(self, tally: Tally) -> None: ...

    def publish(self, tally: Tally, census_at: str) -> int: ...


class Pacer:
    """At most `per_second` requests a second: waits, when it must, before the next one."""

    def __init__(
        self,
        per_second: float = REQUESTS_PER_SECOND,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0

    def wait(self) -> None:
        now = self._clock()
        if now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self._interval


@dataclass
class CensusSummary:
    ran: bool = False  # False: not due, or another run holds it
    complete: bool = False
    grants: int = 0
    domains: int = 0
    connectors: int = 0
    pages: int = 0  # Nylas list calls of this run
    writes: int = 0  # BatchWriteItem calls when it was published
    stopped: str | None = None
    error: Exception | None = field(default=None, repr=False, compare=False)

    def line(self) -> str:
        if not self.ran:
            return f"census: {self.stopped or 'not due'}"
        text = f"census: {self.grants} grants over {self.domains} domains and {self.connectors} connectors"
        return f"{text}, published" if self.complete else f"{text} so far; resumes next run: {self.stopped}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "complete": self.complete,
            "grants": self.grants,
            "domains": self.domains,
            "connectors": self.connectors,
            "pages": self.pages,
            "writes": self.writes,
            "stopped": self.stopped,
        }


class Census:
    def __init__(
        self,
        *,
        store: CensusStore,
        pages: Mapping[Source, PageReader],
        sources: Callable[[], Sequence[Source]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pacer: Pacer | None = None,
    ) -> None:
        self._store = store
        self._pages = pages
        self._sources = sources
        self._clock = clock
        self._pacer = pacer or Pacer()

    def run(self, *, seconds_left: Callable[[], float] | None = None) -> CensusSummary:
        """Takes today's census, or goes on with the one in progress, until it is published or time runs out."""
        summary = CensusSummary()
        now = self._clock()
        tally = self._store.checkpoint()
        if not census_due(self._store.latest_started_at(), tally is not None, now):
            return summary
        if not self._store.claim(iso(now), iso(now + LEASE)):
            summary.stopped = "another sweep run is taking it"
            return summary
        summary.ran = True
        tally = tally or Tally(census_id=iso(now))
        try:
            done = self._count(tally, summary, seconds_left)
            if done:
                summary.writes = self._store.publish(tally, iso(self._clock()))
                summary.complete = True
            else:
                self._store.save_checkpoint(tally)
        except NylasUnavailable as error:
            summary.stopped = f"Nylas is unavailable ({error})"
            self._store.save_checkpoint(tally)
        except Exception as error:  # kept in `error`, raised by the caller after logging
            summary.stopped, summary.error = f"{type(error).__name__}: {error}", error
            self._store.save_checkpoint(tally)
        finally:
            self._store.release()
            summary.grants, summary.domains, summary.connectors = (
                tally.grants,
                len(tally.domains),
                len(tally.connectors),
            )
        return summary

    def _count(self, tally: Tally, summary: CensusSummary, seconds_left: Callable[[], float] | None) -> bool:
        """Lists from the tally's position to the end of the last source; False when time ran out first."""
        sources = list(self._sources())
        if tally.source not in sources:
            return True
        for source in sources[sources.index(tally.source) :]:
            if source != tally.source:
                tally.source, tally.offset = source, 0
            while True:
                if seconds_left is not None and seconds_left() < MIN_TIME_MARGIN_SECONDS:
                    summary.stopped = "the function's time is running out"
                    return False
                self._pacer.wait()
                rows, accounts = self._pages[source](tally.offset)
                summary.pages += 1
                tally.pages += 1
                now = self._clock()
                for account in accounts:
                    tally.add(account, now)
                tally.offset += rows
                if rows < PAGE_SIZES[source]:
                    break
        return True
