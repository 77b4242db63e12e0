"""The read API's answers (SPEC §6): an account's status and verdicts, a domain's failing accounts and verdicts."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from account_doctor.accounts import is_free_mail
from account_doctor.history import History
from account_doctor.models import Policy, Verdict, iso

AccountStatus = Literal["broken", "healthy", "unknown"]

MAX_VERDICTS = 50
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,199}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


class InvalidRequest(ValueError):
    """The caller's input cannot name an account or a domain; the message says what is expected."""


@dataclass(frozen=True)
class AccountsApi:
    history: History
    policy: Policy
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def account(self, account_id: str) -> dict[str, Any] | None:
        """The account's status and verdicts (newest first); None when the history has never seen it."""
        if not _ACCOUNT_ID.match(account_id):
            raise InvalidRequest("account_id must be a Nylas grant or account id (letters, digits, - _ . : @ + =)")
        verdicts = self.history.account_verdicts(account_id, limit=MAX_VERDICTS)
        latest_event = self.history.latest_event(account_id)
        if not verdicts and latest_event is None:
            return None
        latest = verdicts[0] if verdicts else None
        return {
            "account_id": account_id,
            "status": self._status(account_id, latest, latest_event.kind if latest_event else None),
            "latest_verdict": latest.to_dict() if latest else None,
            "verdicts": [verdict.to_dict() for verdict in verdicts],
        }

    def _status(self, account_id: str, latest: Verdict | None, latest_kind: str | None) -> AccountStatus:
        if latest is None:
            # Events but no verdict yet: a failure still in its grace period is not known to be broken.
            return "healthy" if latest_kind == "recovery" else "unknown"
        if latest.cause == "recovered":
            return "healthy"
        if self.history.recovery_after(account_id, latest.occurred_at) is not None:
            return "healthy"
        return "broken"

    def domain(self, domain: str) -> dict[str, Any] | None:
        """Distinct failing accounts of the domain in the burst and long windows up to now, and its verdicts."""
        name = domain.strip().lower().rstrip(".")
        if not _DOMAIN.match(name):
            raise InvalidRequest("domain must be an email domain such as example.com")
        now = self.clock()
        burst = self.history.domain_failures(
            name, iso(now - timedelta(minutes=self.policy.domain_burst_minutes)), iso(now)
        )
        window = self.history.domain_failures(name, iso(now - timedelta(days=self.policy.domain_window_days)), iso(now))
        verdicts = self.history.domain_verdicts(name, limit=MAX_VERDICTS)
        if not window.accounts and not verdicts:
            return None
        return {
            "domain": name,
            "free_mail": is_free_mail(name),
            "cluster_threshold": self.policy.domain_cluster_threshold,
            "burst": {
                "minutes": self.policy.domain_burst_minutes,
                "failing_accounts": len(burst.accounts),
                "account_ids": sorted(burst.accounts),
            },
            "window": {
                "days": self.policy.domain_window_days,
                "failing_accounts": len(window.accounts),
                "account_ids": sorted(window.accounts),
            },
            "verdicts": [verdict.to_dict() for verdict in verdicts],
        }
