"""Settings, read once from the environment variables that template.yaml sets on every function."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Literal, cast

NotificationMode = Literal["send", "dry-run"]


class SettingsError(RuntimeError):
    """The function's environment is incomplete or malformed: fix template.yaml or samconfig.toml."""


@dataclass(frozen=True)
class Settings:
    nylas_api_uri: str
    nylas_v2_api_uri: str
    app_name: str
    sender_email: str
    operator_email: str
    reauth_url_template: str
    grace_seconds: int
    domain_cluster_threshold: int
    domain_burst_minutes: int
    domain_window_days: int
    notify_cooldown_hours: int
    notification_mode: NotificationMode
    nylas_secret_name: str
    diagnosis_queue_url: str
    events_table: str
    verdicts_table: str
    notifications_table: str
    idempotency_table: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        problems: list[str] = []
        values: dict[str, object] = {}
        for field in fields(cls):
            name = field.name.upper()
            raw = environ.get(name)
            # An empty ReauthUrlTemplate is meaningful (use Nylas hosted auth); anything else must be set.
            if raw is None or (raw == "" and field.name != "reauth_url_template"):
                problems.append(f"{name} is not set")
                continue
            if field.type == "int":
                try:
                    values[field.name] = int(raw)
                except ValueError:
                    problems.append(f"{name} must be a whole number, got {raw!r}")
                    continue
                if cast(int, values[field.name]) < 0:
                    problems.append(f"{name} must not be negative, got {raw!r}")
            else:
                values[field.name] = raw.rstrip("/") if name.endswith("_URI") else raw
        if values.get("notification_mode") not in (None, "send", "dry-run"):
            problems.append(f"NOTIFICATION_MODE must be 'send' or 'dry-run', got {values['notification_mode']!r}")
        if problems:
            raise SettingsError(
                "Account Doctor is misconfigured: "
                + "; ".join(problems)
                + ". These variables come from template.yaml (Globals.Function.Environment); "
                "deploy with `sam deploy` or set them before invoking locally."
            )
        return cls(**values)  # type: ignore[arg-type]


@cache
def get_settings() -> Settings:
    """The settings of this process, parsed on first use and then reused by every invocation."""
    return Settings.from_env(os.environ)
