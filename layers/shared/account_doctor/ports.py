"""The small interfaces between the diagnosis service and its adapters."""

from __future__ import annotations

from typing import Protocol

from account_doctor.models import Notification, Verdict


class Notifier(Protocol):
    def notify(self, verdict: Verdict, *, fresh: bool = False) -> list[Notification]:
        """Sends the verdict's emails (in dry-run: renders and records them) at most once each.

        Safe to call again for the same verdict after a failure: what an earlier attempt
        already sent is returned, not sent again. Returns every notification of the verdict.
        `fresh` says the caller has just stored this verdict, so no attempt can have sent any of
        its emails yet: the notifier may skip looking them up (it still never sends one twice).
        """
        ...
