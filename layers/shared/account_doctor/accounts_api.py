"""The read API's answers (SPEC §6): accounts, domains, broken accounts and incidents, every list in pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from account_doctor.addresses import email_domain, is_free_mail
from account_doctor.events_out import publisher_for
from account_doctor.incidents import as_shown, resolve
from account_doctor.models import CAUSES, AccountEvent, Policy, Release, Verdict, iso
from account_doctor.ports import Publisher
from account_doctor.queue import ReleaseQueue
from account_doctor.settings import ReadApiSettings, Settings
from account_doctor.stores.dynamo import Table, dynamodb_client
from account_doctor.stores.events import EventHistory
from account_doctor.stores.incidents import Incident, IncidentStore
from account_doctor.stores.verdicts import VerdictStore, page_verdicts

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

    # Accounts -----------------------------------------------------------------------------------

    def account(self, account_id: str, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> dict[str, Any]:
        """The account's status and verdicts (newest first, in pages); NotFound when the history never saw it."""
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
            "latest_verdict": latest.to_dict() if latest else None,
            "verdicts": [verdict.to_dict() for verdict in verdicts],
            "next": page.next,
        }

    @staticmethod
    def _status(latest: Verdict | None, state: dict[str, Any] | None) -> AccountStatus:
        latest_kind = (state or {}).get("latest_kind")
        if latest_kind == "recovery":
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
        if not window.accounts and not page.items and cursor is None:
            raise NotFound(f"no failures or verdicts for domain {name}")
        return {
            "domain": name,
            "free_mail": is_free_mail(name),
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

    def incident(self, incident_id: str, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> dict[str, Any]:
        found = self._incident(incident_id)
        members, following = self.incidents.members(found.incident_id, limit, cursor)
        shown = as_shown(found, self.clock(), self.policy).to_dict()
        return {**shown, "members": [member.to_dict() for member in members], "next": following}

    def resolve_incident(self, incident_id: str) -> dict[str, Any]:
        """Marks the incident resolved (SPEC §4b): nothing is released by it. Resolving twice changes nothing."""
        found = self._incident(incident_id)
        resolved = resolve(self.incidents, self.publisher, found.incident_id, iso(self.clock()))
        return (resolved or self.incidents.get(found.incident_id) or found).to_dict()

    def release_incident(self, incident_id: str) -> dict[str, Any]:
        """Sends the held reconnect emails to every member still broken (through the diagnosis queue)."""
        found = self._incident(incident_id)
        first = self.incidents.mark_released(found.incident_id, iso(self.clock()))
        if first and self.enqueue_release is not None:
            self.enqueue_release(Release(found.incident_id))
        released = self.incidents.get(found.incident_id)
        return {**(released or found).to_dict(), "release": "started" if first else "already released"}


def build_read_api(settings: ReadApiSettings | Settings) -> AccountsApi:
    """The read API over the stack's stores, as AccountsApiFunction and the CLI use it: resolving an incident
    publishes IncidentResolved on the bus; releasing one asks the diagnosis function, through the release queue,
    to send its held emails."""
    client = dynamodb_client()
    return AccountsApi(
        events=EventHistory(Table(settings.events_table, client)),
        verdicts=VerdictStore(Table(settings.verdicts_table, client)),
        incidents=IncidentStore(Table(settings.incidents_table, client)),
        policy=settings.policy,
        publisher=publisher_for(settings.event_bus_name),
        enqueue_release=ReleaseQueue(settings.release_queue_url).send,
    )
