"""The read API's answers (SPEC §6): accounts, domains, broken accounts, incidents (every list in pages) and
the recovery report."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from account_doctor.addresses import email_domain, is_free_mail
from account_doctor.clocks import EXPIRING_CREDENTIAL_CONNECTOR, days_left
from account_doctor.events_out import publisher_for
from account_doctor.incidents import as_shown, resolve
from account_doctor.models import CAUSES, AccountEvent, Policy, Release, Verdict, iso
from account_doctor.ports import Publisher
from account_doctor.providers import CONNECTORS as PROVIDER_CONNECTORS
from account_doctor.queue import ReleaseQueue
from account_doctor.recovery_report import InvalidDays, RecoveryReport, report_days
from account_doctor.settings import ReadApiSettings, Settings
from account_doctor.stores.at_risk import AtRiskStore
from account_doctor.stores.dynamo import Table, dynamodb_client
from account_doctor.stores.episodes import EpisodeRecords, episodes_of
from account_doctor.stores.events import EventHistory
from account_doctor.stores.incidents import Incident, IncidentStore
from account_doctor.stores.verdicts import VerdictStore, page_verdicts
from account_doctor.stores.watch import WatchStore
from account_doctor.testing_mode import TESTING_MODE

AccountStatus = Literal["broken", "healthy", "unknown"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,199}$")
_INCIDENT_ID = re.compile(r"^(domain|connector|testing_mode)-[A-Za-z0-9._-]{1,300}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
_PROVIDER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
INCIDENT_STATUSES = ("open", "resolved", "all")
# Pages of the broken list a filtered page reads at most (SPEC §6: every answer costs a bounded number of reads).
FILTERED_READS = 5
# The Nylas connectors GET /health reports, in the order it lists them.
CONNECTORS = tuple(dict.fromkeys(PROVIDER_CONNECTORS.values()))


class InvalidRequest(ValueError):
    """The caller's input cannot name an account, domain or incident, or a paging parameter is wrong."""


class NotFound(LookupError):
    """The account, domain or incident is well formed but unknown to this stack (the API answers 404)."""


def page_limit(raw: str | int | None) -> int:
    """`limit` of a list: 1 to 100, default 50."""
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except (TypeError, ValueError) as error:
        raise InvalidRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}") from error
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return limit


def account_id_of(raw: str) -> str:
    """A Nylas grant (v3) or account (v2) id, or InvalidRequest saying what one looks like."""
    if not _ACCOUNT_ID.match(raw):
        raise InvalidRequest("account_id must be a Nylas grant or account id (letters, digits, - _ . : @ + =)")
    return raw


def incident_id_of(raw: str) -> str:
    if not _INCIDENT_ID.match(raw):
        raise InvalidRequest(
            "incident_id must be an id the incidents list returned, e.g. domain-acme.com-20261122T0812-1a2b3c4d5e"
        )
    return raw


@dataclass(frozen=True)
class BrokenFilter:
    """Which broken accounts a list shows: of one cause (the latest verdict's), provider, or email domain."""

    cause: str | None = None
    provider: str | None = None
    domain: str | None = None

    @classmethod
    def of(cls, cause: str | None = None, provider: str | None = None, domain: str | None = None) -> BrokenFilter:
        """The filter the caller's query asks for (empty values mean no filter), or InvalidRequest."""
        cause, provider, domain = cause or None, (provider or "").strip().lower() or None, domain or None
        if cause is not None and cause not in CAUSES:
            raise InvalidRequest(f"cause must be one of {', '.join(CAUSES)}")
        if provider is not None and not _PROVIDER.match(provider):
            raise InvalidRequest("provider must be a Nylas provider name such as google, microsoft or imap")
        return cls(cause, provider, domain_of(domain) if domain is not None else None)

    @property
    def active(self) -> bool:
        return bool(self.cause or self.provider or self.domain)

    def admits(self, provider: str | None, domain: str | None) -> bool:
        """What the broken list's own index items tell (the cause needs the verdict)."""
        if self.provider and (provider or "").lower() != self.provider:
            return False
        return not self.domain or domain == self.domain


def domain_of(raw: str) -> str:
    """An email domain, lower-cased, or InvalidRequest."""
    name = raw.strip().lower().rstrip(".")
    if not _DOMAIN.match(name):
        raise InvalidRequest("domain must be an email domain such as example.com")
    return name


@dataclass(frozen=True)
class AccountsApi:
    events: EventHistory
    verdicts: VerdictStore
    incidents: IncidentStore
    policy: Policy
    publisher: Publisher | None = None
    enqueue_release: Callable[[Release], None] | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    recovery: RecoveryReport | None = None
    watch: WatchStore | None = None
    client_secret_expires_on: date | None = None
    at_risk: AtRiskStore | None = None

    # Accounts -----------------------------------------------------------------------------------

    def account(self, account_id: str, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> dict[str, Any]:
        """The account's status, episodes (from its state item, read for the status anyway) and verdicts (newest
        first, in pages); NotFound when the history never saw it."""
        account_id = account_id_of(account_id)
        page = self.verdicts.account_verdicts(account_id, limit=limit, cursor=cursor)
        verdicts = page_verdicts(page)
        state = self.events.state(account_id)
        if not verdicts and state is None and cursor is None:
            raise NotFound(f"no events or verdicts for account {account_id}")
        latest = self.verdicts.latest(account_id) if cursor else (verdicts[0] if verdicts else None)
        return {
            "account_id": account_id,
            "status": self._status(latest, state),
            "episodes": episodes_of(state),
            "latest_verdict": latest.to_dict() if latest else None,
            "verdicts": [verdict.to_dict() for verdict in verdicts],
            "next": page.next,
        }

    @staticmethod
    def _status(latest: Verdict | None, state: dict[str, Any] | None) -> AccountStatus:
        latest_kind = (state or {}).get("latest_kind")
        if latest_kind == "recovery":
            return "healthy"
        if state is not None and latest_kind == "failure" and "broken" not in state and latest is not None:
            # Its episode ended without a recovery event (healed, replaced by a new grant, found valid by the
            # sweep, SPEC §4c): off the broken list, and no longer broken here either.
            return "healthy"
        if latest is None:
            # Events but no verdict yet: a failure still in its grace period is not known to be broken.
            return "unknown"
        if latest.cause == "recovered":
            return "healthy"
        return "broken"

    def account_events(self, account_id: str, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> dict[str, Any]:
        """The account's recorded events (failures, recoveries, removals), newest first, in pages."""
        account_id = account_id_of(account_id)
        page = self.events.history_page(account_id, limit, cursor)
        events = [{**asdict(AccountEvent.from_dict(item)), "kind": item.get("kind")} for item in page.items]
        return {"account_id": account_id, "events": events, "next": page.next}

    def broken_accounts(
        self, limit: int = DEFAULT_LIMIT, cursor: str | None = None, *, wanted: BrokenFilter | None = None
    ) -> dict[str, Any]:
        """Every account whose latest event is a failure, newest first (SPEC §6), optionally only those of a
        cause, provider or domain.

        A filtered page reads at most FILTERED_READS pages of the list looking for matches, so it may hold fewer
        than `limit` accounts while `next` says more remain: its cost stays bounded however rare the match.
        """
        wanted = wanted or BrokenFilter()
        accounts: list[dict[str, Any]] = []
        for _ in range(FILTERED_READS if wanted.active else 1):
            # Never more than the page still has room for: `next` then resumes right after the last one read.
            page = self.events.broken_accounts(limit - len(accounts), cursor)
            for item in page.items:
                if not wanted.admits(item.get("provider"), email_domain(item.get("email"))):
                    continue
                latest = self.verdicts.latest(str(item["account_id"]))
                if wanted.cause and (latest.cause if latest else None) != wanted.cause:
                    continue
                accounts.append(
                    {
                        "account_id": item["account_id"],
                        "email": item.get("email"),
                        "provider": item.get("provider"),
                        "since": item.get("since"),
                        "latest_verdict": latest.to_dict() if latest else None,
                    }
                )
            cursor = page.next
            if cursor is None or len(accounts) >= limit:
                break
        return {"accounts": accounts, "next": cursor}

    # Domains ------------------------------------------------------------------------------------

    def domain(self, domain: str, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> dict[str, Any]:
        """Distinct failing accounts of the domain in the burst and long windows up to now, and its verdicts."""
        name = domain_of(domain)
        now = self.clock()
        window = self.events.domain_failures(name, iso(now - timedelta(days=self.policy.domain_window_days)), iso(now))
        burst_start = iso(now - timedelta(minutes=self.policy.domain_burst_minutes))
        burst = window.accounts_between(burst_start, iso(now))
        page = self.verdicts.domain_verdicts(name, limit=limit, cursor=cursor)
        counted = self.events.census.domain(name)
        if not window.accounts and not page.items and counted is None and cursor is None:
            raise NotFound(f"no failures, verdicts or census count for domain {name}")
        return {
            "domain": name,
            "free_mail": is_free_mail(name),
            # Its mailboxes as the daily grant census counted them (SPEC §3c); null before a census counted it.
            "connected": counted.connected if counted else None,
            "census_at": counted.census_at if counted else None,
            "cluster_threshold": self.policy.domain_cluster_threshold,
            "burst": {
                "minutes": self.policy.domain_burst_minutes,
                "failing_accounts": len(burst),
                "account_ids": sorted(burst)[:MAX_LIMIT],
            },
            "window": {
                "days": self.policy.domain_window_days,
                "failing_accounts": len(window.accounts),
                "account_ids": sorted(window.accounts)[:MAX_LIMIT],
            },
            "verdicts": page.items,
            "next": page.next,
        }

    # Health (SPEC §3d) ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The webhook feed as the sweep last checked it, each connector's census counts and clock, and the
        grants at risk of Google's testing mode."""
        feed = self.watch.feed() if self.watch else None
        counted = self.events.census.connectors(CONNECTORS)
        today = self.clock()
        connectors = []
        for name in CONNECTORS:
            count = counted.get(name)
            expires = self.client_secret_expires_on if name == EXPIRING_CREDENTIAL_CONNECTOR else None
            connectors.append(
                {
                    "connector": name,
                    "connected": count.connected if count else None,
                    "broken": count.broken if count else None,
                    "census_at": count.census_at if count else None,
                    "client_secret_expires_on": expires.isoformat() if expires else None,
                    "days_left": days_left(expires, today) if expires else None,
                }
            )
        return {
            "webhook_feed": {
                "status": (feed.check_status if feed else None) or "unknown",
                "checked_at": feed.checked_at if feed else None,
                "destinations": feed.destinations if feed else [],
            },
            "connectors": connectors,
            "testing_mode_at_risk": self.testing_mode_at_risk(),
        }

    def testing_mode_at_risk(self) -> int:
        """Google grants that will die of testing mode unless the app is published (SPEC §3d): none is tracked
        while no testing_mode incident is open."""
        live = self.incidents.live([TESTING_MODE]).get(TESTING_MODE)
        if live is None or self.at_risk is None:
            return 0
        return len(self.at_risk.at_risk(live.incident_id, iso(self.clock())))

    # Incidents ----------------------------------------------------------------------------------

    def incidents_list(
        self, status: str = "open", limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> dict[str, Any]:
        if status not in INCIDENT_STATUSES:
            raise InvalidRequest("status must be open, resolved or all")
        found, following = self.incidents.by_status(status, limit, cursor)
        shown = [as_shown(incident, self.clock(), self.policy) for incident in found]
        if status == "open":
            shown = [incident for incident in shown if incident.status == "open"]
        return {"incidents": [incident.to_dict() for incident in shown], "next": following}

    def _incident(self, incident_id: str) -> Incident:
        found = self.incidents.get(incident_id_of(incident_id))
        if found is None:
            raise NotFound(f"no incident {incident_id}")
        return found

    def incident(
        self,
        incident_id: str,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
        at_risk_cursor: str | None = None,
    ) -> dict[str, Any]:
        """The incident with a page of its members; a testing_mode incident also with the Google grants at risk
        (`at_risk`, and a page of `at_risk_accounts`, soonest expiry first: `at_risk_next` pages on)."""
        found = self._incident(incident_id)
        members, following = self.incidents.members(found.incident_id, limit, cursor)
        shown = as_shown(found, self.clock(), self.policy).to_dict()
        answer = {**shown, "members": [member.to_dict() for member in members], "next": following}
        if found.kind == "testing_mode" and self.at_risk is not None:
            now = iso(self.clock())
            page, at_risk_next = self.at_risk.page(found.incident_id, now, limit, at_risk_cursor)
            answer["at_risk"] = len(self.at_risk.at_risk(found.incident_id, now))
            answer["at_risk_accounts"] = [grant.to_dict() for grant in page]
            answer["at_risk_next"] = at_risk_next
        return answer

    def resolve_incident(self, incident_id: str) -> dict[str, Any]:
        """Marks the incident resolved (SPEC §4b): nothing is released by it. Resolving twice changes nothing."""
        found = self._incident(incident_id)
        resolved = resolve(self.incidents, self.publisher, found.incident_id, iso(self.clock()))
        return (resolved or self.incidents.get(found.incident_id) or found).to_dict()

    def release_incident(self, incident_id: str) -> dict[str, Any]:
        """Sends the held reconnect emails to every member still broken (through the diagnosis queue)."""
        found = self._incident(incident_id)
        # Queued before it is marked: a send that fails leaves the incident unreleased, so the retry queues it
        # again (two racing releases queue twice, harmless: each held email is sent at most once).
        if found.released_at is None and self.enqueue_release is not None:
            self.enqueue_release(Release(found.incident_id))
        first = self.incidents.mark_released(found.incident_id, iso(self.clock()))
        released = self.incidents.get(found.incident_id)
        return {**(released or found).to_dict(), "release": "started" if first else "already released"}

    # The recovery report -----------------------------------------------------------------------

    def recovery_report(self, days: str | int | None = None) -> dict[str, Any]:
        """`GET /reports/recovery?days=N` (SPEC §6): from the episodes' aggregates only."""
        try:
            span = report_days(days)
        except InvalidDays as error:
            raise InvalidRequest(str(error)) from error
        if self.recovery is None:
            raise NotFound("this read API keeps no recovery report")
        return self.recovery.report(span)


def connected_mailboxes(history: EventHistory) -> int | None:
    """Every connector's connected grants as the last census counted them (SPEC §3c); None before the first."""
    counted = history.census.connectors(CONNECTORS)
    return sum(count.connected for count in counted.values()) if counted else None


def build_read_api(settings: ReadApiSettings | Settings) -> AccountsApi:
    """The read API over the stack's stores, as AccountsApiFunction and the CLI use it: resolving an incident
    publishes IncidentResolved on the bus; releasing one asks the diagnosis function, through the release queue,
    to send its held emails."""
    client = dynamodb_client()
    history = EventHistory(Table(settings.events_table, client))
    return AccountsApi(
        events=history,
        verdicts=VerdictStore(Table(settings.verdicts_table, client)),
        incidents=IncidentStore(Table(settings.incidents_table, client)),
        policy=settings.policy,
        publisher=publisher_for(settings.event_bus_name),
        enqueue_release=ReleaseQueue(settings.release_queue_url).send,
        recovery=RecoveryReport(
            EpisodeRecords(Table(settings.events_table, client)), connected=lambda: connected_mailboxes(history)
        ),
        watch=WatchStore(Table(settings.events_table, client)),
        at_risk=AtRiskStore(Table(settings.incidents_table, client)),
        client_secret_expires_on=settings.policy.client_secret_expires_on,
    )
