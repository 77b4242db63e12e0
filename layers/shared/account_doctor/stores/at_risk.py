"""The grants at risk of Google's testing mode (IncidentsTable, SPEC §3d), one item per testing_mode incident.

`atrisk#{incident_id}` / `atrisk` holds a map, account id -> {email, expires_at}: every Google grant that
consented within 7 days and has not failed, while the incident is open. A Google OAuth app in testing mode
takes at most 100 test users, so the map stays small; each change is one atomic UpdateItem of one entry
(`SET grants.#id` / `REMOVE grants.#id`), so concurrent consents and failures never overwrite each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from account_doctor.models import AtRisk
from account_doctor.stores.dynamo import InvalidCursor, Table, decode_token, encode_token


def _key(incident_id: str) -> dict[str, str]:
    return {"pk": f"atrisk#{incident_id}", "sk": "atrisk"}


class AtRiskStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def seed(self, incident_id: str, grants: Iterable[AtRisk]) -> bool:
        """The incident's first list (when it opens); False when it has one already (a retried opener)."""
        entries = {g.account_id: {"email": g.email, "expires_at": g.expires_at} for g in grants}
        return self._table.put_once({**_key(incident_id), "grants": entries}, "pk")

    def add(self, incident_id: str, grant: AtRisk) -> bool:
        """A new consent while the incident is open; False when the incident has no list (nothing to add to)."""
        updated = self._table.update(
            _key(incident_id),
            "SET grants.#account = :grant",
            names={"#account": grant.account_id},
            values={":grant": {"email": grant.email, "expires_at": grant.expires_at}},
            condition="attribute_exists(pk)",
        )
        return updated is not None

    def remove(self, incident_id: str, account_id: str) -> None:
        """The grant failed: it is no longer at risk, it is broken."""
        self._table.update(
            _key(incident_id),
            "REMOVE grants.#account",
            names={"#account": account_id},
            condition="attribute_exists(pk)",
        )

    def at_risk(self, incident_id: str, now: str) -> list[AtRisk]:
        """Every grant still at risk, soonest expiry first (those already past their expiry have failed or will)."""
        item = self._table.get(_key(incident_id), consistent=False) or {}
        grants: Mapping[str, Any] = item.get("grants") or {}
        found = [
            AtRisk(account_id, entry.get("email"), str(entry["expires_at"]))
            for account_id, entry in grants.items()
            if str(entry.get("expires_at", "")) > now
        ]
        return sorted(found, key=lambda g: (g.expires_at, g.account_id))

    def page(self, incident_id: str, now: str, limit: int, cursor: str | None) -> tuple[list[AtRisk], str | None]:
        """One page of `at_risk`, paged like an incident's members (`cursor` is the previous page's `next`)."""
        start = 0
        if cursor:
            decoded = decode_token(cursor)
            if not isinstance(decoded, dict) or not isinstance(decoded.get("at_risk"), int):
                raise InvalidCursor("next does not belong to this list; pass the `next` value of its previous page")
            start = decoded["at_risk"]
        grants = self.at_risk(incident_id, now)
        end = start + limit
        return grants[start:end], (encode_token({"at_risk": end}) if end < len(grants) else None)
