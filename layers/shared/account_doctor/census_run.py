"""Taking the grant census (SPEC §3c) on a sweep run: page by page, paced, resumable, published once.

A run that runs out of time, or that Nylas stops answering, keeps where it got to and what it counted so far
(a checkpoint), and the next sweep run goes on from there. A lease (a conditional write) keeps two overlapping
runs from counting the same census twice. Nylas calls: one per page of 200 grants, plus the last, short one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from account_doctor.census import Source, Tally, census_due
from account_doctor.models import iso
from account_doctor.nylas import GRANTS_PAGE_SIZE, V2_ACCOUNTS_PAGE_SIZE, ListedAccount, NylasUnavailable

PAGE_SIZES: Mapping[Source, int] = {"v3": GRANTS_PAGE_SIZE, "v2": V2_ACCOUNTS_PAGE_SIZE}
# Nylas allows 50 requests a second on the grants API, shared with the diagnosis' grant lookups.
REQUESTS_PER_SECOND = 50.0
# A page is not started with less time left than this: a run stops between pages, never inside one.
MIN_TIME_MARGIN_SECONDS = 10.0
# How long a run holds the census: beyond the sweep's timeout, so a crashed run's lease runs out by itself.
LEASE = timedelta(minutes=6)

PageReader = Callable[[int], tuple[int, list[ListedAccount]]]


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
