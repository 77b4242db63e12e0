"""The webhook's pure core (SPEC §2): body, signature, gzip, validation and normalization, case by case."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from typing import Any

import pytest

from account_doctor.models import AccountEvent, from_epoch
from account_doctor.queue import queue_entries
from account_doctor.webhook import (
    MAX_BODY_BYTES,
    MAX_CHALLENGE_CHARS,
    MAX_FUTURE_SECONDS,
    MAX_V2_DELTAS,
    BadRequest,
    NotConfigured,
    PayloadTooLarge,
    Unauthorized,
    Webhook,
    WebhookError,
    challenge,
    decompress,
    screen,
    sign,
    signed_request,
    verify,
)

V3_KEY = "whsec-v3"
V2_KEY = "client-secret-v2"


def post(body: bytes, *, signature: str | None = "sign:v3", headers: dict[str, str] | None = None, b64: bool = False):
    """A minimal API Gateway POST; signature 'sign:v3'/'sign:v2' means a correct one with that key."""
    all_headers = dict(headers or {})
    if signature == "sign:v3":
        signature = sign(body, V3_KEY)
    elif signature == "sign:v2":
        signature = sign(body, V2_KEY)
    if signature is not None:
        all_headers.setdefault("X-Nylas-Signature", signature)
    text = base64.b64encode(body).decode() if b64 else body.decode("utf-8", "surrogateescape")
    return {"httpMethod": "POST", "headers": all_headers, "body": text, "isBase64Encoded": b64}


def read(event: dict[str, Any], *, v3_key: str = V3_KEY, v2_key: str = V2_KEY):
    """What account_doctor.intake does with a POST before screening and enqueuing it."""
    return verify(signed_request(event), webhook_secret=v3_key, client_secret=v2_key)


def v3(trigger: str = "grant.expired", **grant: Any) -> bytes:
    payload = {
        "specversion": "1.0",
        "type": trigger,
        "id": "evt-1",
        "time": 1732000000,
        "data": {"object": {"grant_id": "g-1", "provider": "microsoft", "email": "a@b.com", **grant}},
    }
    return json.dumps(payload).encode()


def v2(*deltas: dict[str, Any]) -> bytes:
    return json.dumps({"deltas": list(deltas)}).encode()


def delta(trigger: str = "account.invalid", account: str = "acc-1", date: Any = 1602623196) -> dict[str, Any]:
    return {"date": date, "object": "account", "type": trigger, "object_data": {"account_id": account, "id": account}}


def test_sign_is_hex_hmac_sha256_of_the_raw_bytes() -> None:
    # The RFC-style reference vector for HMAC-SHA256.
    assert sign(b"The quick brown fox jumps over the lazy dog", "key") == (
        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    )


# --- refused requests: (id, event, expected error, words in the message) ---------------------------
REFUSALS = [
    ("401-missing-signature", post(v3(), signature=None), Unauthorized, "missing"),
    ("401-empty-signature", post(v3(), signature=""), Unauthorized, "missing"),
    ("401-wrong-signature", post(v3(), signature=sign(v3(), "other")), Unauthorized, "does not match"),
    ("401-non-ascii-signature", post(v3(), signature="é" * 64), Unauthorized, "does not match"),
    ("401-signature-of-other-bytes", post(v3(), signature=sign(v3() + b" ", V3_KEY)), Unauthorized, "does not match"),
    ("401-v2-payload-signed-with-v3-key", post(v2(delta()), signature="sign:v3"), Unauthorized, "client_secret"),
    ("401-v3-payload-signed-with-v2-key", post(v3(), signature="sign:v2"), Unauthorized, "webhook_secret"),
    ("413-over-256-KiB", post(b" " * (MAX_BODY_BYTES + 1)), PayloadTooLarge, "262144"),
    ("413-over-256-KiB-base64", post(b" " * (MAX_BODY_BYTES + 1), b64=True), PayloadTooLarge, "262144"),
    ("400-bad-base64", {**post(v3()), "isBase64Encoded": True, "body": "not base64!"}, BadRequest, "base64"),
    ("400-malformed-json-signed", post(b'{"type":'), BadRequest, "not valid JSON"),
    ("400-deep-nesting-signed", post(b"[" * 100_000), BadRequest, "not valid JSON"),
    ("400-json-not-object", post(b"[1, 2]"), BadRequest, "JSON object"),
    ("400-invalid-utf8-signed", post(b"\xff\xfe{}", b64=True), BadRequest, "not valid JSON"),
    ("400-v3-no-type", post(b'{"id": "x"}'), BadRequest, "type"),
    ("400-v3-no-id", post(json.dumps({**json.loads(v3()), "id": None}).encode()), BadRequest, "id"),
    ("400-v3-no-time", post(json.dumps({**json.loads(v3()), "time": "soon"}).encode()), BadRequest, "time"),
    ("400-v3-time-overflow", post(json.dumps({**json.loads(v3()), "time": 10**30}).encode()), BadRequest, "time"),
    ("400-v3-time-nan", post(v3().replace(b"1732000000", b"NaN")), BadRequest, "time"),
    # An int beyond any float: math.isfinite itself raises OverflowError, which was a 502.
    (
        "400-v3-time-beyond-any-float",
        post(json.dumps({**json.loads(v3()), "time": 10**400}).encode()),
        BadRequest,
        "time",
    ),
    ("400-v3-grant-updated-at-beyond-any-float", post(v3(grant_updated_at=10**400)), BadRequest, "grant_updated_at"),
    (
        "400-ignored-type-id-with-crlf",
        post(json.dumps({"type": "message.created", "id": "evt\r\nforged log line"}).encode()),
        BadRequest,
        "id must be printable",
    ),
    (
        "400-ignored-type-id-too-long",
        post(json.dumps({"type": "message.created", "id": "x" * 200_000}).encode()),
        BadRequest,
        "at most 256",
    ),
    ("400-v3-no-grant-id", post(v3(grant_id=None)), BadRequest, "data.object.grant_id"),
    ("400-v3-email-not-text", post(v3(email=42)), BadRequest, "data.object.email"),
    ("400-v3-email-too-long", post(v3(email="a" * 400 + "@b.com")), BadRequest, "at most 320"),
    ("400-v3-control-chars", post(v3(grant_id="g\n1")), BadRequest, "printable"),
    ("400-v3-grant-updated-at-bool", post(v3(grant_updated_at=True)), BadRequest, "grant_updated_at"),
    (
        "400-v3-data-not-object",
        post(b'{"type": "grant.expired", "id": "x", "time": 1, "data": []}'),
        BadRequest,
        "data",
    ),
    ("400-v2-deltas-not-list", post(b'{"deltas": {}}', signature="sign:v2"), BadRequest, "deltas must be a list"),
    ("400-v2-delta-not-object", post(b'{"deltas": [1]}', signature="sign:v2"), BadRequest, "deltas[0]"),
    ("400-v2-no-account", post(v2({**delta(), "object_data": {}}), signature="sign:v2"), BadRequest, "object_data.id"),
    ("400-v2-bad-date", post(v2(delta(date="yesterday")), signature="sign:v2"), BadRequest, "deltas[0].date"),
    ("400-v2-negative-date", post(v2(delta(date=-5)), signature="sign:v2"), BadRequest, "deltas[0].date"),
    ("400-v2-date-beyond-any-float", post(v2(delta(date=10**400)), signature="sign:v2"), BadRequest, "deltas[0].date"),
    (
        "413-v2-too-many-deltas",
        post(v2(*(delta(account=f"acc-{n}") for n in range(MAX_V2_DELTAS + 1))), signature="sign:v2"),
        PayloadTooLarge,
        f"at most {MAX_V2_DELTAS} deltas",
    ),
    ("400-unknown-encoding", post(v3(), headers={"Content-Encoding": "br"}), BadRequest, "Content-Encoding"),
]


@pytest.mark.parametrize(("event", "error", "words"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refused(event: dict[str, Any], error: type[WebhookError], words: str) -> None:
    with pytest.raises(error) as raised:
        read(event)
    assert raised.value.status == {BadRequest: 400, Unauthorized: 401, PayloadTooLarge: 413}[error]
    assert words in raised.value.message


@pytest.mark.parametrize(("v3_key", "v2_key"), [("", ""), ("", V2_KEY)])
def test_no_usable_key_is_a_configuration_error_not_an_open_door(v3_key: str, v2_key: str) -> None:
    """An HMAC under an empty key is forgeable; with no key at all Nylas should retry (503)."""
    forged = post(v3(), signature=sign(v3(), ""))
    with pytest.raises((NotConfigured, Unauthorized)) as raised:
        read(forged, v3_key=v3_key, v2_key=v2_key)
    assert raised.value.status == (503 if not v2_key else 401)


# --- accepted requests: (id, event, [(trigger, account_id, event_id?)], ignored) -------------------------
def v2_id(trigger: str, account: str, date: int) -> str:
    return "v2-" + hashlib.sha256(f"{trigger}\n{account}\n{date}".encode()).hexdigest()[:32]


ACCEPTED = [
    ("v3-grant.expired-failure", post(v3()), [("grant.expired", "g-1", "evt-1")], []),
    ("v3-grant.deleted-removal", post(v3("grant.deleted")), [("grant.deleted", "g-1", "evt-1")], []),
    ("v3-grant.created-recovery", post(v3("grant.created")), [("grant.created", "g-1", "evt-1")], []),
    (
        "v3-grant.updated-with-reauth-is-recovery",
        post(v3("grant.updated", reauthentication_flag=True)),
        [("grant.updated", "g-1", "evt-1")],
        [],
    ),
    ("v3-grant.updated-without-reauth-ignored", post(v3("grant.updated")), [], ["grant.updated"]),
    (
        "v3-grant.updated-flag-truthy-string-ignored",
        post(v3("grant.updated", reauthentication_flag="true")),
        [],
        ["grant.updated"],
    ),
    ("v3-message.created-ignored", post(b'{"type": "message.created", "id": "m"}'), [], ["message.created"]),
    (
        "v3-unknown-grant-type-ignored",
        post(b'{"type": "grant.imap_sync_completed"}'),
        [],
        ["grant.imap_sync_completed"],
    ),
    (
        "header-name-any-case",
        post(v3(), signature=None, headers={"x-NyLaS-sIgNaTuRe": sign(v3(), V3_KEY)}),
        [("grant.expired", "g-1", "evt-1")],
        [],
    ),
    (
        "signature-uppercase-hex",
        post(v3(), signature=sign(v3(), V3_KEY).upper()),
        [("grant.expired", "g-1", "evt-1")],
        [],
    ),
    (
        "multi-value-headers-only",
        {**post(v3(), signature=None), "multiValueHeaders": {"X-Nylas-Signature": [sign(v3(), V3_KEY)]}},
        [("grant.expired", "g-1", "evt-1")],
        [],
    ),
    ("base64-body", post(v3(), b64=True), [("grant.expired", "g-1", "evt-1")], []),
    (
        "gzip-verified-on-compressed-bytes",
        post(gzip.compress(v3(), mtime=0), headers={"Content-Encoding": "gzip"}, b64=True),
        [("grant.expired", "g-1", "evt-1")],
        [],
    ),
    (
        "v2-account.invalid",
        post(v2(delta()), signature="sign:v2"),
        [("account.invalid", "acc-1", v2_id("account.invalid", "acc-1", 1602623196))],
        [],
    ),
    (
        "v2-multi-delta-order-kept",
        post(
            v2(delta("account.stopped", "a"), {"type": "message.created", "date": 1}, delta("account.running", "b")),
            signature="sign:v2",
        ),
        [
            ("account.stopped", "a", v2_id("account.stopped", "a", 1602623196)),
            ("account.running", "b", v2_id("account.running", "b", 1602623196)),
        ],
        ["message.created"],
    ),
    (
        "v2-account-id-from-id",
        post(v2({**delta(), "object_data": {"id": "only-id"}}), signature="sign:v2"),
        [("account.invalid", "only-id", v2_id("account.invalid", "only-id", 1602623196))],
        [],
    ),
    ("v2-no-deltas", post(b'{"deltas": []}', signature="sign:v2"), [], []),
]


@pytest.mark.parametrize(("event", "events", "ignored"), [a[1:] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED])
def test_accepted(event: dict[str, Any], events: list[tuple[str, str, str]], ignored: list[str]) -> None:
    received = read(event)
    assert [(e.trigger, e.account_id, e.event_id) for e in received.events] == events
    assert list(received.ignored) == ignored


def test_v3_normalized_fields() -> None:
    received = read(post(v3(grant_updated_at=1731000000)))
    assert received.api_version == "v3"
    assert received.delivery_id == "evt-1"
    assert received.events == (
        AccountEvent(
            event_id="evt-1",
            api_version="v3",
            trigger="grant.expired",
            account_id="g-1",
            occurred_at="2024-11-19T07:06:40Z",
            provider="microsoft",
            email="a@b.com",
            grant_updated_at="2024-11-07T17:20:00Z",
        ),
    )


def test_v2_normalized_fields_and_id_stable_across_retries() -> None:
    first = read(post(v2(delta()), signature="sign:v2"))
    retry = read(post(json.dumps({"deltas": [delta()]}, indent=2).encode(), signature="sign:v2"))
    assert first.events == retry.events
    (event,) = first.events
    assert (event.api_version, event.occurred_at, event.provider, event.email) == (
        "v2",
        "2020-10-13T21:06:36Z",
        None,
        None,
    )
    other_date = read(post(v2(delta(date=1602623197)), signature="sign:v2"))
    assert other_date.events[0].event_id != event.event_id


def test_a_v2_post_at_the_delta_cap_is_accepted() -> None:
    many = read(post(v2(*(delta(account=f"acc-{n}") for n in range(MAX_V2_DELTAS))), signature="sign:v2"))
    assert len(many.events) == MAX_V2_DELTAS


def test_copies_of_one_delta_in_a_post_are_one_event_enqueued_once() -> None:
    copies = read(post(v2(*[delta()] * 50, delta(account="acc-2")), signature="sign:v2"))
    assert [event.account_id for event in copies.events] == ["acc-1", "acc-2"]
    # A failure is one record and one diagnose message, not fifty of each.
    assert len(queue_entries(copies.events, 120)) == 4


def test_an_ignored_type_keeps_its_valid_id_for_the_logs() -> None:
    ignored = read(post(json.dumps({"type": "message.created", "id": "msg-evt-1"}).encode()))
    assert (ignored.events, ignored.ignored, ignored.delivery_id) == ((), ("message.created",), "msg-evt-1")
    assert read(post(json.dumps({"type": "message.created"}).encode())).delivery_id is None


def test_same_key_for_both_generations_accepts_either_shape() -> None:
    assert read(post(v2(delta()), signature="sign:v3"), v2_key=V3_KEY).api_version == "v2"
    assert read(post(v3(), signature="sign:v3"), v2_key=V3_KEY).api_version == "v3"


# --- gzip ------------------------------------------------------------------------------------------
GZIP_REFUSALS = [
    ("400-not-gzip", b"plain text", BadRequest),
    ("400-truncated", gzip.compress(b'{"a": 1}' * 100)[:-12], BadRequest),
    ("400-trailing-garbage", gzip.compress(b"{}") + b"junk", BadRequest),
    ("413-gzip-bomb", gzip.compress(b"0" * (64 * 1024 * 1024)), PayloadTooLarge),
]


@pytest.mark.parametrize(("body", "error"), [g[1:] for g in GZIP_REFUSALS], ids=[g[0] for g in GZIP_REFUSALS])
def test_gzip_refused(body: bytes, error: type[WebhookError]) -> None:
    assert len(body) < MAX_BODY_BYTES  # the bomb passes the body limit; only the decompression cap stops it
    with pytest.raises(error):
        read(post(body, headers={"Content-Encoding": "gzip"}, b64=True))


def test_gzip_is_verified_before_decompression() -> None:
    """A gzip bomb without a valid signature is refused without inflating a single byte."""
    bomb = gzip.compress(b"0" * (64 * 1024 * 1024))
    with pytest.raises(Unauthorized):
        read(post(bomb, signature=sign(bomb, "wrong"), headers={"content-encoding": "GZIP"}, b64=True))


def test_gzip_is_v3_only() -> None:
    body = gzip.compress(v2(delta()), mtime=0)
    with pytest.raises(Unauthorized):
        read(post(body, signature=sign(body, V2_KEY), headers={"Content-Encoding": "gzip"}, b64=True))


def test_decompress_cap_is_exact() -> None:
    assert decompress(gzip.compress(b"x" * 100), limit=100) == b"x" * 100
    with pytest.raises(PayloadTooLarge):
        decompress(gzip.compress(b"x" * 101), limit=100)


# --- challenge -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "answer"),
    [
        ({"challenge": "abc-123"}, "abc-123"),
        ({"challenge": 'with spaces & "quotes"'}, 'with spaces & "quotes"'),
        ({"challenge": "c" * MAX_CHALLENGE_CHARS}, "c" * MAX_CHALLENGE_CHARS),
        ({"challenge": "c" * (MAX_CHALLENGE_CHARS + 1)}, None),
        (None, None),
        ({}, None),
        ({"challenge": ""}, None),
        ({"other": "x"}, None),
    ],
    ids=[
        "echo",
        "echo-verbatim",
        "at-the-cap",
        "over-the-cap",
        "no-query",
        "empty-query",
        "empty-value",
        "other-param",
    ],
)
def test_challenge(query: dict[str, str] | None, answer: str | None) -> None:
    event = {"httpMethod": "GET", "queryStringParameters": query}
    if answer is None:
        with pytest.raises(BadRequest):
            challenge(event)
    else:
        assert challenge(event) == answer


# --- queue contract --------------------------------------------------------------------------------
def test_queue_entries_follow_the_stage_contract() -> None:
    failure = AccountEvent("e1", "v3", "grant.expired", "g", "2024-01-01T00:00:00Z")
    recovery = AccountEvent("e2", "v2", "account.running", "a", "2024-01-01T00:00:00Z")
    removal = AccountEvent("e3", "v3", "grant.deleted", "g", "2024-01-01T00:00:00Z")
    entries = queue_entries([failure, recovery, removal], grace_seconds=120)
    assert [
        (e["Id"], e["MessageBody"], e["DelaySeconds"], e["MessageAttributes"]["stage"]["StringValue"]) for e in entries
    ] == [
        ("0-record", failure.to_json(), 0, "record"),
        ("0-diagnose", failure.to_json(), 120, "diagnose"),
        ("1-record", recovery.to_json(), 0, "record"),
        ("2-record", removal.to_json(), 0, "record"),
    ]


# --- before any key is needed ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "event",
    [
        post(v3(), signature=None),
        post(v3(), signature=""),
        post(v3(), signature=None, headers={"Content-Encoding": "br"}),
    ],
    ids=["no-header", "empty-header", "no-header-odd-encoding"],
)
def test_an_unsigned_request_is_refused_without_a_key(event: dict[str, Any]) -> None:
    """signed_request takes no key: the handler calls it before reading the secret (SPEC §2)."""
    with pytest.raises(Unauthorized, match="missing X-Nylas-Signature"):
        signed_request(event)


def test_signed_request_keeps_the_exact_bytes_and_the_encoding() -> None:
    body = gzip.compress(v3(), mtime=0)
    request = signed_request(post(body, headers={"Content-Encoding": " GZip "}, b64=True))
    assert (request.body, request.signature, request.compressed) == (body, sign(body, V3_KEY), True)


# --- stale or implausible events (SPEC §2) ------------------------------------------------------------
NOW = 1_800_000_000
MAX_AGE_HOURS = 72


def at(seconds: float, account: str = "acc") -> AccountEvent:
    return AccountEvent(f"e-{account}", "v2", "account.invalid", account, from_epoch(seconds))


# (id, event time relative to now, stale?)
TIMES = [
    ("now", 0, False),
    ("an-hour-ago", -3600, False),
    ("exactly-the-max-age", -MAX_AGE_HOURS * 3600, False),
    ("a-second-past-the-max-age", -MAX_AGE_HOURS * 3600 - 1, True),
    ("a-month-ago-replayed", -30 * 86400, True),
    ("clock-skew-ahead", 60, False),
    ("exactly-15-minutes-ahead", MAX_FUTURE_SECONDS, False),
    ("a-second-more-than-15-minutes-ahead", MAX_FUTURE_SECONDS + 1, True),
    ("next-year", 365 * 86400, True),
    ("epoch-zero", -NOW, True),
]


@pytest.mark.parametrize(("offset", "stale"), [t[1:] for t in TIMES], ids=[t[0] for t in TIMES])
def test_screen_sets_aside_events_too_old_or_too_far_ahead(offset: int, stale: bool) -> None:
    event = at(NOW + offset)
    screened = screen(Webhook("v2", (event,), ()), now=NOW, max_age_hours=MAX_AGE_HOURS)
    assert (screened.events, screened.stale) == (((), (event,)) if stale else ((event,), ()))


def test_screen_keeps_the_fresh_deltas_of_a_mixed_post_in_order() -> None:
    fresh_a, old, fresh_b = at(NOW - 10, "a"), at(NOW - 100 * 3600, "old"), at(NOW, "b")
    received = Webhook("v2", (fresh_a, old, fresh_b), ("message.created",), "e-a")
    screened = screen(received, now=NOW, max_age_hours=MAX_AGE_HOURS)
    assert screened == Webhook("v2", (fresh_a, fresh_b), ("message.created",), "e-a", stale=(old,))
    assert screened.failures == 2
