"""What each email says, per cause, in plain words. Plain text only: the templates escape it for HTML."""

from __future__ import annotations

from dataclasses import dataclass, field

from account_doctor import providers
from account_doctor.models import ApiVersion, Cause


@dataclass(frozen=True)
class CustomerCopy:
    subject: str
    headline: str
    paragraphs: tuple[str, ...]
    hints: tuple[str, ...] = field(default_factory=tuple)
    button: str = "Reconnect your mailbox"


def reconnect_copy(cause: Cause, *, app: str, email: str, provider: str | None) -> CustomerCopy:
    """The reconnect email's words for a customer-facing cause."""
    mailbox = f"{email} ({providers.display_name(provider)})"
    family = providers.family(provider)
    name = (provider or "").lower()
    if cause == "password_changed":
        password_hints = ["Use your current password: the one saved in the app stopped working."]
        if name in ("icloud", "yahoo", "aol"):
            password_hints.append(
                f"{providers.display_name(provider)} needs an app-specific password for mail apps, not your account "
                "password: create a new app password in your account's security settings and use it to reconnect."
            )
        return CustomerCopy(
            subject=f"{app}: your mailbox needs its new password",
            headline="Your mailbox password changed",
            paragraphs=(
                f"{app} signs in to {mailbox} with a password, and that password no longer works. "
                "This usually happens after the password was changed or reset.",
                "Reconnect with your current password and syncing resumes where it stopped.",
            ),
            hints=tuple(password_hints),
        )
    if cause == "eas_sparse_inbox":
        return CustomerCopy(
            subject=f"{app}: reconnect your Exchange mailbox",
            headline="Your inbox is nearly empty, so Exchange stopped syncing",
            paragraphs=(
                f"{app} syncs {mailbox} through Exchange ActiveSync. Exchange reports a mailbox whose Inbox "
                "holds two messages or fewer as unusable, and the connection was marked broken.",
                "Keep a few messages in your Inbox (move some back from other folders if needed), then reconnect.",
            ),
            hints=("Rules or archiving that empty the Inbox automatically will cause this again.",),
        )
    if cause == "google_testing_mode":
        return CustomerCopy(
            subject=f"{app}: reconnect your Google account",
            headline="Your Google connection expired",
            paragraphs=(
                f"Google ended {app}'s access to {mailbox} seven days after you connected it. "
                "This is a limit on our side that we are removing; nothing is wrong with your account.",
                "Reconnect now to resume syncing. We are sorry for the interruption.",
            ),
        )
    if cause == "microsoft_token_expired":
        return CustomerCopy(
            subject=f"{app}: reconnect your Microsoft account",
            headline="Your Microsoft sign-in expired",
            paragraphs=(
                f"Microsoft ends a connected app's access after 90 days without a fresh sign-in, and "
                f"{app}'s access to {mailbox} has now expired.",
                "Sign in again to resume syncing; it takes a minute.",
            ),
        )
    if cause == "oauth_revoked":
        if family == "microsoft":
            return _microsoft_revoked(app, mailbox)
        hints: tuple[str, ...]
        if family == "google":
            hints = (
                "Changing your Google password signs out connected apps: sign in with the new one.",
                f"If you removed {app} under Google Account → Security → Third-party apps with account access, "
                "reconnecting grants it again.",
                "On a Google Workspace account, your administrator may also restrict third-party apps.",
            )
        else:
            hints = ("A password change or a security setting on your account usually causes this.",)
        return CustomerCopy(
            subject=f"{app}: reconnect your mailbox",
            headline="Your mailbox connection was revoked",
            paragraphs=(
                f"{providers.display_name(provider)} no longer accepts {app}'s access to {mailbox}. "
                "This happens after a password change, when access is removed, or when a security policy "
                "ends the session.",
                "Reconnect to resume syncing.",
            ),
            hints=hints,
        )
    if cause == "connector_outage":
        # Sent when the operator releases a connector incident's held emails: the connector works again,
        # and this mailbox is one that did not come back by itself.
        return CustomerCopy(
            subject=f"{app}: please reconnect your mailbox",
            headline="Please reconnect your mailbox",
            paragraphs=(
                f"A problem on our side interrupted {app}'s connection to {providers.display_name(provider)}, "
                f"and {mailbox} was disconnected. We have fixed it; nothing was wrong with your account.",
                "Reconnect once to resume syncing. We are sorry for the interruption.",
            ),
        )
    raise ValueError(f"{cause} has no reconnect email")


# A Microsoft OAuth grant holds a refresh token that a password change or reset alone leaves alive (Microsoft
# identity platform, "refresh token revocation"): the hints lead with what does end it (SPEC §5), and mention a
# password change only where an organisation makes it end sessions.
_MICROSOFT_ACCESS_ENDS = (
    "your sessions were revoked (by you, with “sign out everywhere”, or by an administrator), a Conditional "
    "Access policy of your organisation required a new sign-in, the app's consent was removed, the account was "
    "disabled or deleted, or the connection went unused for 90 days"
)


def _microsoft_revoked(app: str, mailbox: str) -> CustomerCopy:
    return CustomerCopy(
        subject=f"{app}: reconnect your mailbox",
        headline="Your mailbox connection was revoked",
        paragraphs=(
            f"Microsoft no longer accepts {app}'s access to {mailbox}. Microsoft ends a connected app's access "
            f"when {_MICROSOFT_ACCESS_ENDS}.",
            "Reconnect to resume syncing.",
        ),
        hints=(
            "If you or an administrator signed you out of all sessions, signing in again is all it takes.",
            f"If you removed {app} under My Account → Apps and permissions (myapps.microsoft.com), "
            "reconnecting grants it again.",
            "Your organisation's Conditional Access policies may require you to sign in again from time to time; "
            "if your account was disabled, your administrator must enable it before you reconnect.",
            "Where your organisation ends sessions on a password change, a new password signs connected apps out "
            "too: reconnect with the new one.",
        ),
    )


def admin_contact_copy(
    cause: Cause, *, app: str, email: str, domain: str, accounts: int | None, connected: int | None = None
) -> CustomerCopy:
    """The admin-contact email's words: what happened to the organisation, before the forwardable section.
    With the census's count of the domain it names the share: "3 of your organisation's 4 mailboxes"."""
    if accounts and connected:
        many = f"{accounts} of your organisation's {connected} mailboxes at {domain}"
    elif accounts:
        many = f"{accounts} mailboxes at {domain}"
    else:
        many = f"Several mailboxes at {domain}"
    if cause == "admin_disconnected":
        what = (
            f"{many} lost their connection to {app} within a few minutes of each other, yours ({email}) included. "
            "Failures this close together mean an administrator of your organisation disconnected the app "
            "or changed a policy that applies to everyone."
        )
    elif cause == "admin_session_policy":
        what = (
            f"{many} have lost their connection to {app} over the past days, yours ({email}) included. "
            "A pattern like this comes from a session policy of your organisation that makes connected apps "
            "sign in again after a set time."
        )
    else:
        raise ValueError(f"{cause} has no admin-contact email")
    return CustomerCopy(
        subject=f"{app}: your organisation's mail administrator needs to act",
        headline=f"Mailboxes at {domain} were disconnected",
        paragraphs=(
            what,
            "Reconnecting alone would not last: please forward the section below to your IT administrator. "
            "Once they have made the change, reconnect with the button at the end.",
        ),
    )


def outage_notice_copy(*, app: str, email: str, provider: str | None) -> CustomerCopy:
    """The outage notice (SPEC §4b): sent to a connector-incident member who was already asked to reconnect."""
    name = providers.display_name(provider)
    return CustomerCopy(
        subject=f"{app}: no need to reconnect, the problem is on our side",
        headline="The problem is on our side: no action needed",
        paragraphs=(
            f"We recently asked you to reconnect {email} ({name}). We have since found that {app}'s connection "
            f"to {name} is failing for many customers at once: the problem is on our side, not with your account.",
            "No action is needed from you, and reconnecting would not help until it is fixed. "
            "We will write to you again when it is fixed.",
        ),
        button="",
    )


@dataclass(frozen=True)
class AdminSteps:
    title: str
    steps: tuple[str, ...]


def admin_steps(provider: str | None, *, app: str, cause: Cause) -> AdminSteps:
    """The concrete console steps for the customer's IT administrator (SPEC §5)."""
    family = providers.family(provider)
    if family == "microsoft":
        return AdminSteps(
            title="For your Microsoft 365 / Entra ID administrator",
            steps=(
                f"Look for what ends “{app}”'s access: sessions revoked by the user or an administrator "
                "(Revoke sessions), a Conditional Access policy, the app's consent removed, the account disabled "
                "or deleted, or 90 days without use. A password change or reset alone leaves it alive, except "
                "where your organisation ends sessions on a password change.",
                f"Microsoft Entra admin center → Monitoring & health → Sign-in logs: filter on the application "
                f"“{app}” and the affected users. The failure reason shows whether a policy or an administrator "
                "ended the sessions; the Audit logs show sessions revoked and accounts disabled or deleted.",
                "Protection → Conditional Access: open the policies that apply to these users and this app and "
                "check the Session → Sign-in frequency control. A short frequency forces everyone to reconnect; "
                f"lengthen it or exclude “{app}”.",
                f"Identity → Applications → Enterprise applications → “{app}” → Permissions: make sure admin "
                "consent is granted for the organisation (grant it again if it was revoked), and under "
                "Properties that “Enabled for users to sign-in” is Yes.",
            ),
        )
    if family == "google":
        return AdminSteps(
            title="For your Google Workspace administrator",
            steps=(
                f"Google Admin console (admin.google.com) → Security → Access and data control → API controls → "
                f"Manage third-party app access: find “{app}” and set it to Trusted (or at least not Blocked).",
                "Security → Access and data control → Google Cloud session control: the reauthentication policy "
                "makes connected apps sign in again after the set frequency. Lengthen it, or tick "
                "“Exempt trusted apps” once the app is Trusted.",
                "If an administrator removed the app's access for all users on purpose, reply to this email so "
                "we can talk about it.",
            ),
        )
    return AdminSteps(
        title="For your mail administrator",
        steps=(
            f"Check whether access for third-party mail apps (OAuth apps, IMAP or Exchange ActiveSync) was "
            f"disabled or restricted for your users, and allow “{app}”.",
            "Check for a policy that limits how long connected apps stay signed in, or that reset passwords for "
            "everyone, and lengthen or exclude it for this app.",
            "The sign-in or audit logs of your mail system show which rule ended the connections "
            + ("at the same moment." if cause == "admin_disconnected" else "over the past days."),
        ),
    )


# A cause in a few plain words, for lists of accounts (an incident's members).
CAUSE_IN_WORDS: dict[str, str] = {
    "recovered": "recovered",
    "app_revoked": "removed by your application",
    "connector_outage": "connector outage",
    "admin_disconnected": "disconnected by an administrator",
    "admin_session_policy": "signed out by a session policy",
    "eas_sparse_inbox": "Exchange inbox nearly empty",
    "imap_sync_errors": "IMAP sync errors",
    "password_changed": "password changed",
    "google_testing_mode": "Google app in testing mode",
    "microsoft_token_expired": "Microsoft sign-in expired",
    "sync_stopped": "stopped syncing",
    "oauth_revoked": "access revoked",
    "unknown": "no known cause",
}


def cause_in_words(cause: str | None) -> str:
    if not cause:
        return "not diagnosed yet"
    return CAUSE_IN_WORDS.get(cause, cause)


def _mailboxes(count: int | None) -> str:
    return f"{count} mailboxes" if count and count > 1 else "Mailboxes"


def operator_title(
    cause: Cause,
    *,
    provider: str | None,
    api_version: ApiVersion,
    domain: str | None,
    accounts: int | None,
    connector: str | None,
) -> str:
    """An operator alert's title in plain words, never a cause code (SPEC §5).

    `accounts` is the incident's (or the domain's / connector's) failing-account count when known.
    """
    name = providers.display_name(provider)
    match cause:
        case "connector_outage":
            who = providers.connector_name(connector) if connector else name
            failing = f"{accounts} accounts failing" if accounts else "accounts failing"
            return f"{who} connector outage: {failing}"
        case "admin_disconnected":
            return f"{_mailboxes(accounts)} at {domain or 'one organisation'} disconnected by their administrator"
        case "admin_session_policy":
            return f"{_mailboxes(accounts)} at {domain or 'one organisation'} signed out by a session policy"
        case "google_testing_mode":
            expired = f": {accounts} accounts expired" if accounts and accounts > 1 else ""
            return f"Google OAuth app still in testing mode{expired}"
        case "app_revoked":
            return "Grant removed by your application" if api_version == "v3" else "Account stopped by your application"
        case "imap_sync_errors":
            return "IMAP account stopped syncing"
        case "sync_stopped":
            return f"{name} account stopped syncing"
        case "eas_sparse_inbox":
            return "Exchange account stopped: its inbox is nearly empty"
        case "password_changed":
            return f"{name} mailbox password changed"
        case "microsoft_token_expired":
            return "Microsoft sign-in expired after 90 days"
        case "oauth_revoked":
            return f"{name} access revoked"
        case "recovered":
            return "Account recovered by itself"
        case _:
            return f"No known cause for a failing {name} account"


def reminder_copy(
    original: CustomerCopy, *, app: str, email: str, stopped_on: str, deadline: str | None
) -> CustomerCopy:
    """A reminder (SPEC §5): the original advice again, with the day the mailbox stopped and, for a v3 mailbox
    within 72 hours of its failure, the deadline after which mail received meanwhile is not caught up."""
    opening = [f"Your mailbox {email} has not synced with {app} since {stopped_on}, and it is still disconnected."]
    if deadline:
        opening.append(
            f"Reconnect before {deadline} so nothing is missed: after that, mail received meanwhile may not be "
            "caught up."
        )
    return CustomerCopy(
        subject=f"{app}: reminder, your mailbox is still disconnected",
        headline="Your mailbox is still disconnected",
        paragraphs=(*opening, *original.paragraphs),
        hints=original.hints,
        button=original.button,
    )
