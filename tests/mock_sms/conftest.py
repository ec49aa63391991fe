"""Fixtures for the mock SMS centre: a centre factory (both APIs, a fault table, an
optional clock), a receipt sink that records every push, and a clock that tests move."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mock_sms import AliyunAccount, MockSmsCentre, SmsCentreConfig, TencentAccount
from mock_sms.faults import parse_faults


@dataclass
class Push:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ReceiptSink:
    """Records pushes; answers ``statuses`` in turn (then 200)."""

    pushes: list[Push] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    on_push: Callable[[Push], int] | None = None
    port: int = 0

    def url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.port}/receipts/{provider}"


@pytest.fixture
def sink() -> Iterator[ReceiptSink]:
    state = ReceiptSink()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            push = Push(self.path, dict(self.headers.items()), body)
            state.pushes.append(push)
            status = state.statuses.pop(0) if state.statuses else 200
            if state.on_push is not None:
                status = state.on_push(push)
            answer = b'{"code":0,"msg":"ok"}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


class ManualClock:
    """A clock for the centre (Unix seconds) that stands still until ``advance()``: what is
    due, pending or delivered then depends on the test, not on how fast the machine is.
    Starts at the wall clock's now, so dates and signature windows stay realistic."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


CentreFactory = Callable[..., MockSmsCentre]


@pytest.fixture
def make_centre(tmp_path: Path) -> Iterator[CentreFactory]:
    started: list[MockSmsCentre] = []

    def factory(
        faults: dict[str, Any] | None = None,
        *,
        sink: ReceiptSink | None = None,
        data_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
        **settings: Any,
    ) -> MockSmsCentre:
        aliyun_kw: dict[str, Any] = settings.pop("aliyun", {})
        tencent_kw: dict[str, Any] = settings.pop("tencent", {})
        config = SmsCentreConfig(
            data_dir=data_dir or tmp_path / f"sms{len(started)}",
            receipt_delay_seconds=settings.pop("receipt_delay_seconds", 0.05),
            late_receipt_seconds=settings.pop("late_receipt_seconds", 0.6),
            hold_seconds=settings.pop("hold_seconds", 1.0),
            aliyun=AliyunAccount(
                access_key_id="ak-mock",
                access_key_secret="aliyun-secret",
                callback_url=sink.url("aliyun-style") if sink else None,
                **aliyun_kw,
            ),
            tencent=TencentAccount(
                secret_id="sid-mock",
                secret_key="tencent-secret",
                sdk_app_id="1400000001",
                callback_url=sink.url("tencent-style") if sink else None,
                **tencent_kw,
            ),
            faults=parse_faults(faults),
            **settings,
        )
        centre = MockSmsCentre(config, clock=clock)
        centre.start()
        started.append(centre)
        return centre

    yield factory
    for centre in started:
        centre.stop()
