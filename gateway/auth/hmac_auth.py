"""Upstream authentication: per-client API keys with HMAC-SHA256 request signatures.

Every request carries::

    X-Gateway-Client:         <client id, 1–64 characters [A-Za-z0-9_.:-]>
    X-Gateway-Timestamp:      <unix time, seconds: 1–12 ASCII digits>
    X-Gateway-Nonce:          <16–64 characters [A-Za-z0-9_-], never reused>
    X-Gateway-Content-SHA256: <64 lowercase hex: SHA-256 of the raw body> (see below)
    X-Gateway-Signature:      <base64 HMAC-SHA256(secret, string_to_sign): 44 characters>

where ``string_to_sign`` is the five lines (joined by ``\\n``, no trailing newline)::

    METHOD
    /path?query            (the path as the server decodes it, then the query as sent)
    timestamp
    nonce
    hex SHA-256 of the raw body (of the empty string for GET)

``X-Gateway-Content-SHA256`` declares the fifth line up front. With it, the gateway checks
the signature *before it reads the body*, then hashes the body while it streams it and
refuses it (``auth_content_digest``, nothing stored) if it is not the declared one; a
request with a large body is authenticated before a byte of it is stored. The header is
optional for backward compatibility: without it, the gateway reads the body first (at most
1 MiB, ``docs/api-limits.md``) and checks the signature against its digest. The string to
sign is the same either way.

A request is refused unless every header is well-formed, the client is known, the
timestamp is within the window, the signature matches (constant-time compare), the body
is the one declared, and the nonce has not been seen from that client. Refused requests
change nothing. Each refusal names the header (``field``) and a code (``auth_*``).
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

_CLIENT = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_SIGNATURE = re.compile(r"[A-Za-z0-9+/]{43}=")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

H_CLIENT = "X-Gateway-Client"
H_TIMESTAMP = "X-Gateway-Timestamp"
H_NONCE = "X-Gateway-Nonce"
H_SIGNATURE = "X-Gateway-Signature"
H_CONTENT_SHA256 = "X-Gateway-Content-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class AuthError(Exception):
    """Why a request is not authenticated (``code`` is machine-readable, ``field`` the
    header at fault)."""

    def __init__(self, code: str, message_en: str, message_zh: str, field: str = "") -> None:
        super().__init__(message_en)
        self.code = code
        self.message_en = message_en
        self.message_zh = message_zh
        self.field = field


def string_to_sign(method: str, target: str, timestamp: str, nonce: str, body_sha256: str) -> bytes:
    return "\n".join([method.upper(), target, timestamp, nonce, body_sha256]).encode()


def signature(secret: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()


def sign_digest(
    client_id: str,
    secret: bytes,
    method: str,
    target: str,
    body_sha256: str,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The signature headers and the declared digest, for a body already hashed (a client
    that streams a large body from a file hashes it first)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_urlsafe(18)
    return {
        H_CLIENT: client_id,
        H_TIMESTAMP: ts,
        H_NONCE: nonce,
        H_CONTENT_SHA256: body_sha256,
        H_SIGNATURE: signature(secret, string_to_sign(method, target, ts, nonce, body_sha256)),
    }


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
    """Every header of an authenticated request (used by upstream clients, the demo,
    tests): the signature headers, the declared body digest, and for a body its
    ``Content-Type``. ``target`` is the path and query as the server sees them (the path
    percent-decoded)."""
    headers = sign_digest(
        client_id,
        secret,
        method,
        target,
        hashlib.sha256(body).hexdigest(),
        timestamp=timestamp,
        nonce=nonce,
    )
    if body:
        headers["Content-Type"] = "application/json"
    return headers


def declared_sha256(headers: dict[str, str]) -> str | None:
    """The body digest the request declares (``X-Gateway-Content-SHA256``), if any.
    ``headers`` have lower-case names. Raises AuthError when it is malformed."""
    declared = headers.get(H_CONTENT_SHA256.lower())
    if declared is None:
        return None
    if not _SHA256_HEX.fullmatch(declared):
        raise AuthError(
            "auth_content_digest",
            "X-Gateway-Content-SHA256 must be the 64 lowercase hex digits of the body's SHA-256",
            "X-Gateway-Content-SHA256 应为请求体 SHA-256 的64位小写十六进制",
            H_CONTENT_SHA256,
        )
    return declared


def content_mismatch() -> AuthError:
    return AuthError(
        "auth_content_digest",
        "the body is not the one declared in X-Gateway-Content-SHA256 (and signed)",
        "请求体与 X-Gateway-Content-SHA256 声明（并签名）的摘要不符",
        H_CONTENT_SHA256,
    )


def verify_request(
    *,
    headers: dict[str, str],
    method: str,
    target: str,
    body_sha256: str | None,
    secret_for: dict[str, bytes],
    window_seconds: int,
    session_factory: sessionmaker[Session],
    now: float | None = None,
) -> str:
    """Return the authenticated client id or raise AuthError. Records the nonce.

    ``headers`` have lower-case names. ``body_sha256``: the digest of the body read, or
    None before the body is read — then the request must declare it
    (``X-Gateway-Content-SHA256``), the signature is checked over the declared digest, and
    the caller compares the body with it while reading (:func:`content_mismatch`)."""
    client = headers.get(H_CLIENT.lower(), "")
    ts = headers.get(H_TIMESTAMP.lower(), "")
    nonce = headers.get(H_NONCE.lower(), "")
    sig = headers.get(H_SIGNATURE.lower(), "")
    if not (client and ts and nonce and sig):
        missing = next(
            h
            for h, v in (
                (H_CLIENT, client),
                (H_TIMESTAMP, ts),
                (H_NONCE, nonce),
                (H_SIGNATURE, sig),
            )
            if not v
        )
        raise AuthError(
            "auth_missing", "authentication headers are missing", "缺少认证信息", missing
        )
    if not _CLIENT.fullmatch(client) or (secret := secret_for.get(client)) is None:
        raise AuthError("auth_unknown_client", "unknown client", "未知的调用方", H_CLIENT)
    if not _TIMESTAMP.fullmatch(ts) or abs((now or time.time()) - int(ts)) > window_seconds:
        raise AuthError(
            "auth_timestamp",
            "timestamp is not Unix seconds within the allowed window",
            "请求时间戳格式错误或超出允许范围",
            H_TIMESTAMP,
        )
    if not _NONCE.fullmatch(nonce):
        raise AuthError("auth_nonce", "nonce is malformed", "随机数格式错误", H_NONCE)
    if not _SIGNATURE.fullmatch(sig):
        raise AuthError("auth_signature", "signature is malformed", "签名格式错误", H_SIGNATURE)
    declared = declared_sha256(headers)
    if body_sha256 is None:
        if declared is None:
            raise AuthError(
                "auth_missing",
                "X-Gateway-Content-SHA256 is required here",
                "此处必须提供 X-Gateway-Content-SHA256",
                H_CONTENT_SHA256,
            )
        body_sha256 = declared
    expected = signature(secret, string_to_sign(method, target, ts, nonce, body_sha256))
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        if declared is not None and declared != body_sha256:
            raise content_mismatch()
        raise AuthError("auth_signature", "signature does not match", "签名验证失败", H_SIGNATURE)
    if declared is not None and declared != body_sha256:
        raise content_mismatch()
    with session_factory() as session:
        try:
            session.add(RequestNonce(client_id=client, nonce=nonce, seen_at=utcnow()))
            session.commit()
        except IntegrityError:
            session.rollback()
            raise AuthError(
                "auth_replay", "nonce was already used", "重复的请求（随机数已使用）", H_NONCE
            ) from None
    return client


def purge_nonces(session: Session, older_than_seconds: int) -> int:
    cutoff = utcnow() - dt.timedelta(seconds=older_than_seconds)
    result = session.execute(delete(RequestNonce).where(RequestNonce.seen_at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]
