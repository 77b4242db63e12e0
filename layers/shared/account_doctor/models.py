"""The domain's data: account events on the queue, the evidence gathered for them, and verdicts."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, Literal

ApiVersion = Literal["v2", "v3"]
EventKind = Literal["failure", "recovery", "removal"]
AuthMethod = Literal["oauth", "password", "unknown"]
Confidence = Literal["high", "medium", "low"]
NotificationKind = Literal["reconnect", "admin_contact", "outage_notice", "reminder", "operator_alert"]
# What an incident groups (SPEC §4b): an organisation domain, a connector, Google's testing mode.
IncidentKind = Literal["domain", "connector", "testing_mode"]
NotificationStatus = Literal["sent", "held", "dry_run", "rejected", "delivered", "bounced", "complained"]
Cause = Literal[
    "recovered",
    "app_revoked",
    "connector_outage",
    "admin_disconnected",
    "admin_session_policy",
    "eas_sparse_inbox",
    "imap_sync_errors",
    "password_changed",
    "google_testing_mode",
    "microsoft_token_expired",
    "sync_stopped",
    "oauth_revoked",
    "unknown",
]
CAUSES: tuple[Cause, ...] = Cause.__args__  # type: ignore[attr-defined]

# The Nylas webhook types this service acts on, by what they mean for the account.
FAILURE_TRIGGERS = frozenset({"grant.expired", "account.invalid", "account.stopped", "account.sync_error"})
# "Stopped" rather than "invalid": the credentials may still be good (rules 3b and 4c).
STOPPED_TRIGGERS = frozenset({"account.stopped", "account.sync_error"})
# grant.updated counts only with reauthentication_flag: the webhook drops the others.
RECOVERY_TRIGGERS = frozenset({"grant.created", "grant.updated", "account.running", "account.connected"})
REMOVAL_TRIGGERS = frozenset({"grant.deleted"})


def event_kind(trigger: str) -> EventKind:
    if trigger in FAILURE_TRIGGERS:
        return "failure"
    if trigger in RECOVERY_TRIGGERS:
        return "recovery"
    if trigger in REMOVAL_TRIGGERS:
        return "removal"
    raise ValueError(f"{trigger!r} is not an account event this service handles")


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, to the second: sortable as a string, as DynamoDB keys need."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_epoch(seconds: float) -> str:
    return iso(datetime.fromtimestamp(seconds, UTC))


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True)
class AccountEvent:
    """One normalized account event: the body of a DiagnosisQueue message (SPEC §2)."""

    event_id: str
    api_version: ApiVersion
    trigger: str
    account_id: str
    occurred_at: str
    provider: str | None = None
    email: str | None = None
    grant_updated_at: str | None = None
    # "sweep" when the reconciliation sweep found the failure (SPEC §3b); None for a webhook's event.
    source: str | None = None

    @property
    def kind(self) -> EventKind:
        return event_kind(self.trigger)

    def to_json(self) -> str:
        # The queue message carries `source` only when there is one, so webhook messages stay as in SPEC §2.
        body = {key: value for key, value in asdict(self).items() if key != "source" or value is not None}
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccountEvent:
        return cls(
            event_id=str(data["event_id"]),
            api_version=data["api_version"],
            trigger=str(data["trigger"]),
            account_id=str(data["account_id"]),
            occurred_at=str(data["occurred_at"]),
            provider=data.get("provider"),
            email=data.get("email"),
            grant_updated_at=data.get("grant_updated_at"),
            source=data.get("source"),
        )

    @classmethod
    def from_json(cls, body: str) -> AccountEvent:
        return cls.from_dict(json.loads(body))


@dataclass(frozen=True)
class AccountState:
    """What Nylas says about the grant (v3) or account (v2) now."""

    exists: bool
    # v3 grant_status (valid|invalid) or v2 sync_state (running|invalid|stopped|…); None when gone.
    status: str | None = None
    billing_state: str | None = None  # v2 only: paid|cancelled|deleted|…
    provider: str | None = None
    email: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    inbox_count: int | None = None  # Exchange/EAS only, when Nylas can tell

    @property
    def healthy(self) -> bool:
        return self.exists and self.status in ("valid", "running")


@dataclass(frozen=True)
class Evidence:
    """Everything the procedure looks at for one failure event; gathered by adapters, judged by pure code."""

    event: AccountEvent
    state: AccountState
    provider: str | None
    email: str | None
    domain: str | None
    auth_method: AuthMethod
    free_mail: bool
    # From the event history (DynamoDB), all instants as ISO strings.
    recovered_at: str | None  # a recovery event for this account after this failure
    removed_by_app: bool  # grant.deleted seen for this grant
    failures_last_30_days: int  # this account's failures, this one included
    # Every consent before the failure (the grant's created_at, re-authentication events, grant_updated_at):
    # Google testing-mode tokens die 7 days after any of them (rule 4a).
    consents: tuple[str, ...]
    # The last token refresh or re-authentication (grant_updated_at or a re-authentication event), never
    # created_at alone, which says nothing about later activity (rule 4b).
    last_refreshed_at: str | None
    domain_burst_accounts: int  # distinct accounts of the domain failing within the burst window, this one included
    domain_window_accounts: int  # the same within the long window
    # Rule 1b: the Nylas connector (google, microsoft, …), its distinct failing accounts and email domains
    # within the burst window (this one included), and its usual failures in such a window.
    connector: str | None = None
    connector_burst_accounts: int = 1
    connector_burst_domains: int = 1
    connector_usual_failures: float = 0.0
    # The open incident this failure was measured against, if any (its counts are the cluster counts).
    incident_id: str | None = None
    # Rule 2b's share: the domain's connected mailboxes as the grant census last counted them, and when
    # (None: the census has not counted the domain, or was not asked because the cluster is too small).
    domain_connected: int | None = None
    domain_census_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def in_incident(self, incident_id: str, opener: Evidence) -> Evidence:
        """This evidence to judge again inside an incident: with the cluster counts its opener measured."""
        return replace(self, incident_id=incident_id, **{name: getattr(opener, name) for name in CLUSTER_COUNTS})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evidence:
        """The evidence a verdict stored, to judge it again when an incident changes the picture."""
        known = set(cls.__dataclass_fields__)
        values = {key: value for key, value in data.items() if key in known}
        values["event"] = AccountEvent.from_dict(data["event"])
        values["state"] = AccountState(**data["state"])
        values["consents"] = tuple(data.get("consents") or ())
        return cls(**values)


# The Evidence fields that measure a failure's cluster (rules 1b, 2a, 2b), as an incident's opener saw them.
CLUSTER_COUNTS = (
    "domain_burst_accounts",
    "domain_window_accounts",
    "connector_burst_accounts",
    "connector_burst_domains",
    "connector_usual_failures",
)


@dataclass(frozen=True)
class Policy:
    """The procedure's thresholds (template parameters)."""

    domain_cluster_threshold: int = 3
    domain_burst_minutes: int = 15
    domain_window_days: int = 7
    connector_outage_threshold: int = 10
    domain_share_percent: int = 10
    # The Microsoft connector's client secret expiry (MicrosoftClientSecretExpiresOn), None when unknown.
    client_secret_expires_on: date | None = None


@dataclass(frozen=True)
class Step:
    step: str
    question: str
    answer: str


@dataclass(frozen=True)
class Diagnosis:
    """What the procedure concluded (the pure part of a verdict)."""

    cause: Cause
    confidence: Confidence
    summary: str
    actions: list[str]
    steps: list[Step]
    recurring: bool

    def findings(self) -> dict[str, Any]:
        """What it says on a verdict (and on a revision made from a new diagnosis): cause, confidence, summary,
        actions and steps."""
        return {
            "cause": self.cause,
            "confidence": self.confidence,
            "summary": self.summary,
            "actions": list(self.actions),
            "steps": list(self.steps),
        }


@dataclass(frozen=True, kw_only=True)
class Notification:
    """One email of a verdict (SPEC §6): which one, and what became of it."""

    # The email: its kind, its recipient, and SES's id for it once SES accepted it.
    kind: NotificationKind
    to: str
    message_id: str | None = None
    # What became of it: sent, held, rejected…, when, and SES's reason for a refusal, bounce or complaint.
    status: NotificationStatus
    sent_at: str | None = None
    reason: str | None = None
    # A reminder's entry of ReminderHours (1, 2, …); None for every other email.
    sequence: int | None = None
    # With EmailTracking (SPEC §5): when the customer first opened it, first clicked its link.
    opened_at: str | None = None
    clicked_at: str | None = None


def event_key(occurred_at: str, event_id: str) -> str:
    """The sort key of an event and of its verdict: by time, and the event id makes it unique and deterministic."""
    return f"{occurred_at}#{event_id}"


def revision_key(occurred_at: str, event_id: str, diagnosed_at: str) -> str:
    """A revision's sort key: right after the verdict it revises, revisions in the order they were made."""
    return f"{event_key(occurred_at, event_id)}#rev#{diagnosed_at}"


@dataclass(frozen=True)
class Verdict:
    """A stored diagnosis of one failure event (SPEC §6)."""

    event_id: str
    account_id: str
    api_version: ApiVersion
    trigger: str
    occurred_at: str
    diagnosed_at: str
    email: str | None
    domain: str | None
    provider: str | None
    auth_method: AuthMethod
    cause: Cause
    confidence: Confidence
    summary: str
    actions: list[str]
    steps: list[Step]
    evidence: dict[str, Any]
    recurring: bool
    notifications: list[Notification] = field(default_factory=list)
    incident_id: str | None = None
    # A revision (SPEC §4b) names the verdict it replaces by its diagnosed_at, and why; the replaced one is
    # kept, marked superseded.
    revises: str | None = None
    revision_reason: str | None = None
    superseded: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(
        cls, evidence: Evidence, diagnosis: Diagnosis, *, diagnosed_at: str, incident_id: str | None = None
    ) -> Verdict:
        """The verdict the procedure's diagnosis makes of this evidence (SPEC §6 fields)."""
        event = evidence.event
        return cls(
            event_id=event.event_id,
            account_id=event.account_id,
            api_version=event.api_version,
            trigger=event.trigger,
            occurred_at=event.occurred_at,
            diagnosed_at=diagnosed_at,
            email=evidence.email,
            domain=evidence.domain,
            provider=evidence.provider,
            auth_method=evidence.auth_method,
            **diagnosis.findings(),
            evidence=replace(evidence, incident_id=incident_id).to_dict(),
            recurring=diagnosis.recurring,
            incident_id=incident_id,
        )

    @property
    def key(self) -> str:
        """The verdict's sort key: by failure time and event, a revision right after what it revises."""
        if self.revises:
            return revision_key(self.occurred_at, self.event_id, self.diagnosed_at)
        return event_key(self.occurred_at, self.event_id)

    def revision(self, **changes: Any) -> Verdict:
        """A revision of this verdict (SPEC §4b): `changes` say what it now reads; it revises this one and has
        no notifications of its own yet."""
        return replace(self, revises=self.diagnosed_at, superseded=False, notifications=[], **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(
            **{
                **data,
                "steps": [Step(**s) for s in data.get("steps", [])],
                "notifications": [Notification(**n) for n in data.get("notifications", [])],
            }
        )


@dataclass(frozen=True)
class IncidentKey:
    """What an incident groups its failures by (SPEC §4b): an organisation domain, a connector, or testing mode."""

    kind: IncidentKind
    key: str

    @property
    def pointer(self) -> dict[str, str]:
        """The item naming the key's open incident (IncidentsTable)."""
        return {"pk": f"open#{self.kind}#{self.key}", "sk": "open"}

    def shard(self, n: int) -> dict[str, str]:
        """One of the key's counter items (IncidentsTable)."""
        return {"pk": f"count#{self.kind}#{self.key}#{n}", "sk": "count"}


# An incident's operator alert lists this many members; the read API and the CLI list them all.
ALERT_MEMBERS = 50


@dataclass(frozen=True)
class IncidentMember:
    """One account of an incident, as its operator alert lists it (full address: the operator's eyes only)."""

    account_id: str
    email: str | None = None
    latest_cause: str | None = None
    recovered: bool = False


@dataclass(frozen=True)
class IncidentBrief:
    """The incident an operator alert is about (SPEC §4b): one alert per incident, listing its members so far."""

    incident_id: str
    kind: IncidentKind
    key: str  # the organisation domain, or the connector (google, microsoft, …)
    accounts: int  # distinct accounts so far, members beyond `members` included
    members: tuple[IncidentMember, ...] = field(default_factory=tuple)
    domains: int | None = None
    # A testing_mode incident's grants at risk, in words: "3 more grants expire by 2026-12-08 unless …".
    at_risk: str | None = None


@dataclass(frozen=True)
class ReminderEntry:
    """One entry of ReminderHours coming due (SPEC §5): which one, since when the mailbox is broken, and the
    v3 deadline to name while it lies ahead."""

    sequence: int
    failed_at: str
    deadline: str | None = None


@dataclass(frozen=True)
class Occasion:
    """What the verdict's emails depend on beyond the verdict itself."""

    incident_opened: bool = False  # this verdict opened its incident: the one operator alert goes out now
    hold_customer: bool = False  # a connector incident is open: customer emails wait for the release
    notify_customer: bool = True  # False for a failure the sweep found too late (SweepNotifyDays)
    follow_up: NotificationKind | None = None  # a revision's single follow-up to the customer (§4b)
    released: bool = False  # the incident's release: send what was held
    reminder: ReminderEntry | None = None  # a reminder coming due: the customer's original advice again


@dataclass(frozen=True)
class Release:
    """A request to send an incident's held emails (SPEC §4b), one page of members per queue message."""

    incident_id: str
    cursor: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True)
class DeliveredNotification:
    """The notification an SES event was about, as the ledger found it (its verdict's event and account)."""

    message_id: str | None  # None for an email SES refused to send
    event_id: str
    account_id: str
    kind: NotificationKind
    to: str
    status: NotificationStatus  # what is recorded now
    reason: str | None = None
    summary: str | None = None  # the verdict's summary, when the ledger has it at hand


# Each failure event travels the queue twice, sent in one SendMessageBatch by the webhook:
# a "record" copy, visible at once, writes it into the history so every member of a burst
# sees the others; a "diagnose" copy, delayed by GraceSeconds, runs the procedure.
# Recoveries and removals only need recording. The stage is a message attribute, so the
# body stays exactly the normalized event of SPEC §2.
STAGE_ATTRIBUTE = "stage"
Stage = Literal["record", "diagnose"]
# A third kind of message asks the consumer to release an incident's held emails.
RELEASE_STAGE = "release"
# And a fourth to send one due reminder (SPEC §5), found by the sweep's scheduled run.
REMINDER_STAGE = "reminder"


@dataclass(frozen=True)
class WatchAlert:
    """An operator alert about an input or a clock rather than an account (SPEC §3d): the webhook feed, the
    Microsoft client secret. `key` names what it watches; the rest is what the email says."""

    key: str
    title: str
    paragraphs: tuple[str, ...]
    steps: tuple[str, ...] = ()
    facts: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AtRisk:
    """A Google grant an open testing_mode incident puts at risk (SPEC §3d): it dies at `expires_at`."""

    account_id: str
    email: str | None
    expires_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "email": self.email, "expires_at": self.expires_at}
