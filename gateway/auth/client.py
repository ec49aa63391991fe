"""A small upstream client: what the finance system does to talk to the gateway
(used by the demo and the tests; upstream implementers can read it as the reference).

Every request is signed (``gateway.auth.hmac_auth``) and declares its body's SHA-256 in
``X-Gateway-Content-SHA256``, so the gateway checks the signature before it reads the body.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from gateway.auth.hmac_auth import sign_digest, sign_headers

_STREAM_CHUNK = 1024 * 1024


def signed_target(url_or_target: str) -> str:
    """The target as the gateway signs it: the path percent-decoded, the query as sent."""
    parts = urlsplit(url_or_target)
    return unquote(parts.path) + (f"?{parts.query}" if parts.query else "")


class GatewayClient:
    def __init__(
        self, base_url: str, client_id: str, secret: bytes, *, timeout: float = 120.0
    ) -> None:
        self.client_id = client_id
        self.secret = secret
        self.http = httpx.Client(base_url=base_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, target: str, body: bytes = b"") -> httpx.Response:
        headers = sign_headers(self.client_id, self.secret, method, signed_target(target), body)
        return self.http.request(method, target, content=body, headers=headers)

    def submit_batch(self, batch: dict[str, Any]) -> httpx.Response:
        body = json.dumps(batch, ensure_ascii=False).encode("utf-8")
        return self.request("POST", "/v1/batches", body)

    def submit_batch_file(self, path: Path) -> httpx.Response:
        """Submit a batch from a JSON file without holding it in memory: hashed once,
        then streamed (the gateway has checked the signature before the first byte)."""
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(_STREAM_CHUNK), b""):
                digest.update(chunk)
        headers = sign_digest(
            self.client_id, self.secret, "POST", "/v1/batches", digest.hexdigest()
        )
        headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(path.stat().st_size)

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as f:
                yield from iter(lambda: f.read(_STREAM_CHUNK), b"")

        return self.http.post("/v1/batches", content=chunks(), headers=headers)

    def batch(self, batch_no: str) -> httpx.Response:
        return self.request("GET", f"/v1/batches/{batch_no}")

    def items(self, batch_no: str, query: str = "") -> httpx.Response:
        target = f"/v1/batches/{batch_no}/items" + (f"?{query}" if query else "")
        return self.request("GET", target)
