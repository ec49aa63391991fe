"""The open API's HTTPS server: mutual TLS, signed answers, and the HTTP fault hook points.

Built on the stdlib (``http.server`` + ``ssl``) rather than uvicorn, because the mock bank has
to misbehave *below* the application: close a connection before the TLS handshake
(``refuse_connection``) and hold an answer past the client's read timeout
(``timeout_after_apply``) while still stopping promptly. One thread per connection.

- TLS 1.2+ with the server certificate and key; a client certificate signed by
  ``client_ca`` is **required** (``CERT_REQUIRED``): without one the handshake fails and no
  request is read.
- One request per connection (``Connection: close`` on every answer), so every attempt of
  the gateway is a new connection and meets the ``refuse_connection`` hook point.
- Routes: ``POST /openapi/v1/disbursements``, ``GET /openapi/v1/disbursements/{serial}/{no}``,
  ``GET /openapi/v1/accounts/{payer_account}/movements?date=…[&cursor=…]``;
  other paths 404 ``NOT_FOUND``, other methods 405 ``METHOD_NOT_ALLOWED`` (after
  authentication, like everything under ``/openapi/v1``).
- Every answer, errors included, carries ``X-Timestamp``, ``X-Nonce``, ``X-Key-Id`` and
  ``X-Signature`` over the response string to sign (status, the request's path and query,
  the exact body).
"""

from __future__ import annotations

import contextlib
import re
import socket
import socketserver
import ssl
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import structlog

from mock_bank.api.service import ACCOUNTS_PATH, BASE_PATH, DISBURSEMENTS_PATH, ApiBank, Reply
from mock_bank.faults import FaultSchedule

log = structlog.get_logger("mock_bank.api.server")

#: Request bodies larger than this are refused (a 20 000-item batch is about 6 MB).
MAX_BODY_BYTES: Final = 64 * 1024 * 1024
HANDSHAKE_TIMEOUT_SECONDS: Final = 10.0
READ_TIMEOUT_SECONDS: Final = 30.0

_STATUS_PATH: Final = re.compile(rf"{DISBURSEMENTS_PATH}/([0-9A-Z]{{16}})/([0-9]{{1,2}})")
_MOVEMENTS_PATH: Final = re.compile(rf"{ACCOUNTS_PATH}/([^/]{{1,64}})/movements")


def server_ssl_context(server_cert: Path, server_key: Path, client_ca: Path) -> ssl.SSLContext:
    """TLS 1.2+, our certificate, client certificates required and checked against
    ``client_ca`` only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(server_cert), str(server_key))
    context.load_verify_locations(cafile=str(client_ca))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpsServer

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors found by http.server itself (a malformed request line, an unsupported
        method such as HEAD) are answered like any other: JSON, signed."""
        self.close_connection = True
        error = "INVALID_REQUEST" if code < 500 else "NOT_IMPLEMENTED"
        self._send(Reply.error(code, error, message), getattr(self, "path", ""), self.server.owner)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged by :meth:`_handle` (structlog), not by http.server."""

    def _headers(self) -> dict[str, str]:
        """Lower-case names; a repeated header's values are joined with ``, `` (RFC 9110),
        which no signing header accepts."""
        out: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            out[key] = f"{out[key]}, {value}" if key in out else value
        return out

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") is not None:
            return None
        if length is None:
            return b""
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return None
        return self.rfile.read(int(length))

    def _handle(self, method: str) -> None:
        started = time.monotonic()
        self.close_connection = True
        api: ApiServer = self.server.owner
        path = self.path
        body = self._read_body()
        headers = self._headers()
        if body is None:
            reply = Reply.error(400, "INVALID_REQUEST", "a Content-Length body is required")
        else:
            reply = api.dispatch(method, path, headers, body)
        if reply.hold_seconds > 0 and api.stopping.wait(reply.hold_seconds):
            return  # stopping: drop the held answer
        self._send(reply, path, api)
        log.info(
            "api_request",
            method=method,
            path=urlsplit(path).path,
            status=reply.status,
            request_id=headers.get("x-request-id"),
            ms=round((time.monotonic() - started) * 1000),
        )

    def _send(self, reply: Reply, path: str, api: ApiServer) -> None:
        signed = api.bank.signature_headers(reply.status, path, reply.body)
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in {**reply.headers, **signed}.items():
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()
        except OSError as exc:  # the client went away (e.g. after its read timeout)
            log.info("api_answer_not_delivered", status=reply.status, error=type(exc).__name__)


class _HttpsServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], owner: ApiServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN (DNS); the bank needs no name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """In the connection's thread: the fault hook, the TLS handshake, one request."""
        self.owner.serve_connection(request, client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("api_connection_failed")


class ApiServer:
    """The HTTPS listener in front of an :class:`ApiBank`."""

    def __init__(
        self,
        *,
        bank: ApiBank,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext,
        faults: FaultSchedule | None = None,
    ) -> None:
        self.bank = bank
        self._host = host
        self._requested_port = port
        self._ssl = ssl_context
        self._faults = faults if faults is not None else FaultSchedule.never()
        self.stopping = threading.Event()
        self._server: _HttpsServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the API server is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("already started")
        self.stopping.clear()
        self._server = _HttpsServer((self._host, self._requested_port), self)
        self._requested_port = self.port  # started again after stop(): the same port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="mock-bank-api",
            daemon=True,
        )
        self._thread.start()
        log.info("api_listening", host=self._host, port=self.port)

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # wake threads blocked reading from a slow client
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    # --- one connection -------------------------------------------------------------------

    def serve_connection(
        self, raw: socket.socket, client_address: Any, server: _HttpsServer
    ) -> None:
        if self._faults.should("refuse_connection"):
            log.warning("fault_fired", fault="refuse_connection", channel="api")
            # RST instead of FIN: the client sees the connection reset during the handshake
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raw.close()
            return
        raw.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        try:
            conn = self._ssl.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.warning("api_tls_refused", reason=getattr(exc, "reason", None) or str(exc))
            raw.close()
            return
        with self._lock:
            self._connections.add(conn)
        try:
            conn.settimeout(READ_TIMEOUT_SECONDS)
            _Handler(conn, client_address, server)
        except OSError as exc:
            log.info("api_connection_dropped", error=type(exc).__name__)
        finally:
            with self._lock:
                self._connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    # --- routing ----------------------------------------------------------------------------

    def dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit(path)
        route = parts.path
        if route != BASE_PATH and not route.startswith(f"{BASE_PATH}/"):
            return Reply.error(404, "NOT_FOUND")
        rejected = self.bank.authenticate(method, path, headers, body)
        if rejected is not None:
            log.warning("api_request_refused", code=rejected.code, reason=rejected.message)
            return Reply.error(rejected.status, rejected.code, rejected.message)
        if route == DISBURSEMENTS_PATH:
            if method != "POST":
                return Reply.error(405, "METHOD_NOT_ALLOWED")
            return self.bank.submit(headers, body)
        moves = _MOVEMENTS_PATH.fullmatch(route)
        if moves is not None:
            if method != "GET":
                return Reply.error(405, "METHOD_NOT_ALLOWED")
            return self.bank.movements(moves.group(1), parts.query)
        match = _STATUS_PATH.fullmatch(route)
        if match is None:
            return Reply.error(404, "NOT_FOUND")
        if method != "GET":
            return Reply.error(405, "METHOD_NOT_ALLOWED")
        return self.bank.inquire(match.group(1), int(match.group(2)))
