"""Incidents (SPEC §4b): what each kind means (one table), and the lifecycle of one over its stores.

An incident groups the failures of many accounts that share one cause: it opens with its first member (a
conditional write, so racing first members open one), counts each member once, revises the earlier
members' verdicts to its cause, holds the customer emails of a connector outage until an operator releases
them, resolves when every member recovered (or an operator says so) and is closed once its key has been
quiet for DomainWindowDays. Everything a kind decides is a row of INCIDENT_RULES, as the procedure's
rules are rows of diagnosis.RULES.

The queue consumer hands each stored verdict (`verdict_stored`) and each recovery (`recovered`) here;
episodes of one account over time get the same kind of home beside this one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger

from account_doctor.addresses import is_free_mail
from account_doctor.models import (
    ALERT_MEMBERS,
    AccountEvent,
    Cause,
    Diagnosis,
    Evidence,
    IncidentBrief,
    IncidentKey,
    IncidentKind,
    IncidentMember,
    NotificationKind,
    Occasion,
    Policy,
    Release,
    Verdict,
    iso,
    parse_iso,
)
from account_doctor.ports import AtRiskGrants, History, IncidentRecords, Notifier, Publisher, Verdicts
from account_doctor.providers import connector
from account_doctor.tally import tally

if TYPE_CHECKING:
    from account_doctor.evidence import Gathered
    from account_doctor.stores.events import Cluster
    from account_doctor.stores.incidents import Incident, Live

logger = Logger(child=True)

Diagnose = Callable[[Evidence, Policy], Diagnosis]
Clock = Callable[[], datetime]

# Members released per message: a release of thousands continues in follow-up messages, each well
# inside the function's timeout.
RELEASE_PAGE = 25
# Testing mode is Google's alone: its incident is keyed by the connector.
TESTING_MODE_KEY = "google"
_TESTING_MODE = IncidentKey("testing_mode", TESTING_MODE_KEY)
# What counts as a consent (SPEC §3d): a grant made, or re-authenticated (the webhook keeps only those updates).
CONSENT_TRIGGERS = frozenset({"grant.created", "grant.updated"})


# What each kind of incident means ---------------------------------------------------------------------


def _burst(policy: Policy) -> timedelta:
    return timedelta(minutes=policy.domain_burst_minutes)


def _days(policy: Policy) -> timedelta:
    return timedelta(days=policy.domain_window_days)


def _organisation_domain(domain: str | None, free_mail: bool, failure_connector: str | None) -> str | None:
    return domain if domain and not free_mail else None


def _the_connector(domain: str | None, free_mail: bool, failure_connector: str | None) -> str | None:
    return failure_connector


def _google(domain: str | None, free_mail: bool, failure_connector: str | None) -> str | None:
    return TESTING_MODE_KEY if failure_connector == TESTING_MODE_KEY else None


def asked_to_reconnect(verdict: Verdict) -> bool:
    return any(n.kind == "reconnect" and n.status in ("sent", "dry_run", "delivered") for n in verdict.notifications)


def _outage_notice(earlier: Verdict) -> NotificationKind | None:
    """A customer already asked to reconnect hears it was not their fault; one never asked waits for the release."""
    return "outage_notice" if asked_to_reconnect(earlier) else None


def _admin_contact(earlier: Verdict) -> NotificationKind | None:
    return None if any(n.kind == "admin_contact" for n in earlier.notifications) else "admin_contact"


def _nothing(earlier: Verdict) -> NotificationKind | None:
    return None


@dataclass(frozen=True)
class IncidentRule:
    """One cause that groups failures into an incident (SPEC §4b), and everything that follows from it."""

    cause: Cause
    kind: IncidentKind
    # The key a failure's incident of this kind has (from its email domain, whether that is free mail, and its
    # connector); None when it has none (a free-mail address has no organisation).
    key: Callable[[str | None, bool, str | None], str | None]
    # A failure joins the open incident when it comes no later than this after the incident's latest failure.
    window: Callable[[Policy], timedelta]
    # Customer emails wait for the operator's release (a connector outage: reconnecting cannot help yet).
    holds_customer_emails: bool
    # The one customer email a revised earlier member gets, given what its first verdict told it; None: none.
    follow_up: Callable[[Verdict], NotificationKind | None]
    # The operator hears once per incident, when it opens (its alert lists the members so far).
    alerts_once: bool = True


INCIDENT_RULES: dict[Cause, IncidentRule] = {
    rule.cause: rule
    for rule in (
        IncidentRule("admin_disconnected", "domain", _organisation_domain, _burst, False, _admin_contact),
        IncidentRule("admin_session_policy", "domain", _organisation_domain, _days, False, _admin_contact),
        IncidentRule("connector_outage", "connector", _the_connector, _burst, True, _outage_notice),
        IncidentRule("google_testing_mode", "testing_mode", _google, _days, False, _nothing),
    )
}
# Each kind's key, in the order a failure's incidents are read.
_KEYS = {rule.kind: rule.key for rule in INCIDENT_RULES.values()}


def incident_keys(domain: str | None, free_mail: bool, failure_connector: str | None) -> list[IncidentKey]:
    """Every incident a failure with this domain and connector could belong to, whatever its cause."""
    found = ((kind, key_of(domain, free_mail, failure_connector)) for kind, key_of in _KEYS.items())
    return [IncidentKey(kind, key) for kind, key in found if key]


def incident_key_of(cause: Cause, evidence: Evidence) -> IncidentKey | None:
    """The incident a cause groups its failures into (SPEC §4b), if any."""
    rule = INCIDENT_RULES.get(cause)
    key = rule.key(evidence.domain, evidence.free_mail, evidence.connector) if rule else None
    return IncidentKey(rule.kind, key) if rule and key else None


def rule_of(cause: str) -> IncidentRule | None:
    """The incident rule of a cause (None: its failures stand alone); causes are read back from stored items."""
    return INCIDENT_RULES.get(cast(Cause, cause))


def holds_customer_emails(cause: str) -> bool:
    rule = rule_of(cause)
    return rule is not None and rule.holds_customer_emails


def joinable(live: Live | None, at: str, policy: Policy) -> Live | None:
    """The incident a failure at `at` joins: open, and the failure no later than its rule's window after the
    incident's latest failure. A failure from before (a delayed delivery, a second failure an hour earlier) joins
    too: it must never replace the incident that is going on now."""
    if live is None:
        return None
    rule = rule_of(live.cause)
    window = rule.window(policy) if rule else _days(policy)
    return live if parse_iso(at) - parse_iso(live.last_failure_at) <= window else None


def as_shown(incident: Incident, now: datetime, policy: Policy) -> Incident:
    """An open incident without a new failure for DomainWindowDays is closed (SPEC §4b).

    Its stored status changes when the next failure of its key opens a new incident; until then the answer
    is this one, so a quiet incident never shows as open.
    """
    if incident.status == "open" and incident.last_failure_at < iso(now - _days(policy)):
        return replace(incident, status="closed")
    return incident


def resolve(store: IncidentRecords, publisher: Publisher | None, incident_id: str, at: str) -> Incident | None:
    """Resolves an open incident and announces it, whoever gets there first (the last recovery or the
    operator); the incident when this call resolved it. A repeat (the retry of a failed publish) announces
    what the first call could not."""
    resolved = store.resolve(incident_id, at)
    announce_resolution(store, publisher, incident_id)
    return resolved


def announce_resolution(store: IncidentRecords, publisher: Publisher | None, incident_id: str) -> None:
    """Publishes IncidentResolved for a resolved incident until one publish succeeded: the stored incident says
    whether it was announced, so a failed PutEvents is made good by whichever call comes next."""
    if publisher is None:
        return
    incident = store.get(incident_id)
    if incident is None or incident.status != "resolved" or incident.resolution_announced:
        return
    publisher.publish_incident("IncidentResolved", incident.to_dict())
    store.mark_resolution_announced(incident_id)


@dataclass(frozen=True)
class MemberRecovery:
    """Marks a recovered account on its open incidents and resolves those whose every member recovered (SPEC §4b,
    §4c): for the diagnosis function's recoveries and the sweep's alike. `verdicts` finds the incident an
    earlier delivery resolved (only a redelivery asks); `at_risk` hears of Google consents (None: nobody asks)."""

    store: IncidentRecords
    history: History
    publisher: Publisher | None
    verdicts: Verdicts | None = None
    at_risk: AtRiskGrants | None = None

    def __call__(self, event: AccountEvent, *, redelivered: bool = False) -> None:
        """Every step is safe to repeat and is done on every delivery: a delivery that failed after marking the
        member (or after resolving, before announcing) is finished by the next one."""
        state = self.history.state(event.account_id) or {}
        domain = state.get("domain")
        keys = incident_keys(domain, bool(domain) and is_free_mail(str(domain)), connector(state.get("provider")))
        if redelivered and self.verdicts is not None:
            # The incident an earlier delivery resolved has no open pointer any more: found from the verdict.
            latest = self.verdicts.newest(event.account_id, 1)
            if latest and latest[0].incident_id:
                announce_resolution(self.store, self.publisher, latest[0].incident_id)
        for key, live in self.store.live(keys).items():
            if key == _TESTING_MODE and self.at_risk is not None and event.trigger in CONSENT_TRIGGERS:
                # A Google consent while testing mode is open: one more grant dies 7 days later unless published.
                self.at_risk.consented(live.incident_id, event.account_id, event.email, event.occurred_at)
            self.store.member_recovered(key, live.incident_id, event.account_id)
            after = self.store.live([key]).get(key)
            every_member = (
                after is not None and after.incident_id == live.incident_id and after.recovered >= after.accounts
            )
            if every_member and resolve(self.store, self.publisher, live.incident_id, event.occurred_at) is not None:
                logger.info("incident resolved: every member recovered", extra={"incident_id": live.incident_id})


@dataclass(frozen=True)
class Placement:
    """Where a new verdict stands: its incident (None: alone), whether this event opened it, and the domain's
    failures its evidence read (an opener of a domain incident revises them)."""

    key: IncidentKey | None = None
    incident_id: str | None = None
    opened: bool = False
    domain_cluster: Cluster | None = None


# The lifecycle -------------------------------------------------------------------------------------------


@dataclass(kw_only=True, eq=False)
class IncidentLifecycle:
    """Opens, joins, revises, holds, releases and resolves incidents, over the stores it is given.

    `tell` publishes a stored verdict and sends its emails on an occasion (the consumer's last step), used
    for each revision as for the verdict that caused it.
    """

    store: IncidentRecords
    verdicts: Verdicts
    history: History
    notifier: Notifier
    publisher: Publisher
    policy: Policy
    procedure: Diagnose
    clock: Clock
    too_old_to_notify: Callable[[AccountEvent], bool]
    tell: Callable[[Verdict, Occasion], Verdict]
    enqueue_release: Callable[[Release], None] | None = None
    # Hears of the emails a release sent, with the verdict they are on (the recovery episodes count them).
    emailed: Callable[[Verdict], object] = lambda verdict: None
    # The Google grants an open testing_mode incident puts at risk (SPEC §3d); None where nobody asks.
    at_risk: AtRiskGrants | None = None

    # Before the verdict is stored ----------------------------------------------------------------------

    def place(self, cause: Cause, event: AccountEvent, gathered: Gathered) -> Placement:
        """The incident a verdict of this cause belongs to (joined, or opened now), and whether this event opened it."""
        testing = gathered.live.get(_TESTING_MODE)
        if testing is not None and self.at_risk is not None:
            self.at_risk.failed(testing.incident_id, event.account_id)  # broken now: no longer at risk
        key = incident_key_of(cause, gathered.evidence)
        if key is None:
            return Placement()
        live = gathered.live.get(key)
        current = joinable(live, event.occurred_at, self.policy)
        if current is not None:
            # Only a retry of the event that opened it sees its own incident as opened by itself.
            by_itself = current.opened_by_event == event.event_id
            return Placement(key, current.incident_id, by_itself, gathered.domain_cluster)
        evidence = gathered.evidence
        by_connector = key.kind == "connector"
        # The whole cluster the opener counted (its burst reaches past its own failure, its window does not):
        # a member diagnosed before the opener's cluster has joined still sees an incident of this size.
        cluster_accounts = max(evidence.domain_burst_accounts, evidence.domain_window_accounts)
        incident_id, opened = self.store.open(
            key,
            cause,
            event.occurred_at,
            event.event_id,
            replacing=live.incident_id if live else None,
            accounts=evidence.connector_burst_accounts if by_connector else cluster_accounts,
            domains=evidence.connector_burst_domains if by_connector else 1,
        )
        if opened:
            tally.count("IncidentsOpened", "kind", key.kind)
            logger.info("incident opened", extra={"incident_id": incident_id, "cause": cause})
        return Placement(key, incident_id, opened, gathered.domain_cluster)

    def no_racer(self, gathered: Gathered, incident_id: str | None) -> list[dict[str, Any]]:
        """The conditions a verdict outside any incident is stored on: no incident opened for its keys since
        its evidence was read. An opener revises the earlier members whose verdicts it finds; one still being
        made it can only count, so that verdict must not be stored as if alone. A failure that saw no neighbour
        is no exception: it counted itself before reading its clusters, so a racer counting itself after that
        read sees it (storing it unconditioned left a counted member outside its incident)."""
        e = gathered.evidence
        if incident_id is not None or not gathered.counted:
            return []  # in its incident already, or counted nowhere (no racer can have counted it)
        keys = incident_keys(e.domain, e.free_mail, e.connector)
        seen = {key: gathered.live[key].incident_id if key in gathered.live else None for key in keys}
        return self.store.none_opened(seen)

    # Once the verdict is stored ------------------------------------------------------------------------

    def verdict_stored(self, verdict: Verdict, event: AccountEvent, placed: Placement | None) -> Verdict:
        """The verdict joins its incident (an opener also revises the earlier members), then is told.

        `placed` None: a retry of a stored verdict, which redoes what the failed attempt may have left undone,
        each step safe to repeat. The attempt can fail after the verdict was stored (a transaction conflict
        counting the member, SES throttling a revision's follow-up): the member is counted now, and the
        incident's opener revises the earlier members again (those already revised only get a follow-up that
        did not go out).
        """
        if placed is None:
            return self.tell(verdict, self._resumed(verdict, event))
        if placed.key is not None and placed.incident_id is not None:
            self._join(placed.key, placed.incident_id, verdict, held=holds_customer_emails(verdict.cause))
            if placed.opened:
                by_domain = placed.key.kind == "domain"
                cluster = placed.domain_cluster if by_domain else self._failures_around(placed.key, event)
                self._open(placed.key, placed.incident_id, verdict, cluster)
        return self.tell(verdict, self._occasion(verdict, event, placed.opened))

    def _resumed(self, verdict: Verdict, event: AccountEvent) -> Occasion:
        incident = self.store.get(verdict.incident_id) if verdict.incident_id else None
        if incident is not None and incident.status == "open":
            key = IncidentKey(incident.kind, incident.key)
            self._join(key, incident.incident_id, verdict, held=holds_customer_emails(verdict.cause))
            if incident.opened_by_event == event.event_id:
                self._open(key, incident.incident_id, verdict, self._failures_around(key, event))
        # Its incident decides whether it opened it.
        opened = False
        if verdict.incident_id:
            incident = self.store.get(verdict.incident_id)
            opened = incident is not None and incident.opened_by_event == event.event_id
            if incident is not None and incident.released_at and holds_customer_emails(verdict.cause):
                return Occasion(incident_opened=opened, notify_customer=not self.too_old_to_notify(event))
        return self._occasion(verdict, event, opened)

    def _occasion(self, verdict: Verdict, event: AccountEvent, opened: bool) -> Occasion:
        return Occasion(
            incident_opened=opened,
            hold_customer=holds_customer_emails(verdict.cause),
            notify_customer=not self.too_old_to_notify(event),
        )

    def brief(self, verdict: Verdict) -> IncidentBrief | None:
        """The incident an operator alert is about, with its first ALERT_MEMBERS members."""
        incident = self.store.get(verdict.incident_id) if verdict.incident_id else None
        if incident is None:
            return None
        members, _ = self.store.members(incident.incident_id, ALERT_MEMBERS)
        return IncidentBrief(
            incident_id=incident.incident_id,
            kind=incident.kind,
            key=incident.key,
            accounts=incident.accounts,
            members=tuple(IncidentMember(m.account_id, m.email, m.latest_cause, m.recovered) for m in members),
            domains=incident.domains,
            at_risk=(
                self.at_risk.in_words(incident.incident_id)
                if incident.kind == "testing_mode" and self.at_risk is not None
                else None
            ),
        )

    def _join(self, key: IncidentKey, incident_id: str, verdict: Verdict, *, held: bool = False) -> None:
        """Counts the verdict's account as a member of the incident (once, however often it is called); a held
        email is counted too when the account had joined before its own diagnosis (counted by the opener)."""
        joined = self.store.join(
            key,
            incident_id,
            verdict.account_id,
            verdict.email,
            verdict.domain,
            verdict.cause,
            verdict.occurred_at,
            held=held,
        )
        if held and not joined:
            self.store.hold(key, incident_id, verdict.account_id)

    def _failures_around(self, key: IncidentKey, event: AccountEvent) -> Cluster:
        """The failures the opener's evidence counted (EvidenceGatherer's windows): the members it revises."""
        failed_at = parse_iso(event.occurred_at)
        burst = _burst(self.policy)
        if key.kind == "domain":
            return self.history.domain_failures(key.key, iso(failed_at - _days(self.policy)), iso(failed_at + burst))
        # Connector and testing-mode incidents are keyed by the connector (testing mode: google).
        return self.history.connector_failures(key.key, iso(failed_at - burst), iso(failed_at + burst))

    # Opening revises the earlier members ---------------------------------------------------------------

    def _open(self, key: IncidentKey, incident_id: str, opener: Verdict, cluster: Cluster | None) -> None:
        """Counts the failures that came before the incident existed as members, and revises their verdicts; a
        testing_mode incident also starts its list of the grants at risk, before its one alert is sent."""
        emails = cluster.emails() if cluster else {}
        for account_id in sorted(set(emails) - {opener.account_id}):
            self._revise_member(key, incident_id, account_id, emails[account_id], opener)
        if key == _TESTING_MODE and self.at_risk is not None:
            self.at_risk.opened(incident_id)
        incident = self.store.get(incident_id)
        if incident is not None:
            self.publisher.publish_incident("IncidentOpened", incident.to_dict())

    def _revise_member(
        self, key: IncidentKey, incident_id: str, account_id: str, email: str | None, opener: Verdict
    ) -> bool:
        """Revises the account's latest verdict to the opener's cause when the procedure, given the incident's
        counts, now reaches it; counts the account as a member either way. Whether it revised."""
        latest = self.verdicts.newest(account_id, 1)
        if not latest:
            # Still in its grace period: counted now, so its own diagnosis finds the incident at full size.
            domain = key.key if key.kind == "domain" else None
            self.store.join(key, incident_id, account_id, email, domain, opener.cause, opener.occurred_at)
            return False
        earlier = latest[0]
        if earlier.cause == opener.cause or earlier.cause == "recovered" or earlier.superseded:
            self._join(key, incident_id, earlier)
            if earlier.revises is not None and earlier.incident_id == incident_id:
                self._finish_follow_up(account_id, earlier)  # the opener's retry: its email may not have gone out
            return False
        if self.history.recovery_after(account_id, earlier.occurred_at) is not None:
            return False
        evidence = Evidence.from_dict(earlier.evidence).in_incident(incident_id, Evidence.from_dict(opener.evidence))
        judged = self.procedure(evidence, self.policy)
        if judged.cause != opener.cause:
            return False  # an earlier rule still explains this account (e.g. the app removed the grant)
        diagnosed_at = iso(self.clock())
        if diagnosed_at <= earlier.diagnosed_at:  # keys must differ even within the same second
            diagnosed_at = iso(parse_iso(earlier.diagnosed_at) + timedelta(seconds=1))
        revision = earlier.revision(
            diagnosed_at=diagnosed_at,
            **judged.findings(),
            incident_id=incident_id,
            revision_reason=f"incident {incident_id} opened: {opener.summary}",
        )
        if not self.verdicts.revise(earlier, revision):
            return False
        tally.count("VerdictsRevised", "cause", revision.cause)
        rule = INCIDENT_RULES[judged.cause]
        # A member never asked to reconnect (its verdict was revised before its email went out) waits for the
        # connector's release like those diagnosed after the incident opened.
        hold = rule.holds_customer_emails and not asked_to_reconnect(earlier)
        self._join(key, incident_id, revision, held=hold)
        self.tell(revision, Occasion(follow_up=rule.follow_up(earlier), hold_customer=hold))
        return True

    def _finish_follow_up(self, account_id: str, revision: Verdict) -> None:
        """Sends a stored revision's follow-up email if it did not go out (the ledger keeps it to once)."""
        newest = self.verdicts.newest(account_id, 2)
        revised = [v for v in newest if v.event_id == revision.event_id and v.diagnosed_at == revision.revises]
        rule = rule_of(revision.cause)
        follow_up = rule.follow_up(revised[0]) if revised and rule else None
        if follow_up and not any(n.kind == follow_up for n in revision.notifications):
            self.tell(revision, Occasion(follow_up=follow_up))

    # Recovery, release -----------------------------------------------------------------------------------

    def recovered(self, event: AccountEvent, *, redelivered: bool = False) -> None:
        """A recovered account is marked on its open incidents (see MemberRecovery)."""
        MemberRecovery(self.store, self.history, self.publisher, self.verdicts, self.at_risk)(
            event, redelivered=redelivered
        )

    def release(self, request: Release) -> int:
        """Sends the held reconnect emails of one page of members still broken; queues the next page."""
        members, cursor = self.store.members(request.incident_id, RELEASE_PAGE, request.cursor)
        sent = 0
        for member in members:
            if member.recovered:
                continue
            latest = self.verdicts.newest(member.account_id, 1)
            if not latest or not any(n.status == "held" for n in latest[0].notifications):
                continue
            if self.history.recovery_after(member.account_id, latest[0].occurred_at) is not None:
                continue
            notifications = self.notifier.notify(latest[0], Occasion(released=True))
            self.emailed(replace(latest[0], notifications=notifications))
            sent += sum(1 for n in notifications if n.status in ("sent", "dry_run") and n.kind == "reconnect")
        if cursor is not None and self.enqueue_release is not None:
            self.enqueue_release(Release(request.incident_id, cursor))
        return sent
