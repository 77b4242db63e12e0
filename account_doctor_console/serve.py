"""Serving the console on 127.0.0.1 with uvicorn: `account-doctor console` in the foreground, `make serve` beside
the local stack in a thread."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from account_doctor_cli.errors import OperatorError
from account_doctor_console.app import create_app
from account_doctor_console.pages import Sources

# Loopback only: the console acts with the operator's own AWS credentials, so nothing else may reach it.
HOST = "127.0.0.1"


def bind(port: int) -> socket.socket:
    """The listening socket, bound before anything starts, so a busy port is one clear line (OperatorError)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((HOST, port))
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise OperatorError(f"port {port} on {HOST} is in use: pass another --port") from error
        if error.errno == errno.EACCES:
            raise OperatorError(f"port {port} needs privileges on this machine: pass a port above 1023") from error
        raise
    listener.listen(64)
    return listener


def url_of(listener: socket.socket) -> str:
    return f"http://{HOST}:{listener.getsockname()[1]}/"


def probe(sources: Sources) -> None:
    """One cheap read before serving: no credentials, a missing table or a dead endpoint fail now, as one line."""
    sources.api.incidents_list("open", 1)


def _server(sources: Sources, *, read_only: bool) -> uvicorn.Server:
    app = create_app(sources, read_only=read_only)
    # No access log: request lines carry account ids and domains, and the operator watches the browser anyway.
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config)


def serve_forever(sources: Sources, listener: socket.socket, *, read_only: bool) -> None:
    """Serves on the bound socket until Ctrl-C (uvicorn's own signal handling)."""
    _server(sources, read_only=read_only).run(sockets=[listener])


@contextmanager
def console_in_thread(sources: Sources, *, port: int = 0, read_only: bool = False) -> Iterator[str]:
    """The console served from a thread of this process (beside the local stack, or in a test); yields its URL."""
    listener = bind(port)
    server = _server(sources, read_only=read_only)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="console", daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            threading.Event().wait(0.02)
        yield url_of(listener)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
