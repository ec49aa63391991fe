"""A small upstream client: what the finance system does to talk to the gateway
(used by the demo and the tests; upstream implementers can read it as the reference)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from gateway.auth.hmac_auth import sign_headers


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
        headers = sign_headers(self.client_id, self.secret, method, target, body)
        if body:
            headers["Content-Type"] = "application/json"
        return self.http.request(method, target, content=body, headers=headers)

    def submit_batch(self, batch: dict[str, Any]) -> httpx.Response:
        body = json.dumps(batch, ensure_ascii=False).encode("utf-8")
        return self.request("POST", "/v1/batches", body)

    def batch(self, batch_no: str) -> httpx.Response:
        return self.request("GET", f"/v1/batches/{batch_no}")

    def items(self, batch_no: str, query: str = "") -> httpx.Response:
        target = f"/v1/batches/{batch_no}/items" + (f"?{query}" if query else "")
        return self.request("GET", target)
