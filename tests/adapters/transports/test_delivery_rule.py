"""The delivery rule (``docs/delivery-errors.md``) for the SFTP transport, with real
sockets: what fails before the first write of a file — a closed port, a server that
accepts and resets, one that does not speak SSH, one that refuses our key — is a
``NeverSentError`` and leaves nothing on the server; what fails once the file is being
written or renamed is an ``OutcomeUnknownError`` (the cases after the first write are in
``test_sftp.py``: dropped mid-write, lost rename reply, stalled write)."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from adapters.transports.sftp import SftpTransport
from gateway.ports import NeverSentError, OutcomeUnknownError
from tests.ports import reserve_port

if TYPE_CHECKING:
    from conftest import SftpTestServer

MakeTransport = Callable[..., SftpTransport]
NAME = "PAY_2026A00000000001_01.txt"
DATA = b"H FW01\r\n" * 4000


def _server(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(OSError):
                answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def _reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _not_ssh(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
    conn.close()


@pytest.fixture
def resetting_port() -> Iterator[int]:
    """Accepts every TCP connection and resets it at once (RST)."""
    yield from _server(_reset)


@pytest.fixture
def not_ssh_port() -> Iterator[int]:
    """Accepts, answers something that is not an SSH banner, closes."""
    yield from _server(_not_ssh)


def _attempts(transport: SftpTransport) -> list[Callable[[], object]]:
    return [
        transport.connect,
        lambda: transport.put_atomic("/inbox", NAME, DATA),
        lambda: transport.stat("/inbox", NAME),
        lambda: transport.list("/outbox"),
    ]


def test_a_closed_port(make_transport: MakeTransport, sftp_root: Path) -> None:
    transport = make_transport(port=reserve_port())
    for attempt in _attempts(transport):
        with pytest.raises(NeverSentError, match="cannot connect") as info:
            attempt()
        assert not isinstance(info.value, OutcomeUnknownError)
    assert os.listdir(sftp_root / "inbox") == []


def test_a_server_that_accepts_then_resets(
    make_transport: MakeTransport, resetting_port: int
) -> None:
    transport = make_transport(port=resetting_port, timeout=5.0)
    for attempt in _attempts(transport):
        # the reset may come while connecting or during the SSH handshake: never sent
        with pytest.raises(NeverSentError) as info:
            attempt()
        assert not isinstance(info.value, OutcomeUnknownError)


def test_a_server_that_does_not_speak_ssh(make_transport: MakeTransport, not_ssh_port: int) -> None:
    transport = make_transport(port=not_ssh_port, timeout=5.0)
    with pytest.raises(NeverSentError, match=r"handshake|session setup"):
        transport.put_atomic("/inbox", NAME, DATA)


def test_a_server_that_refuses_our_key(
    make_transport: MakeTransport, sftp_server: SftpTestServer, sftp_root: Path
) -> None:
    with pytest.raises(NeverSentError, match="authentication"):
        make_transport(username="nobody").put_atomic("/inbox", NAME, DATA)
    assert os.listdir(sftp_root / "inbox") == []
    del sftp_server


def test_a_connection_lost_once_the_file_is_being_written(
    make_transport: MakeTransport, sftp_server: SftpTestServer, sftp_root: Path
) -> None:
    sftp_server.faults.drop_on_write = True
    transport = make_transport()
    with transport, pytest.raises(OutcomeUnknownError) as info:
        transport.put_atomic("/inbox", NAME, DATA)
    assert not isinstance(info.value, NeverSentError)
