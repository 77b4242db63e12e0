"""What each console page shows, asked of the read API's core (`AccountsApi`): the same calls `GET /…` makes.

The recovery report (`GET /reports/recovery`) and health (`GET /health`) are optional sources: while the
stack's core does not answer them, the pages say so instead of failing. Wiring one in is one field of
`Sources` (see `build_sources`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from account_doctor.accounts_api import DEFAULT_LIMIT, MAX_LIMIT, AccountsApi, BrokenFilter, NotFound, build_read_api
from account_doctor.models import CAUSES
from account_doctor.providers import PROVIDER_NAMES
from account_doctor.settings import Settings
from account_doctor_console.charts import Bar, Day, bar_chart, count, daily_chart

# Lists show this many rows a page; the account's timeline this many verdicts and events.
PAGE_SIZE = DEFAULT_LIMIT
TIMELINE_SIZE = 20
# The overview counts the broken list's first page only: beyond it, "more than".
OVERVIEW_BROKEN = MAX_LIMIT
REPORT_DAYS = 30
NO_VERDICT = "awaiting diagnosis"
# The cursor of a timeline list that has ended (its newest pages were shown).
DONE = "done"

Report = Callable[[int], dict[str, Any]]
Health = Callable[[], dict[str, Any]]


@dataclass(frozen=True)
class Sources:
    """Where the pages' answers come from: the read API's core, and the answers it does not give yet (None)."""

    api: AccountsApi
    recovery_report: Report | None = None  # GET /reports/recovery?days=N (SPEC §6)
    health: Health | None = None  # GET /health (SPEC §3d)


def build_sources(settings: Settings) -> Sources:
    """The console's sources over the stack's stores, built as AccountsApiFunction builds its own."""
    api = build_read_api(settings)
    return Sources(api=api, recovery_report=api.recovery_report, health=api.health)


CAUSE_CHOICES: tuple[str, ...] = CAUSES
PROVIDER_CHOICES: tuple[str, ...] = tuple(sorted(PROVIDER_NAMES))


# Overview ----------------------------------------------------------------------------------------------------


def overview(sources: Sources) -> dict[str, Any]:
    broken = sources.api.broken_accounts(OVERVIEW_BROKEN)
    causes = Counter(_cause(account) for account in broken["accounts"])
    report = _answered(sources.recovery_report, REPORT_DAYS)
    broken_now = report["broken_now"] if report else len(broken["accounts"])
    open_incidents = sources.api.incidents_list("open", PAGE_SIZE)
    by_cause = bar_chart(
        "Broken accounts by cause",
        [Bar(cause, number, _accounts(number)) for cause, number in causes.most_common()],
        summary=", ".join(f"{cause}: {_accounts(number)}" for cause, number in causes.most_common()) or "none",
    )
    return {
        "broken_now": broken_now,
        "broken_more": report is None and broken["next"] is not None,
        "connected": report.get("connected") if report else None,
        "causes": causes.most_common(),
        "by_cause_chart": by_cause,
        "incidents": open_incidents["incidents"],
        "incidents_more": open_incidents["next"] is not None,
        "report": report,
        "report_charts": report_charts(report) if report else None,
        "health": _answered(sources.health),
    }


def _answered(source: Callable[..., dict[str, Any]] | None, *arguments: Any) -> dict[str, Any] | None:
    """An optional source's answer; None when there is none, or it keeps nothing to answer with (NotFound)."""
    if source is None:
        return None
    try:
        return source(*arguments)
    except NotFound:
        return None


def report_charts(report: dict[str, Any]) -> dict[str, Any]:
    """The recovery report (SPEC §6) as two charts: per day, and the median time to recover by cause."""
    days = [Day(str(d["date"]), int(d["failures"]), int(d["recovered"])) for d in report.get("daily", [])]
    timed = [c for c in report.get("causes", []) if c.get("median_hours_to_recover") is not None]
    return {
        "daily": daily_chart(days),
        "recover": bar_chart(
            "Median time to recover by cause",
            [Bar(c["cause"], float(c["median_hours_to_recover"]), f"{c['median_hours_to_recover']} h") for c in timed],
            summary=", ".join(f"{c['cause']}: {c['median_hours_to_recover']} hours" for c in timed) or "none yet",
        ),
    }


# Broken accounts ---------------------------------------------------------------------------------------------


def broken(sources: Sources, query: dict[str, str]) -> dict[str, Any]:
    wanted = BrokenFilter.of(query.get("cause"), query.get("provider"), query.get("domain"))
    answer = sources.api.broken_accounts(PAGE_SIZE, query.get("next") or None, wanted=wanted)
    return {
        "accounts": answer["accounts"],
        "next": answer["next"],
        "filter": wanted,
        "filtered": wanted.active,
        "cause_choices": CAUSE_CHOICES,
        "provider_choices": PROVIDER_CHOICES,
        "paged": bool(query.get("next")),
    }


# One account -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One row of an account's timeline: an event received, or a verdict made."""

    at: str
    kind: str  # "event" | "verdict"
    item: dict[str, Any]


def account(sources: Sources, account_id: str, query: dict[str, str]) -> dict[str, Any]:
    """The account and one page of its timeline. The verdicts and the events page on apart (`verdicts`, `events`:
    each list's cursor, or DONE once it has ended), so "Older" neither repeats nor skips either of them."""
    verdicts_at, events_at = query.get("verdicts") or None, query.get("events") or None
    if verdicts_at == DONE:
        # Only the account's status and latest verdict: its verdicts were all shown on earlier pages.
        answer = {**sources.api.account(account_id, 1), "verdicts": [], "next": None}
    else:
        answer = sources.api.account(account_id, TIMELINE_SIZE, verdicts_at)
    if events_at == DONE:
        events: dict[str, Any] = {"events": [], "next": None}
    else:
        events = sources.api.account_events(account_id, TIMELINE_SIZE, events_at)
    older = None
    if answer["next"] or events["next"]:
        older = {"verdicts": answer["next"] or DONE, "events": events["next"] or DONE}
    return {
        **answer,
        "timeline": timeline(events["events"], answer["verdicts"]),
        "older": older,
        "paged": bool(verdicts_at or events_at),
    }


def timeline(events: Sequence[dict[str, Any]], verdicts: Sequence[dict[str, Any]]) -> list[Entry]:
    """Events (by when they happened) and verdicts (by when they were made), newest first."""
    entries = [Entry(str(e["occurred_at"]), "event", e) for e in events]
    entries += [Entry(str(v["diagnosed_at"]), "verdict", v) for v in verdicts]
    return sorted(entries, key=lambda entry: (entry.at, entry.kind), reverse=True)


# Incidents and domains ---------------------------------------------------------------------------------------


def incidents(sources: Sources, query: dict[str, str]) -> dict[str, Any]:
    status = query.get("status") or "open"
    answer = sources.api.incidents_list(status, PAGE_SIZE, query.get("next") or None)
    return {**answer, "status": status, "paged": bool(query.get("next"))}


def incident(sources: Sources, incident_id: str, query: dict[str, str]) -> dict[str, Any]:
    answer = sources.api.incident(incident_id, PAGE_SIZE, query.get("next") or None, query.get("at_risk") or None)
    shown = {key: value for key, value in answer.items() if key not in ("members", "next", "at_risk_next")}
    return {
        "incident": shown,
        "members": answer["members"],
        "next": answer["next"],
        "at_risk_next": answer.get("at_risk_next"),
        "actions": incident_actions(answer),
        "paged": bool(query.get("next")),
    }


def incident_actions(incident: dict[str, Any]) -> dict[str, str | None]:
    """What Release and Resolve would do to this incident, in words: None when the action does not apply."""
    held = int(incident.get("held_emails") or 0)
    release = None
    if incident.get("kind") == "connector" and not incident.get("released_at"):
        release = (
            f"Release sends the held reconnect email to {_customers(held)} at most: the members still broken whose "
            "email was held while the connector was broken (members that recovered since get nothing)."
        )
    resolve = None
    if incident.get("status") == "open":
        resolve = "Resolve marks the incident resolved and sends no email to anyone."
        if release and held:
            resolve += f" The {_emails(held)} held stay held: release them first if the connector is fixed."
    return {"release": release, "resolve": resolve}


def domain(sources: Sources, name: str, query: dict[str, str]) -> dict[str, Any]:
    answer = sources.api.domain(name, PAGE_SIZE, query.get("next") or None)
    return {**answer, "paged": bool(query.get("next"))}


def _cause(broken_account: dict[str, Any]) -> str:
    verdict = broken_account.get("latest_verdict")
    return str(verdict["cause"]) if verdict else NO_VERDICT


def _accounts(number: int) -> str:
    return count(number, "account")


def _customers(number: int) -> str:
    return count(number, "customer")


def _emails(number: int) -> str:
    return count(number, "email")
