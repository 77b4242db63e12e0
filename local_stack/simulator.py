"""A Nylas API simulator: the v3 grant and v2 account endpoints the diagnosis reads, with their real paths and auth.

It answers like the real API does for the calls Account Doctor makes (SPEC §3):
- v3 `GET /v3/grants/{grant_id}` and `GET /v3/grants/{grant_id}/folders`, `Authorization: Bearer {api_key}`;
- v2 `GET /a/{client_id}/accounts/{account_id}`, HTTP Basic with the client secret as user, empty password.
Wrong or missing credentials get `401`, unknown grants and accounts `404`, as Nylas does.
Faults (a status code for the next N calls, a delay) can be injected per account for reliability tests.
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
from typing import Any

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
        return {
            "id": self.grant_id,
            "grant_status": self.grant_status,
            "provider": self.provider,
            "email": self.email,
            "scope": [],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "provider_user_id": self.grant_id,
            "settings": {},
            "ip": "203.0.113.10",
            "state": "",
            "user_agent": "Mozilla/5.0",
        }

    def folders_api(self) -> list[dict[str, Any]]:
        return [
            {
                "id": f"{self.grant_id}-folder-{index}",
                "grant_id": self.grant_id,
                "object": "folder",
                "name": name,
                "attributes": ["\\Inbox"] if name.lower() == "inbox" else [],
                "total_count": total,
                "unread_count": 0,
                "system_folder": True,
            }
            for index, (name, total) in enumerate(self.folders)
        ]


@dataclass
class V2Account:
    """A v2 account as the management endpoint `GET /a/{client_id}/accounts/{id}` describes it."""

    account_id: str
    email: str
    provider: str
    sync_state: str = "running"  # running | invalid | stopped | sync-error | …
    billing_state: str = "paid"  # paid | cancelled | deleted | …

    def to_api(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "id": self.account_id,
            "namespace_id": self.account_id,
            "email": self.email,
            "provider": self.provider,
            "sync_state": self.sync_state,
            "billing_state": self.billing_state,
            "trial": False,
        }


@dataclass
class Fault:
    """Answer the next `times` calls for an account with `status` (and `Retry-After` for 429)."""

    status: int
    times: int
    retry_after: int | None = None


_V3_GRANT = re.compile(r"^/v3/grants/(?P<grant_id>[^/]+)$")
_V3_FOLDERS = re.compile(r"^/v3/grants/(?P<grant_id>[^/]+)/folders$")
_V2_ACCOUNT = re.compile(r"^/a/(?P<client_id>[^/]+)/accounts/(?P<account_id>[^/]+)$")


class NylasSimulator(LoopbackServer):
    """Serves the simulated Nylas API on 127.0.0.1 in a background thread. Use as a context manager."""

    def __init__(self, *, api_key: str, client_id: str, client_secret: str, host: str = "127.0.0.1", port: int = 0):
        self.api_key = api_key
        self.client_id = client_id
        self.client_secret = client_secret
        self.grants: dict[str, Grant] = {}
        self.accounts: dict[str, V2Account] = {}
        self.faults: dict[str, Fault] = {}
        self.latency_seconds = 0.0
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

    # Request handling, called from the server's threads.

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON body, extra headers) for one GET."""
        path = path.split("?", 1)[0]
        request_id = str(uuid.uuid4())
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

    def _take_fault(self, account_id: str) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        with self._lock:
            self.calls[account_id] += 1
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
