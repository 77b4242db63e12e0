"""The webhook's pure core: from an API Gateway request to verified, normalized account events (SPEC §2)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from account_doctor.models import FAILURE_TRIGGERS, AccountEvent, ApiVersion, from_epoch, parse_iso

SIGNATURE_HEADER = "x-nylas-signature"
MAX_BODY_BYTES = 256 * 1024
# Nylas truncates webhook payloads beyond 1 MB, so nothing legitimate decompresses to more.
MAX_DECOMPRESSED_BYTES = 1024 * 1024
# An event dated further ahead than this is implausible (clock skew between Nylas and AWS is seconds).
MAX_FUTURE_SECONDS = 15 * 60
# Nylas's challenge is a short token (a UUID); echoing more would let the endpoint serve anybody's text.
MAX_CHALLENGE_CHARS = 1024
# Deltas one v2 POST may carry. 256 KiB holds ~3,500 failure deltas: ~7,000 messages in ~700 sequential
# SendMessageBatch calls, far past the 10 s Nylas waits. 100 failures are 200 messages, 20 calls, well
# under a second; Nylas batches the account deltas of a few seconds, nowhere near that many.
MAX_V2_DELTAS = 100

V3_TRIGGERS = frozenset({"grant.expired", "grant.deleted", "grant.created", "grant.updated"})
V2_TRIGGERS = frozenset(
    {"account.invalid", "account.stopped", "account.sync_error", "account.running", "account.connected"}
)

# Bounds on what we copy into a queue message: ten messages of a batch must stay far below
# SQS's 256 KiB per call, so an absurd but signed payload gets a 400, not an SQS error and retries.
_MAX_ID = 256
_MAX_EMAIL = 320
_MAX_NAME = 128


class WebhookError(Exception):
    """A request the webhook refuses; `status` is the HTTP answer, the message says why."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(WebhookError):
    status = 400


class Unauthorized(WebhookError):
    status = 401


class PayloadTooLarge(WebhookError):
    status = 413


class NotConfigured(WebhookError):
    """No usable signing key: every webhook would be refused, so ask Nylas to retry while an operator fixes it."""

    status = 503


@dataclass(frozen=True)
class Webhook:
    """One verified POST: the account events to enqueue, and the types acknowledged but ignored."""

    api_version: ApiVersion
    events: tuple[AccountEvent, ...]
    ignored: tuple[str, ...]
    delivery_id: str | None = None  # v3 `id` (also for ignored types); v2: the first event's id
    stale: tuple[AccountEvent, ...] = ()  # account events too old or too far ahead to act on (see screen)

    @property
    def failures(self) -> int:
        return sum(1 for event in self.events if event.trigger in FAILURE_TRIGGERS)


def sign(body: bytes, secret: str) -> str:
    """The X-Nylas-Signature Nylas sends for `body`: lowercase hex HMAC-SHA256 keyed by the secret."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def header(event: Mapping[str, Any], name: str) -> str | None:
    """A request header by case-insensitive name, from `headers` or else `multiValueHeaders`."""
    wanted = name.lower()
    headers = event.get("headers")
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if isinstance(key, str) and key.lower() == wanted and isinstance(value, str):
                return value
    multi = event.get("multiValueHeaders")
    if isinstance(multi, Mapping):
        for key, values in multi.items():
            if isinstance(key, str) and key.lower() == wanted and isinstance(values, list) and values:
                first = values[0]
                return first if isinstance(first, str) else None
    return None


def challenge(event: Mapping[str, Any]) -> str:
    """The value Nylas asks us to echo when it registers the endpoint (GET ?challenge=X)."""
    params = event.get("queryStringParameters")
    value = params.get("challenge") if isinstance(params, Mapping) else None
    if not isinstance(value, str) or not value:
        raise BadRequest("GET /webhook needs a challenge query parameter (sent by Nylas when it registers the URL)")
    if len(value) > MAX_CHALLENGE_CHARS:
        raise BadRequest(f"the challenge must be at most {MAX_CHALLENGE_CHARS} characters")
    return value


def raw_body(event: Mapping[str, Any]) -> bytes:
    """The request bytes as Nylas sent them, undoing API Gateway's base64 (isBase64Encoded)."""
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise BadRequest("the request body is not text")
    if len(body) > MAX_BODY_BYTES * 4 // 3 + 4:  # too big even as base64, before spending anything on it
        raise PayloadTooLarge(f"the body exceeds {MAX_BODY_BYTES} bytes")
    if event.get("isBase64Encoded") is True:
        try:
            data = base64.b64decode(body, validate=True)
        except ValueError as error:
            raise BadRequest("the body is marked base64-encoded but is not valid base64") from error
    else:
        try:
            data = body.encode("utf-8")
        except UnicodeEncodeError as error:
            raise BadRequest("the body is not valid UTF-8 text") from error
    if len(data) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body exceeds {MAX_BODY_BYTES} bytes")
    return data


def signed_by(body: bytes, signature: str | None, keys: Mapping[ApiVersion, str]) -> frozenset[ApiVersion]:
    """The API generations whose key produced `signature` over `body`, compared in constant time.

    Every configured key is tried, so the body stays untrusted (unparsed) until one matches;
    the payload's shape must then belong to a generation whose key matched. An empty key is
    never used: an HMAC under an empty key is one anybody can compute.
    """
    if not signature:  # signed_request refuses this first; kept so signed_by is safe on its own
        raise Unauthorized("missing X-Nylas-Signature header")
    usable = {version: key for version, key in keys.items() if key}
    if not usable:
        raise NotConfigured("no Nylas signing secret is configured: set webhook_secret (v3) or client_secret (v2)")
    given = signature.strip().lower().encode("utf-8", "replace")
    matched = frozenset(
        version
        for version, key in usable.items()
        if hmac.compare_digest(sign(body, key).encode("ascii"), given)  # evaluated for every key
    )
    if not matched:
        raise Unauthorized("X-Nylas-Signature does not match the body")
    return matched


def decompress(body: bytes, limit: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Gunzips a compressed v3 delivery, refusing to produce more than `limit` bytes (gzip bombs)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise BadRequest("Content-Encoding is gzip but the body is not valid gzip") from error
    if len(data) > limit:
        raise PayloadTooLarge(f"the body decompresses to more than {limit} bytes")
    if not inflater.eof or inflater.unused_data:
        raise BadRequest("the gzip body is truncated or has trailing data")
    return data


@dataclass(frozen=True, repr=False)
class SignedRequest:
    """A POST's bytes as Nylas sent them and the signature it claims; nothing in it is trusted yet."""

    body: bytes
    signature: str
    encoding: str = ""  # Content-Encoding, trimmed and lower-cased; gzip is v3 compressed delivery

    @property
    def compressed(self) -> bool:
        return self.encoding == "gzip"


def signed_request(event: Mapping[str, Any]) -> SignedRequest:
    """The parts of a POST /webhook that need no key: an unsigned request is refused before any secret is read."""
    body = raw_body(event)
    signature = header(event, SIGNATURE_HEADER)
    if not signature:
        raise Unauthorized("missing X-Nylas-Signature header")
    return SignedRequest(body, signature, (header(event, "content-encoding") or "").strip().lower())


def verify(request: SignedRequest, *, webhook_secret: str, client_secret: str) -> Webhook:
    """Checks the signature with the keys, then parses and normalizes; raises a WebhookError carrying the status."""
    body = request.body
    if request.compressed:
        # Compressed delivery is a v3 feature: the signature covers the compressed bytes.
        matched = signed_by(body, request.signature, {"v3": webhook_secret})
        body = decompress(body)
    else:
        matched = signed_by(body, request.signature, {"v3": webhook_secret, "v2": client_secret})
        # Only now: whatever a request says about itself, a body not signed by Nylas is a 401.
        if request.encoding not in ("", "identity"):
            raise BadRequest(f"unsupported Content-Encoding {request.encoding[:32]!r}")
    payload = parse_json(body)
    version: ApiVersion = "v2" if "deltas" in payload else "v3"
    if version not in matched:
        key = "client_secret" if version == "v2" else "webhook_secret"
        raise Unauthorized(f"a {version} payload must be signed with the {key}")
    return normalize_v2(payload) if version == "v2" else normalize_v3(payload)


def screen(webhook: Webhook, *, now: float, max_age_hours: int) -> Webhook:
    """Moves the account events dated implausibly (SPEC §2) from `events` to `stale`.

    More than MAX_FUTURE_SECONDS ahead of `now`, or more than `max_age_hours` behind it: a replayed or
    long-delayed delivery is acknowledged but not acted on, so a signed webhook captured last month
    cannot email anyone again. The reconciliation sweep finds any failure that is genuinely still there.
    """
    oldest, latest = now - max_age_hours * 3600, now + MAX_FUTURE_SECONDS
    fresh: list[AccountEvent] = []
    stale: list[AccountEvent] = []
    for event in webhook.events:
        (fresh if oldest <= parse_iso(event.occurred_at).timestamp() <= latest else stale).append(event)
    if not stale:
        return webhook
    return replace(webhook, events=tuple(fresh), stale=(*webhook.stale, *stale))


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise BadRequest("the body is not valid JSON") from error
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    return payload


def normalize_v3(payload: Mapping[str, Any]) -> Webhook:
    """A v3 CloudEvents-style notification: grant.* become account events, anything else is ignored."""
    trigger = _required_text(payload, "type", _MAX_NAME)
    # The id becomes the log correlation id even when the type is ignored: the same rule as every other id.
    delivery_id = _optional_text(payload, "id", _MAX_ID)
    if trigger not in V3_TRIGGERS:
        return Webhook("v3", (), (trigger,), delivery_id)
    data = _object(payload, "data")
    grant = _object(data, "object", where="data.")
    if trigger == "grant.updated" and grant.get("reauthentication_flag") is not True:
        # Only a re-authentication says the account recovered; other updates are settings changes.
        return Webhook("v3", (), (trigger,), delivery_id)
    event = AccountEvent(
        event_id=_required_text(payload, "id", _MAX_ID),
        api_version="v3",
        trigger=trigger,
        account_id=_required_text(grant, "grant_id", _MAX_ID, where="data.object."),
        occurred_at=_instant(payload, "time"),
        provider=_optional_text(grant, "provider", _MAX_NAME, where="data.object."),
        email=_optional_text(grant, "email", _MAX_EMAIL, where="data.object."),
        grant_updated_at=_optional_instant(grant, "grant_updated_at", where="data.object."),
    )
    return Webhook("v3", (event,), (), event.event_id)


def normalize_v2(payload: Mapping[str, Any]) -> Webhook:
    """A v2 notification: each account.* delta becomes an account event; other deltas are ignored."""
    deltas = payload.get("deltas")
    if not isinstance(deltas, list):
        raise BadRequest("deltas must be a list")
    if len(deltas) > MAX_V2_DELTAS:
        raise PayloadTooLarge(f"a v2 notification may carry at most {MAX_V2_DELTAS} deltas, this one has {len(deltas)}")
    events: list[AccountEvent] = []
    seen: set[str] = set()
    ignored: list[str] = []
    for index, delta in enumerate(deltas):
        where = f"deltas[{index}]."
        if not isinstance(delta, dict):
            raise BadRequest(f"deltas[{index}] must be an object")
        trigger = _required_text(delta, "type", _MAX_NAME, where=where)
        if trigger not in V2_TRIGGERS:
            ignored.append(trigger)
            continue
        data = _object(delta, "object_data", where=where)
        account_key = "account_id" if data.get("account_id") is not None else "id"
        account_id = _required_text(data, account_key, _MAX_ID, where=f"{where}object_data.")
        occurred_at = _instant(delta, "date", where=where)
        event_id = v2_event_id(trigger, account_id, delta["date"])
        if event_id in seen:  # the same delta twice in one POST is one event, enqueued once
            continue
        seen.add(event_id)
        events.append(
            AccountEvent(
                event_id=event_id,
                api_version="v2",
                trigger=trigger,
                account_id=account_id,
                occurred_at=occurred_at,
            )
        )
    return Webhook("v2", tuple(events), tuple(ignored), events[0].event_id if events else None)


def v2_event_id(trigger: str, account_id: str, date: float) -> str:
    """v2 deltas carry no id: this one is the same on every Nylas retry of the same delta."""
    seconds = int(date) if float(date).is_integer() else date
    digest = hashlib.sha256(f"{trigger}\n{account_id}\n{seconds}".encode()).hexdigest()
    return f"v2-{digest[:32]}"


def _object(parent: Mapping[str, Any], key: str, *, where: str = "") -> Mapping[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise BadRequest(f"{where}{key} must be an object")
    return value


def _required_text(parent: Mapping[str, Any], key: str, limit: int, *, where: str = "") -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{where}{key} must be a non-empty string")
    if len(value) > limit or not value.isprintable():
        raise BadRequest(f"{where}{key} must be printable text of at most {limit} characters")
    return value


def _optional_text(parent: Mapping[str, Any], key: str, limit: int, *, where: str = "") -> str | None:
    if parent.get(key) in (None, ""):
        return None
    return _required_text(parent, key, limit, where=where)


def _instant(parent: Mapping[str, Any], key: str, *, where: str = "") -> str:
    value = parent.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{where}{key} must be a Unix timestamp in seconds")
    try:
        # math.isfinite raises OverflowError for an int beyond any float (JSON allows 10**400).
        if not math.isfinite(value) or value < 0:
            raise BadRequest(f"{where}{key} must be a Unix timestamp in seconds")
        return from_epoch(value)
    except (OverflowError, OSError, ValueError) as error:
        raise BadRequest(f"{where}{key} is not a representable Unix timestamp") from error


def _optional_instant(parent: Mapping[str, Any], key: str, *, where: str = "") -> str | None:
    if parent.get(key) is None:
        return None
    return _instant(parent, key, where=where)
