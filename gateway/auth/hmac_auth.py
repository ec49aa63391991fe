"""Upstream authentication: per-client API keys with HMAC-SHA256 request signatures.

Every request carries::

    X-Gateway-Client:    <client id>
    X-Gateway-Timestamp: <unix time, seconds>
    X-Gateway-Nonce:     <16–64 characters [A-Za-z0-9_-], never reused>
    X-Gateway-Signature: <base64 HMAC-SHA256(secret, string_to_sign)>

where ``string_to_sign`` is the five lines (joined by ``\\n``, no trailing newline)::

    METHOD
    /path?query            (exactly as sent)
    timestamp
    nonce
    hex SHA-256 of the raw body (of the empty string for GET)

A request is refused unless the client is known, the timestamp is within the window, the
signature matches (constant-time compare) and the nonce has not been seen from that client.
Refused requests change nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
import time

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway.auth.models import RequestNonce
from gateway.kit.clock import utcnow

_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

H_CLIENT = "X-Gateway-Client"
H_TIMESTAMP = "X-Gateway-Timestamp"
H_NONCE = "X-Gateway-Nonce"
H_SIGNATURE = "X-Gateway-Signature"


class AuthError(Exception):
    """Why a request is not authenticated (``code`` is machine-readable)."""

    def __init__(self, code: str, message_en: str, message_zh: str) -> None:
        super().__init__(message_en)
        self.code = code
        self.message_en = message_en
        self.message_zh = message_zh


def string_to_sign(method: str, target: str, timestamp: str, nonce: str, body_sha256: str) -> bytes:
    return "\n".join([method.upper(), target, timestamp, nonce, body_sha256]).encode()


def signature(secret: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()


def sign_headers(
    client_id: str,
    secret: bytes,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers for an authenticated request (used by upstream clients, the demo, tests)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_urlsafe(18)
    digest = hashlib.sha256(body).hexdigest()
    return {
        H_CLIENT: client_id,
        H_TIMESTAMP: ts,
        H_NONCE: nonce,
        H_SIGNATURE: signature(secret, string_to_sign(method, target, ts, nonce, digest)),
    }


def verify_request(
    *,
    headers: dict[str, str],
    method: str,
    target: str,
    body_sha256: str,
    secret_for: dict[str, bytes],
    window_seconds: int,
    session_factory: sessionmaker[Session],
    now: float | None = None,
) -> str:
    """Return the authenticated client id or raise AuthError. Records the nonce."""
    client = headers.get(H_CLIENT.lower(), "")
    ts = headers.get(H_TIMESTAMP.lower(), "")
    nonce = headers.get(H_NONCE.lower(), "")
    sig = headers.get(H_SIGNATURE.lower(), "")
    if not (client and ts and nonce and sig):
        raise AuthError("auth_missing", "authentication headers are missing", "缺少认证信息")
    secret = secret_for.get(client)
    if secret is None:
        raise AuthError("auth_unknown_client", "unknown client", "未知的调用方")
    if not ts.isdigit() or abs((now or time.time()) - int(ts)) > window_seconds:
        raise AuthError(
            "auth_timestamp", "timestamp outside the allowed window", "请求时间戳超出允许范围"
        )
    if not _NONCE.match(nonce):
        raise AuthError("auth_nonce", "nonce is malformed", "随机数格式错误")
    expected = signature(secret, string_to_sign(method, target, ts, nonce, body_sha256))
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        raise AuthError("auth_signature", "signature does not match", "签名验证失败")
    with session_factory() as session:
        try:
            session.add(RequestNonce(client_id=client, nonce=nonce, seen_at=utcnow()))
            session.commit()
        except IntegrityError:
            session.rollback()
            raise AuthError(
                "auth_replay", "nonce was already used", "重复的请求（随机数已使用）"
            ) from None
    return client


def purge_nonces(session: Session, older_than_seconds: int) -> int:
    cutoff = utcnow() - dt.timedelta(seconds=older_than_seconds)
    result = session.execute(delete(RequestNonce).where(RequestNonce.seen_at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]
