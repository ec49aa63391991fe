"""Standard Webhooks signatures (https://www.standardwebhooks.com, specification 1.0.0).

Every webhook request carries three headers::

    webhook-id:         msg_…   the message id: fixed when the message is staged, the same
                                on every retry (the receiver's idempotency key)
    webhook-timestamp:  1674087231   integer Unix seconds of *this attempt*
    webhook-signature:  v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.{body}")>

``key`` is the secret's bytes (``whsec_<base64>`` decoded); during a secret rotation the
header holds one ``v1,…`` signature per secret, separated by spaces. The body is signed
exactly as sent (raw bytes, never re-serialised).

``verify`` is the receiver's side, here for the tests and as the reference for
``docs/webhooks.md``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence

from gateway.upstream.config import SECRET_PREFIX, secret_key

VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


class WebhookVerificationError(Exception):
    """The request is not an authentic, fresh webhook."""


def new_secret(nbytes: int = 32) -> str:
    """A fresh ``whsec_`` secret (give it to the upstream client and to the settings)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode()


def new_message_id() -> str:
    """A webhook message id: unique, never user-controlled, no ``.`` in it."""
    return "msg_" + secrets.token_hex(16)


def signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    if "." in msg_id:
        raise ValueError("a webhook id must not contain '.'")
    return msg_id.encode() + b"." + str(timestamp).encode() + b"." + body


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature."""
    mac = hmac.new(key, signed_content(msg_id, timestamp, body), hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(mac).decode()}"


def signature_header(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per key, space-separated."""
    if not keys:
        raise ValueError("no signing key")
    return " ".join(sign(k, msg_id, timestamp, body) for k in keys)


def webhook_headers(
    keys: Sequence[bytes], msg_id: str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header(keys, msg_id, ts, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """Check a received webhook; returns its id (to deduplicate on) or raises."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id", "")
    ts = lower.get("webhook-timestamp", "")
    sigs = lower.get("webhook-signature", "")
    if not (msg_id and ts and sigs):
        raise WebhookVerificationError("missing webhook headers")
    if not ts.isdigit():
        raise WebhookVerificationError("malformed webhook-timestamp")
    if abs((time.time() if now is None else now) - int(ts)) > tolerance_seconds:
        raise WebhookVerificationError("webhook-timestamp outside the tolerance")
    key = secret_key(secret)
    try:
        expected = sign(key, msg_id, int(ts), body).encode()
    except ValueError:
        raise WebhookVerificationError("malformed webhook-id") from None
    for candidate in sigs.split(" "):
        if candidate.startswith(VERSION + ",") and hmac.compare_digest(
            candidate.encode(), expected
        ):
            return msg_id
    raise WebhookVerificationError("no matching signature")
