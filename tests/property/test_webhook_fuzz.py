"""Random bodies, headers, signatures and encodings at the real handler: only 200/400/401/413, no enqueue unsigned."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local_stack.template import LocalStack
from tests.conftest import TEST_SECRET, FakeLambdaContext, load_handler

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
bodies = st.one_of(
    v3_payloads.map(lambda p: json.dumps(p).encode()),
    v2_payloads.map(lambda p: json.dumps(p).encode()),
    json_values.map(lambda p: json.dumps(p).encode()),
    st.binary(max_size=300),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[dict[str, Any], bytes, bool]:
    """An API Gateway POST, the bytes its signature was meant to cover, and whether that signature is genuine."""
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
        headers[draw(st.sampled_from(["Content-Encoding", "content-encoding"]))] = draw(
            st.sampled_from(["gzip", "GZIP", "identity", "br", ""])
        )
    b64 = gzipped or draw(st.booleans())
    if b64:
        body: Any = base64.b64encode(wire).decode()
        if draw(st.integers(0, 19)) == 0:
            body = body + "!"
    else:
        body = wire.decode("utf-8", "surrogateescape")
    if draw(st.integers(0, 29)) == 0:
        body = draw(st.one_of(st.none(), st.integers(), st.text(max_size=20)))
    event = {"httpMethod": "POST", "headers": headers, "body": body, "isBase64Encoded": b64}
    return event, wire, how in ("v3", "v2")


def run(
    handler: Any, lambda_context: FakeLambdaContext, sent: list[Any], case: tuple[dict[str, Any], bytes, bool]
) -> None:
    event, _wire, _genuine = case
    sent.clear()
    response = handler.lambda_handler(event, lambda_context)
    assert response["statusCode"] in (200, 400, 401, 413), response
    if sent:
        # Whatever reached SQS was validly signed with one of the two keys over the bytes received.
        signature = next(v for k, v in event["headers"].items() if k.lower() == "x-nylas-signature")
        raw = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
        valid = {hmac.new(key.encode(), raw, hashlib.sha256).hexdigest() for key in KEYS}
        assert signature.strip().lower() in valid
        assert response["statusCode"] == 200
    if response["statusCode"] == 401:
        assert not sent


@pytest.fixture
def webhook(aws: LocalStack) -> Iterator[tuple[Any, list[Any]]]:
    handler = load_handler("webhook")
    sent: list[Any] = []
    handler.sqs.meta.events.register(
        "provide-client-params.sqs.SendMessageBatch", lambda params, **_: sent.append(params["Entries"])
    )
    # Quiet logs: thousands of refusals would flood the captured output. The level belongs to the
    # service's shared logger, so it is restored: later tests (and the log-hygiene check) need its records.
    level = handler.logger.log_level
    handler.logger.setLevel("CRITICAL")
    yield handler, sent
    handler.logger.setLevel(level)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=requests())
def test_any_request_gets_a_client_answer(
    webhook: tuple[Any, list[Any]], lambda_context: FakeLambdaContext, case: tuple[dict[str, Any], bytes, bool]
) -> None:
    run(*webhook[:1], lambda_context, webhook[1], case)


@pytest.mark.fuzz
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
