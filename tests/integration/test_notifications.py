"""Notifications against moto's SES and the template's NotificationsTable: who receives what, exactly once."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from account_doctor.models import CAUSES, Cause, Verdict
from account_doctor.notifications import DRY_RUN_MESSAGE_ID, NotificationError, build_notifier
from account_doctor.notifications.ledger import LEASE_SECONDS, NotificationLedger
from account_doctor.notifications.mailer import SesMailer
from account_doctor.notifications.service import EmailNotifier, ReconnectLinks
from account_doctor.settings import get_settings
from local_stack.emails import sample_verdict
from local_stack.payloads import TEST_SECRET
from local_stack.template import ProvisionedStack
from tests.integration.ses import OPERATOR, SENDER, FlakySes, ses_outbox


def hosted_link(verdict: Verdict, provider: str) -> str:
    return html.escape(
        "https://api.us.nylas.com/v3/connect/auth?client_id=test-client-id"
        "&redirect_uri=https%3A%2F%2Fapp.example.com%2Fnylas%2Fcallback&response_type=code"
        f"&provider={provider}&login_hint={str(verdict.email).replace('@', '%40')}"
    )


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class DynamoDbFailingOn:
    """DynamoDB whose next update matching `expression` fails, as if the process died at that point."""

    def __init__(self, expression: str) -> None:
        self._client = boto3.client("dynamodb")
        self._expression = expression
        self.armed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_item(self, **request: Any) -> Any:
        if self.armed and request.get("UpdateExpression", "").startswith(self._expression):
            self.armed = False
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "UpdateItem")
        return self._client.update_item(**request)


def notifier_at(clock: Clock, *, ses: Any = None, dynamodb: Any = None) -> EmailNotifier:
    """The real notifier, wired as build_notifier wires it, on a clock the test moves."""
    settings = get_settings()
    return EmailNotifier(
        settings,
        ledger=NotificationLedger(settings.notifications_table, dynamodb or boto3.client("dynamodb")),
        mailer=SesMailer(ses or boto3.client("sesv2"), sender_email=settings.sender_email, app_name=settings.app_name),
        reconnect_link=ReconnectLinks(settings),
        clock=clock,
    )


# (cause, provider hosted auth is asked for, who receives which email)
RECEIVERS: list[tuple[Cause, str, dict[str, str]]] = [
    ("app_revoked", "", {OPERATOR: "alert: app_revoked"}),
    (
        "admin_disconnected",
        "microsoft",
        {"customer": "mail administrator needs to act", OPERATOR: "admin_disconnected"},
    ),
    ("admin_session_policy", "google", {"customer": "mail administrator needs to act", OPERATOR: "admin_session"}),
    ("eas_sparse_inbox", "ews", {"customer": "reconnect your Exchange mailbox", OPERATOR: "eas_sparse_inbox"}),
    ("imap_sync_errors", "", {OPERATOR: "alert: imap_sync_errors"}),
    ("password_changed", "icloud", {"customer": "needs its new password"}),
    ("google_testing_mode", "google", {"customer": "reconnect your Google account", OPERATOR: "google_testing_mode"}),
    ("microsoft_token_expired", "microsoft", {"customer": "reconnect your Microsoft account"}),
    ("sync_stopped", "", {OPERATOR: "alert: sync_stopped"}),
    ("oauth_revoked", "google", {"customer": "reconnect your mailbox"}),
    ("unknown", "", {OPERATOR: "alert: unknown"}),
]


def test_every_cause_is_covered() -> None:
    assert {cause for cause, _, _ in RECEIVERS} == set(CAUSES) - {"recovered"}


@pytest.mark.parametrize(("cause", "provider", "receivers"), RECEIVERS, ids=[c for c, _, _ in RECEIVERS])
def test_who_receives_what(aws: ProvisionedStack, cause: Cause, provider: str, receivers: dict[str, str]) -> None:
    verdict = sample_verdict(cause)
    notifications = build_notifier(get_settings()).notify(verdict)

    outbox = ses_outbox()
    expected = {verdict.email if who == "customer" else who: subject for who, subject in receivers.items()}
    assert {m.to[0]: m for m in outbox}.keys() == expected.keys()
    assert len(outbox) == len(expected)
    for message in outbox:
        assert message.subject.startswith("Account Doctor")
        assert expected[message.to[0]] in message.subject
        assert message.source == f"Account Doctor <{SENDER}>"
        if message.to[0] == verdict.email:
            assert f'href="{hosted_link(verdict, provider)}"' in message.html
    sent_ids = {m.to[0]: m for m in outbox}
    assert len(notifications) == len(outbox)
    for notification in notifications:
        assert notification.message_id
        assert notification.sent_at
        assert notification.to in sent_ids
        assert (notification.kind == "operator_alert") == (notification.to == OPERATOR)


@pytest.mark.parametrize(
    "stack_parameters", [{"ReauthUrlTemplate": "https://app.example.com/reconnect/{account_id}?email={email}"}]
)
def test_reconnect_link_from_the_operators_template(aws: ProvisionedStack) -> None:
    verdict = sample_verdict("oauth_revoked", email="first+last@wayne.com")
    build_notifier(get_settings()).notify(verdict)
    (message,) = ses_outbox()
    link = "https://app.example.com/reconnect/acct-oauth_revoked?email=first%2Blast%40wayne.com"
    assert f'href="{link}"' in message.html


def test_a_customer_without_address_is_reported_to_the_operator(aws: ProvisionedStack) -> None:
    verdict = sample_verdict("oauth_revoked", email=None)
    (notification,) = build_notifier(get_settings()).notify(verdict)
    (message,) = ses_outbox()
    assert (notification.kind, notification.to, message.to) == ("operator_alert", OPERATOR, [OPERATOR])
    assert "No customer address on file" in message.html


def test_recovered_sends_and_records_nothing(aws: ProvisionedStack) -> None:
    assert build_notifier(get_settings()).notify(sample_verdict("oauth_revoked", cause="recovered")) == []
    assert ses_outbox() == []
    table = aws.physical["NotificationsTable"]
    assert boto3.client("dynamodb").scan(TableName=table)["Count"] == 0


def test_hostile_values_arrive_escaped(aws: ProvisionedStack) -> None:
    hostile = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
    verdict = sample_verdict("google_testing_mode", summary=hostile, provider=f"google{hostile}")
    build_notifier(get_settings()).notify(verdict)
    for message in ses_outbox():
        assert "<script>" not in message.html
        assert "<img" not in message.html
        assert "&lt;script&gt;" in message.html


def test_redelivery_sends_nothing_again(aws: ProvisionedStack) -> None:
    verdict = sample_verdict("google_testing_mode")
    first = build_notifier(get_settings()).notify(verdict)
    again = build_notifier(get_settings()).notify(verdict)
    assert again == first
    assert len(first) == 2
    assert len(ses_outbox()) == 2


def test_a_verdict_wrongly_called_fresh_still_sends_nothing_twice(aws: ProvisionedStack) -> None:
    # `fresh` only skips the up-front ledger read; the conditional intent write is the guard.
    verdict = sample_verdict("google_testing_mode")
    first = build_notifier(get_settings()).notify(verdict, fresh=True)
    again = build_notifier(get_settings()).notify(verdict, fresh=True)
    assert again == first
    assert len(ses_outbox()) == 2


def test_an_event_rediagnosed_on_retry_emails_each_person_once(aws: ProvisionedStack) -> None:
    notifier = build_notifier(get_settings())
    first = notifier.notify(sample_verdict("oauth_revoked", domain="wayne.com"))
    # The retry saw more failures of the domain and concluded differently.
    second = notifier.notify(sample_verdict("oauth_revoked", cause="admin_disconnected", domain="wayne.com"))
    assert [n.kind for n in first] == ["reconnect"]
    assert second[0] == first[0]  # the customer's email of this event is the one already sent
    assert [n.kind for n in second] == ["reconnect", "operator_alert"]
    assert [m.to for m in ses_outbox()] == [["mia@wayne.com"], [OPERATOR]]


def test_one_customer_email_per_account_per_cooldown(aws: ProvisionedStack) -> None:
    clock = Clock()
    notifier = notifier_at(clock)
    verdict = sample_verdict("google_testing_mode")

    first = notifier.notify(verdict)
    assert [n.kind for n in first] == ["reconnect", "operator_alert"]
    clock.advance(hours=23)
    # Another failure of the same account within NotifyCooldownHours (24): the operator is told, the customer not.
    assert [n.kind for n in notifier.notify(replace(verdict, event_id="evt-2"))] == ["operator_alert"]
    clock.advance(hours=2)
    assert [n.kind for n in notifier.notify(replace(verdict, event_id="evt-3"))] == ["reconnect", "operator_alert"]

    # A late redelivery of the first event still reports what it sent, though evt-3 now holds the cooldown.
    assert notifier.notify(verdict) == first

    customer = [m for m in ses_outbox() if m.to == [verdict.email]]
    assert len(customer) == 2
    assert len(ses_outbox()) == 5


@pytest.mark.parametrize("stack_parameters", [{"NotifyCooldownHours": "0"}])
def test_a_zero_cooldown_emails_every_failure(aws: ProvisionedStack) -> None:
    notifier = build_notifier(get_settings())
    verdict = sample_verdict("password_changed")
    notifier.notify(verdict)
    notifier.notify(replace(verdict, event_id="evt-2"))
    assert len(ses_outbox()) == 2


def test_one_operator_alert_per_domain_incident(aws: ProvisionedStack) -> None:
    clock = Clock()
    notifier = notifier_at(clock)

    def failure(n: int) -> Verdict:
        return sample_verdict(
            "admin_disconnected", event_id=f"evt-{n}", account_id=f"acct-{n}", email=f"user{n}@acme-corp.com"
        )

    alerts: list[int] = []
    # Failures 10 minutes apart keep the incident open (DomainBurstMinutes = 15) ...
    for n in range(4):
        kinds = [x.kind for x in notifier.notify(failure(n))]
        assert kinds[0] == "admin_contact"
        alerts.append(kinds.count("operator_alert"))
        clock.advance(minutes=10)
    # ... a failure after a quiet gap longer than the burst window is a new incident.
    clock.advance(minutes=10)
    alerts.append([x.kind for x in notifier.notify(failure(9))].count("operator_alert"))

    assert alerts == [1, 0, 0, 0, 1]
    outbox = ses_outbox()
    assert sum(m.to == [OPERATOR] for m in outbox) == 2
    assert sorted(m.to[0] for m in outbox if m.to != [OPERATOR]) == [f"user{n}@acme-corp.com" for n in (0, 1, 2, 3, 9)]


def test_session_policy_incident_lasts_the_long_window(aws: ProvisionedStack) -> None:
    clock = Clock()
    notifier = notifier_at(clock)
    for n in range(3):
        notifier.notify(sample_verdict("admin_session_policy", event_id=f"e{n}", account_id=f"a{n}"))
        clock.advance(days=3)
    assert sum(m.to == [OPERATOR] for m in ses_outbox()) == 1


def test_ses_throttling_on_the_first_try_then_success_sends_each_email_once(aws: ProvisionedStack) -> None:
    verdict = sample_verdict("google_testing_mode")
    flaky = FlakySes(failures=1)  # the customer's email (sent first) is throttled
    notifier = build_notifier(get_settings(), ses_client=flaky)

    with pytest.raises(NotificationError, match="retried"):
        notifier.notify(verdict)
    # The operator's alert went out in the same attempt; the ledger knows it.
    assert [m.to for m in ses_outbox()] == [[OPERATOR]]

    notifications = notifier.notify(verdict)
    assert sorted(n.kind for n in notifications) == ["operator_alert", "reconnect"]
    assert sorted(m.to[0] for m in ses_outbox()) == sorted([OPERATOR, str(verdict.email)])
    assert notifier.notify(verdict) == notifications
    assert len(ses_outbox()) == 2


def test_ses_down_for_the_whole_attempt_loses_nothing(aws: ProvisionedStack) -> None:
    verdict = sample_verdict("admin_disconnected")
    notifier = build_notifier(get_settings(), ses_client=FlakySes(failures=2))
    with pytest.raises(NotificationError):
        notifier.notify(verdict)
    assert ses_outbox() == []
    # The retry is not held back by the cooldown or incident its own first attempt claimed.
    assert [n.kind for n in notifier.notify(verdict)] == ["admin_contact", "operator_alert"]
    assert len(ses_outbox()) == 2


def test_a_crash_before_sending_blocks_only_until_the_lease_lapses(aws: ProvisionedStack) -> None:
    clock = Clock()
    verdict = sample_verdict("password_changed")
    # An earlier attempt recorded its intent and died before calling SES (its lease is still running).
    ledger = NotificationLedger(get_settings().notifications_table, boto3.client("dynamodb"))
    ledger.begin(verdict.event_id, "customer", "reconnect", str(verdict.email), clock())
    notifier = notifier_at(clock)

    with pytest.raises(NotificationError, match="another invocation"):
        notifier.notify(verdict)
    assert ses_outbox() == []
    clock.advance(seconds=LEASE_SECONDS + 1)
    assert [n.kind for n in notifier.notify(verdict)] == ["reconnect"]
    assert len(ses_outbox()) == 1


def test_a_crash_between_sending_and_recording_is_the_one_window_that_can_repeat(aws: ProvisionedStack) -> None:
    """SES has no idempotency key: an email sent but not marked may go again, once the lease lapses.

    The window is one DynamoDB write wide; this test pins that it stays the only one.
    """
    clock = Clock()
    verdict = sample_verdict("password_changed")
    notifier = notifier_at(clock, dynamodb=DynamoDbFailingOn("SET #status = :sent"))

    with pytest.raises(NotificationError):
        notifier.notify(verdict)
    assert len(ses_outbox()) == 1
    # A redelivery while the lease holds (a concurrent duplicate) does not send.
    with pytest.raises(NotificationError, match="another invocation"):
        notifier.notify(verdict)
    assert len(ses_outbox()) == 1
    clock.advance(seconds=LEASE_SECONDS + 1)
    notifier.notify(verdict)
    assert len(ses_outbox()) == 2


@pytest.mark.parametrize("stack_parameters", [{"NotificationMode": "dry-run"}])
def test_dry_run_renders_and_records_without_sending(aws: ProvisionedStack, monkeypatch: pytest.MonkeyPatch) -> None:
    verdict = sample_verdict("admin_disconnected")
    notifier = build_notifier(get_settings())
    notifications = notifier.notify(verdict)

    assert [(n.kind, n.to, n.message_id) for n in notifications] == [
        ("admin_contact", verdict.email, DRY_RUN_MESSAGE_ID),
        ("operator_alert", OPERATOR, DRY_RUN_MESSAGE_ID),
    ]
    assert all(n.sent_at for n in notifications)
    assert notifier.notify(verdict) == notifications
    assert ses_outbox() == []

    # A rehearsal never holds back the real email.
    monkeypatch.setenv("NOTIFICATION_MODE", "send")
    get_settings.cache_clear()
    sent = build_notifier(get_settings()).notify(verdict)
    assert [n.kind for n in sent] == ["admin_contact", "operator_alert"]
    assert all(n.message_id != DRY_RUN_MESSAGE_ID for n in sent)
    assert len(ses_outbox()) == 2


def test_hosted_auth_without_client_id_says_what_to_fix(aws: ProvisionedStack) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=get_settings().nylas_secret_name, SecretString='{"webhook_secret": "w", "api_key": "k"}'
    )
    with pytest.raises(NotificationError, match="ReauthUrlTemplate"):
        build_notifier(get_settings()).notify(sample_verdict("oauth_revoked"))
    assert ses_outbox() == []


def test_logs_name_addresses_masked_only(aws: ProvisionedStack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    verdict = sample_verdict("google_testing_mode")
    build_notifier(get_settings()).notify(verdict)
    logged = [str(record.__dict__) for record in caplog.records]
    assert any("j***@gmail.com" in line for line in logged)
    assert not any(str(verdict.email) in line or OPERATOR in line for line in logged)
    for secret in TEST_SECRET.values():
        assert not any(secret in line for line in logged)


def test_build_notifier_takes_a_dynamodb_resource(aws: ProvisionedStack) -> None:
    notify: Callable[[Verdict], object] = build_notifier(
        get_settings(), dynamodb=boto3.resource("dynamodb"), ses_client=boto3.client("sesv2")
    ).notify
    notify(sample_verdict("unknown"))
    assert len(ses_outbox()) == 1
