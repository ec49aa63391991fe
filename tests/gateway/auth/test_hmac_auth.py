"""The request-signature scheme, on pure data and a real database (the API tests cover it
over HTTP: ``tests/gateway/api/test_transport.py``)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from gateway.auth.hmac_auth import (
    H_CLIENT,
    H_CONTENT_SHA256,
    H_NONCE,
    H_SIGNATURE,
    H_TIMESTAMP,
    AuthError,
    sign_digest,
    sign_headers,
    string_to_sign,
    verify_request,
)


def test_string_to_sign_layout() -> None:
    assert string_to_sign("post", "/v1/batches?x=1", "1700000000", "n" * 16, "ab") == (
        b"POST\n/v1/batches?x=1\n1700000000\n" + b"n" * 16 + b"\nab"
    )


def test_signature_is_hmac_sha256_of_the_documented_string() -> None:
    body = b'{"a": 1}'
    headers = sign_headers("c", b"secret", "POST", "/v1/batches", body, timestamp=1, nonce="N" * 16)
    expected = hmac.new(
        b"secret",
        b"POST\n/v1/batches\n1\n" + b"N" * 16 + b"\n" + hashlib.sha256(body).hexdigest().encode(),
        hashlib.sha256,
    ).digest()
    assert headers["X-Gateway-Signature"] == base64.b64encode(expected).decode()
    assert headers["X-Gateway-Client"] == "c"


def test_nonces_are_fresh() -> None:
    a = sign_headers("c", b"s", "GET", "/x")["X-Gateway-Nonce"]
    b = sign_headers("c", b"s", "GET", "/x")["X-Gateway-Nonce"]
    assert a != b and len(a) >= 16


# --- the declared body digest (X-Gateway-Content-SHA256) --------------------------------


def test_sign_headers_declare_the_signed_digest() -> None:
    body = b'{"a": 1}'
    headers = sign_headers("c", b"secret", "POST", "/v1/batches", body, timestamp=1, nonce="N" * 16)
    assert headers[H_CONTENT_SHA256] == hashlib.sha256(body).hexdigest()
    assert headers["Content-Type"] == "application/json"
    same = sign_digest(
        "c",
        b"secret",
        "POST",
        "/v1/batches",
        headers[H_CONTENT_SHA256],
        timestamp=1,
        nonce="N" * 16,
    )
    assert {k: v for k, v in headers.items() if k != "Content-Type"} == same
    assert "Content-Type" not in sign_headers("c", b"s", "GET", "/x")


def _verify(sqlite_url: str, headers: dict[str, str], body_sha256: str | None) -> str:
    from gateway.kit.db import make_engine, make_session_factory

    engine = make_engine(sqlite_url)
    try:
        return verify_request(
            headers={k.lower(): v for k, v in headers.items()},
            method="POST",
            target="/v1/batches",
            body_sha256=body_sha256,
            secret_for={"c": b"secret"},
            window_seconds=300,
            session_factory=make_session_factory(engine),
        )
    finally:
        engine.dispose()


def test_verified_before_the_body_against_the_declared_digest(sqlite_url: str) -> None:
    body = b'{"a": 1}'
    headers = sign_headers("c", b"secret", "POST", "/v1/batches", body)
    assert _verify(sqlite_url, headers, None) == "c"


def test_body_other_than_declared_is_refused(sqlite_url: str) -> None:
    headers = sign_headers("c", b"secret", "POST", "/v1/batches", b'{"a": 1}')
    other = hashlib.sha256(b'{"a": 2}').hexdigest()
    with pytest.raises(AuthError) as info:
        _verify(sqlite_url, headers, other)
    assert info.value.code == "auth_content_digest" and info.value.field == H_CONTENT_SHA256


def test_without_declared_digest_the_body_digest_is_needed(sqlite_url: str) -> None:
    body = b'{"a": 1}'
    headers = sign_headers("c", b"secret", "POST", "/v1/batches", body)
    del headers[H_CONTENT_SHA256]
    with pytest.raises(AuthError) as info:
        _verify(sqlite_url, headers, None)
    assert info.value.code == "auth_missing" and info.value.field == H_CONTENT_SHA256
    assert _verify(sqlite_url, headers, hashlib.sha256(body).hexdigest()) == "c"


@pytest.mark.parametrize(
    ("header", "value", "code"),
    [
        (H_TIMESTAMP, "²", "auth_timestamp"),
        (H_TIMESTAMP, "¹³", "auth_timestamp"),
        (H_TIMESTAMP, "1" * 5000, "auth_timestamp"),
        (H_TIMESTAMP, "1700000000\n", "auth_timestamp"),
        (H_NONCE, "n" * 16 + "\n", "auth_nonce"),
        (H_CLIENT, "c" * 65, "auth_unknown_client"),
        (H_SIGNATURE, "A" * 44, "auth_signature"),
        (H_CONTENT_SHA256, "A" * 64, "auth_content_digest"),
    ],
)
def test_malformed_headers_are_auth_errors(
    sqlite_url: str, header: str, value: str, code: str
) -> None:
    headers = sign_headers("c", b"secret", "POST", "/v1/batches", b"{}")
    headers[header] = value
    with pytest.raises(AuthError) as info:
        _verify(sqlite_url, headers, hashlib.sha256(b"{}").hexdigest())
    assert info.value.code == code and info.value.field == header
