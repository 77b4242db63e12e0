"""The local API gateway over a raw socket: a request whose Content-Length cannot be trusted gets an answer.

A malformed, conflicting or lying Content-Length is answered 400 (too large: 413) and the connection
closed, instead of a dropped connection (an exception in the server thread) or a hang (waiting for
bytes that never come). Every socket here has a timeout, so a regression fails instead of hanging.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_stack import gateway as gateway_module
from local_stack.functions import ApiRoute, LambdaFunction
from local_stack.gateway import MAX_REQUEST_BYTES, ApiGateway

CLIENT_TIMEOUT = 10.0


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A function answering with the body it received, so a test can see what reached it."""
    return {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": event["body"] or ""}


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    monkeypatch.setattr(gateway_module, "BODY_TIMEOUT_SECONDS", 0.5)  # the lying-length cases wait this long
    function = LambdaFunction("Echo", Path("."), "app.lambda_handler", 3, [ApiRoute("POST", "/webhook")], echo)
    with ApiGateway([function], port=0) as served:
        host, port = served.url.removeprefix("http://").split(":")
        yield host, int(port)


def exchange(
    address: tuple[str, int], request: bytes, *, close_write: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """Sends raw bytes and reads one response: (status, headers, body)."""
    with socket.create_connection(address, timeout=CLIENT_TIMEOUT) as connection:
        connection.sendall(request)
        if close_write:
            connection.shutdown(socket.SHUT_WR)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(65536)
            assert chunk, f"the connection closed without a response: {received!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in header_lines)}
        while len(body) < int(headers.get("content-length", "0")):
            chunk = connection.recv(65536)
            assert chunk, "the connection closed mid-response"
            body += chunk
    return int(status_line.split()[1]), headers, body


def post(length: str | list[str] | None, body: bytes, extra: str = "") -> bytes:
    lengths = [length] if isinstance(length, str) else (length or [])
    head = "POST /webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    head += "".join(f"Content-Length: {value}\r\n" for value in lengths) + extra + "\r\n"
    return head.encode("latin-1") + body


def test_a_truthful_request_reaches_the_function(gateway: tuple[str, int]) -> None:
    assert exchange(gateway, post("7", b'{"a":1}'))[::2] == (200, b'{"a":1}')


# (id, request, status, words of the message)
REFUSED = [
    ("not-a-number", post("abc", b"{}"), 400, "malformed Content-Length"),
    ("negative", post("-2", b"{}"), 400, "malformed Content-Length"),
    ("fraction", post("2.0", b"{}"), 400, "malformed Content-Length"),
    ("empty", post("", b"{}"), 400, "malformed Content-Length"),
    ("superscript-digit", post("1\u00b2", b"{}"), 400, "malformed Content-Length"),
    ("conflicting-headers", post(["2", "3"], b"{}"), 400, "conflicting Content-Length"),
    ("chunked", post(None, b"2\r\n{}\r\n0\r\n\r\n", "Transfer-Encoding: chunked\r\n"), 400, "Transfer-Encoding"),
    ("beyond-the-api-limit", post(str(MAX_REQUEST_BYTES + 1), b"{}"), 413, "exceeds"),
    ("huge-number", post("9" * 40, b"{}"), 413, "exceeds"),
    ("longer-than-sent-connection-kept-open", post("100", b'{"a":1}'), 400, "short of its Content-Length"),
]


@pytest.mark.parametrize(("request_bytes", "status", "words"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_an_untrustworthy_length_is_answered_not_dropped_or_hung(
    gateway: tuple[str, int], request_bytes: bytes, status: int, words: str
) -> None:
    answered, headers, body = exchange(gateway, request_bytes)
    assert answered == status
    assert headers["connection"] == "close"
    assert words in json.loads(body)["message"]


def test_a_body_cut_short_by_the_client_is_answered_at_once(gateway: tuple[str, int]) -> None:
    answered, _, body = exchange(gateway, post("100", b'{"a":1}'), close_write=True)
    assert answered == 400
    assert json.loads(body)["message"] == "the body ended 93 bytes short of its Content-Length"


def test_the_gateway_keeps_serving_after_a_refusal(gateway: tuple[str, int]) -> None:
    exchange(gateway, post("abc", b"{}"))
    exchange(gateway, post("100", b"{}"))
    assert exchange(gateway, post("2", b"{}"))[0] == 200
