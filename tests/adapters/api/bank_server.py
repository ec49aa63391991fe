"""A small HTTPS bank for the API adapter tests: mutual TLS, signed answers, scripted faults.

Independent of ``mock_bank`` on purpose (that one is a bank; this one is a test double that
can misbehave exactly when told). It listens on 127.0.0.1, does the TLS handshake in the
connection's own thread (so one stalled client never blocks the others), checks the
gateway's request signature, records every request it read, and answers each one with what
the test's ``script`` returns:

- :class:`Reply` — status, body, headers; signed by the bank's key unless told otherwise
  (unsigned, signed over other bytes, signed by another key, signed at another time);
- :class:`Stall` — read the request, then say nothing until released (read timeout);
- :class:`Reset` — read the request, then reset the connection (TCP RST);
- ``hold_before_body`` — read the headers but never the body (the client's write blocks).
"""

from __future__ import annotations

import base64
import contextlib
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from adapters.api.signing import request_string_to_sign, response_string_to_sign
from adapters.crypto.raw import RawSigner, RawVerifier
from gateway.ports import SignatureError


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    signed: bool = True
    sign_body: bytes | None = None  # sign these bytes instead of the body (tampering)
    signer: RawSigner | None = None  # sign with this key instead of the bank's
    clock_skew: int = 0  # sign with a timestamp this far from now


@dataclass
class Stall:
    seconds: float = 5.0


@dataclass
class Reset:
    pass


Action = Reply | Stall | Reset


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    signature_error: str | None


Script = Callable[[Received], Action]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    def _handle(self) -> None:
        bank = self.server.bank
        headers = {k: v for k, v in self.headers.items()}
        if bank.hold_before_body:
            bank.release.wait(10)
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        received = bank.check(self.command, self.path, headers, body)
        bank.requests.append(received)
        action = bank.script(received)
        self.close_connection = True
        if isinstance(action, Stall):
            bank.release.wait(action.seconds)
            return
        if isinstance(action, Reset):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        self.send_response(action.status)
        for name, value in bank.answer_headers(action, self.path).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(action.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(action.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    bank: TestBankServer

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.bank.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.bank.handshake_failures.append(f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(OSError):
                request.close()
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.bank.errors.append("handler error")


class TestBankServer:
    """The bank's side: its TLS context, its signing key and the gateway's public key."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        tls: ssl.SSLContext,
        signer: RawSigner,
        gateway_verifier: RawVerifier,
        script: Script | None = None,
        *,
        rng: random.Random,
    ) -> None:
        self.tls = tls
        self.signer = signer
        self.gateway_verifier = gateway_verifier
        self._rng = rng  # the test's seeded source: response nonces
        self._rng_lock = threading.Lock()  # connections are served by their own threads
        self.script: Script = script or (lambda r: Reply(500, b'{"code":"NO_SCRIPT"}'))
        self.requests: list[Received] = []
        self.handshake_failures: list[str] = []
        self.errors: list[str] = []
        self.hold_before_body = False
        self.release = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.bank = self
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def check(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Received:
        """Verify the gateway's request signature like the bank would."""
        try:
            folded = {k.lower(): v for k, v in headers.items()}
            self.gateway_verifier.check_key_id(folded["x-key-id"])
            message = request_string_to_sign(
                method, path, int(folded["x-timestamp"]), folded["x-nonce"], body
            )
            self.gateway_verifier.verify(message, base64.b64decode(folded["x-signature"]))
        except (KeyError, ValueError, SignatureError) as exc:
            return Received(method, path, headers, body, False, f"{type(exc).__name__}: {exc}")
        return Received(method, path, headers, body, True, None)

    def answer_headers(self, reply: Reply, path: str) -> dict[str, str]:
        headers = dict(reply.headers)
        if reply.signed:
            timestamp = int(time.time()) + reply.clock_skew
            with self._rng_lock:
                nonce_text = base64.urlsafe_b64encode(self._rng.randbytes(18)).decode("ascii")
            signed_body = reply.body if reply.sign_body is None else reply.sign_body
            message = response_string_to_sign(
                reply.status, path, timestamp, nonce_text, signed_body
            )
            signature = (reply.signer or self.signer).sign(message)
            headers.update(
                {
                    "X-Timestamp": str(timestamp),
                    "X-Nonce": nonce_text,
                    "X-Key-Id": (reply.signer or self.signer).key_id,
                    "X-Signature": base64.b64encode(signature).decode("ascii"),
                }
            )
        return headers

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def closed_port() -> int:
    """A loopback port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
