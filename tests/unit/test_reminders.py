"""The pure decisions of reminders (SPEC §5): the schedule, is one due, the 72-hour deadline, and every "never"."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from account_doctor.episodes import Episode, first_email_at, schedule
from account_doctor.models import Notification, Verdict
from account_doctor.reminders import (
    DueReminder,
    InvalidReminderHours,
    deadline,
    is_due,
    reminder_hours,
    why_not,
)
from account_doctor.settings import Settings, SettingsError

FAILED_AT = "2026-11-01T10:00:00Z"


@pytest.mark.parametrize(
    ("text", "hours"),
    [
        pytest.param("48,168", (48, 168), id="the default"),
        pytest.param("", (), id="empty: no reminders"),
        pytest.param("168, 48,48", (48, 168), id="sorted, each once"),
    ],
)
def test_reminder_hours_are_whole_hours_separated_by_commas(text: str, hours: tuple[int, ...]) -> None:
    assert reminder_hours(text) == hours


@pytest.mark.parametrize("text", ["two days", "48;168", "0,48", "-1"])
def test_malformed_reminder_hours_say_what_is_expected(text: str) -> None:
    with pytest.raises(InvalidReminderHours, match="ReminderHours"):
        reminder_hours(text)


def test_a_malformed_reminder_hours_setting_fails_at_start() -> None:
    environ = {field.upper(): "1" for field in Settings.__dataclass_fields__}
    environ.update(NOTIFICATION_MODE="send", REMINDER_HOURS="two days")
    with pytest.raises(SettingsError, match="REMINDER_HOURS: ReminderHours must be whole hours"):
        Settings.from_env(environ)


def test_reminders_count_from_the_first_customer_email_not_a_reminder() -> None:
    emails = {
        "admin_contact#2026-11-01T12:00:00Z#m2",
        "reconnect#2026-11-01T10:02:00Z#m1",
        "reminder#2026-11-01T09:00:00Z#m0",
    }
    first = first_email_at(emails)
    assert first == "2026-11-01T10:02:00Z"
    assert schedule(first, (48, 168)) == [(1, "2026-11-03T10:02:00Z"), (2, "2026-11-08T10:02:00Z")]
    assert schedule(None, (48,)) == []  # no email went out: nothing to remind of


@pytest.mark.parametrize(
    ("now", "due"),
    [
        pytest.param(datetime(2026, 11, 3, 10, 1, tzinfo=UTC), False, id="a minute early"),
        pytest.param(datetime(2026, 11, 3, 10, 2, tzinfo=UTC), True, id="on time"),
        pytest.param(datetime(2026, 11, 3, 11, 0, tzinfo=UTC), True, id="within the hour"),
        pytest.param(datetime(2026, 11, 11, 10, 2, tzinfo=UTC), False, id="a week late: no longer sent"),
    ],
)
def test_is_a_reminder_due(now: datetime, due: bool) -> None:
    assert is_due("2026-11-03T10:02:00Z", now) is due


@pytest.mark.parametrize(
    ("api_version", "now", "line"),
    [
        pytest.param("v3", datetime(2026, 11, 3, 10, 2, tzinfo=UTC), "2026-11-04T10:00:00Z", id="v3 before 72 h"),
        pytest.param("v3", datetime(2026, 11, 4, 10, 0, tzinfo=UTC), None, id="v3 at 72 h: passed"),
        pytest.param("v2", datetime(2026, 11, 3, 10, 2, tzinfo=UTC), None, id="v2: Nylas replays nothing"),
    ],
)
def test_the_deadline_line_only_while_it_lies_ahead(api_version: str, now: datetime, line: str | None) -> None:
    assert deadline(api_version, FAILED_AT, now) == line


EPISODE = Episode(account_id="grant-1", episode_id="evt-1", failed_at=FAILED_AT, cause="oauth_revoked")
DUE = DueReminder("grant-1", "evt-1", 1, "2026-11-03T10:02:00Z")


def _verdict(cause: str = "oauth_revoked", email: str | None = "ann@acme.io", *notifications: Notification) -> Verdict:
    return Verdict(
        event_id="evt-1",
        account_id="grant-1",
        api_version="v3",
        trigger="grant.expired",
        occurred_at=FAILED_AT,
        diagnosed_at="2026-11-01T10:02:00Z",
        email=email,
        domain="acme.io",
        provider="google",
        auth_method="oauth",
        cause=cause,  # type: ignore[arg-type]
        confidence="high",
        summary="",
        actions=[],
        steps=[],
        evidence={},
        recurring=False,
        notifications=list(notifications),
    )


def _email(status: str, to: str = "ann@acme.io") -> Notification:
    return Notification(kind="reconnect", to=to, status=status, sent_at="2026-11-01T10:02:00Z", message_id="m1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("episode", "verdict", "incident", "reason"),
    [
        pytest.param(EPISODE, _verdict("oauth_revoked", "ann@acme.io", _email("delivered")), False, None, id="sent"),
        pytest.param(None, _verdict(), False, "episode_ended", id="never after the episode ended"),
        pytest.param(
            Episode(account_id="grant-1", episode_id="evt-9", failed_at="2026-11-20T00:00:00Z"),
            _verdict(),
            False,
            "episode_ended",
            id="never for an earlier episode",
        ),
        pytest.param(EPISODE, None, False, "verdict_gone", id="the verdict is gone: skipped"),
        pytest.param(EPISODE, _verdict(email=None), False, "address_gone", id="the address is gone: skipped"),
        pytest.param(EPISODE, _verdict("sync_stopped"), False, "operator_only", id="never for operator-only causes"),
        pytest.param(
            EPISODE,
            _verdict("oauth_revoked", "ann@acme.io", _email("bounced")),
            False,
            "address_unreachable",
            id="hard bounce",
        ),
        pytest.param(
            EPISODE,
            _verdict("oauth_revoked", "ann@acme.io", _email("complained", "ANN@acme.io")),
            False,
            "address_unreachable",
            id="complained (any case)",
        ),
        pytest.param(
            EPISODE,
            _verdict("oauth_revoked", "ann@acme.io", _email("rejected")),
            False,
            "address_unreachable",
            id="rejected",
        ),
        pytest.param(EPISODE, _verdict(), True, "connector_incident_open", id="never during a connector incident"),
    ],
)
def test_why_a_reminder_must_not_go_out(
    episode: Episode | None, verdict: Verdict | None, incident: bool, reason: str | None
) -> None:
    assert why_not(DUE, episode, verdict, connector_incident_open=incident) == reason


def test_a_reminder_message_round_trips() -> None:
    assert DueReminder.from_json(DUE.to_json()) == DUE
    with pytest.raises(ValueError, match="JSON object"):
        DueReminder.from_json("[]")
