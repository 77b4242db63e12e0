"""The DiagnosisQueue's scenarios, one per cause of SPEC §4, and the events/sqs-*.json and api-*.json made from them.

Each is played at FAILED_AT: its failure is on the queue, Nylas answers as the scenario says, and
its history (the neighbours of a domain cluster) is recorded first. Tests, the benchmark and
`python -m local_stack.sample_sqs_events` (which rewrites events/) share them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from account_doctor.models import AccountEvent, Release, parse_iso
from local_stack.payloads import diagnosis_record, read_api_event, release_record, sqs_event
from local_stack.scenarios import Scenario

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
FAILED_AT = "2024-11-19T10:00:00Z"
NOW = parse_iso(FAILED_AT).timestamp()  # the scenarios are played when their failure arrives
MINUTE = 1 / 24 / 60  # in days


def _neighbours(domain: str, provider: str, cause: str, days_ago: Iterable[float]) -> tuple[Scenario, ...]:
    return tuple(
        Scenario(
            f"grant-{domain}-{index}",
            "v3",
            provider,
            f"colleague{index}@{domain}",
            "grant.expired",
            cause,
            f"a colleague at {domain} who failed earlier",
            failed_days_ago=ago,
        )
        for index, ago in enumerate(days_ago, start=1)
    )


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "grant-recovered",
        "v3",
        "google",
        "ana@acme.example",
        "grant.expired",
        "recovered",
        "the grant works again by the time it is diagnosed",
        status="valid",
        authenticated_days_ago=20,
    ),
    Scenario(
        "grant-app_revoked",
        "v3",
        "google",
        "ben@acme.example",
        "grant.expired",
        "app_revoked",
        "the application deleted the grant",
        exists=False,
        authenticated_days_ago=20,
    ),
    Scenario(
        "grant-admin_disconnected",
        "v3",
        "microsoft",
        "cara@burst.example",
        "grant.expired",
        "admin_disconnected",
        "the third burst.example mailbox to fail within minutes",
        authenticated_days_ago=20,
        history=_neighbours("burst.example", "microsoft", "admin_disconnected", (3 * MINUTE, 6 * MINUTE)),
    ),
    Scenario(
        "grant-admin_session_policy",
        "v3",
        "google",
        "dan@policy.example",
        "grant.expired",
        "admin_session_policy",
        "the third policy.example mailbox to fail this week",
        authenticated_days_ago=20,
        history=_neighbours("policy.example", "google", "admin_session_policy", (2, 5)),
    ),
    Scenario(
        "grant-eas_sparse_inbox",
        "v3",
        "ews",
        "eve@exchange.example",
        "grant.expired",
        "eas_sparse_inbox",
        "Exchange by password with one message in the inbox",
        inbox_count=1,
    ),
    Scenario(
        "acct-imap_sync_errors",
        "v2",
        "imap",
        "fay@imap.example",
        "account.sync_error",
        "imap_sync_errors",
        "IMAP stopped syncing, the password still good",
        status="stopped",
    ),
    Scenario(
        "acct-password_changed",
        "v2",
        "yahoo",
        "gus@yahoo.com",
        "account.invalid",
        "password_changed",
        "Yahoo by app password: the password changed",
    ),
    Scenario(
        "grant-google_testing_mode",
        "v3",
        "google",
        "hal@startup.example",
        "grant.expired",
        "google_testing_mode",
        "a Google token died 7 days after sign-in",
        authenticated_days_ago=7 + 1 / 24,
    ),
    Scenario(
        "grant-microsoft_token_expired",
        "v3",
        "microsoft",
        "ivy@old.example",
        "grant.expired",
        "microsoft_token_expired",
        "a Microsoft account not signed in for 95 days",
        authenticated_days_ago=95,
    ),
    Scenario(
        "acct-sync_stopped",
        "v2",
        "gmail",
        "jo@gmail.com",
        "account.stopped",
        "sync_stopped",
        "an OAuth account stopped syncing, its token still good",
        status="stopped",
    ),
    Scenario(
        "grant-oauth_revoked",
        "v3",
        "google",
        "kim@shop.example",
        "grant.expired",
        "oauth_revoked",
        "a Google user revoked access",
        authenticated_days_ago=20,
    ),
    Scenario(
        "grant-unknown",
        "v3",
        "zimbra",
        "lee@zimbra.example",
        "grant.expired",
        "unknown",
        "a provider the procedure does not know",
    ),
)


def scenario(cause: str) -> Scenario:
    return next(s for s in SCENARIOS if s.expected_cause == cause)


def failure(s: Scenario) -> AccountEvent:
    """The scenario's failure as the webhook put it on the queue."""
    return s.account_event(NOW)


def failure_batch(event: AccountEvent) -> dict[str, Any]:
    """The record and diagnose copies of a failure (in production GraceSeconds apart)."""
    return sqs_event([diagnosis_record(event, "record"), diagnosis_record(event, "diagnose")])


def scenario_batch(s: Scenario) -> dict[str, Any]:
    return failure_batch(failure(s))


def history_batch(s: Scenario) -> dict[str, Any]:
    """The neighbours' failures, recorded and diagnosed: a failure counts toward its domain once diagnosed."""
    earlier = [failure(neighbour) for neighbour in s.history]
    return sqs_event(
        [diagnosis_record(event, "record") for event in earlier]
        + [diagnosis_record(event, "diagnose") for event in earlier]
    )


def sample_files() -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for s in SCENARIOS:
        name = s.expected_cause.replace("_", "-")
        files[f"sqs-{name}.json"] = scenario_batch(s)
        if s.history:
            files[f"sqs-{name}-history.json"] = history_batch(s)
    mixed = [
        failure(scenario(cause)) for cause in ("oauth_revoked", "password_changed", "google_testing_mode", "unknown")
    ]
    files["sqs-mixed-batch.json"] = sqs_event(
        [diagnosis_record(event, "record") for event in mixed]
        + [diagnosis_record(event, "diagnose") for event in mixed]
    )
    account = scenario("oauth_revoked").account_id
    files["api-get-account.json"] = read_api_event(
        f"/accounts/{account}", "/accounts/{account_id}", {"account_id": account}
    )
    files["api-get-account-unknown.json"] = read_api_event(
        "/accounts/grant-never-seen", "/accounts/{account_id}", {"account_id": "grant-never-seen"}
    )
    files["api-get-domain.json"] = read_api_event(
        "/domains/burst.example", "/domains/{domain}", {"domain": "burst.example"}
    )
    files["api-get-domain-invalid.json"] = read_api_event(
        "/domains/-not-a-domain-", "/domains/{domain}", {"domain": "-not-a-domain-"}
    )
    files["api-get-broken-accounts.json"] = read_api_event(
        "/accounts", "/accounts", query=[("status", "broken"), ("limit", "20")]
    )
    files["api-get-incidents.json"] = read_api_event("/incidents", "/incidents", query=[("status", "all")])
    files["api-get-health.json"] = read_api_event("/health", "/health")
    unknown = "domain-burst.example-20241119T0700-0000000000"
    files["api-get-incident-unknown.json"] = read_api_event(
        f"/incidents/{unknown}", "/incidents/{incident_id}", {"incident_id": unknown}
    )
    files["api-post-incident-release-unknown.json"] = read_api_event(
        f"/incidents/{unknown}/release", "/incidents/{incident_id}/release", {"incident_id": unknown}, method="POST"
    )
    files["api-post-incident-resolve-invalid.json"] = read_api_event(
        "/incidents/not an id/resolve", "/incidents/{incident_id}/resolve", {"incident_id": "not an id"}, method="POST"
    )
    # The release of an incident's held emails, as the read API queues it (SPEC §4b).
    files["sqs-release.json"] = sqs_event([release_record(Release(unknown))])
    return files


def write(directory: Path = EVENTS_DIR) -> list[Path]:
    directory.mkdir(exist_ok=True)
    written = []
    for name, content in sample_files().items():
        path = directory / name
        path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        print(path.relative_to(EVENTS_DIR.parent))
