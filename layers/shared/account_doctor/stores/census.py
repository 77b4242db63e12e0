"""The grant census's aggregates (EventsTable, SPEC §3c): per domain, per connector, and recent Google consents.

Items, under keys no grant id can take (`#` is not in Nylas ids):
- `#census#domain#{domain}` / `census`: connected, broken, census_at — one per domain the census counted.
  A domain missing from a later census keeps its last count and census_at (it says how old it is).
- `#census#connector#{connector}` / `census`: the same per Nylas connector.
- `#census#consents` / `part#{n}`: the Google grants that consented within 7 days of the census, in chunks.
- `#census#latest` / `census`: the last published census (when it started and ended, its totals, how many
  consent chunks it wrote).
- `#census#run` / `run` (+ `part#{n}`): the lease of the run taking a census, and the checkpoint of one in
  progress (gzip-compressed JSON, chunked under DynamoDB's item size).
Publishing writes O(domains + connectors) items with BatchWriteItem; nothing is ever written per grant.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from account_doctor.census import Consent, Tally
from account_doctor.stores.dynamo import Table

_LATEST = {"account_id": "#census#latest", "sk": "census"}
_RUN = {"account_id": "#census#run", "sk": "run"}
_CONSENTS = "#census#consents"
# Under DynamoDB's 400 KB item limit with room for the key and attributes.
_CHUNK_BYTES = 300_000
_CONSENTS_PER_ITEM = 2_000


@dataclass(frozen=True)
class Counted:
    """One domain's or connector's mailboxes as the latest census that counted it found them."""

    connected: int
    broken: int
    census_at: str


def _domain_key(domain: str) -> dict[str, str]:
    return {"account_id": f"#census#domain#{domain}", "sk": "census"}


def _connector_key(name: str) -> dict[str, str]:
    return {"account_id": f"#census#connector#{name}", "sk": "census"}


class CensusAggregates:
    """Implements census.CensusStore, and answers the readers (rule 2b, the read API, /health)."""

    def __init__(self, table: Table) -> None:
        self._table = table

    # Readers -------------------------------------------------------------------------------------

    def domain(self, domain: str) -> Counted | None:
        return _counted(self._table.get(_domain_key(domain), consistent=False))

    def connectors(self, names: Iterable[str]) -> dict[str, Counted]:
        wanted = list(names)
        items = self._table.get_many([_connector_key(name) for name in wanted])
        found = {str(item["account_id"]).removeprefix("#census#connector#"): _counted(item) for item in items}
        return {name: counted for name, counted in found.items() if counted is not None}

    def latest(self) -> dict[str, Any] | None:
        return self._table.get(_LATEST, consistent=False)

    def recent_consents(self) -> list[Consent]:
        """The Google consents of the latest census (within 7 days of it)."""
        latest = self.latest()
        parts = int((latest or {}).get("consent_parts", 0))
        items = self._table.get_many([{"account_id": _CONSENTS, "sk": f"part#{n}"} for n in range(parts)])
        census_id = (latest or {}).get("census_id")
        return [
            Consent(str(c[0]), c[1], str(c[2]))
            for item in items
            if item.get("census_id") == census_id
            for c in item.get("consents", [])
        ]

    # The census run (census.CensusStore) ---------------------------------------------------------

    def latest_started_at(self) -> str | None:
        latest = self._table.get(_LATEST)
        return str(latest["census_id"]) if latest else None

    def claim(self, now: str, until: str) -> bool:
        return (
            self._table.update(
                _RUN,
                "SET lease_until = :until",
                values={":until": until, ":now": now},
                condition="attribute_not_exists(lease_until) OR lease_until < :now",
            )
            is not None
        )

    def release(self) -> None:
        self._table.update(_RUN, "REMOVE lease_until")

    def checkpoint(self) -> Tally | None:
        run = self._table.get(_RUN)
        parts = int((run or {}).get("checkpoint_parts", 0))
        if not run or not parts:
            return None
        chunks = self._table.get_many([{"account_id": _RUN["account_id"], "sk": f"part#{n}"} for n in range(parts)])
        mine = sorted((c for c in chunks if c.get("census_id") == run.get("census_id")), key=lambda c: int(c["n"]))
        if len(mine) != parts:
            return None  # an unfinished write of the checkpoint: start the census afresh
        blob = b"".join(bytes(c["data"]) for c in mine)
        return Tally.from_dict(json.loads(gzip.decompress(blob)))

    def save_checkpoint(self, tally: Tally) -> None:
        blob = gzip.compress(json.dumps(tally.to_dict(), separators=(",", ":")).encode())
        chunks = [blob[i : i + _CHUNK_BYTES] for i in range(0, len(blob), _CHUNK_BYTES)] or [b""]
        self._table.put_many(
            [
                {**_RUN, "sk": f"part#{n}", "n": n, "census_id": tally.census_id, "data": chunk}
                for n, chunk in enumerate(chunks)
            ]
        )
        # The run item names the chunks last: a reader never sees a checkpoint half written.
        self._table.update(
            _RUN,
            "SET checkpoint_parts = :parts, census_id = :census_id",
            values={":parts": len(chunks), ":census_id": tally.census_id},
        )

    def publish(self, tally: Tally, census_at: str) -> int:
        """Writes the census's aggregates and makes it the latest; returns the BatchWriteItem calls made."""
        counted = {"census_at": census_at, "census_id": tally.census_id}
        items: list[dict[str, Any]] = [
            {**_domain_key(domain), "connected": c, "broken": b, **counted} for domain, (c, b) in tally.domains.items()
        ]
        items += [
            {**_connector_key(name), "connected": c, "broken": b, **counted}
            for name, (c, b) in tally.connectors.items()
        ]
        consents = [[c.account_id, c.email, c.consented_at] for c in tally.consents.values()]
        chunks = _chunked(consents, _CONSENTS_PER_ITEM)
        items += [
            {"account_id": _CONSENTS, "sk": f"part#{n}", "census_id": tally.census_id, "consents": chunk}
            for n, chunk in enumerate(chunks)
        ]
        calls = self._table.put_many(items)
        self._table.put(
            {
                **_LATEST,
                **counted,
                "grants": tally.grants,
                "domains": len(tally.domains),
                "connectors": len(tally.connectors),
                "consent_parts": len(chunks),
                "pages": tally.pages,
            }
        )
        self._table.update(_RUN, "SET checkpoint_parts = :none", values={":none": 0})
        return calls


def _chunked(values: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(values[i : i + size]) for i in range(0, len(values), size)]


def _counted(item: dict[str, Any] | None) -> Counted | None:
    if not item or "connected" not in item:
        return None
    return Counted(int(item["connected"]), int(item.get("broken", 0)), str(item["census_at"]))
