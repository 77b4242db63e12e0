"""The recovery report (SPEC §6, `GET /reports/recovery`): do our emails work? Answered from aggregates only.

The episode store keeps, per day an episode began and its cause, what the episodes came to (`stores/
episodes.py`); this module adds them up over a span of days. Its cost is the number of days × causes, never
the number of accounts: no verdict and no account is read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from account_doctor.episodes import BUCKET_HOURS, OVER, RECOVERED_BY, percentile_hours
from account_doctor.models import iso

DEFAULT_DAYS = 30
MAX_DAYS = 90
_BUCKETS = (*(str(bound) for bound in BUCKET_HOURS), OVER)
# The counters every cause (and the totals) reports, as the aggregates name them.
_COUNTED = ("failures", "recovered", "removed", "emailed", "reminded", "clicked", "within_72h")


class InvalidDays(ValueError):
    """`days` is not a whole number from 1 to 90."""


def report_days(raw: str | int | None) -> int:
    """The span of a report in days: 1 to 90, default 30."""
    message = f"days must be a whole number from 1 to {MAX_DAYS}"
    if raw is None or raw == "":
        return DEFAULT_DAYS
    try:
        days = int(raw)
    except (TypeError, ValueError) as error:
        raise InvalidDays(message) from error
    if not 1 <= days <= MAX_DAYS:
        raise InvalidDays(message)
    return days


class Aggregates(Protocol):
    def aggregates(self, since_day: str, until_day: str) -> tuple[list[dict[str, Any]], int]: ...

    def open_episodes(self) -> int: ...


def _cause_row(cause: str, counts: Mapping[str, int]) -> dict[str, Any]:
    histogram = {bucket: counts.get(f"ttr_{bucket}", 0) for bucket in _BUCKETS}
    return {
        "cause": cause,
        "failures": counts.get("failures", 0),
        "recovered": counts.get("recovered", 0),
        "recovered_by": {way: counts.get(f"by_{way}", 0) for way in RECOVERED_BY},
        "still_broken": max(0, counts.get("failures", 0) - counts.get("recovered", 0) - counts.get("removed", 0)),
        "removed": counts.get("removed", 0),
        "emailed": counts.get("emailed", 0),
        "reminded": counts.get("reminded", 0),
        "clicked": counts.get("clicked", 0),
        "median_hours_to_recover": percentile_hours(histogram, 0.5),
        "p90_hours_to_recover": percentile_hours(histogram, 0.9),
        "recovered_within_72h": counts.get("within_72h", 0),
    }


def summarize(
    items: Iterable[Mapping[str, Any]], *, days: list[str], broken_now: int, connected: int | None
) -> dict[str, Any]:
    """The report of these aggregate items (one per day and shard, `{cause}:{counter}` attributes)."""
    by_cause: dict[str, Counter[str]] = {}
    failures_on: Counter[str] = Counter()
    recovered_on: Counter[str] = Counter()
    for item in items:
        day = str(item["sk"])[:10]
        for attribute, value in item.items():
            cause, colon, name = attribute.partition(":")
            if not colon or not isinstance(value, int | float):
                continue
            if name == "ended":
                recovered_on[day] += int(value)
                continue
            if name == "failures":
                failures_on[day] += int(value)
            by_cause.setdefault(cause, Counter())[name] += int(value)
    totals: Counter[str] = Counter()
    for counts in by_cause.values():
        totals.update(counts)
    causes = [_cause_row(cause, counts) for cause, counts in by_cause.items() if counts.get("failures", 0)]
    causes.sort(key=lambda row: (-row["failures"], row["cause"]))
    total_row = _cause_row("all", totals)
    del total_row["cause"]
    return {
        "since": f"{days[0]}T00:00:00Z",
        "until": None,
        "connected": connected,
        "broken_now": broken_now,
        "causes": causes,
        "totals": total_row,
        "daily": [{"date": day, "failures": failures_on[day], "recovered": recovered_on[day]} for day in days],
    }


@dataclass(frozen=True)
class RecoveryReport:
    """`GET /reports/recovery?days=N` over the episode store's aggregates."""

    aggregates: Aggregates
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # The census's connected mailboxes (SPEC §3c), when this stack keeps one.
    connected: Callable[[], int | None] = lambda: None

    def report(self, days: int = DEFAULT_DAYS) -> dict[str, Any]:
        now = self.clock()
        span = [iso(now - timedelta(days=back))[:10] for back in range(days - 1, -1, -1)]
        items, _ = self.aggregates.aggregates(span[0], span[-1])
        report = summarize(items, days=span, broken_now=self.aggregates.open_episodes(), connected=self.connected())
        report["until"] = iso(now)
        return report
