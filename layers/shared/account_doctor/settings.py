"""Settings, read once from the environment variables that template.yaml sets on each function.

Each function gets only the variables it uses (least privilege, and a template that says what each
function depends on), so there is one settings class per function; the CLI and the local stack use
the diagnosis function's, the fullest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, Literal, Self, TypeVar, overload

from account_doctor.clocks import secret_expiry
from account_doctor.models import Policy

NotificationMode = Literal["send", "dry-run"]

# Variables whose empty value is meaningful ("none"): everything else must be set.
_OPTIONAL = frozenset(
    {
        "reauth_url_template",
        "reply_to_email",
        "event_bus_name",
        "configuration_set_name",
        "reminder_hours",
        "microsoft_client_secret_expires_on",
    }
)


class SettingsError(RuntimeError):
    """The function's environment is incomplete or malformed: fix template.yaml or samconfig.toml."""


class _FromEnvironment:
    """Parses the dataclass's fields from upper-cased environment variables, reporting every problem at once."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        problems: list[str] = []
        values: dict[str, object] = {}
        for field in fields(cls):  # type: ignore[arg-type]
            name = field.name.upper()
            raw = environ.get(name)
            if raw is None or (raw == "" and field.name not in _OPTIONAL):
                problems.append(f"{name} is not set")
                continue
            if field.type == "int":
                try:
                    number = int(raw)
                except ValueError:
                    problems.append(f"{name} must be a whole number, got {raw!r}")
                    continue
                if number < 0:
                    problems.append(f"{name} must not be negative, got {raw!r}")
                values[field.name] = number
            else:
                values[field.name] = raw.rstrip("/") if name.endswith("_URI") else raw
        mode = values.get("notification_mode")
        if mode is not None and mode not in ("send", "dry-run"):
            problems.append(f"NOTIFICATION_MODE must be 'send' or 'dry-run', got {mode!r}")
        hours = values.get("reminder_hours")
        if isinstance(hours, str):
            from account_doctor.reminders import InvalidReminderHours, reminder_hours

            try:
                reminder_hours(hours)
            except InvalidReminderHours as error:
                problems.append(f"REMINDER_HOURS: {error}")
        if problems:
            raise SettingsError(
                "Account Doctor is misconfigured: "
                + "; ".join(problems)
                + ". These variables come from template.yaml (each function's Environment); "
                "deploy with `sam deploy` or set them before invoking locally."
            )
        return cls(**values)


@dataclass(frozen=True)
class WebhookSettings(_FromEnvironment):
    """WebhookFunction: verify, screen stale deliveries, enqueue."""

    nylas_secret_name: str
    diagnosis_queue_url: str
    grace_seconds: int
    webhook_max_age_hours: int


@dataclass(frozen=True)
class _Procedure(_FromEnvironment):
    """The procedure's thresholds (template parameters): for the functions that diagnose or judge incidents."""

    domain_cluster_threshold: int
    domain_burst_minutes: int
    domain_window_days: int
    connector_outage_threshold: int
    domain_share_percent: int
    # Rule 1b names an expired Microsoft client secret first (SPEC §3d); empty = unknown.
    microsoft_client_secret_expires_on: str

    @cached_property
    def policy(self) -> Policy:
        # Parsed once per process: a malformed date is one log line (clocks.secret_expiry), not one per diagnosis.
        return Policy(
            domain_cluster_threshold=self.domain_cluster_threshold,
            domain_burst_minutes=self.domain_burst_minutes,
            domain_window_days=self.domain_window_days,
            connector_outage_threshold=self.connector_outage_threshold,
            domain_share_percent=self.domain_share_percent,
            client_secret_expires_on=secret_expiry(self.microsoft_client_secret_expires_on),
        )


@dataclass(frozen=True)
class _Sending(_FromEnvironment):
    """What every email needs: who sends it, to whom alerts go, and whether it really goes out."""

    app_name: str
    sender_email: str
    operator_email: str
    reply_to_email: str
    notification_mode: NotificationMode
    configuration_set_name: str


@dataclass(frozen=True)
class Settings(_Procedure, _Sending):
    """DiagnosisFunction (and the operator CLI, which diagnoses with the deployed function's settings)."""

    nylas_api_uri: str
    nylas_v2_api_uri: str
    reauth_url_template: str
    notify_cooldown_hours: int
    sweep_notify_days: int
    nylas_secret_name: str
    diagnosis_queue_url: str  # where `account-doctor redrive` returns dead letters
    release_queue_url: str
    event_bus_name: str
    events_table: str
    verdicts_table: str
    incidents_table: str
    notifications_table: str
    idempotency_table: str
    # ReminderHours (SPEC §5), e.g. "48,168"; empty: no reminders. Checked at start.
    reminder_hours: str

    @property
    def reminder_schedule(self) -> tuple[int, ...]:
        from account_doctor.reminders import reminder_hours

        return reminder_hours(self.reminder_hours)


@dataclass(frozen=True)
class ReadApiSettings(_Procedure):
    """AccountsApiFunction: reads the stores, resolves incidents and queues their releases (ReleaseQueue)."""

    release_queue_url: str
    event_bus_name: str
    events_table: str
    verdicts_table: str
    incidents_table: str


@dataclass(frozen=True)
class SweepSettings(_Sending):
    """SweepFunction: lists broken grants and accounts, reads the event history, enqueues the missed failures;
    takes the daily census, watches the webhook feed and the client secret's clock, and alerts the operator."""

    nylas_api_uri: str
    nylas_v2_api_uri: str
    nylas_secret_name: str
    diagnosis_queue_url: str
    grace_seconds: int
    sweep_notify_days: int
    events_table: str
    # An account the sweep finds recovered is announced (AccountRecovered, SPEC §3b, §4c) and marked on its
    # open incidents (§4b).
    event_bus_name: str
    incidents_table: str
    microsoft_client_secret_expires_on: str


@dataclass(frozen=True)
class SesEventsSettings(_Sending):
    """SesEventsFunction: records SES delivery feedback on the notifications, alerts the operator of bounces."""

    verdicts_table: str
    notifications_table: str
    # A customer's click (EmailTracking) counts the account's episode as clicked in the recovery report.
    events_table: str


AnySettings = TypeVar("AnySettings", bound=_FromEnvironment)


class _SettingsCache:
    """`get_settings(kind)`: each kind parsed on first use, then reused by every invocation of the process."""

    def __init__(self) -> None:
        self._parsed: dict[type[Any], Any] = {}

    @overload
    def __call__(self) -> Settings: ...
    @overload
    def __call__(self, kind: type[AnySettings]) -> AnySettings: ...
    def __call__(self, kind: type[Any] = Settings) -> Any:
        if kind not in self._parsed:
            self._parsed[kind] = kind.from_env(os.environ)
        return self._parsed[kind]

    def cache_clear(self) -> None:
        self._parsed.clear()


get_settings = _SettingsCache()
