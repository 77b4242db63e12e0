"""Incidents (IncidentsTable, SPEC §4b): failures that share one cause beyond a single account.

Why it holds when 1,000 member failures a second arrive for one incident:
- `open#{kind}#{key}` / `open` says which incident of a key is open. It is written when an incident opens
  (a conditional put, so two first members racing open exactly one) and read by every member, never
  rewritten per member.
- The distinct-member count lives on SHARDS counter items `count#{kind}#{key}#{n}` / `count`, each under its
  own partition key: a member's join is one transaction (its member item, put only if absent, plus an atomic
  ADD on one shard), so a redelivered or concurrent member is counted once, and the writes of a burst spread
  over SHARDS partitions instead of one hot key. Shards also keep the latest failure time and up to
  DOMAIN_SLOTS member email domains, one attribute per slot (`d{slot}`, a hash of the domain, as the connector
  counters do): a connector incident across 100,000 domains keeps each shard under a few KB (a string set of
  every domain passed DynamoDB's 400 KB). Past a few dozen domains the count is a floor, not exact; rule 1b's
  "from 3 email domains" is decided by what the opener counted (`domains_at_open`), never by the slots.
- Member items `member#{incident_id}#{account_id}` / `member` each have their own partition key; the
  ByIncident index lists them under SHARDS keys (`{incident_id}#{n}`), projecting only the member fields.
- The incident itself (`incident#{id}` / `incident`) changes only when it opens, is released, resolved or
  closed; ByStatus lists incidents of a status, newest first.
A diagnosis therefore reads the pointers and the shards of its keys in one BatchGetItem, whatever the size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from account_doctor.models import IncidentKey, IncidentKind
from account_doctor.stores.dynamo import ConditionsFailed, Page, Table, shard_of, shard_position

IncidentStatus = Literal["open", "resolved", "closed"]
SHARDS = 4
_MEMBER_SHARDS = 8
DOMAIN_SLOTS = 64


# Fields the diagnosis and the release need but the read API does not show (SPEC §6 lists what it shows).
_INTERNAL = {"internal": True}


def _shown(record: Incident | Member) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record) if not f.metadata.get("internal")}


@dataclass(frozen=True)
class Incident:
    """The aggregate, as the read API shows it (SPEC §6), counts included."""

    incident_id: str
    kind: IncidentKind
    key: str
    cause: str
    status: IncidentStatus
    opened_at: str
    last_failure_at: str
    accounts: int
    domains: int
    held_emails: int = 0
    resolved_at: str | None = None
    released_at: str | None = None
    opened_by_event: str | None = field(default=None, metadata=_INTERNAL)
    domain_names: tuple[str, ...] = field(default=(), compare=False, metadata=_INTERNAL)
    resolution_announced: bool = field(default=False, compare=False, metadata=_INTERNAL)

    def to_dict(self) -> dict[str, Any]:
        return _shown(self)


@dataclass(frozen=True)
class Member:
    account_id: str
    email: str | None
    joined_at: str
    latest_cause: str | None
    recovered: bool
    held: bool = field(metadata=_INTERNAL)

    def to_dict(self) -> dict[str, Any]:
        return _shown(self)


@dataclass(frozen=True)
class Live:
    """An open incident of a key as a diagnosis sees it: its id, cause, counts and latest failure."""

    incident_id: str
    cause: str
    opened_at: str
    accounts: int
    domains: frozenset[str]
    last_failure_at: str
    opened_by_event: str | None = None
    recovered: int = 0
    domains_at_open: int = 0


def incident_id_for(key: IncidentKey, opened_at: str) -> str:
    """Readable and deterministic: the same opening (a retried first member) names the same incident."""
    digest = hashlib.sha256(f"{key.kind}\n{key.key}\n{opened_at}".encode()).hexdigest()[:10]
    compact = opened_at.replace("-", "").replace(":", "")[:13]  # 20261122T0812
    return f"{key.kind}-{key.key}-{compact}-{digest}".replace("@", "_")


class IncidentStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    # What a diagnosis reads: one call --------------------------------------------------------------

    def is_open(self, key: IncidentKey) -> bool:
        """Whether the key has an open incident: its pointer only (one item, none when closed)."""
        return self._table.get(key.pointer, consistent=False) is not None

    def live(self, keys: Iterable[IncidentKey]) -> dict[IncidentKey, Live]:
        """The open incident of each key, with its counts, from one BatchGetItem of pointers and shards."""
        wanted = list(keys)
        if not wanted:
            return {}
        requests = [k.pointer for k in wanted] + [k.shard(n) for k in wanted for n in range(SHARDS)]
        items = {(item["pk"], item["sk"]): item for item in self._table.get_many(requests)}
        found: dict[IncidentKey, Live] = {}
        for key in wanted:
            pointer = items.get((key.pointer["pk"], "open"))
            if not pointer:
                continue
            incident_id = str(pointer["incident_id"])
            shards = [items.get((key.shard(n)["pk"], "count")) for n in range(SHARDS)]
            mine = [s for s in shards if s and s.get("incident_id") == incident_id]
            found[key] = Live(
                incident_id=incident_id,
                cause=str(pointer["cause"]),
                opened_at=str(pointer["opened_at"]),
                accounts=max(sum(int(s.get("accounts", 0)) for s in mine), int(pointer.get("accounts_at_open", 0))),
                domains=frozenset(d for s in mine for d in _domains(s)),
                domains_at_open=int(pointer.get("domains_at_open", 0)),
                last_failure_at=max([str(pointer["opened_at"]), *(str(s.get("last_failure_at", "")) for s in mine)]),
                opened_by_event=pointer.get("opened_by_event"),
                recovered=sum(int(s.get("recovered", 0)) for s in mine),
            )
        return found

    def none_opened(self, seen: dict[IncidentKey, str | None]) -> list[dict[str, Any]]:
        """ConditionCheck items (for another store's transaction) that no incident opened for these keys since
        they were read: each key's pointer is still absent, or still names the incident seen then."""
        checks = []
        for key, incident_id in seen.items():
            if incident_id is None:
                checks.append(self._table.check(key.pointer, "attribute_not_exists(pk)"))
            else:
                checks.append(
                    self._table.check(
                        key.pointer, "attribute_not_exists(pk) OR incident_id = :seen", values={":seen": incident_id}
                    )
                )
        return checks

    # Opening and joining ------------------------------------------------------------------------

    def open(
        self,
        key: IncidentKey,
        cause: str,
        opened_at: str,
        event_id: str,
        replacing: str | None,
        *,
        accounts: int = 1,
        domains: int = 1,
    ) -> tuple[str, bool]:
        """Opens an incident of the key unless a racer did: the open incident's id, and whether this event opened it.

        `replacing` is the id of the key's previous incident (gone quiet), whose pointer this one replaces.
        """
        incident_id = incident_id_for(key, opened_at)
        condition = "attribute_not_exists(pk)" if replacing is None else "incident_id = :previous"
        pointer = {
            **key.pointer,
            "incident_id": incident_id,
            "cause": cause,
            "opened_at": opened_at,
            "opened_by_event": event_id,
            # What the opener counted: members joining concurrently (before the earlier failures are counted
            # in) still see an incident of at least this size.
            "accounts_at_open": accounts,
            "domains_at_open": domains,
        }
        if not self._table.put(pointer, condition=condition, values={":previous": replacing} if replacing else None):
            current = self._table.get(key.pointer)
            if current is None:  # the racer's pointer was removed again (resolved): try once more
                return self.open(key, cause, opened_at, event_id, None, accounts=accounts, domains=domains)
            return str(current["incident_id"]), current.get("opened_by_event") == event_id
        self._table.put_once(
            {
                "pk": f"incident#{incident_id}",
                "sk": "incident",
                "incident_id": incident_id,
                "kind": key.kind,
                "key": key.key,
                "cause": cause,
                "status": "open",
                "opened_at": opened_at,
                "opened_by_event": event_id,
            },
            key="pk",
        )
        if replacing:
            self._set_status(replacing, "closed", opened_at)
        return incident_id, True

    def join(
        self,
        key: IncidentKey,
        incident_id: str,
        account_id: str,
        email: str | None,
        domain: str | None,
        cause: str,
        at: str,
        *,
        held: bool = False,
    ) -> bool:
        """Adds the account to the incident once and counts it; False when it already was a member."""
        shard = key.shard(shard_of(account_id, SHARDS))
        member = {
            **_member_key(incident_id, account_id),
            "member_of": f"{incident_id}#{shard_of(account_id, _MEMBER_SHARDS)}",
            "incident_id": incident_id,
            "account_id": account_id,
            "email": email,
            "joined_at": at,
            "latest_cause": cause,
            "recovered": False,
            "held": held,
        }
        add = self._table.update_write(
            shard,
            "ADD accounts :one, held :held SET last_failure_at = :at" + (", #slot = :domain" if domain else ""),
            values={
                ":one": 1,
                ":at": at,
                ":id": incident_id,
                ":held": 1 if held else 0,
                **({":domain": domain} if domain else {}),
            },
            names={"#slot": f"d{shard_of(domain, DOMAIN_SLOTS)}"} if domain else None,
            condition="incident_id = :id",
        )
        put = self._table.put_write(member, condition="attribute_not_exists(pk)")
        for _ in range(3):
            try:
                self._table.transact([put, add])
                return True
            except ConditionsFailed as refused:
                if 0 in refused.failed:
                    return False  # already a member
                # The shard still counts an earlier incident of this key (or nothing yet): start it afresh.
                self._table.put(
                    {**shard, "incident_id": incident_id, "accounts": 0, "held": 0, "last_failure_at": at},
                    condition="attribute_not_exists(incident_id) OR incident_id <> :id",
                    values={":id": incident_id},
                )
        raise RuntimeError(f"could not count a member of incident {incident_id}; the record is retried")

    def hold(self, key: IncidentKey, incident_id: str, account_id: str) -> bool:
        """Marks a member's email held once and counts it on its shard; False when not a member or already held."""
        return self._mark_member(key, incident_id, account_id, "held")

    def member_recovered(self, key: IncidentKey, incident_id: str, account_id: str) -> bool:
        """Marks a member recovered once and counts it on its shard; False when not a member or already counted."""
        return self._mark_member(key, incident_id, account_id, "recovered")

    def _mark_member(
        self, key: IncidentKey, incident_id: str, account_id: str, flag: Literal["held", "recovered"]
    ) -> bool:
        """Sets a member's flag once and counts it on the member's shard, in one transaction."""
        writes = [
            self._table.update_write(
                _member_key(incident_id, account_id),
                f"SET {flag} = :yes",
                values={":yes": True, ":no": False},
                condition=f"attribute_exists(pk) AND {flag} = :no",
            ),
            self._table.update_write(
                key.shard(shard_of(account_id, SHARDS)),
                f"ADD {flag} :one",
                values={":one": 1, ":id": incident_id},
                condition="incident_id = :id",
            ),
        ]
        try:
            self._table.transact(writes)
        except ConditionsFailed:
            return False
        return True

    # Reading for people ---------------------------------------------------------------------------

    def get(self, incident_id: str) -> Incident | None:
        item = self._table.get({"pk": f"incident#{incident_id}", "sk": "incident"})
        if not item:
            return None
        return self._with_counts([item])[0]

    def by_status(self, status: str, limit: int, cursor: str | None = None) -> tuple[list[Incident], str | None]:
        """Incidents of a status (or every status for "all"), newest first."""
        if status == "all":
            # One index key per status; "all" pages through them in a fixed order.
            return self._list_all(limit, cursor)
        page = self._table.newest_first("status", status, index="ByStatus", limit=limit, cursor=cursor)
        return self._with_counts(page.items), page.next

    def _list_all(self, limit: int, cursor: str | None) -> tuple[list[Incident], str | None]:
        statuses = ("open", "resolved", "closed")
        position, next_inner = shard_position(cursor, len(statuses))
        incidents: list[Incident] = []
        while position < len(statuses) and len(incidents) < limit:
            found, next_inner = self.by_status(statuses[position], limit - len(incidents), next_inner)
            incidents.extend(found)
            if next_inner is None:
                position += 1
        if position >= len(statuses):
            return incidents, None
        return incidents, f"{position}:{next_inner or ''}"

    def members(self, incident_id: str, limit: int, cursor: str | None = None) -> tuple[list[Member], str | None]:
        """The incident's members, shard by shard (cursor: shard number and that shard's position)."""
        shard, position = shard_position(cursor, _MEMBER_SHARDS)
        found: list[Member] = []
        while shard < _MEMBER_SHARDS and len(found) < limit:
            page: Page = self._table.query(
                limit=limit - len(found),
                cursor=position,
                IndexName="ByIncident",
                KeyConditionExpression="member_of = :shard",
                ExpressionAttributeValues={":shard": f"{incident_id}#{shard}"},
            )
            found.extend(_member(item) for item in page.items)
            position = page.next
            if position is None:
                shard += 1
        if shard >= _MEMBER_SHARDS:
            return found, None
        return found, f"{shard}:{position or ''}"

    def all_members(self, incident_id: str) -> Iterator[Member]:
        cursor: str | None = None
        while True:
            found, cursor = self.members(incident_id, 100, cursor)
            yield from found
            if cursor is None:
                return

    # Lifecycle -----------------------------------------------------------------------------------------

    def resolve(self, incident_id: str, at: str) -> Incident | None:
        """Marks an open incident resolved and frees its key for a new incident.

        Returns the incident when this call resolved it; None when it is unknown or was not open (so a
        resolution is announced once, whoever gets there first: the last recovery or the operator).
        """
        incident = self.get(incident_id)
        if incident is None or not self._set_status(incident_id, "resolved", at):
            return None
        # A newer incident of the key may already have replaced the pointer: then it is left alone.
        self._table.delete(
            IncidentKey(incident.kind, incident.key).pointer, condition="incident_id = :id", values={":id": incident_id}
        )
        return self.get(incident_id)

    def mark_released(self, incident_id: str, at: str) -> bool:
        """Records the release once; False when it was already released."""
        return self._set_once(incident_id, "released_at", at)

    def mark_resolution_announced(self, incident_id: str) -> bool:
        """Records that IncidentResolved was published; False when it already was."""
        return self._set_once(incident_id, "resolution_announced", True)

    def _set_once(self, incident_id: str, attribute: str, value: Any) -> bool:
        """Sets an attribute of the incident unless it is set; False when it was (or the incident is unknown)."""
        return (
            self._table.update(
                {"pk": f"incident#{incident_id}", "sk": "incident"},
                f"SET {attribute} = :value",
                values={":value": value},
                condition=f"attribute_exists(pk) AND attribute_not_exists({attribute})",
            )
            is not None
        )

    def _set_status(self, incident_id: str, status: str, at: str) -> bool:
        return (
            self._table.update(
                {"pk": f"incident#{incident_id}", "sk": "incident"},
                "SET #status = :status, resolved_at = if_not_exists(resolved_at, :at)",
                values={":status": status, ":at": at, ":open": "open"},
                names={"#status": "status"},
                condition="#status = :open",
            )
            is not None
        )

    def _with_counts(self, items: list[dict[str, Any]]) -> list[Incident]:
        keys = [IncidentKey(item["kind"], item["key"]) for item in items]
        shards = self._table.get_many([k.shard(n) for k in dict.fromkeys(keys) for n in range(SHARDS)])
        incidents = []
        for item, key in zip(items, keys, strict=True):
            prefix = f"count#{key.kind}#{key.key}#"
            mine = [
                s for s in shards if str(s["pk"]).startswith(prefix) and s.get("incident_id") == item["incident_id"]
            ]
            domains = tuple(sorted({d for s in mine for d in _domains(s)}))
            incidents.append(
                Incident(
                    incident_id=str(item["incident_id"]),
                    kind=item["kind"],
                    key=str(item["key"]),
                    cause=str(item["cause"]),
                    status=item["status"],
                    opened_at=str(item["opened_at"]),
                    last_failure_at=max([str(item["opened_at"]), *(str(s.get("last_failure_at", "")) for s in mine)]),
                    accounts=sum(int(s.get("accounts", 0)) for s in mine),
                    domains=len(domains),
                    held_emails=0 if item.get("released_at") else sum(int(s.get("held", 0)) for s in mine),
                    resolved_at=item.get("resolved_at"),
                    released_at=item.get("released_at"),
                    opened_by_event=item.get("opened_by_event"),
                    domain_names=domains,
                    resolution_announced=bool(item.get("resolution_announced")),
                )
            )
        return incidents


def _domains(shard: dict[str, Any]) -> Iterator[str]:
    """The member domains a count shard keeps: its slots (and the string set shards written before them kept)."""
    yield from (str(v) for name, v in shard.items() if name[:1] == "d" and name[1:].isdigit())
    yield from shard.get("domains", [])


def _member_key(incident_id: str, account_id: str) -> dict[str, str]:
    return {"pk": f"member#{incident_id}#{account_id}", "sk": "member"}


def _member(item: dict[str, Any]) -> Member:
    return Member(
        account_id=str(item["account_id"]),
        email=item.get("email"),
        joined_at=str(item.get("joined_at", "")),
        latest_cause=item.get("latest_cause"),
        recovered=bool(item.get("recovered")),
        held=bool(item.get("held")),
    )
