"""Random bodies, headers, signatures and encodings at the real handler: only 200/400/401/413, no enqueue unsigned.

The requests cover JSON that is almost a Nylas payload, random JSON and bytes, bodies over the 256 KiB
cap, JSON nested far past the parser's recursion limit, invalid UTF-8 (raw and behind base64), text in
other Unicode encodings, gzip bombs (validly signed, decompressing far past the cap), truncation,
every casing of the headers, headers only in multiValueHeaders, and odd isBase64Encoded values.
Each call's memory is traced: its peak stays under MEMORY_BOUND whatever the body.
Every request whose bytes arrive intact but whose signature is not genuine (missing, another key, random,
mangled) gets 401, whatever else is wrong with it: most bodies here are stale or malformed, so 200 and 400
alone would also be the answers of a webhook that checked no signature (this assertion fails on that
mutant). That every genuine event is enqueued is the property of test_webhook_genuine.py.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from account_doctor.webhook import MAX_BODY_BYTES, MAX_DECOMPRESSED_BYTES
from local_stack.payloads import TEST_SECRET, FakeLambdaContext
from local_stack.template import ProvisionedStack
from tests.integration.test_webhook_handler import SentBatches, cold_webhook

KEYS = (TEST_SECRET["webhook_secret"], TEST_SECRET["client_secret"])
TRIGGERS = ["grant.expired", "grant.deleted", "grant.created", "grant.updated", "message.created"]
V2_TRIGGERS = ["account.invalid", "account.stopped", "account.running", "account.connected", "thread.replied"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
grant = st.fixed_dictionaries(
    {},
    optional={
        "grant_id": st.one_of(st.text(max_size=40), scalars),
        "provider": scalars,
        "email": st.one_of(st.emails(), scalars),
        "grant_updated_at": st.one_of(st.integers(-(10**12), 10**12), scalars),
        "reauthentication_flag": scalars,
    },
)
v3_payloads = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(TRIGGERS), scalars)},
    optional={
        "id": st.one_of(st.uuids().map(str), scalars),
        "time": st.one_of(st.integers(-(10**15), 10**15), st.floats(allow_nan=True), scalars),
        "data": st.one_of(st.fixed_dictionaries({"object": grant}), json_values),
    },
)
deltas = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(V2_TRIGGERS), scalars)},
    optional={
        "date": st.one_of(st.integers(-(10**15), 10**15), scalars),
        "object_data": st.one_of(
            st.fixed_dictionaries({}, optional={"account_id": scalars, "id": scalars}), json_values
        ),
    },
)
v2_payloads = st.fixed_dictionaries({"deltas": st.one_of(st.lists(deltas, max_size=12), json_values)})
# A call may hold the body (≤ 256 KiB, plus its base64 text), the decompressed body (≤ 1 MiB) and
# what json makes of it; a decompression without its cap would need 64 MiB for the largest bomb.
MEMORY_BOUND = 24 * 1024 * 1024
# Validly signed compressed deliveries that inflate to just past the cap, 8× and 64× it.
BOMBS = [gzip.compress(b" " * (n * MAX_DECOMPRESSED_BYTES + 1), compresslevel=9, mtime=0) for n in (1, 8, 64)]


def nested(depth: int, opener: bytes, closer: bytes) -> bytes:
    return opener * depth + b"1" + closer * depth


deep_json = st.tuples(
    st.integers(50, 100_000), st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'{"data":{"object":', b"}}")])
).map(lambda t: nested(t[0], *t[1]))
huge_json = st.integers(MAX_BODY_BYTES - 64, MAX_BODY_BYTES + 4096).map(
    lambda n: b'{"type":"grant.expired","pad":"' + b"x" * n + b'"}'
)
invalid_utf8 = st.tuples(
    v3_payloads, st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
).map(lambda t: json.dumps(t[0]).encode()[:-1] + b', "x": "' + t[1] + b'"}')
other_encodings = st.tuples(v3_payloads, st.sampled_from(["utf-16", "utf-32", "utf-8-sig", "latin-1"])).map(
    lambda t: json.dumps(t[0], ensure_ascii=False).encode(t[1], "replace")
)
bodies = st.one_of(
    v3_payloads.map(lambda p: json.dumps(p).encode()),
    v2_payloads.map(lambda p: json.dumps(p).encode()),
    json_values.map(lambda p: json.dumps(p).encode()),
    st.binary(max_size=300),
    deep_json,
    huge_json,
    invalid_utf8,
    other_encodings,
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[dict[str, Any], bytes, bool]:
    """An API Gateway POST, the bytes its signature was meant to cover, and whether that signature is genuine."""
    bomb = draw(st.integers(0, 14)) == 0
    if bomb:
        wire, gzipped = draw(st.sampled_from(BOMBS)), True
    else:
        payload = draw(bodies)
        gzipped = draw(st.booleans())
        wire = gzip.compress(payload, mtime=0) if gzipped else payload
    if draw(st.integers(0, 9)) == 0:
        wire = wire[: draw(st.integers(0, len(wire)))]  # truncated in transit
    how = draw(st.sampled_from(["v3", "v2", "wrong-key", "random", "missing", "mangled"]))
    signature: str | None
    if how in ("v3", "v2"):
        signature = hmac.new(KEYS[how == "v2"].encode(), wire, hashlib.sha256).hexdigest()
    elif how == "wrong-key":
        signature = hmac.new(b"attacker", wire, hashlib.sha256).hexdigest()
    elif how == "random":
        signature = draw(st.text(max_size=70))
    elif how == "mangled":
        genuine = hmac.new(KEYS[0].encode(), wire, hashlib.sha256).hexdigest()
        signature = genuine[:-1] + ("0" if genuine[-1] != "0" else "1")
    else:
        signature = None
    headers: dict[str, Any] = draw(st.dictionaries(st.text(max_size=15), st.text(max_size=20), max_size=3))
    if signature is not None:
        name = "".join(c.upper() if draw(st.booleans()) else c for c in "x-nylas-signature")
        headers[name] = signature
    if gzipped or draw(st.booleans()):
        name = "".join(c.upper() if draw(st.booleans()) else c for c in "content-encoding")
        headers[name] = draw(st.sampled_from(["gzip", "GZIP", " gzip ", "identity", "br", "gzip, br", ""]))
    b64 = gzipped or draw(st.booleans())
    if b64:
        body: Any = base64.b64encode(wire).decode()
        if draw(st.integers(0, 19)) == 0:
            body = body + "!"
        flag: Any = draw(st.sampled_from([True, True, True, "true", 1, None]))
    else:
        body = wire.decode("utf-8", "surrogateescape")
        flag = draw(st.sampled_from([False, False, "false", 0, None]))
    if draw(st.integers(0, 29)) == 0:
        body = draw(st.one_of(st.none(), st.integers(), st.text(max_size=20)))
    event: dict[str, Any] = {"httpMethod": "POST", "body": body, "isBase64Encoded": flag}
    if draw(st.integers(0, 4)) == 0:  # only the multi-value form, as a REST API may hand it over
        event["multiValueHeaders"] = {key: [value] for key, value in headers.items()}
    else:
        event["headers"] = headers
    return event, wire, how in ("v3", "v2")


def received(event: dict[str, Any]) -> bytes | None:
    """The bytes the webhook gets from API Gateway's event, or None when the body itself cannot be read."""
    body = event["body"]
    if body is None:
        return b""
    if not isinstance(body, str):
        return None
    if event["isBase64Encoded"] is True:
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            return None
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError:
        return None


def genuine(signature: str | None, raw: bytes, encoding: str) -> bool:
    """Nylas's HMAC of these bytes under a key that may sign them (a compressed delivery is v3's alone)."""
    keys = KEYS[:1] if encoding.strip().lower() == "gzip" else KEYS
    given = (signature or "").strip().lower()
    return any(hmac.new(key.encode(), raw, hashlib.sha256).hexdigest() == given for key in keys)


def run(
    handler: Any, lambda_context: FakeLambdaContext, sent: list[Any], case: tuple[dict[str, Any], bytes, bool]
) -> None:
    event, wire, _genuine = case
    sent.clear()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]  # what hypothesis et al. hold already
    response = handler.lambda_handler(event, lambda_context)
    peak = tracemalloc.get_traced_memory()[1] - before
    assert peak < MEMORY_BOUND, f"one call peaked at {peak / 2**20:.1f} MiB"
    assert response["statusCode"] in (200, 400, 401, 413), response
    headers = event.get("headers") or {k: v[0] for k, v in event.get("multiValueHeaders", {}).items()}
    signature = next((v for k, v in headers.items() if k.lower() == "x-nylas-signature"), None)
    encoding = next((v for k, v in headers.items() if k.lower() == "content-encoding"), "")
    raw = received(event)
    if raw is not None and len(raw) <= MAX_BODY_BYTES and not genuine(signature, raw, encoding):
        assert response["statusCode"] == 401, (response, signature)
    if wire in BOMBS and raw == wire and encoding.strip().lower() == "gzip" and genuine(signature, raw, encoding):
        assert response["statusCode"] == 413  # verified, then refused while inflating: never inflated whole
    if sent:
        # Whatever reached SQS was validly signed with one of the two keys over the bytes received.
        assert raw is not None
        assert genuine(signature, raw, encoding)
        assert response["statusCode"] == 200
    if response["statusCode"] == 401:
        assert not sent


@pytest.fixture
def webhook(aws: ProvisionedStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[Any]]]:
    handler = cold_webhook(aws, monkeypatch)
    sent = SentBatches(handler).calls  # every SQS send API: SendMessageBatch and SendMessage
    # Quiet logs: thousands of refusals would flood the captured output. The level belongs to the
    # service's shared logger, so it is restored: later tests (and the log-hygiene check) need its records.
    level = handler.logger.log_level
    handler.logger.setLevel("CRITICAL")
    tracemalloc.start()
    yield handler, sent
    tracemalloc.stop()
    handler.logger.setLevel(level)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=requests())
def test_any_request_gets_a_client_answer(
    webhook: tuple[Any, list[Any]], lambda_context: FakeLambdaContext, case: tuple[dict[str, Any], bytes, bool]
) -> None:
    run(*webhook[:1], lambda_context, webhook[1], case)


@pytest.mark.fuzz
@pytest.mark.timeout(1800)  # 10,000 calls of the handler take longer than the suite's 300 s per test
@settings(
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=requests())
def test_any_request_gets_a_client_answer_long(
    webhook: tuple[Any, list[Any]], lambda_context: FakeLambdaContext, case: tuple[dict[str, Any], bytes, bool]
) -> None:
    run(*webhook[:1], lambda_context, webhook[1], case)
