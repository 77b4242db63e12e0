"""`make emails`: renders every cause's emails to out/emails/<cause>-<kind>.html|.txt for a look by eye.

Sample verdicts are built here, one per cause that emails anyone; the settings are template.yaml's
defaults, and the reconnect link is Nylas hosted auth with sample credentials (no AWS involved).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from account_doctor.providers import auth_method
from account_doctor.addresses import email_domain, is_free_mail
from account_doctor.models import AccountEvent, AccountState, ApiVersion, Cause, Evidence, Step, Verdict
from account_doctor.notifications import links
from account_doctor.notifications.render import compose
from account_doctor.settings import Settings
from local_stack.template import default_parameters, load_template

OUT_DIR = Path(__file__).resolve().parent.parent / "out" / "emails"
SAMPLE_CLIENT_ID = "sample-client-id"
SAMPLE_REDIRECT_URI = "https://app.example.com/nylas/callback"


def sample_settings(**overrides: str) -> Settings:
    """Settings from template.yaml's parameter defaults (resource names are placeholders)."""
    parameters = {**default_parameters(load_template()), **overrides}
    return Settings(
        nylas_api_uri=parameters["NylasApiUri"],
        nylas_v2_api_uri=parameters["NylasV2ApiUri"],
        app_name=parameters["AppName"],
        sender_email=parameters["SenderEmail"],
        operator_email=parameters["OperatorEmail"],
        reauth_url_template=parameters["ReauthUrlTemplate"],
        grace_seconds=int(parameters["GraceSeconds"]),
        domain_cluster_threshold=int(parameters["DomainClusterThreshold"]),
        domain_burst_minutes=int(parameters["DomainBurstMinutes"]),
        domain_window_days=int(parameters["DomainWindowDays"]),
        notify_cooldown_hours=int(parameters["NotifyCooldownHours"]),
        notification_mode="dry-run" if parameters["NotificationMode"] == "dry-run" else "send",
        nylas_secret_name="sample-secret",  # noqa: S106 - a placeholder name, no secret
        diagnosis_queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/sample",
        events_table="sample-events",
        verdicts_table="sample-verdicts",
        notifications_table="sample-notifications",
        idempotency_table="sample-idempotency",
    )


# cause: (provider, email, trigger, summary)
_SCENARIOS: dict[Cause, tuple[str, str, str, str]] = {
    "app_revoked": ("google", "dana@initech.com", "grant.expired", "The grant no longer exists at Nylas (404)."),
    "admin_disconnected": (
        "microsoft",
        "erin@acme-corp.com",
        "grant.expired",
        "4 accounts of acme-corp.com failed within 15 minutes: an administrator disconnected the app.",
    ),
    "admin_session_policy": (
        "google",
        "frank@globex.com",
        "grant.expired",
        "5 accounts of globex.com failed within 7 days: a session policy forces reconnects.",
    ),
    "eas_sparse_inbox": (
        "eas",
        "gina@umbrella.com",
        "account.invalid",
        "Exchange ActiveSync account with 1 message in its inbox.",
    ),
    "imap_sync_errors": ("imap", "hank@hooli.com", "account.sync_error", "IMAP account stopped with sync errors."),
    "password_changed": ("icloud", "ivy@icloud.com", "account.invalid", "Password account invalid: password changed."),
    "google_testing_mode": (
        "google",
        "jack@gmail.com",
        "grant.expired",
        "Google token died 7 days after authentication: the OAuth app is in Testing mode.",
    ),
    "microsoft_token_expired": (
        "microsoft",
        "kate@outlook.com",
        "grant.expired",
        "Microsoft token expired 93 days after the last authentication.",
    ),
    "sync_stopped": ("office365", "liam@stark.com", "account.stopped", "OAuth account stopped syncing."),
    "oauth_revoked": ("google", "mia@wayne.com", "grant.expired", "OAuth grant revoked (password change or policy)."),
    "unknown": ("zimbra", "noah@wonka.com", "account.invalid", "No rule matched."),
}

SCENARIO_CAUSES: tuple[Cause, ...] = tuple(_SCENARIOS)


def sample_verdict(cause: Cause, /, **overrides: object) -> Verdict:
    """A realistic verdict of this cause (not `recovered`: that one emails nobody); fields overridable."""
    provider, email, trigger, summary = _SCENARIOS[cause]
    api_version: ApiVersion = "v2" if trigger.startswith("account.") else "v3"
    domain = email_domain(email)
    event = AccountEvent(
        event_id=f"evt-{cause}",
        api_version=api_version,
        trigger=trigger,
        account_id=f"acct-{cause}",
        occurred_at="2026-11-20T09:00:00Z",
        provider=provider,
        email=email,
        grant_updated_at="2026-11-13T09:00:00Z",
    )
    evidence = Evidence(
        event=event,
        state=AccountState(exists=cause != "app_revoked", status="invalid", provider=provider, email=email),
        provider=provider,
        email=email,
        domain=domain,
        auth_method=auth_method(provider),
        free_mail=bool(domain and is_free_mail(domain)),
        recovered_at=None,
        removed_by_app=False,
        failures_last_30_days=3,
        last_authenticated_at="2026-11-13T09:00:00Z",
        domain_burst_accounts=4 if cause == "admin_disconnected" else 1,
        domain_window_accounts=5 if cause == "admin_session_policy" else 1,
    )
    verdict = Verdict(
        event_id=event.event_id,
        account_id=event.account_id,
        api_version=api_version,
        trigger=trigger,
        occurred_at=event.occurred_at,
        diagnosed_at="2026-11-20T09:02:00Z",
        email=email,
        domain=domain,
        provider=provider,
        auth_method=auth_method(provider),
        cause=cause,
        confidence="high",
        summary=summary,
        actions=[],
        steps=[
            Step("0", "Did the account recover during the grace period?", "no"),
            Step("1", "Did the application revoke access?", "yes" if cause == "app_revoked" else "no"),
        ],
        evidence=evidence.to_dict(),
        recurring=cause == "imap_sync_errors",
    )
    return replace(verdict, **overrides)  # type: ignore[arg-type]


def sample_link(verdict: Verdict, settings: Settings) -> str:
    if settings.reauth_url_template:
        return links.from_template(
            settings.reauth_url_template,
            email=verdict.email or "",
            provider=verdict.provider,
            account_id=verdict.account_id,
        )
    return links.nylas_hosted_auth(
        settings.nylas_api_uri,
        client_id=SAMPLE_CLIENT_ID,
        redirect_uri=SAMPLE_REDIRECT_URI,
        provider=verdict.provider,
        email=verdict.email or "",
    )


def render_scenarios(out_dir: Path = OUT_DIR, settings: Settings | None = None) -> list[Path]:
    settings = settings or sample_settings()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for cause in SCENARIO_CAUSES:
        verdict = sample_verdict(cause)
        for outgoing in compose(verdict, settings, sample_link(verdict, settings)):
            email = outgoing.email
            for suffix, body in ((".html", email.html), (".txt", email.text)):
                path = out_dir / f"{cause}-{email.kind}{suffix}"
                path.write_text(body, encoding="utf-8")
                written.append(path)
    return written


def main() -> int:
    written = render_scenarios()
    print(f"{len(written)} files in {OUT_DIR}")
    for path in written:
        print(f"  {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
