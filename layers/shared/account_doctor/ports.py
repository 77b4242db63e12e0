"""The small interfaces between the diagnosis and its adapters; in-memory fakes in tests implement them too."""

from __future__ import annotations

from typing import Protocol

from account_doctor.models import AccountEvent, AccountState, Notification, Verdict
from account_doctor.notifications.audience import Occasion
from account_doctor.notifications.render import IncidentBrief


class NylasApi(Protocol):
    def account_state(self, event: AccountEvent) -> AccountState:
        """What Nylas says about the event's grant (v3) or account (v2) now."""
        ...


class Notifier(Protocol):
    def notify(
        self, verdict: Verdict, occasion: Occasion | None = None, *, incident: IncidentBrief | None = None
    ) -> list[Notification]:
        """Sends the verdict's emails (in dry-run: renders and records them) at most once each.

        Safe to call again for the same verdict after a failure: what an earlier attempt already sent is
        returned, not sent again. Returns every notification of the verdict.
        """
        ...
