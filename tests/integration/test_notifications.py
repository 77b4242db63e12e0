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

from account_doctor.addresses import mask_email
from account_doctor.models import CAUSES, Cause, Notification, Verdict
from account_doctor.notifications import DRY_RUN_MESSAGE_ID, NotificationError, build_notifier
from account_doctor.notifications.mailer import SesMailer
from account_doctor.notifications.notifier import EmailNotifier, ReconnectLinks
from account_doctor.settings import get_settings
from account_doctor.stores.dynamo import Table
from account_doctor.stores.ledger import LEASE_SECONDS, NotificationLedger
from account_doctor.stores.verdicts import VerdictStore
from local_stack.emails import sample_verdict as unstored_sample_verdict
from local_stack.payloads import TEST_SECRET
from local_stack.template import ProvisionedStack
from tests.integration.ses import OPERATOR, SENDER, FlakySes, ses_outbox
from tests.integration.test_incidents import Harness


def hosted_link(verdict: Verdict, provider: str) -> str:
    return html.escape(
        "https://api.us.nylas.com/v3/connect/auth?client_id=test-client-id"
        "&redirect_uri=https%3A%2F%2Fapp.example.com%2Fnylas%2Fcallback&response_type=code"
        f"&provider={provider}&login_hint={str(verdict.email).replace('@', '%40')}"
    )


def verdict_store() -> VerdictStore:
    return VerdictStore(Table(get_settings().verdicts_table))


def sample_verdict(cause: Cause, /, **overrides: object) -> Verdict:
    """The cause's sample verdict, stored first as the diagnosis stores it (its emails are recorded on it)."""
    verdict = unstored_sample_verdict(cause, **overrides)
    verdict_store().put(verdict)
    return verdict


def another_failure(verdict: Verdict, event_id: str) -> Verdict:
    """The verdict of another failure event of the same account, stored."""
    again = replace(verdict, event_id=event_id)
    verdict_store().put(again)
    return again


def recorded(verdict: Verdict) -> list[Notification]:
    """The notifications the stored verdict names (what the read API shows)."""
    stored = verdict_store().latest_for_event(verdict.account_id, verdict.occurred_at, verdict.event_id)
    assert stored is not None
    return stored.notifications


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class DynamoDbFailingOn:
    """DynamoDB whose next transaction updating with `expression` fails, as if the process died at that point."""

    def __init__(self, expression: str) -> None:
        self._client = boto3.client("dynamodb")
        self._expression = expression
        self.armed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def transact_write_items(self, **request: Any) -> Any:
        updates = [item["Update"]["UpdateExpression"] for item in request["TransactItems"] if "Update" in item]
        if self.armed and any(update.startswith(self._expression) for update in updates):
            self.armed = False
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "TransactWriteItems")
        return self._client.transact_write_items(**request)


def notifier_at(clock: Clock, *, ses: Any = None, dynamodb: Any = None) -> EmailNotifier:
    """The real notifier, wired as build_notifier wires it, on a clock the test moves."""
    settings = get_settings()
    client = dynamodb or boto3.client("dynamodb")
    return EmailNotifier(
        settings,
        ledger=NotificationLedger(Table(settings.notifications_table, client)),
        mailer=SesMailer(ses or boto3.client("sesv2"), settings),
        reconnect_link=ReconnectLinks(settings),
        verdicts=VerdictStore(Table(settings.verdicts_table, client)),
        clock=clock,
    )


# (cause, provider hosted auth is asked for, who receives which email). Operator alerts are titled in plain
# words (SPEC §5); without an incident they name the one account.
RECEIVERS: list[tuple[Cause, str, dict[str, str]]] = [
    ("app_revoked", "", {OPERATOR: "alert: Grant removed by your application"}),
    (
        "connector_outage",
        "microsoft",
        {"customer": "please reconnect your mailbox", OPERATOR: "alert: Microsoft connector outage"},
    ),
    (
        "admin_disconnected",
        "microsoft",
        {"customer": "mail administrator needs to act", OPERATOR: "disconnected by their administrator"},
    ),
    (
        "admin_session_policy",
        "google",
        {"customer": "mail administrator needs to act", OPERATOR: "signed out by a session policy"},
    ),
    (
        "eas_sparse_inbox",
        "ews",
        {"customer": "reconnect your Exchange mailbox", OPERATOR: "its inbox is nearly empty"},
    ),
    ("imap_sync_errors", "", {OPERATOR: "alert: IMAP account stopped syncing"}),
    ("password_changed", "yahoo", {"customer": "needs its new password"}),
    (
        "google_testing_mode",
        "google",
        {"customer": "reconnect your Google account", OPERATOR: "Google OAuth app still in testing mode"},
    ),
    ("microsoft_token_expired", "microsoft", {"customer": "reconnect your Microsoft account"}),
    ("sync_stopped", "", {OPERATOR: "alert: Gmail account stopped syncing"}),
    ("oauth_revoked", "google", {"customer": "reconnect your mailbox"}),
    ("unknown", "", {OPERATOR: "alert: No known cause"}),
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
        assert cause not in message.subject  # never a raw cause code
        assert message.source == f"Account Doctor <{SENDER}>"
        if message.to[0] == verdict.email:
            assert f'href="{hosted_link(verdict, provider)}"' in message.html
        else:
            assert f"({verdict.email})" in message.subject  # no incident: the alert names its account
    sent_ids = {m.to[0]: m.message_id for m in outbox}
    assert len(notifications) == len(outbox)
    for notification in notifications:
        assert notification.status == "sent"
        assert notification.message_id == sent_ids[notification.to]
        assert notification.sent_at
        assert (notification.kind == "operator_alert") == (notification.to == OPERATOR)
    # The stored verdict names every email as it went out.
    assert recorded(verdict) == notifications


@pytest.mark.parametrize(
    "stack_parameters", [{"ReauthUrlTemplate": "https://app.example.com/reconnect/{account_id}?email={email}"}]
)
def test_reconnect_link_from_the_operators_template(aws: ProvisionedStack) -> None:
    verdict = sample_verdict("oauth_revoked", email="first+last@wayne.com")
    build_notifier(get_settings()).notify(verdict)
    (message,) = ses_outbox()
    link = f"https://app.example.com/reconnect/{verdict.account_id}?email=first%2Blast%40wayne.com"
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


def test_two_workers_notifying_the_same_verdict_send_each_email_once(aws: ProvisionedStack) -> None:
    # Two notifiers (two function instances): the conditional intent write, not a read, is the guard.
    verdict = sample_verdict("google_testing_mode")
    first = build_notifier(get_settings()).notify(verdict)
    again = build_notifier(get_settings()).notify(verdict)
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
    assert [m.to for m in ses_outbox()] == [[first[0].to], [OPERATOR]]
    assert recorded(sample_verdict("oauth_revoked")) == second


def test_one_customer_email_per_account_per_cooldown(aws: ProvisionedStack) -> None:
    clock = Clock()
    notifier = notifier_at(clock)
    verdict = sample_verdict("google_testing_mode")

    first = notifier.notify(verdict)
    assert [n.kind for n in first] == ["reconnect", "operator_alert"]
    clock.advance(hours=23)
    # Another failure of the same account within NotifyCooldownHours (24): the operator is told, the customer not.
    assert [n.kind for n in notifier.notify(another_failure(verdict, "evt-2"))] == ["operator_alert"]
    clock.advance(hours=2)
    assert [n.kind for n in notifier.notify(another_failure(verdict, "evt-3"))] == ["reconnect", "operator_alert"]

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
    notifier.notify(another_failure(verdict, "evt-2"))
    assert len(ses_outbox()) == 2


@pytest.mark.usefixtures("aws")
def test_one_operator_alert_per_domain_incident(harness: Harness) -> None:
    """The incident decides the operator alert (SPEC §4b): the consumer tells the notifier when one opened."""
    operator = harness.settings.operator_email
    alerts: list[int] = []

    def diagnose(n: int, minutes: float) -> None:
        before = len(harness.outbox.to(operator))
        harness.diagnose(harness.fail(n, f"user{n}@acme-corp.com", "google", minutes=minutes))
        alerts.append(len(harness.outbox.to(operator)) - before)

    # Failures 5 minutes apart: the third opens the incident (DomainClusterThreshold = 3), the fourth joins it ...
    for n, minutes in enumerate((0, 5, 10, 20)):
        diagnose(n, minutes)
    # ... a failure after a quiet gap longer than the burst window (15 minutes) is a new incident.
    diagnose(9, 45)

    assert alerts == [0, 0, 1, 0, 1]
    for n in (0, 1, 2, 3, 9):
        # The first two were asked to reconnect before the incident existed, then to ask their administrator.
        assert harness.outbox.kinds(f"user{n}@acme-corp.com")[-1] == "admin_contact"
        assert harness.outbox.kinds(f"user{n}@acme-corp.com").count("admin_contact") == 1


@pytest.mark.usefixtures("aws")
def test_session_policy_incident_lasts_the_long_window(harness: Harness) -> None:
    causes = [
        harness.diagnose(harness.fail(n, f"a{n}@policy.example", "google", minutes=n * 3 * 24 * 60)) for n in range(4)
    ]
    assert causes[2:] == ["admin_session_policy", "admin_session_policy"]
    assert len(harness.outbox.to(harness.settings.operator_email)) == 1


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
    ledger = NotificationLedger(Table(get_settings().notifications_table))
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
    notifier = notifier_at(clock, dynamodb=DynamoDbFailingOn("SET #status = :status"))

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

    assert [(n.kind, n.to, n.status, n.message_id) for n in notifications] == [
        ("admin_contact", verdict.email, "dry_run", DRY_RUN_MESSAGE_ID),
        ("operator_alert", OPERATOR, "dry_run", DRY_RUN_MESSAGE_ID),
    ]
    assert all(n.sent_at for n in notifications)
    assert recorded(verdict) == notifications
    assert notifier.notify(verdict) == notifications
    assert ses_outbox() == []

    # A rehearsal never holds back the real email.
    monkeypatch.setenv("NOTIFICATION_MODE", "send")
    get_settings.cache_clear()
    sent = build_notifier(get_settings()).notify(verdict)
    assert [(n.kind, n.status) for n in sent] == [("admin_contact", "sent"), ("operator_alert", "sent")]
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
    assert any(mask_email(verdict.email) in line for line in logged)
    assert not any(str(verdict.email) in line or OPERATOR in line for line in logged)
    for secret in TEST_SECRET.values():
        assert not any(secret in line for line in logged)


def test_build_notifier_uses_the_clients_it_is_given(aws: ProvisionedStack) -> None:
    notify: Callable[[Verdict], object] = build_notifier(
        get_settings(), dynamodb=boto3.client("dynamodb"), ses_client=boto3.client("sesv2")
    ).notify
    notify(sample_verdict("unknown"))
    assert len(ses_outbox()) == 1
