"""The HTTP server of the mock SMS centre and ``MockSmsCentre``, its importable handle.

Routes (one server, both APIs): ``POST /aliyun/`` (Aliyun-style), ``POST /tencent/``
(Tencent-style), ``GET /healthz``, ``GET /summary`` (the ``summary()`` JSON). The server
never logs request bodies (they carry full numbers); its log lines carry masked numbers.

``timeout_after_accept``: the message is recorded and its receipt scheduled, then the
answer is held ``hold_seconds`` (the client times out first) and written only afterwards —
or dropped with the connection when the centre stops.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

from mock_sms import aliyun_api, tencent_api
from mock_sms.config import SmsCentreConfig
from mock_sms.faults import FaultSchedule
from mock_sms.service import ALIYUN, TENCENT, Answer, Centre
from mock_sms.store import MessageRecord

log = logging.getLogger("mock_sms")

MAX_BODY_BYTES = 64 * 1024
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class _Handler(BaseHTTPRequestHandler):
    centre: Centre  # set on the per-server subclass
    protocol_version = "HTTP/1.1"
    timeout = 120  # idle keep-alive connections
    server_version = "mock-sms/1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http %s", format % args)

    def _write(self, answer: Answer) -> None:
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
            self.wfile.flush()
        except OSError:  # the client went away (e.g. after its timeout): nothing to do
            self.close_connection = True

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if path == "/healthz":
            self._write(Answer(200, b'{"ok":true}', {"Content-Type": "application/json"}))
        elif path == "/summary":
            body = json.dumps(self.centre.store.summary(self.centre.clock())).encode()
            self._write(Answer(200, body, {"Content-Type": "application/json"}))
        else:
            self._write(Answer(404, b"{}", {"Content-Type": "application/json"}))

    def do_POST(self) -> None:
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit() or int(length_text) > MAX_BODY_BYTES:
            self.close_connection = True
            self._write(Answer(411, b"{}", {"Content-Type": "application/json"}))
            return
        body = self.rfile.read(int(length_text))
        path = urlsplit(self.path).path.rstrip("/")
        if path == "/aliyun":
            answer = aliyun_api.handle(self.centre, body)
        elif path == "/tencent":
            answer = tencent_api.handle(self.centre, dict(self.headers.items()), body)
        else:
            answer = Answer(404, b"{}", {"Content-Type": "application/json"})
        if answer.hold:
            log.info("answer_held seconds=%s", self.centre.config.hold_seconds)
            if self.centre.stopping.wait(self.centre.config.hold_seconds):
                self.close_connection = True
                return
        self._write(answer)


class MockSmsCentre:
    """The mock SMS centre: ``start()``, ``port``, ``base_url(provider)``, ``summary()``,
    ``stop()``. Also a context manager."""

    def __init__(self, config: SmsCentreConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._centre: Centre | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._log_handler: logging.Handler | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_handler = logging.FileHandler(self.config.log_path, encoding="utf-8")
        self._log_handler.setFormatter(logging.Formatter(_LOG_FORMAT))
        logger = logging.getLogger("mock_sms")
        logger.addHandler(self._log_handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
        centre = Centre(self.config, clock=self._clock)
        handler = type("Handler", (_Handler,), {"centre": centre})
        server = ThreadingHTTPServer((self.config.host, self.config.port), handler)
        server.daemon_threads = True
        self._centre, self._server = centre, server
        centre.pusher.start()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="mock-sms-http",
            daemon=True,
        )
        self._thread.start()
        self.config.port_file.write_text(f"{self.port}\n", encoding="ascii")
        log.info("started port=%d", self.port)

    def stop(self) -> None:
        centre, server = self._centre, self._server
        if centre is None or server is None:
            return
        centre.stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        centre.pusher.stop()
        log.info("stopped")
        centre.store.close()
        if self._log_handler is not None:
            logging.getLogger("mock_sms").removeHandler(self._log_handler)
            self._log_handler.close()
        self._centre = self._server = None

    def __enter__(self) -> MockSmsCentre:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- what tests and the demo ask ---------------------------------------------------------

    def _running(self) -> Centre:
        if self._centre is None:
            raise RuntimeError("the mock SMS centre is not running")
        return self._centre

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the mock SMS centre is not running")
        return int(self._server.server_address[1])

    def base_url(self, provider: str) -> str:
        """``http://host:port/aliyun/`` or ``…/tencent/`` for ``aliyun-style`` /
        ``tencent-style``."""
        path = {ALIYUN: "aliyun", TENCENT: "tencent"}.get(provider)
        if path is None:
            raise ValueError(f"unknown provider {provider!r}")
        return f"http://{self.config.host}:{self.port}/{path}/"

    def set_callback_url(self, provider: str, url: str | None) -> None:
        """Where receipts for ``provider`` go from now on (None: nowhere)."""
        self._running().set_callback_url(provider, url)

    @property
    def faults(self) -> FaultSchedule:
        return self._running().faults

    def summary(self) -> dict[str, int]:
        """``{"sent", "failed", "duplicates"}`` from the centre's own record."""
        return self._running().store.summary(self._clock())

    def messages(self) -> list[MessageRecord]:
        return self._running().store.messages()

    def refusals(self) -> list[tuple[str, str, str, str, bool]]:
        return self._running().store.refusals()

    def wait_receipts(self, timeout: float = 5.0) -> bool:
        """Wait until every scheduled receipt was pushed (or given up)."""
        return self._running().pusher.wait_idle(timeout)

    def clock_moved(self) -> None:
        """Say that the injected clock was moved forward: receipts now due are pushed at
        once (the pusher otherwise looks again only when it expected the next one due)."""
        self._running().pusher.wake()

    def receipt_stats(self) -> dict[str, int]:
        stats = self._running().pusher.stats
        return {
            "delivered": stats.delivered,
            "refused": stats.refused,
            "unsent": stats.unsent,
            "forged": stats.forged,
        }
