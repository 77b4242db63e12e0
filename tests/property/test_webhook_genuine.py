"""Well-formed Nylas deliveries at the real handler: every genuine account event is enqueued, and nothing else.

The generator builds what Nylas sends: v3 grant notifications and v2 account deltas (several per POST),
with ids, providers, addresses and times inside and outside the accepted window (SPEC §2: at most
WebhookMaxAgeHours old, at most 15 minutes ahead), as plain JSON, base64 from API Gateway, or v3
gzip compressed delivery. Each is signed correctly, or wrongly: another key, the other generation's
key, a signature of other bytes (the body altered after signing, or the uncompressed body of a
compressed delivery), a truncated signature, none at all.

The expected messages are worked out here from the generated fields, without the code under test:
a genuine delivery enqueues a `record` message for each account event in the window, and a delayed
`diagnose` one for each failure; anything else enqueues nothing. Every SQS send API is watched.

The property can fail: `test_the_property_catches_a_handler_that_*` runs it against a handler with
signature verification (or the staleness screen) switched off and expects Hypothesis to falsify it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from account_doctor import webhook as webhook_core
from local_stack.payloads import TEST_SECRET, FakeLambdaContext
from local_stack.template import ProvisionedStack
from tests.integration.test_webhook_handler import SentBatches, cold_webhook

NOW = 1_750_000_000  # the handler's clock during these tests
V3_KEY, V2_KEY = TEST_SECRET["webhook_secret"], TEST_SECRET["client_secret"]
FAILURES = {"grant.expired", "account.invalid", "account.stopped", "account.sync_error"}
V2_ACCOUNT_TRIGGERS = [
    "account.invalid",
    "account.stopped",
    "account.sync_error",
    "account.running",
    "account.connected",
]
# v3 grant notifications that carry an account event, and (trigger, reauthentication_flag) pairs that do not.
V3_ACCOUNT_TRIGGERS = ["grant.expired", "grant.deleted", "grant.created", "grant.updated"]
HOW_SIGNED = ["genuine", "wrong-key", "other-generation-key", "altered-after-signing", "truncated", "missing"]

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=40)


@dataclass
class Delivery:
    """One POST as generated: the API Gateway event, how it was signed, and the messages it must produce."""

    event: dict[str, Any]
    how_signed: str
    expected: list[tuple[str, str, str, str, str, int]] = field(default_factory=list)  # if genuine

    @property
    def genuine(self) -> bool:
        return self.how_signed == "genuine"


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def messages(event_id: str, trigger: str, account: str, occurred: int, grace: int) -> list[tuple[Any, ...]]:
    """What the queue contract (SPEC §2) makes of one account event: (id, trigger, account, time, stage, delay)."""
    found = [(event_id, trigger, account, iso(occurred), "record", 0)]
    if trigger in FAILURES:
        found.append((event_id, trigger, account, iso(occurred), "diagnose", grace))
    return found


@st.composite
def event_times(draw: st.DrawFn, max_age_hours: int) -> tuple[int, bool]:
    """A Unix time and whether it lies in the accepted window: mostly inside, sometimes either side of it."""
    oldest, latest = NOW - max_age_hours * 3600, NOW + 15 * 60
    where = draw(st.sampled_from(["inside"] * 4 + ["too-old", "too-far-ahead"]))
    if where == "inside":
        return draw(st.integers(oldest, latest)), True
    if where == "too-old":
        return draw(st.integers(0, oldest - 1)), False
    return draw(st.integers(latest + 1, latest + 10 * 365 * 86400)), False


@st.composite
def v3_payloads(draw: st.DrawFn, max_age_hours: int, grace: int) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    trigger = draw(st.sampled_from([*V3_ACCOUNT_TRIGGERS, "message.created"]))
    event_id, grant_id = draw(ids), draw(ids)
    occurred, fresh = draw(event_times(max_age_hours))
    grant: dict[str, Any] = {
        "grant_id": grant_id,
        "integration_id": draw(ids),
        "provider": draw(st.sampled_from(["google", "microsoft", "imap", "icloud", "ews"])),
        "email": draw(st.emails()),
        "grant_updated_at": draw(st.none() | st.integers(1_500_000_000, NOW)),
    }
    reauthenticated = draw(st.booleans())
    if trigger == "grant.updated":
        grant["reauthentication_flag"] = reauthenticated
    if trigger == "grant.expired":
        grant["code"] = 25009
    payload = {
        "specversion": "1.0",
        "type": trigger,
        "source": "/nylas/system",
        "id": event_id,
        "time": occurred,
        "webhook_delivery_attempt": draw(st.integers(1, 5)),
        "data": {"application_id": draw(ids), "object": grant},
    }
    # message.created and a grant.updated that is no re-authentication are acknowledged and ignored.
    account_event = trigger != "message.created" and (trigger != "grant.updated" or reauthenticated)
    expected = messages(event_id, trigger, grant_id, occurred, grace) if account_event and fresh else []
    return payload, expected


@st.composite
def v2_payloads(draw: st.DrawFn, max_age_hours: int, grace: int) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    deltas: list[dict[str, Any]] = []
    expected: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, 6))):
        occurred, fresh = draw(event_times(max_age_hours))
        if draw(st.integers(0, 5)) == 0:  # a message delta in the same POST: ignored
            deltas.append({"date": occurred, "object": "message", "type": "message.created", "object_data": {}})
            continue
        trigger, account = draw(st.sampled_from(V2_ACCOUNT_TRIGGERS)), draw(ids)
        deltas.append(
            {
                "date": occurred,
                "object": "account",
                "type": trigger,
                "object_data": {
                    "namespace_id": f"ns-{account}",
                    "account_id": account,
                    "object": "account",
                    "attributes": None,
                    "id": account,
                    "metadata": None,
                },
            }
        )
        digest = hashlib.sha256(f"{trigger}\n{account}\n{occurred}".encode()).hexdigest()[:32]
        # Copies of one delta in a POST are one event (SPEC §2's event id): it is enqueued once.
        if fresh and not any(message[0] == f"v2-{digest}" for message in expected):
            expected.extend(messages(f"v2-{digest}", trigger, account, occurred, grace))
    return {"deltas": deltas}, expected


def hmac_hex(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


@st.composite
def deliveries(draw: st.DrawFn, max_age_hours: int, grace: int) -> Delivery:
    version = draw(st.sampled_from(["v3", "v2"]))
    payloads = v3_payloads if version == "v3" else v2_payloads
    payload, expected = draw(payloads(max_age_hours, grace))
    plain = json.dumps(payload, separators=(",", ":")).encode()
    form = draw(st.sampled_from(["json", "base64", "gzip"] if version == "v3" else ["json", "base64"]))
    wire = gzip.compress(plain, mtime=draw(st.integers(0, NOW))) if form == "gzip" else plain
    key, other_key = (V3_KEY, V2_KEY) if version == "v3" else (V2_KEY, V3_KEY)

    how = draw(st.sampled_from(HOW_SIGNED))
    genuine = hmac_hex(key, wire)
    signature: str | None = genuine
    if how == "wrong-key":
        signature = hmac_hex(draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in (V3_KEY, V2_KEY))), wire)
    elif how == "other-generation-key":
        signature = hmac_hex(other_key, wire)
    elif how == "altered-after-signing":
        if form == "gzip" and draw(st.booleans()):
            signature = hmac_hex(key, plain)  # the uncompressed bytes: not what Nylas signs
        else:
            altered = {**payload, "deltas": payload["deltas"][::-1] + payload["deltas"]} if version == "v2" else None
            if altered is None:
                altered = {**payload, "id": payload["id"] + "x"}
            forged = json.dumps(altered, separators=(",", ":")).encode()
            signature, wire = hmac_hex(key, wire), (gzip.compress(forged, mtime=0) if form == "gzip" else forged)
    elif how == "truncated":
        signature = genuine[: draw(st.integers(1, 63))]
    elif how == "missing":
        signature = None

    headers: dict[str, str] = {"Content-Type": "application/json", "User-Agent": "Nylas"}
    if signature is not None:
        name = "".join(c.upper() if draw(st.booleans()) else c for c in "x-nylas-signature")
        headers[name] = signature.upper() if draw(st.integers(0, 9)) == 0 else signature
    if form == "gzip":
        headers["Content-Encoding"] = draw(st.sampled_from(["gzip", "GZIP", " gzip "]))
    encoded = form != "json"
    event: dict[str, Any] = {
        "resource": "/webhook",
        "path": "/webhook",
        "httpMethod": "POST",
        "body": base64.b64encode(wire).decode() if encoded else wire.decode(),
        "isBase64Encoded": encoded,
    }
    if draw(st.integers(0, 4)) == 0:  # only the multi-value form, as a REST API may hand it over
        event["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
    else:
        event["headers"] = headers
    return Delivery(event, how, expected)


@dataclass
class Webhook:
    """The cold-started handler, what it sent to SQS by any send API, and the stack's settings."""

    handler: Any
    sent: SentBatches
    max_age_hours: int
    grace: int


class _Accepted:
    status_code = 200


def answer_sends(handler: Any, sent: SentBatches) -> None:
    """SQS accepts every send at once, answered here after `sent` recorded it (the real client's own request).

    Not moto: its queue scans every message it holds on each send, so 10,000 examples would slow down
    quadratically, and it allows one purge a minute. The handler tests deliver to moto's queue.
    """

    def accept(model: Any, **_: Any) -> tuple[_Accepted, dict[str, Any]]:
        if model.name == "SendMessageBatch":
            successful = [
                {"Id": entry["Id"], "MessageId": entry["Id"], "MD5OfMessageBody": ""} for entry in sent.calls[-1]
            ]
            return _Accepted(), {"Successful": successful, "Failed": []}
        return _Accepted(), {"MessageId": "m", "MD5OfMessageBody": ""}

    for operation in ("SendMessageBatch", "SendMessage"):
        handler.sqs.meta.events.register(f"before-call.sqs.{operation}", accept)


@pytest.fixture
def webhook(aws: ProvisionedStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    handler = cold_webhook(aws, monkeypatch, now=NOW)
    sent = SentBatches(handler)
    answer_sends(handler, sent)
    # Quiet logs: thousands of refusals would flood the captured output. The level belongs to the
    # service's shared logger, so it is restored: later tests (and the log-hygiene check) need its records.
    level = handler.logger.log_level
    handler.logger.setLevel("CRITICAL")
    yield Webhook(
        handler,
        sent,
        max_age_hours=int(aws.parameters["WebhookMaxAgeHours"]),
        grace=int(aws.parameters["GraceSeconds"]),
    )
    handler.logger.setLevel(level)


def check(webhook: Webhook, delivery: Delivery, context: FakeLambdaContext) -> None:
    """The property: a genuine delivery enqueues exactly its expected messages; anything else, nothing."""
    # Shown by --hypothesis-show-statistics: how the examples split, so a generator gone vacuous is visible.
    event(f"{delivery.how_signed}, {'some' if delivery.expected else 'no'} messages expected")
    webhook.sent.calls.clear()
    response = webhook.handler.lambda_handler(delivery.event, context)
    enqueued = Counter(
        (
            body["event_id"],
            body["trigger"],
            body["account_id"],
            body["occurred_at"],
            entry["MessageAttributes"]["stage"]["StringValue"],
            entry.get("DelaySeconds", 0),
        )
        for entry in webhook.sent.entries
        for body in [json.loads(entry["MessageBody"])]
    )
    if not delivery.genuine:
        # One assertion, one message: with verification off, a forged delivery either enqueues its events or
        # (an ignored type) is answered 200; whichever Hypothesis meets first, the mutant test knows the words.
        refused = not enqueued and response["statusCode"] == 401
        status = response["statusCode"]
        assert refused, f"{delivery.how_signed} delivery answered {status} and enqueued {sorted(enqueued)}"
        return
    assert response["statusCode"] == 200, response
    assert enqueued == Counter(delivery.expected), "a genuine delivery enqueued other messages than its events'"


EXAMPLES = {"normal": 200, "fuzz": 10_000}


def run_property(webhook: Webhook, context: FakeLambdaContext, examples: int, **options: Any) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        **options,
    )
    @given(delivery=deliveries(webhook.max_age_hours, webhook.grace))
    def property_holds(delivery: Delivery) -> None:
        check(webhook, delivery, context)

    property_holds()


def test_only_genuine_account_events_are_enqueued(webhook: Webhook, lambda_context: FakeLambdaContext) -> None:
    run_property(webhook, lambda_context, EXAMPLES["normal"])


@pytest.mark.fuzz
@pytest.mark.timeout(1800)
def test_only_genuine_account_events_are_enqueued_long(webhook: Webhook, lambda_context: FakeLambdaContext) -> None:
    run_property(webhook, lambda_context, EXAMPLES["fuzz"])


def _accept_any_signature(body: bytes, signature: str | None, keys: Any) -> frozenset[str]:
    return frozenset(version for version, key in keys.items() if key)


def _screen_nothing(received: Any, **_: Any) -> Any:
    return received


MUTANTS: dict[str, tuple[str, Callable[..., Any], str]] = {
    # mutant: (what is replaced in the webhook core, by what, words of the falsified assertion)
    "verification-disabled": ("signed_by", _accept_any_signature, "delivery answered"),
    "staleness-screen-disabled": ("screen", _screen_nothing, "other messages"),
}


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_the_property_catches_a_handler_that_is_broken(
    mutant: str, webhook: Webhook, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The property is not vacuous: switch off a safeguard and Hypothesis finds a delivery that breaks it."""
    name, replacement, words = MUTANTS[mutant]
    monkeypatch.setattr(webhook_core, name, replacement)
    with pytest.raises(AssertionError, match=words):
        # No shrinking (the first counterexample will do) and no example database (nothing replayed later).
        run_property(
            webhook,
            lambda_context,
            EXAMPLES["normal"],
            phases=[Phase.generate],
            database=None,
            report_multiple_bugs=False,
        )
