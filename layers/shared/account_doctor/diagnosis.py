"""The troubleshooting procedure (SPEC §4): a pure function from evidence to diagnosis, one rule per table row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta

from account_doctor import clocks, providers
from account_doctor.models import (
    STOPPED_TRIGGERS,
    AuthMethod,
    Cause,
    Confidence,
    Diagnosis,
    Evidence,
    Policy,
    Step,
    parse_iso,
)

# Google expires the refresh tokens of an OAuth app left in "testing" publishing status
# 7 days after consent; the margin absorbs when the grant's last authentication was recorded.
GOOGLE_TESTING_TOKEN_LIFETIME = timedelta(days=7)
GOOGLE_TESTING_MARGIN = timedelta(hours=12)
# Microsoft refresh tokens die after 90 days without being used to sign in again.
MICROSOFT_TOKEN_LIFETIME = timedelta(days=90)
# Inboxes this small make Exchange ActiveSync sync fail (Nylas's EAS troubleshooting).
EAS_SPARSE_INBOX_MAX = 2
# v2 billing states that mean the application itself stopped or downgraded the account.
APP_REVOKED_BILLING_STATES = frozenset({"cancelled", "deleted"})
# The "accounts stop frequently" symptom: this many failures of one account in 30 days.
RECURRING_FAILURES = 3
# How the answers of the password and OAuth sections name a sign-in method.
_SIGN_IN = {"password": "a password", "oauth": "OAuth"}
# Rule 1b: a connector outage spans organisations, and stands out from the connector's usual failure rate.
CONNECTOR_OUTAGE_MIN_DOMAINS = 3
CONNECTOR_OUTAGE_BASELINE_FACTOR = 5

# Confidence says how directly the evidence shows the cause, not how bad the failure is:
# - high: the cause is observed, not inferred — Nylas's live state (valid again, 404, billing
#   cancelled), a grant.deleted in history, a burst of one domain within minutes (nothing but an
#   administrator's action disconnects several mailboxes at once), or a token dying at exactly
#   the lifetime Google testing mode / Microsoft refresh tokens are known to have.
# - medium: the evidence fits the cause but another one fits too — a recovery seen only in history
#   while Nylas still reports the account broken, failures of a domain spread over days (a session
#   policy, or coincidence), the Exchange/IMAP quirks (confirmed only in the dashboard), and the
#   "otherwise" rules for password and OAuth accounts (password change, revocation, policy).
# - low: no rule recognised the account (rule 5).


@dataclass(frozen=True)
class Finding:
    """What a matching rule concludes."""

    cause: Cause
    confidence: Confidence
    summary: str
    actions: tuple[str, ...]


@dataclass(frozen=True)
class Answer:
    """A rule's answer in plain words, and its finding when the rule matches."""

    text: str
    finding: Finding | None = None


def no(text: str) -> Answer:
    return Answer(f"No: {text}")


def yes(text: str, finding: Finding) -> Answer:
    return Answer(f"Yes: {text}", finding)


@dataclass(frozen=True)
class Rule:
    step: str
    question: str  # may name the policy's thresholds, e.g. {domain_burst_minutes}
    check: Callable[[Evidence, Policy], Answer]
    # Rules of the password (3) and OAuth (4) sections ask only about accounts signing in that way, and
    # some only about one kind of provider: the table says so, and answers No for the others.
    signs_in_with: AuthMethod | None = None
    about: ProviderGroup | None = None

    def answer(self, e: Evidence, policy: Policy) -> Answer:
        if self.signs_in_with is not None and (otherwise := _signs_in_otherwise(e, self.signs_in_with)):
            return otherwise
        if self.about is not None and _provider(e) not in self.about.members:
            return no(f"the provider is {_provider_name(e)}, not {self.about.name}.")
        return self.check(e, policy)


@dataclass(frozen=True)
class ProviderGroup:
    """The providers a rule is about, as its answer names them."""

    name: str
    members: frozenset[str]


EXCHANGE = ProviderGroup("Exchange", providers.EXCHANGE_PROVIDERS)
IMAP = ProviderGroup("IMAP", frozenset({"imap"}))
# Every Google and Microsoft provider signs in with OAuth (providers.OAUTH_PROVIDERS).
GOOGLE_OAUTH = ProviderGroup("Google OAuth", providers.GOOGLE_PROVIDERS)
MICROSOFT_OAUTH = ProviderGroup("Microsoft OAuth", providers.MICROSOFT_PROVIDERS)


# ---------------------------------------------------------------------------------------------
# Rule 0


def recovered(e: Evidence, policy: Policy) -> Answer:
    if e.state.healthy:
        return yes(
            f"Nylas reports the {_record(e)} as {e.state.status} again.",
            Finding("recovered", "high", "The account recovered by itself after the failure; nothing to do.", ()),
        )
    if e.recovered_at:
        return yes(
            f"a recovery event for this account arrived at {e.recovered_at}, after the failure.",
            Finding(
                "recovered",
                "medium",
                f"The account was reconnected at {e.recovered_at}, after the failure; nothing to do.",
                (),
            ),
        )
    return no(f"Nylas reports the {_record(e)} as {_status(e)} and no recovery event arrived after the failure.")


# ---------------------------------------------------------------------------------------------
# Rule 1


def app_revoked(e: Evidence, policy: Policy) -> Answer:
    api_logs = "Operator: check the Nylas dashboard API logs for this account to find which part of the application "
    if e.event.api_version == "v2" and e.state.billing_state in APP_REVOKED_BILLING_STATES:
        return yes(
            f"the account's billing state is {e.state.billing_state}: the application stopped or downgraded it.",
            Finding(
                "app_revoked",
                "high",
                f"The application itself stopped this account (billing state {e.state.billing_state}).",
                (
                    api_logs + "stopped or downgraded it (see 'Account manually stopped').",
                    "Operator: if that was not intended, upgrade the account again and ask the customer to reconnect.",
                ),
            ),
        )
    if e.removed_by_app:
        return yes("a grant.deleted event for this grant is in its history.", _app_removed_grant())
    if not e.state.exists:
        return yes(
            f"the {_record(e)} no longer exists in Nylas (404), and no grant.deleted event is in its history.",
            Finding(
                "app_revoked",
                "medium",
                "The grant no longer exists in Nylas (404): the application most likely deleted it, or NylasApiUri "
                "points at the wrong region (US vs EU) and Nylas cannot find it there.",
                (
                    "Operator: check that the NylasApiUri parameter names the region of your Nylas application "
                    "(https://api.us.nylas.com or https://api.eu.nylas.com).",
                    *_app_removed_grant().actions,
                ),
            ),
        )
    if e.event.api_version == "v2":
        return no(f"the account's billing state is {e.state.billing_state or 'not reported'}.")
    return no("the grant still exists and no grant.deleted event is in its history.")


def _app_removed_grant() -> Finding:
    return Finding(
        "app_revoked",
        "high",
        "The application itself deleted this grant.",
        (
            "Operator: check the Nylas dashboard API logs for this grant to find which part of the application "
            "deleted it.",
            "Operator: if that was not intended, ask the customer to reconnect.",
        ),
    )


# ---------------------------------------------------------------------------------------------
# Rule 1b: the app's own connector


def connector_outage(e: Evidence, policy: Policy) -> Answer:
    if not e.connector:
        return no("the account's provider has no known Nylas connector.")
    name = providers.connector_name(e.connector)
    within = f"within {_plural(policy.domain_burst_minutes, 'minute')}"
    failing = e.connector_burst_accounts
    if failing < policy.connector_outage_threshold:
        return no(
            f"{_plural(failing, 'account')} of the {name} connector failed {within} "
            f"({policy.connector_outage_threshold} needed)."
        )
    if e.connector_burst_domains < CONNECTOR_OUTAGE_MIN_DOMAINS:
        return no(
            f"the {_plural(failing, 'failing account')} of the {name} connector come from "
            f"{_plural(e.connector_burst_domains, 'email domain')} ({CONNECTOR_OUTAGE_MIN_DOMAINS} needed): "
            "one organisation, not the connector."
        )
    usual = e.connector_usual_failures
    if failing < CONNECTOR_OUTAGE_BASELINE_FACTOR * usual:
        return no(
            f"{_plural(failing, 'account')} of the {name} connector failed {within}, within "
            f"{CONNECTOR_OUTAGE_BASELINE_FACTOR}× its usual {usual:.1f} failures in such a window."
        )
    return yes(
        f"{_plural(failing, 'account')} of the {name} connector from {_plural(e.connector_burst_domains, 'domain')} "
        f"failed {within}, {_against_usual(failing, usual)}.",
        Finding(
            "connector_outage",
            "high",
            f"The {name} connector is failing for everyone: {_plural(failing, 'account')} from "
            f"{_plural(e.connector_burst_domains, 'email domain')} failed {within}. Reconnecting cannot work until "
            "the connector is fixed; customer emails are held.",
            (
                *(f"Operator: {cause}" for cause in _outage_causes(e, policy)),
                "Operator: once the connector works again, run `account-doctor incident release INCIDENT_ID` to "
                "send the held reconnect emails to the accounts still broken.",
            ),
        ),
    )


def _outage_causes(e: Evidence, policy: Policy) -> tuple[str, ...]:
    return clocks.outage_causes(e.connector or "", policy.client_secret_expires_on, parse_iso(e.event.occurred_at))


def _against_usual(failing: int, usual: float) -> str:
    if usual == 0:
        return "where it usually has none"
    return f"{failing / usual:.0f}× its usual {usual:.1f} in such a window"


# ---------------------------------------------------------------------------------------------
# Rules 2a and 2b: the domain cluster


def admin_disconnected(e: Evidence, policy: Policy) -> Answer:
    within = f"within {_plural(policy.domain_burst_minutes, 'minute')}"
    cluster = _domain_cluster(e, policy, e.domain_burst_accounts, within)
    if isinstance(cluster, Answer):
        return cluster
    return yes(
        f"{_plural(e.domain_burst_accounts, 'account')} at {cluster} failed {within}.",
        Finding(
            "admin_disconnected",
            "high",
            f"{_plural(e.domain_burst_accounts, 'account')} at {cluster} failed {within}: "
            "their administrator disconnected the app.",
            (
                "Customer: forward the admin-contact email to your mail administrator.",
                f"Operator: raise it with {cluster}'s mail administrator: mailboxes failing at the same time "
                "means they took action to disconnect the app.",
                _admin_check(e, "disconnected"),
                "Customer: reconnect each account once the administrator allows the app again.",
            ),
        ),
    )


def admin_session_policy(e: Evidence, policy: Policy) -> Answer:
    within = f"within {_plural(policy.domain_window_days, 'day')}"
    cluster = _domain_cluster(e, policy, e.domain_window_accounts, within)
    if isinstance(cluster, Answer):
        return cluster
    share = domain_share(e.domain_window_accounts, e.domain_connected, policy.domain_share_percent)
    failed = f"{_plural(e.domain_window_accounts, 'account')} at {cluster} failed {within}"
    if not share.enough:
        return no(f"{failed}, but {share.words}: too few of its mailboxes for a policy of the organisation.")
    return yes(
        f"{failed}: {share.words}." if e.domain_connected is not None else f"{failed}.",
        Finding(
            "admin_session_policy",
            "medium",
            f"{_plural(e.domain_window_accounts, 'account')} at {cluster} failed {within}: "
            "their administrator's session policy keeps signing the app out.",
            (
                "Customer: forward the admin-contact email to your mail administrator.",
                f"Operator: ask {cluster}'s mail administrator to extend the session timeout for the app.",
                _admin_check(e, "session"),
                "Customer: reconnect each account once the policy is changed.",
            ),
        ),
    )


@dataclass(frozen=True)
class Share:
    """Rule 2b's share condition: whether the failing accounts are enough of the domain's mailboxes, in words."""

    enough: bool
    words: str = ""


def domain_share(failing: int, connected: int | None, percent: int) -> Share:
    """Before the census has counted the domain the condition does not apply (rule 2b as the count alone);
    once it has, the failing accounts must be at least `percent` % of its connected mailboxes."""
    if connected is None:
        return Share(True)
    share = 100.0 * failing / connected if connected else 100.0
    shown = f"{share:.1f}".rstrip("0").rstrip(".")
    verdict = "under" if share < percent else "at least"
    return Share(share >= percent, f"{failing} of {connected} connected mailboxes: {shown} %, {verdict} {percent} %")


def _domain_cluster(e: Evidence, policy: Policy, failing: int, within: str) -> str | Answer:
    """The organisation domain when it has enough failing accounts, else the answer saying why not."""
    if not e.domain:
        return no("the account has no email domain to compare.")
    if e.free_mail:
        return no(f"{e.domain} is a free-mail domain: its users share no administrator.")
    if failing < policy.domain_cluster_threshold:
        return no(
            f"{_plural(failing, 'account')} at {e.domain} failed {within} ({policy.domain_cluster_threshold} needed)."
        )
    return e.domain


def _admin_check(e: Evidence, kind: str) -> str:
    return providers.admin_check(e.provider, disconnected=kind == "disconnected")


# ---------------------------------------------------------------------------------------------
# Rules 3a, 3b, 3c: password (basic) authentication


def eas_sparse_inbox(e: Evidence, policy: Policy) -> Answer:
    count = e.state.inbox_count
    if count is None:
        return no("Nylas could not tell how many messages the inbox holds.")
    if count > EAS_SPARSE_INBOX_MAX:
        return no(f"the inbox holds {_plural(count, 'message')}.")
    return yes(
        f"the Exchange inbox holds {_plural(count, 'message')}, {EAS_SPARSE_INBOX_MAX} or fewer.",
        Finding(
            "eas_sparse_inbox",
            "medium",
            f"The Exchange inbox holds only {_plural(count, 'message')}, too few for Exchange sync to work.",
            (
                f"Customer: make sure the Exchange (EAS) inbox has more than {EAS_SPARSE_INBOX_MAX} messages, "
                "then reconnect.",
                "Operator: if it stops again with a fuller inbox, check its sync logs in the Nylas dashboard.",
            ),
        ),
    )


def imap_sync_errors(e: Evidence, policy: Policy) -> Answer:
    if e.event.trigger not in STOPPED_TRIGGERS:
        return no(f"the trigger is {e.event.trigger}: the credentials were rejected, not the sync.")
    return yes(
        f"an IMAP account reported {e.event.trigger}: its credentials may still be good.",
        Finding(
            "imap_sync_errors",
            "medium",
            "The IMAP account stopped syncing with its password still accepted, most likely on mailbox UID errors.",
            (
                "Operator: check the account's sync logs in the Nylas dashboard for IMAP UID errors.",
                "Operator: if the mail server reports changing or duplicate UIDs, ask the customer's mail provider "
                "to fix them, then have the customer reconnect.",
            ),
        ),
    )


def password_changed(e: Evidence, policy: Policy) -> Answer:
    return yes(
        f"the {_provider_name(e)} account signs in with a password.",
        Finding(
            "password_changed",
            "medium",
            f"The {_provider_name(e)} account's password was most likely changed: it must be reconnected.",
            (
                "Customer: reconnect the account with the new password (reconnect email); "
                "every password change needs a reconnect.",
                "Customer: if the provider uses app passwords (Yahoo, iCloud, AOL), create a new app password "
                "to reconnect with.",
            ),
        ),
    )


# ---------------------------------------------------------------------------------------------
# Rules 4a, 4b, 4c, 4d: OAuth


def google_testing_mode(e: Evidence, policy: Policy) -> Answer:
    if not e.consents:
        return no("no consent time is known (grant creation, re-authentication or grant update).")
    failed_at = parse_iso(e.event.occurred_at)
    ages = sorted((failed_at - parse_iso(consent), consent) for consent in e.consents)
    matching = [
        (age, consent) for age, consent in ages if abs(age - GOOGLE_TESTING_TOKEN_LIFETIME) <= GOOGLE_TESTING_MARGIN
    ]
    if not matching:
        seen = ", ".join(_span(age) if age >= timedelta(0) else "after the failure" for age, _ in ages)
        return no(f"it failed {seen} after its consents, not 7 days (± 12 hours) after any.")
    age, consent = matching[0]
    return yes(
        f"it failed {_span(age)} after a consent ({consent}), as tokens of a Google app in testing mode do.",
        Finding(
            "google_testing_mode",
            "high",
            f"The Google token died {_span(age)} after consent: the app's Google OAuth consent screen is "
            "still in testing mode, whose tokens last 7 days.",
            (
                "Operator: publish the Google OAuth app out of testing mode (Google Cloud console > OAuth consent "
                "screen > Publish app), so that tokens stop expiring after 7 days.",
                "Customer: reconnect the account (reconnect email).",
            ),
        ),
    )


def microsoft_token_expired(e: Evidence, policy: Policy) -> Answer:
    if not e.last_refreshed_at:
        return no("no token refresh or re-authentication time is known (the grant's creation alone says nothing).")
    age = parse_iso(e.event.occurred_at) - parse_iso(e.last_refreshed_at)
    if age < MICROSOFT_TOKEN_LIFETIME:
        return no(_failed_after(e, age) + ", less than 90 days.")
    return yes(
        _failed_after(e, age) + ": Microsoft refresh tokens expire after 90 days.",
        Finding(
            "microsoft_token_expired",
            "high",
            f"The Microsoft token expired: the account had not signed in again for {_span(age)} (limit 90 days).",
            (
                "Customer: reconnect the account (reconnect email).",
                "Microsoft admin: if it recurs sooner, check the Entra ID sign-in logs and the Conditional Access "
                "sign-in frequency for the app.",
            ),
        ),
    )


def sync_stopped(e: Evidence, policy: Policy) -> Answer:
    if e.event.trigger not in STOPPED_TRIGGERS:
        return no(f"the trigger is {e.event.trigger}: the token was rejected, not the sync.")
    return yes(
        f"the OAuth account reported {e.event.trigger}: its token may still be good.",
        Finding(
            "sync_stopped",
            "medium",
            f"The {_provider_name(e)} account stopped syncing although its sign-in may still be valid.",
            (
                "Operator: check the account's sync logs in the Nylas dashboard for the error that stopped it.",
                "Operator: if the error is not on the provider's side, ask the customer to reconnect.",
            ),
        ),
    )


def oauth_revoked(e: Evidence, policy: Policy) -> Answer:
    if _provider(e) in providers.MICROSOFT_PROVIDERS:
        # A Microsoft refresh token outlives a password change or reset alone (SPEC §5).
        ended = (
            "its sessions were revoked (by the user or an administrator), a Conditional Access policy, removed "
            "consent or a disabled or deleted account signed it out; a password change only where the "
            "organisation ends sessions on one."
        )
    else:
        ended = "a password change, a revoked app or a security policy signed it out."
    return yes(
        f"the {_provider_name(e)} account signs in with OAuth and its token was rejected.",
        Finding(
            "oauth_revoked",
            "medium",
            f"The {_provider_name(e)} account's access ended: {ended}",
            ("Customer: reconnect the account (reconnect email).", _oauth_hint(e)),
        ),
    )


def _oauth_hint(e: Evidence) -> str:
    if _provider(e) in providers.MICROSOFT_PROVIDERS:
        return (
            "Customer: if it happens again, ask your Microsoft admin to check the Entra ID sign-in logs "
            "and Conditional Access policies for the app."
        )
    if _provider(e) in providers.GOOGLE_PROVIDERS:
        return (
            "Customer: if it happens again, check that the app still has access under Google Account > Security > "
            "Third-party apps, and ask your Workspace admin whether the app is allowed."
        )
    return "Customer: if it happens again, ask your mail administrator whether a security policy signs the app out."


def _signs_in_otherwise(e: Evidence, method: AuthMethod) -> Answer | None:
    """No, saying why, when a rule of the password or OAuth section meets an account that does not sign in
    with that method."""
    if e.auth_method == method:
        return None
    if e.auth_method in _SIGN_IN:
        return no(f"the account signs in with {_SIGN_IN[e.auth_method]}, not {_SIGN_IN[method]}.")
    return no(_unrecognised(e) or f"{_provider_name(e)} is not a provider known to sign in with {_SIGN_IN[method]}.")


def _unrecognised(e: Evidence) -> str | None:
    return None if e.provider else "Nylas did not say which provider the account uses."


# ---------------------------------------------------------------------------------------------
# Rule 5


def unknown(e: Evidence, policy: Policy) -> Answer:
    return yes(
        f"no rule above applies to the {_provider_name(e)} account.",
        Finding(
            "unknown",
            "low",
            f"No known cause fits this {_provider_name(e)} account's failure ({e.event.trigger}).",
            (
                "Operator: look at the account in the Nylas dashboard (sync logs and API logs) to find the cause.",
                "Customer: reconnect the account if it stays broken.",
            ),
        ),
    )


# ---------------------------------------------------------------------------------------------
# The table, in SPEC §4's order: the first rule that answers with a finding wins.

RULES: tuple[Rule, ...] = (
    Rule("0", "Did the account recover by itself after the grace period?", recovered),
    Rule("1", "Did the application itself revoke or remove the account?", app_revoked),
    Rule(
        "1b",
        "Did {connector_outage_threshold} or more accounts of the same connector, from 3 or more email domains, "
        "fail within {domain_burst_minutes} minutes of this one, 5 times its usual rate or more?",
        connector_outage,
    ),
    Rule(
        "2a",
        "Did {domain_cluster_threshold} or more accounts of the same organisation domain fail "
        "within {domain_burst_minutes} minutes of this one?",
        admin_disconnected,
    ),
    Rule(
        "2b",
        "Did {domain_cluster_threshold} or more accounts of the same organisation domain fail "
        "within {domain_window_days} days, and (once the census has counted the domain) at least "
        "{domain_share_percent} % of its connected mailboxes?",
        admin_session_policy,
    ),
    Rule(
        "3a",
        "Is it an Exchange account on a password whose inbox holds 2 messages or fewer?",
        eas_sparse_inbox,
        signs_in_with="password",
        about=EXCHANGE,
    ),
    Rule(
        "3b",
        "Is it an IMAP account on a password that stopped syncing, not rejected?",
        imap_sync_errors,
        signs_in_with="password",
        about=IMAP,
    ),
    Rule("3c", "Does the account sign in with a password?", password_changed, signs_in_with="password"),
    Rule(
        "4a",
        "Is it a Google OAuth account whose token died 7 days (± 12 hours) after sign-in?",
        google_testing_mode,
        about=GOOGLE_OAUTH,
    ),
    Rule(
        "4b",
        "Is it a Microsoft OAuth account not signed in again for 90 days or more?",
        microsoft_token_expired,
        about=MICROSOFT_OAUTH,
    ),
    Rule(
        "4c",
        "Is it an OAuth account that stopped syncing rather than losing its token?",
        sync_stopped,
        signs_in_with="oauth",
    ),
    Rule("4d", "Does the account sign in with OAuth?", oauth_revoked, signs_in_with="oauth"),
    Rule("5", "Does nothing above apply?", unknown),
)


def diagnose(evidence: Evidence, policy: Policy) -> Diagnosis:
    """Walk the rules in order and stop at the first that matches, recording every question asked."""
    thresholds = asdict(policy)
    steps: list[Step] = []
    for rule in RULES:
        answer = rule.answer(evidence, policy)
        steps.append(Step(step=rule.step, question=rule.question.format_map(thresholds), answer=answer.text))
        if answer.finding is not None:
            return _diagnosis(evidence, answer.finding, steps)
    raise AssertionError("rule 5 matches every evidence")


def _diagnosis(e: Evidence, finding: Finding, steps: list[Step]) -> Diagnosis:
    failures = e.failures_last_30_days
    recurring = failures >= RECURRING_FAILURES
    summary, actions = finding.summary, list(finding.actions)
    if recurring:
        summary += f" This account stops frequently: {failures} failures in the last 30 days."
        actions.append(
            f"Operator: this account is recurring ({failures} failures in 30 days): compare its earlier "
            "verdicts to find what keeps stopping it, rather than only reconnecting it again."
        )
    return Diagnosis(
        cause=finding.cause,
        confidence=finding.confidence,
        summary=summary,
        actions=actions,
        steps=steps,
        recurring=recurring,
    )


# ---------------------------------------------------------------------------------------------
# Plain words


def _provider(e: Evidence) -> str:
    return (e.provider or "").lower()


def _provider_name(e: Evidence) -> str:
    return providers.display_name(e.provider)


def _record(e: Evidence) -> str:
    return "grant" if e.event.api_version == "v3" else "account"


def _status(e: Evidence) -> str:
    if not e.state.exists:
        return "not found"
    return e.state.status or "without a status"


def _failed_after(e: Evidence, age: timedelta) -> str:
    if age < timedelta(0):
        return f"the last re-authentication ({e.last_refreshed_at}) is after the failure"
    return f"it failed {_span(age)} after its last token refresh or re-authentication ({e.last_refreshed_at})"


def _span(age: timedelta) -> str:
    hours, rest = divmod(age.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(age.days, "day"), (hours, "hour"), (minutes, "minute"), (seconds, "second")]
    words = [_plural(n, unit) for n, unit in parts if n]
    return " ".join(words) or "0 seconds"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
