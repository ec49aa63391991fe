"""Support of the API transport tests: signed requests through the app, and a raw HTTP/1.1
client over a loopback socket for what a library client cannot do (send the headers of a
large body and read the answer before sending it, send a body that lies about its size)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.auth.client import signed_target
from gateway.auth.hmac_auth import sign_headers
from gateway.context import Context
from gateway.demo.banks import write_profiles
from gateway.demo.sms import write_sms_configs
from gateway.notifications.config import SmsConfig
from gateway.settings import DEV_API_CLIENTS
from tests.conftest import make_settings

CLIENT = "county-finance"
SECRET = DEV_API_CLIENTS[CLIENT].encode()


def transport_context(db_url: str, tmp_path: Path, dev_keys: Path) -> Iterator[Context]:
    """A gateway with every demo bank profile (the file banks, the ISO 20022 bank, the
    open-API bank that calls back; their servers are not needed) and the demo SMS
    provider (``aliyun-style``, its secret in ``tmp_path/sms/aliyun.secret``)."""
    profiles = write_profiles(tmp_path, dev_keys, 9, ports={"psbc": 9, "abc": 9})
    _, sms_file = write_sms_configs(tmp_path, gateway_port=9)
    context = Context.build(make_settings(db_url, profiles, sms_file=sms_file))  # type: ignore[arg-type]
    context.sms_config = SmsConfig.load(sms_file)
    try:
        yield context
    finally:
        context.close()


def signed_app(ctx: Context) -> Iterator[Signed]:
    with TestClient(create_app(ctx)) as client:
        yield Signed(client)


def assert_error_shape(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The answer has ``status`` and our error shape; returns the first error."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    errors = response.json()["errors"]
    assert errors
    for e in errors:
        assert set(e) >= {"seq", "field", "code", "message_zh", "message_en"}, e
        assert e["code"] and e["message_zh"] and e["message_en"], e
    if code is not None:
        assert errors[0]["code"] == code, errors
    first: dict[str, Any] = errors[0]
    return first


class Signed:
    """The app, every request signed by the upstream client (``gateway.auth``)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def get(self, target: str, headers: dict[str, Any] | None = None) -> Any:
        signed: dict[str, Any] = sign_headers(CLIENT, SECRET, "GET", signed_target(target))
        signed.update(headers or {})
        return self.client.get(target, headers=signed)

    def post(
        self,
        target: str,
        body: bytes | dict[str, Any],
        headers: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
    ) -> Any:
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        signed: dict[str, Any] = sign_headers(CLIENT, SECRET, "POST", signed_target(target), raw)
        signed.update(headers or {})
        for name in drop:
            signed.pop(name, None)
        return self.client.post(target, content=raw, headers=signed)


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client got to send before the answer
    closed: bool = False  # the server closed the connection after answering
    extra: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def status_code(self) -> int:
        return self.status

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def raw_request(
    base_url: str,
    method: str,
    target: str,
    headers: dict[str, str | bytes],
    body: Iterable[bytes] = (),
    *,
    chunked: bool = False,
    timeout: float = 60.0,
) -> RawAnswer:
    """Send the request line and headers, then the body chunks one by one (stopping as
    soon as the server has answered or stopped reading), then read the answer."""
    url = urlsplit(base_url)
    sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout)
    try:
        lines = [f"{method} {target} HTTP/1.1".encode(), f"Host: {url.netloc}".encode()]
        for name, value in headers.items():
            raw_value = value if isinstance(value, bytes) else value.encode("latin-1")
            lines.append(name.encode("latin-1") + b": " + raw_value)
        if chunked:
            lines.append(b"Transfer-Encoding: chunked")
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        sent = 0
        sock.settimeout(0.0)
        for chunk in body:
            if _answered(sock):
                break
            data = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
            try:
                sock.setblocking(True)
                sock.settimeout(timeout)
                sock.sendall(data)
            except OSError:
                break  # the server answered and closed
            finally:
                sock.settimeout(0.0)
            sent += len(chunk)
        else:
            if chunked:
                try:
                    sock.setblocking(True)
                    sock.sendall(b"0\r\n\r\n")
                except OSError:
                    pass
        sock.settimeout(timeout)
        return _read_answer(sock, sent)
    finally:
        sock.close()


def _answered(sock: socket.socket) -> bool:
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False
    except OSError:
        return True


def _read_answer(sock: socket.socket, sent: int) -> RawAnswer:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"the server closed without an answer (after {sent} bytes)")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    closed = False
    if headers.get("connection", "").lower() == "close":
        # the server said it closes: see that it does (a keep-alive one is not waited for)
        try:
            sock.settimeout(10.0)
            closed = sock.recv(1) == b""
        except OSError:
            closed = True
    return RawAnswer(status, headers, rest[:length], sent, closed)


def zeros(total: int, chunk: int = 64 * 1024) -> Iterable[bytes]:
    """``total`` bytes of JSON-ish filler, produced chunk by chunk (never held whole)."""
    block = b" " * chunk
    left = total
    while left > 0:
        n = min(chunk, left)
        yield block[:n]
        left -= n
