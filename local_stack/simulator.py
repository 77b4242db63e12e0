"""A Nylas API simulator: the v3 grant and v2 account endpoints the diagnosis reads, with their real paths and auth.

It answers like the real API does for the calls Account Doctor makes (SPEC §3, §3b):
- v3 `GET /v3/grants/{grant_id}` and `GET /v3/grants/{grant_id}/folders`, `Authorization: Bearer {api_key}`;
- v3 `GET /v3/grants?grant_status=…&limit=…&offset=…`: `{"request_id", "data": [grants], "limit", "offset"}`,
  newest grant first (Nylas sorts by created_at, descending);
- v2 `GET /a/{client_id}/accounts/{account_id}`, HTTP Basic with the client secret as user, empty password;
- v2 `GET /a/{client_id}/accounts?limit=…&offset=…`: a JSON array of accounts, in a stable order;
- v3 `GET /v3/webhooks`: `{"request_id", "data": [destinations]}`, the application's webhook destinations
  (`webhooks`: one active destination subscribing every grant trigger until a test or the demo changes it;
  `webhooks_fault` answers with that status instead).
Wrong or missing credentials get `401`, unknown grants and accounts `404`, as Nylas does.
Faults (a status code for the next N calls, a delay) can be injected per account, or per page of a list
(`inject_page_fault`), for reliability tests.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs

from local_stack import payloads
from local_stack.loopback import LoopbackServer


@dataclass
class Grant:
    """A v3 grant as `GET /v3/grants/{id}` describes it, plus its folders."""

    grant_id: str
    email: str
    provider: str
    grant_status: str = "valid"  # valid | invalid
    created_at: int = 0
    updated_at: int = 0
    # (name, total_count): the inbox's message count is what rule 3a looks at for Exchange.
    folders: list[tuple[str, int]] = field(default_factory=lambda: [("Inbox", 120), ("Sent Items", 40)])

    def to_api(self) -> dict[str, Any]:
        return payloads.nylas_v3_grant(
            self.grant_id,
            status=self.grant_status,
            provider=self.provider,
            email=self.email,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )

    def folders_api(self) -> list[dict[str, Any]]:
        return payloads.nylas_v3_folders(self.grant_id, self.folders)


@dataclass
class V2Account:
    """A v2 account as the management endpoint `GET /a/{client_id}/accounts/{id}` describes it."""

    account_id: str
    email: str
    provider: str
    sync_state: str = "running"  # running | invalid | stopped | sync-error | …
    billing_state: str = "paid"  # paid | cancelled | deleted | …

    def to_api(self) -> dict[str, Any]:
        return payloads.nylas_v2_account(
            self.account_id,
            sync_state=self.sync_state,
            billing_state=self.billing_state,
            provider=self.provider,
            email=self.email,
        )


@dataclass
class Fault:
    """Answer the next `times` calls for an account with `status` (and `Retry-After` for 429)."""

    status: int
    times: int
    retry_after: int | None = None


_V3_GRANT = re.compile(r"^/v3/grants/(?P<grant_id>[^/]+)$")
_V3_FOLDERS = re.compile(r"^/v3/grants/(?P<grant_id>[^/]+)/folders$")
_V2_ACCOUNT = re.compile(r"^/a/(?P<client_id>[^/]+)/accounts/(?P<account_id>[^/]+)$")
_V3_GRANTS = re.compile(r"^/v3/grants/?$")
_V2_ACCOUNTS = re.compile(r"^/a/(?P<client_id>[^/]+)/accounts/?$")
_V3_WEBHOOKS = re.compile(r"^/v3/webhooks/?$")
# Nylas's default page sizes, and the largest page the simulator hands out.
V3_DEFAULT_LIMIT = 10
V2_DEFAULT_LIMIT = 100
MAX_LIMIT = 200
# The keys `calls` counts the list requests under (every other key is an account id).
V3_LIST = "GET /v3/grants"
# The census's listing of every grant (no grant_status filter), counted apart from the sweep's broken ones.
V3_ALL = "GET /v3/grants (every grant)"
V3_WEBHOOKS = "GET /v3/webhooks"
DEFAULT_WEBHOOK_ID = "wh-account-doctor"
V2_LIST = "GET /a/{client_id}/accounts"
ListApi = Literal["v3", "v2"]


class NylasSimulator(LoopbackServer):
    """Serves the simulated Nylas API on 127.0.0.1 in a background thread. Use as a context manager."""

    def __init__(self, *, api_key: str, client_id: str, client_secret: str, host: str = "127.0.0.1", port: int = 0):
        self.api_key = api_key
        self.client_id = client_id
        self.client_secret = client_secret
        self.grants: dict[str, Grant] = {}
        self.accounts: dict[str, V2Account] = {}
        self.faults: dict[str, Fault] = {}
        # One healthy destination, as a deployment that followed README's steps has; tests and the demo break it.
        self.webhooks: list[dict[str, Any]] = [payloads.nylas_v3_webhook(DEFAULT_WEBHOOK_ID)]
        self.webhooks_fault: int | None = None
        self.latency_seconds = 0.0
        # Nylas documents only id, email, provider and grant_status as always present in a list row (SPEC §3b).
        self.list_rows_with_updated_at = True
        # Every call, by account id: lets tests see what the diagnosis asked for.
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        super().__init__(_handler_for(self), host=host, port=port, name="nylas-simulator")

    def add_grant(self, grant: Grant) -> None:
        with self._lock:
            self.grants[grant.grant_id] = grant

    def add_account(self, account: V2Account) -> None:
        with self._lock:
            self.accounts[account.account_id] = account

    def inject_fault(self, account_id: str, status: int, *, times: int = 1, retry_after: int | None = None) -> None:
        with self._lock:
            self.faults[account_id] = Fault(status=status, times=times, retry_after=retry_after)

    def inject_page_fault(
        self, api: ListApi, offset: int, status: int, *, times: int = 1, retry_after: int | None = None
    ) -> None:
        """Answer the next `times` list requests of `api` ("v3" grants, "v2" accounts) at `offset` with `status`."""
        with self._lock:
            self.faults[_page_key(api, offset)] = Fault(status=status, times=times, retry_after=retry_after)

    def add_webhook(
        self, webhook_id: str, *, status: str = "active", trigger_types: tuple[str, ...] = payloads.V3_WEBHOOK_TRIGGERS
    ) -> None:
        """A webhook destination as `GET /v3/webhooks` lists it; adding one with the same id replaces it."""
        destination = payloads.nylas_v3_webhook(webhook_id, status=status, trigger_types=trigger_types)
        with self._lock:
            self.webhooks = [w for w in self.webhooks if w["id"] != webhook_id] + [destination]

    @property
    def list_calls(self) -> int:
        """List requests answered so far, both APIs, faults included."""
        with self._lock:
            return self.calls[V3_LIST] + self.calls[V2_LIST]

    # Request handling, called from the server's threads.

    def answer(self, path: str, authorization: str | None) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON body, extra headers) for one GET."""
        path, _, query = path.partition("?")
        request_id = str(uuid.uuid4())
        if _V3_GRANTS.match(path):
            return self._list_grants(request_id, parse_qs(query), authorization)
        if match := _V2_ACCOUNTS.match(path):
            if match["client_id"] != self.client_id or not self._basic_ok(authorization):
                return 401, {"message": "Unauthorized", "type": "api_error"}, {}
            return self._list_accounts(parse_qs(query))
        if _V3_WEBHOOKS.match(path):
            return self._list_webhooks(request_id, authorization)
        if match := _V3_GRANT.match(path) or _V3_FOLDERS.match(path):
            if not self._bearer_ok(authorization):
                return 401, _v3_error(request_id, "unauthorized", "Unauthorized"), {}
            grant_id = match["grant_id"]
            if fault := self._take_fault(grant_id):
                return fault
            with self._lock:
                grant = self.grants.get(grant_id)
            if grant is None:
                return 404, _v3_error(request_id, "not_found_error", "grant not found"), {}
            if path.endswith("/folders"):
                return 200, {"request_id": request_id, "data": grant.folders_api(), "next_cursor": None}, {}
            return 200, {"request_id": request_id, "data": grant.to_api()}, {}
        if match := _V2_ACCOUNT.match(path):
            if match["client_id"] != self.client_id or not self._basic_ok(authorization):
                return 401, {"message": "Unauthorized", "type": "api_error"}, {}
            account_id = match["account_id"]
            if fault := self._take_fault(account_id):
                return fault
            with self._lock:
                account = self.accounts.get(account_id)
            if account is None:
                return 404, {"message": f"Couldn't find account {account_id}", "type": "invalid_request_error"}, {}
            return 200, account.to_api(), {}
        return 404, {"message": f"no route for {path}", "type": "invalid_request_error"}, {}

    def _list_webhooks(self, request_id: str, authorization: str | None) -> tuple[int, Any, dict[str, str]]:
        if not self._bearer_ok(authorization):
            return 401, _v3_error(request_id, "unauthorized", "Unauthorized"), {}
        with self._lock:
            self.calls[V3_WEBHOOKS] += 1
            refused, webhooks = self.webhooks_fault, list(self.webhooks)
        if refused is not None:
            return refused, _v3_error(request_id, "simulated_fault", f"injected {refused}"), {}
        return 200, {"request_id": request_id, "data": webhooks}, {}

    def _list_grants(
        self, request_id: str, query: dict[str, list[str]], authorization: str | None
    ) -> tuple[int, Any, dict[str, str]]:
        if not self._bearer_ok(authorization):
            return 401, _v3_error(request_id, "unauthorized", "Unauthorized"), {}
        paging = _paging(query, V3_DEFAULT_LIMIT)
        if paging is None:
            return 400, _v3_error(request_id, "invalid_request_error", "limit and offset must be whole numbers"), {}
        limit, offset = paging
        wanted = query.get("grant_status", [None])[0]
        if fault := self._take_fault(_page_key("v3", offset), counted_as=V3_LIST if wanted else V3_ALL):
            return fault
        with self._lock:
            grants = [g for g in self.grants.values() if wanted is None or g.grant_status == wanted]
        grants.sort(key=lambda g: (-g.created_at, g.grant_id))
        data = [g.to_api() for g in grants[offset : offset + limit]]
        if not self.list_rows_with_updated_at:
            data = [{key: value for key, value in row.items() if key != "updated_at"} for row in data]
        return 200, {"request_id": request_id, "data": data, "limit": limit, "offset": offset}, {}

    def _list_accounts(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        paging = _paging(query, V2_DEFAULT_LIMIT)
        if paging is None:
            return 400, {"message": "limit and offset must be whole numbers", "type": "invalid_request_error"}, {}
        limit, offset = paging
        if fault := self._take_fault(_page_key("v2", offset), counted_as=V2_LIST):
            return fault
        with self._lock:
            accounts = sorted(self.accounts.values(), key=lambda a: a.account_id)
        return 200, [a.to_api() for a in accounts[offset : offset + limit]], {}

    def _take_fault(
        self, account_id: str, *, counted_as: str | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        with self._lock:
            self.calls[counted_as or account_id] += 1
            fault = self.faults.get(account_id)
            if fault is None or fault.times <= 0:
                return None
            fault.times -= 1
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        return fault.status, {"error": {"type": "simulated_fault", "message": f"injected {fault.status}"}}, headers

    def _bearer_ok(self, authorization: str | None) -> bool:
        expected = f"Bearer {self.api_key}"
        return authorization is not None and hmac.compare_digest(authorization.encode(), expected.encode())

    def _basic_ok(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Basic "):
            return False
        try:
            user, _, _password = base64.b64decode(authorization[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user.encode(), self.client_secret.encode())


def _page_key(api: ListApi, offset: int) -> str:
    return f"{V3_LIST if api == 'v3' else V2_LIST}?offset={offset}"


def _paging(query: dict[str, list[str]], default_limit: int) -> tuple[int, int] | None:
    """(limit, offset) of a list request, the limit capped as Nylas caps it; None when malformed."""
    try:
        limit = int(query.get("limit", [str(default_limit)])[0])
        offset = int(query.get("offset", ["0"])[0])
    except ValueError:
        return None
    if limit < 1 or offset < 0:
        return None
    return min(limit, MAX_LIMIT), offset


def _v3_error(request_id: str, kind: str, message: str) -> dict[str, Any]:
    return {"request_id": request_id, "error": {"type": kind, "message": message}}


def _handler_for(simulator: NylasSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if simulator.latency_seconds:
                time.sleep(simulator.latency_seconds)
            status, body, headers = simulator.answer(self.path, self.headers.get("Authorization"))
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the diagnosis logs its own calls."""

    return Handler
