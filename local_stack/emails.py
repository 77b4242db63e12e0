"""`make emails`: every email the service sends, rendered to out/emails/<name>-<kind>.html|.txt for a look by eye.

The previews are what the service would send: each comes from a real diagnosis. A scenario's failure
(local_stack.sample_sqs_events, plus a connector outage here) is put to the real Nylas client, answered
at Nylas's real URLs with what the scenario says Nylas knows; its neighbours' failures make the domain
and connector clusters, counted as the evidence gatherer counts them; `diagnose` runs the procedure. The
settings are template.yaml's defaults, the reconnect link Nylas hosted auth with sample credentials.
No AWS is involved.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
import responses

from account_doctor.addresses import email_domain, is_free_mail
from account_doctor.credentials import NylasCredentials
from account_doctor.diagnosis import diagnose
from account_doctor.evidence import evidence_from
from account_doctor.models import (
    Cause,
    DeliveredNotification,
    Evidence,
    IncidentBrief,
    IncidentKind,
    IncidentMember,
    Occasion,
    ReminderEntry,
    Verdict,
    iso,
    parse_iso,
)
from account_doctor.notifications import links
from account_doctor.notifications.render import (
    AlertProblem,
    RenderedEmail,
    compose,
    render_outage_notice,
    render_undeliverable,
)
from account_doctor.nylas import NylasClient
from account_doctor.providers import connector
from account_doctor.reminders import deadline
from account_doctor.settings import Settings
from local_stack.payloads import nylas_v2_error, nylas_v3_answer, nylas_v3_error
from local_stack.sample_sqs_events import MINUTE, NOW, SCENARIOS
from local_stack.scenarios import Scenario
from local_stack.simulator import Grant
from local_stack.template import default_parameters, load_template

OUT_DIR = Path(__file__).resolve().parent.parent / "out" / "emails"
SAMPLE_CLIENT_ID = "sample-client-id"
SAMPLE_REDIRECT_URI = "https://app.example.com/nylas/callback"
_CREDENTIALS = NylasCredentials(
    webhook_secret="sample-webhook-secret",  # noqa: S106 - a placeholder, answered by no real Nylas
    api_key="sample-api-key",
    client_id=SAMPLE_CLIENT_ID,
    client_secret="sample-client-secret",  # noqa: S106 - a placeholder
    redirect_uri=SAMPLE_REDIRECT_URI,
)
# When the reminder previews' mailbox stopped.
_FAILED_AT = "2026-11-23T08:12:00Z"
# The diagnosis runs GraceSeconds (120 by default) after the failure.
_DIAGNOSED_AFTER = timedelta(seconds=120)
_INCIDENT_KINDS: dict[str, IncidentKind] = {
    "admin_disconnected": "domain",
    "admin_session_policy": "domain",
    "connector_outage": "connector",
    "google_testing_mode": "testing_mode",
}


def _colleagues(domains: Iterable[str], minutes_ago: Iterable[float]) -> tuple[Scenario, ...]:
    return tuple(
        Scenario(
            f"grant-outage-{index}",
            "v3",
            "microsoft",
            f"user{index}@{domain}",
            "grant.expired",
            "connector_outage",
            "another customer of the Microsoft connector failing in the same minutes",
            authenticated_days_ago=20,
            failed_days_ago=ago * MINUTE,
        )
        for index, (domain, ago) in enumerate(zip(domains, minutes_ago, strict=True), start=1)
    )


# Rule 1b: twelve Microsoft accounts of four organisations failing within minutes (the Entra ID client secret
# expired), against no usual failures. sample_sqs_events has one scenario per cause of the single-account table.
CONNECTOR_OUTAGE = Scenario(
    "grant-outage-12",
    "v3",
    "microsoft",
    "zoe@northwind.example",
    "grant.expired",
    "connector_outage",
    "the twelfth Microsoft account to fail within minutes: the connector itself is broken",
    authenticated_days_ago=20,
    history=_colleagues(
        [d for d in ("northwind.example", "contoso.example", "fabrikam.example", "tailspin.example") for _ in range(3)][
            :11
        ],
        [1, 2, 2, 3, 4, 5, 5, 6, 7, 8, 9],
    ),
)
PREVIEW_SCENARIOS: tuple[Scenario, ...] = (*SCENARIOS, CONNECTOR_OUTAGE)


def sample_settings(**overrides: str) -> Settings:
    """DiagnosisFunction's settings from template.yaml's parameter defaults (resource names are placeholders).

    `overrides` are template parameters (AppName=…, ReplyToEmail=…).
    """
    template = load_template()
    parameters = {**default_parameters(template), **overrides}
    variables = template["Resources"]["DiagnosisFunction"]["Properties"]["Environment"]["Variables"]
    return Settings.from_env({name: _placeholder(value, parameters) for name, value in variables.items()})


def _placeholder(value: Any, parameters: dict[str, str]) -> str:
    """A parameter's value, or a stand-in name for a resource of the stack (no AWS here)."""
    if isinstance(value, dict) and "Ref" in value:
        name = str(value["Ref"])
        return parameters.get(name, f"sample-{name}")
    if isinstance(value, dict):
        return "sample-" + "-".join(str(part) for part in next(iter(value.values())))
    return str(value)


@contextmanager
def _nylas_answering(scenarios: Iterable[Scenario], settings: Settings) -> Iterator[NylasClient]:
    """The real Nylas client, its requests answered at their real URLs with what each scenario says."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as nylas:
        for scenario in scenarios:
            state = scenario.nylas_state(NOW)
            if scenario.api_version == "v3":
                url = f"{settings.nylas_api_uri}/v3/grants/{scenario.account_id}"
                if isinstance(state, Grant):
                    nylas.get(url, json=nylas_v3_answer(state.to_api()))
                    nylas.get(f"{url}/folders", json=nylas_v3_answer(state.folders_api()))
                else:
                    nylas.get(url, status=404, json=nylas_v3_error("not_found_error", "grant not found"))
            else:
                url = f"{settings.nylas_v2_api_uri}/a/{SAMPLE_CLIENT_ID}/accounts/{scenario.account_id}"
                if state is None:
                    nylas.get(url, status=404, json=nylas_v2_error("invalid_request_error", "account not found"))
                else:
                    nylas.get(url, json=state.to_api())
        yield NylasClient(settings, credentials=lambda: _CREDENTIALS, session=requests.Session())


@dataclass(frozen=True)
class Diagnosed:
    scenario: Scenario
    verdict: Verdict
    incident: IncidentBrief | None


def diagnosed(scenario: Scenario, settings: Settings | None = None) -> Diagnosed:
    """The scenario's failure run through the procedure as DiagnosisFunction runs it."""
    settings = settings or sample_settings()
    policy = settings.policy
    event = scenario.account_event(NOW)
    with _nylas_answering([scenario], settings) as nylas:
        state = nylas.account_state(event)
    failed_at = parse_iso(event.occurred_at)
    burst = timedelta(minutes=policy.domain_burst_minutes)
    window_start = iso(failed_at - timedelta(days=policy.domain_window_days))
    before, after = iso(failed_at - burst), iso(failed_at + burst)
    mine = frozenset({event.account_id})
    provider = state.provider or event.provider
    domain = email_domain(event.email or state.email)
    # The clusters as the evidence gatherer counts them from the history's sparse indexes (evidence.py):
    # distinct failing accounts (and their domains) between two instants, this account included.
    failures = [(n, n.account_event(NOW).occurred_at) for n in scenario.history]
    domain_burst = domain_window = 1
    if domain and not is_free_mail(domain):
        of_domain = [(n, at) for n, at in failures if email_domain(n.email) == domain]
        domain_burst = len(_accounts_between(of_domain, before, after) | mine)
        domain_window = len(_accounts_between(of_domain, window_start, event.occurred_at) | mine)
    own_connector = connector(provider)
    of_connector = [(n, at) for n, at in failures if own_connector and connector(n.provider) == own_connector]
    connector_domains = {email_domain(n.email) for n, at in of_connector if before <= at <= after} | {domain}
    evidence = evidence_from(
        event,
        state,
        [],
        domain_burst_accounts=domain_burst,
        domain_window_accounts=domain_window,
        connector_burst_accounts=len(_accounts_between(of_connector, before, after) | mine),
        connector_burst_domains=len(connector_domains - {None}),
        connector_usual_failures=0.0,
    )
    diagnosis = diagnose(evidence, policy)
    incident = _incident(scenario, diagnosis.cause, evidence)
    verdict = Verdict.of(
        evidence,
        diagnosis,
        diagnosed_at=iso(failed_at + _DIAGNOSED_AFTER),
        incident_id=incident.incident_id if incident else None,
    )
    return Diagnosed(scenario, verdict, incident)


def _accounts_between(failures: Iterable[tuple[Scenario, str]], start: str, end: str) -> frozenset[str]:
    return frozenset(scenario.account_id for scenario, at in failures if start <= at <= end)


def _incident(scenario: Scenario, cause: Cause, evidence: Evidence) -> IncidentBrief | None:
    """The incident the verdict opens (SPEC §4b), its members the scenario's account and its neighbours."""
    kind = _INCIDENT_KINDS.get(cause)
    if kind is None:
        return None
    key = {"domain": evidence.domain or "", "connector": evidence.connector or "", "testing_mode": "google"}[kind]
    members = [
        IncidentMember(s.account_id, s.email, cause)
        for s in (*scenario.history, scenario)
        if kind != "domain" or email_domain(s.email) == key
    ]
    domains = {email_domain(m.email) for m in members if m.email}
    return IncidentBrief(
        incident_id=f"inc-{kind}-{key}-20241119",
        kind=kind,
        key=key,
        accounts=len(members),
        members=tuple(members),
        domains=len(domains),
    )


def _scenario_of(cause: str) -> Scenario:
    return next(s for s in PREVIEW_SCENARIOS if s.expected_cause == cause)


def sample_verdict(cause: Cause, /, **overrides: object) -> Verdict:
    """The real verdict of the cause's scenario (not `recovered`: that one emails nobody); fields overridable.

    Without its incident: as a verdict that opened none (the operator alert goes out for the account alone).
    """
    verdict = replace(diagnosed(_scenario_of(cause)).verdict, incident_id=None)
    return replace(verdict, **overrides)  # type: ignore[arg-type]


def sample_incident(cause: Cause) -> tuple[Verdict, IncidentBrief]:
    """The verdict that opened its incident, and the incident's brief (members so far)."""
    found = diagnosed(_scenario_of(cause))
    if found.incident is None:
        raise ValueError(f"{cause} opens no incident")
    return found.verdict, found.incident


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


def previews(settings: Settings | None = None) -> dict[str, RenderedEmail]:
    """Every email the service sends, by preview name (<cause>-<kind>): each cause's, an incident's
    operator alert with its members, the outage notice, reminders, and the alerts about customers SES could
    not reach."""
    settings = settings or sample_settings()
    rendered: dict[str, RenderedEmail] = {}
    for scenario in PREVIEW_SCENARIOS:
        found = diagnosed(scenario, settings)
        verdict, cause = found.verdict, found.verdict.cause
        if cause != scenario.expected_cause:
            raise AssertionError(f"{scenario.account_id} was diagnosed {cause}, not {scenario.expected_cause}")
        occasion = Occasion(incident_opened=True) if found.incident else None
        for outgoing in compose(verdict, settings, sample_link(verdict, settings), found.incident, occasion):
            rendered.setdefault(f"{cause}-{outgoing.email.kind}", outgoing.email)
        if cause == "connector_outage":
            rendered[f"{cause}-outage_notice"] = render_outage_notice(verdict, settings)
    # Reminders (SPEC §5): a reconnect's, with the 72-hour deadline of a v3 mailbox still ahead, and an
    # admin-contact's, sent after the deadline passed.
    for cause, entry in (
        (
            "oauth_revoked",
            ReminderEntry(1, _FAILED_AT, deadline("v3", _FAILED_AT, parse_iso(_FAILED_AT) + timedelta(hours=48))),
        ),
        ("admin_disconnected", ReminderEntry(2, _FAILED_AT)),
    ):
        verdict = sample_verdict(cause)
        (outgoing,) = compose(verdict, settings, sample_link(verdict, settings), None, Occasion(reminder=entry))
        rendered[f"{cause}-reminder"] = outgoing.email
    # A customer SES refused, bounced or complained about: the operator alerts of SPEC §5.
    reached = sample_verdict("oauth_revoked")
    problems: list[tuple[AlertProblem, str]] = [
        (
            "rejected",
            "MessageRejected: Email address is not verified. The following identities failed: k***@shop.example",
        ),
        ("bounced", "Permanent bounce (General): smtp; 550 5.1.1 <k***@shop.example>: Recipient address rejected"),
        ("complained", "The recipient reported the email as spam (abuse)."),
    ]
    sent = DeliveredNotification(
        message_id="0100019a-sample",
        event_id=reached.event_id,
        account_id=reached.account_id,
        kind="reconnect",
        to=reached.email or "",
        status="sent",
        summary=reached.summary,
    )
    for problem, reason in problems:
        undelivered = replace(sent, status=problem, reason=reason)
        rendered[f"ses_{problem}-operator_alert"] = render_undeliverable(settings, problem, undelivered)
    return rendered


def render_scenarios(out_dir: Path = OUT_DIR, settings: Settings | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, email in previews(settings).items():
        for suffix, body in ((".html", email.html), (".txt", email.text)):
            path = out_dir / f"{name}{suffix}"
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
