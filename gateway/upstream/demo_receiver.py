"""A stand-in for the upstream finance system's webhook endpoint, for the demo and tests.

It verifies every request as a receiver would, with its **own** reading of the Standard
Webhooks specification (standard library only, deliberately not ``gateway.upstream.signing``),
so a demo run shows the gateway's signatures checked by an independent implementation. It
acknowledges with 204, deduplicates on ``webhook-id`` as the specification asks, and can
refuse the first ``fail_first`` attempts of every message (503 with ``Retry-After: 0``) to
show retries. ``stats()`` says what it saw; it keeps no payloads, only ids and types.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections import Counter
from typing import Any

TOLERANCE_SECONDS = 300


def _authentic(key: bytes, headers: dict[str, str], body: bytes) -> str | None:
    """The message id when the request is an authentic, fresh webhook, else None."""
    msg_id = headers.get("webhook-id", "")
    ts = headers.get("webhook-timestamp", "")
    sigs = headers.get("webhook-signature", "")
    if not (msg_id and ts.isdigit() and sigs) or abs(time.time() - int(ts)) > TOLERANCE_SECONDS:
        return None
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    if any(hmac.compare_digest(expected.encode(), s.encode()) for s in sigs.split(" ")):
        return msg_id
    return None


class UpstreamReceiver:
    """A loopback webhook endpoint; use as a context manager or ``start``/``stop``."""

    def __init__(
        self, secret: str, *, fail_first: int = 0, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._key = base64.b64decode(secret.removeprefix("whsec_"))
        self.fail_first = fail_first
        self._lock = threading.Lock()
        self._attempts: Counter[str] = Counter()
        self._accepted: dict[str, str] = {}  # webhook-id → type
        self._duplicates = 0
        self._invalid = 0
        self._received = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra = receiver._take(headers, body)
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                del format, args  # quiet: the gateway's own logs tell the story

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _take(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        msg_id = _authentic(self._key, headers, body)
        with self._lock:
            self._received += 1
            if msg_id is None:
                self._invalid += 1
                return 401, {}
            self._attempts[msg_id] += 1
            if self._attempts[msg_id] <= self.fail_first:
                return 503, {"Retry-After": "0"}
            if msg_id in self._accepted:
                self._duplicates += 1  # already processed: acknowledge again, do nothing
                return 204, {}
            try:
                kind = str(json.loads(body).get("type", "?"))
            except (ValueError, AttributeError):
                return 400, {}
            self._accepted[msg_id] = kind
            return 204, {}

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/webhooks"

    def start(self) -> UpstreamReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> UpstreamReceiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        """``received`` requests, ``accepted`` distinct changes, ``duplicates`` (an accepted
        id sent again), ``invalid`` (bad or stale signature), ``by_type``."""
        with self._lock:
            return {
                "received": self._received,
                "accepted": len(self._accepted),
                "duplicates": self._duplicates,
                "invalid": self._invalid,
                "by_type": dict(Counter(self._accepted.values())),
            }
