"""The stack's REST API over real HTTP, as `sam local start-api` serves it: each request becomes an API Gateway
REST proxy event for the function the template routes it to, and the function's answer becomes the response.

Routes come from the functions' `Api` events in template.yaml. As with `sam local start-api`, IAM auth on
the read API is not enforced locally.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import time
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from local_stack.functions import LambdaFunction
from local_stack.loopback import LoopbackServer
from local_stack.payloads import api_gateway_event

STAGE = "v1"
# Bodies that are not text, or whose type matches the API's BinaryMediaTypes, reach the function
# base64-encoded, as API Gateway hands them over.
_TEXT_TYPES = ("application/json", "text/", "application/x-www-form-urlencoded")
# API Gateway's payload limit: a larger announced body is refused (413) before a byte of it is read.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
# How long a client may pause while sending the body it announced. A body shorter than its
# Content-Length would otherwise hold the connection and its server thread forever.
BODY_TIMEOUT_SECONDS = 5.0
_DIGITS = re.compile(r"[0-9]+")


class RequestRefused(Exception):
    """A request the gateway answers itself, before any function: its framing cannot be trusted."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def content_length(values: Sequence[str], transfer_encoding: str | None) -> int:
    """The body's length from the Content-Length header(s); RequestRefused when it is absent-but-needed or malformed."""
    if transfer_encoding:
        raise RequestRefused(400, "Transfer-Encoding is not supported here: send the body with a Content-Length")
    if not values:
        return 0
    distinct = {value.strip() for value in values}
    if len(distinct) != 1:
        raise RequestRefused(400, "conflicting Content-Length headers")
    (value,) = distinct
    if not _DIGITS.fullmatch(value):
        raise RequestRefused(400, f"malformed Content-Length {value[:32]!r}: it must be a number of bytes")
    length = int(value)
    if length > MAX_REQUEST_BYTES:
        raise RequestRefused(413, f"the body exceeds {MAX_REQUEST_BYTES} bytes")
    return length


def proxy_event(
    *,
    method: str,
    raw_path: str,
    resource: str,
    path_parameters: dict[str, str] | None,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str = "127.0.0.1",
    binary_media_types: Sequence[str] = (),
) -> dict[str, Any]:
    """An API Gateway REST (v1 payload) proxy event for one HTTP request."""
    split = urlsplit(raw_path)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "").split(";")[0].strip()
    encoded = (
        any(k.lower() == "content-encoding" for k, _ in headers)
        or not content_type.startswith(_TEXT_TYPES)
        or any(fnmatch.fnmatch(content_type or "*", pattern) for pattern in binary_media_types)
    )
    if not encoded:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            encoded = True
    return api_gateway_event(
        method,
        split.path,
        resource=resource,
        path_parameters=path_parameters,
        headers=headers,
        query=parse_qsl(split.query, keep_blank_values=True),
        body=body,
        base64_encoded=encoded,
        source_ip=source_ip,
        request_id=str(uuid.uuid4()),
        request_time_ms=int(time.time() * 1000),
        api_id="local",
        stage=STAGE,
    )


class ApiGateway(LoopbackServer):
    """Serves the template's API routes on host:port in a background thread. Use as a context manager."""

    def __init__(
        self,
        functions: list[LambdaFunction],
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        binary_media_types: Sequence[str] = (),
    ) -> None:
        self.functions = functions
        self.binary_media_types = list(binary_media_types)
        super().__init__(_handler_for(self), host=host, port=port, name="api-gateway")

    def route(self, method: str, path: str) -> tuple[LambdaFunction, str, dict[str, str]] | bool | None:
        """(function, resource, path parameters) for a request; False if the path exists for another method."""
        path_exists = False
        for function in self.functions:
            for route in function.routes:
                match = route.pattern.match(path)
                if not match:
                    continue
                if route.method in (method, "ANY"):
                    return function, route.path, {k: unquote(v) for k, v in match.groupdict().items()}
                path_exists = True
        return False if path_exists else None

    def handle(
        self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        path = urlsplit(raw_path).path
        # Accept the deployed URL shape too (…/v1/webhook), so a copied production URL works locally.
        if path.startswith(f"/{STAGE}/"):
            path = path[len(STAGE) + 1 :]
            raw_path = raw_path[len(STAGE) + 1 :]
        found = self.route(method, path)
        if found is None:
            return 404, [("Content-Type", "application/json")], b'{"message":"Not Found"}'
        if found is False:
            return 405, [("Content-Type", "application/json")], b'{"message":"Method Not Allowed"}'
        assert isinstance(found, tuple)
        function, resource, parameters = found
        event = proxy_event(
            method=method,
            raw_path=raw_path,
            resource=resource,
            path_parameters=parameters,
            headers=headers,
            body=body,
            binary_media_types=self.binary_media_types,
        )
        try:
            result = function.invoke(event)
        except Exception as error:  # what API Gateway answers when the integration fails
            return 502, [("Content-Type", "application/json")], f'{{"message":"{type(error).__name__}"}}'.encode()
        return _http_response(result)


def _http_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    if not isinstance(result, dict) or "statusCode" not in result:
        return 502, [("Content-Type", "application/json")], b'{"message":"Internal server error"}'
    headers: list[tuple[str, str]] = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(v)) for v in values if (name, str(v)) not in headers)
    body = result.get("body") or ""
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
    return int(result["statusCode"]), headers, payload


def _handler_for(gateway: ApiGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            try:
                body = self._body()
            except RequestRefused as refused:
                # The stream's framing is lost (where does this body end?): answer, then close the connection.
                self.close_connection = True
                message = json.dumps({"message": refused.message}).encode()
                self._send(refused.status, [("Content-Type", "application/json"), ("Connection", "close")], message)
                return
            self._send(*gateway.handle(self.command, self.path, list(self.headers.items()), body))

        def _body(self) -> bytes:
            length = content_length(self.headers.get_all("Content-Length") or [], self.headers.get("Transfer-Encoding"))
            chunks: list[bytes] = []
            remaining = length
            self.connection.settimeout(BODY_TIMEOUT_SECONDS)
            try:
                while remaining:
                    chunk = self.rfile.read1(remaining)
                    if not chunk:
                        raise RequestRefused(400, f"the body ended {remaining} bytes short of its Content-Length")
                    chunks.append(chunk)
                    remaining -= len(chunk)
            except TimeoutError as error:
                raise RequestRefused(
                    400, f"the body stopped {remaining} bytes short of its Content-Length ({BODY_TIMEOUT_SECONDS:g} s)"
                ) from error
            finally:
                self.connection.settimeout(self.timeout)  # the server's own (none): idle keep-alive waits as before
            return b"".join(chunks)

        def _send(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the functions log each request themselves."""

    return Handler


def binary_media_types(template: dict[str, Any]) -> list[str]:
    """The REST APIs' BinaryMediaTypes, with CloudFormation's ~1 escape for / undone."""
    return [
        str(media_type).replace("~1", "/")
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Api"
        for media_type in resource.get("Properties", {}).get("BinaryMediaTypes", [])
    ]
