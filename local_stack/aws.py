"""AWS for the local stack: moto's ThreadedMotoServer on 127.0.0.1, with an outbox of the emails SES accepted.

moto keeps only one body part of an SESv2 message, so the server records every accepted
`SendEmail` request as it arrived (subject, recipients, text and HTML parts): that is what a
mailbox would have received, and what `make demo` writes under `out/`.
"""

from __future__ import annotations

import base64
import email
import email.policy
import io
import json
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from local_stack import moto_fast

SESV2_SEND_PATH = "/v2/email/outbound-emails"


@dataclass(frozen=True)
class SentEmail:
    """One email SES accepted, as its recipients would see it."""

    message_id: str
    sender: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    subject: str
    text: str
    html: str

    @property
    def recipients(self) -> list[str]:
        return [*self.to, *self.cc, *self.bcc]


@dataclass
class Outbox:
    emails: list[SentEmail] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sent: SentEmail) -> None:
        with self._lock:
            self.emails.append(sent)

    def snapshot(self) -> list[SentEmail]:
        with self._lock:
            return list(self.emails)

    def to(self, address: str) -> list[SentEmail]:
        return [sent for sent in self.snapshot() if address in sent.recipients]


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def capture_sesv2_sends(app: WsgiApp, outbox: Outbox) -> WsgiApp:
    """WSGI middleware: passes every request to moto, and records the SESv2 sends moto accepted."""

    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != SESV2_SEND_PATH:
            return app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request_body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(request_body)
        status: list[str] = []

        def recording_start_response(code: str, headers: Any, *args: Any) -> Any:
            status.append(code)
            return start_response(code, headers, *args)

        response = b"".join(app(environ, recording_start_response))
        if status and status[0].startswith("200"):
            outbox.add(_sent_email(json.loads(request_body), json.loads(response)["MessageId"]))
        return [response]

    return middleware


def _sent_email(request: dict[str, Any], message_id: str) -> SentEmail:
    destination = request.get("Destination", {})
    content = request["Content"]
    subject, text, html = "", "", ""
    if "Simple" in content:
        simple = content["Simple"]
        subject = simple["Subject"]["Data"]
        text = simple["Body"].get("Text", {}).get("Data", "")
        html = simple["Body"].get("Html", {}).get("Data", "")
    elif "Raw" in content:
        message = email.message_from_bytes(base64.b64decode(content["Raw"]["Data"]), policy=email.policy.default)
        subject = str(message.get("Subject", ""))
        for part in message.walk():
            if part.get_content_type() == "text/plain" and not text:
                text = part.get_content()
            elif part.get_content_type() == "text/html" and not html:
                html = part.get_content()
    return SentEmail(
        message_id=message_id,
        sender=request.get("FromEmailAddress", ""),
        to=list(destination.get("ToAddresses", [])),
        cc=list(destination.get("CcAddresses", [])),
        bcc=list(destination.get("BccAddresses", [])),
        subject=subject,
        text=text,
        html=html,
    )


def one_dynamodb_call_at_a_time(app: WsgiApp) -> WsgiApp:
    """WSGI middleware: moto's DynamoDB backend is not thread-safe, so its calls are handled one at a time.

    Under load, a query iterating a table while another thread wrote to it failed with "dictionary
    changed size during iteration". moto is CPU-bound under the GIL, so this costs little throughput.
    Other services are left concurrent: an SQS long poll holds its request open while it waits.
    """
    lock = threading.Lock()

    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))

    return middleware


class _CachedDispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering which backend serves a host.

    moto finds it anew for every request, under one lock: it lists moto's package directory (an `isdir` for
    each of its ~250 services) and tries every service's URL patterns. The answer for a host never changes.
    """

    def __init__(self, create_app: Callable[[Any], Any]) -> None:
        super().__init__(create_app)
        self._backends: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        if host not in self._backends:
            self._backends[host] = super().get_backend_for_host(host)
        return self._backends[host]


class _QuietRequestHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """One line per AWS call would drown the functions' own logs."""


class MotoServer(ThreadedMotoServer):
    """ThreadedMotoServer on a free loopback port, quiet, recording SES sends into `outbox`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(ip_address=host, port=port or free_port(host), verbose=False)
        self.outbox = Outbox()
        moto_fast.install()  # a transaction costs the items it writes, not a copy of its tables

    def _server_entry(self) -> None:
        # As ThreadedMotoServer._server_entry, with the outbox middleware around moto's app.
        app = one_dynamodb_call_at_a_time(capture_sesv2_sends(_CachedDispatcher(create_backend_app), self.outbox))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=_QuietRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
