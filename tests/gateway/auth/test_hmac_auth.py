"""The request-signature scheme, on pure data (the API tests cover it over HTTP)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from gateway.auth.hmac_auth import sign_headers, string_to_sign


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
