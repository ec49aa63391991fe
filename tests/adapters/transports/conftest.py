"""A small filesystem-backed SFTP server (paramiko server mode) for the transport tests.

Modelled on paramiko's ``tests/_stub_sftp.py``; independent of ``mock_bank`` on purpose. It
serves a temporary directory, authenticates one user by public key, records what happened
(auth attempts, SFTP operations) and can inject faults: drop the connection while a file is
being written, drop it right after a rename (the reply is lost), stall a write, or let a
competitor create the target just before a rename.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
import pytest

from adapters.transports.sftp import SftpTransport
from gateway.certs import DEV_KEY_FILES as K

USERNAME = "gateway"


@dataclass
class Faults:
    drop_on_write: bool = False  # close the connection at the first write request
    stall_on_write: float = 0.0  # sleep this long in the first write request
    drop_after_rename: bool = False  # rename, then close the connection without replying
    create_target_before_rename: bytes | None = None  # a competitor wins the race


@dataclass
class ServerRecord:
    auth_attempts: list[str] = field(default_factory=list)
    operations: list[tuple[str, str]] = field(default_factory=list)


class _Session(paramiko.ServerInterface):
    def __init__(self, server: SftpTestServer) -> None:
        self.server = server
        self.transport: paramiko.Transport | None = None

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        self.server.record.auth_attempts.append(username)
        if username == USERNAME and key.asbytes() == self.server.authorized_key.asbytes():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def drop(self) -> None:
        """Cut the connection like a network failure would (the transport notices EOF)."""
        if self.transport is not None:
            with contextlib.suppress(OSError):
                self.transport.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]


class _Handle(paramiko.SFTPHandle):
    def __init__(self, session: _Session, flags: int) -> None:
        super().__init__(flags)
        self.session = session
        self.path = ""

    def stat(self) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def write(self, offset: int, data: bytes) -> int:
        server = self.session.server
        server.record.operations.append(("write", self.path))
        faults = server.faults
        if faults.drop_on_write:
            faults.drop_on_write = False
            self.session.drop()
            return paramiko.SFTP_FAILURE
        if faults.stall_on_write:
            pause, faults.stall_on_write = faults.stall_on_write, 0.0
            time.sleep(pause)
        return super().write(offset, data)  # type: ignore[no-any-return]


class _Filesystem(paramiko.SFTPServerInterface):
    def __init__(self, session: _Session, *args: object, **kwargs: object) -> None:
        super().__init__(session, *args, **kwargs)
        self.session = session
        self.server = session.server

    def _real(self, path: str) -> str:
        return str(self.server.root) + self.canonicalize(path)

    def _errno(self, e: OSError) -> int:
        return paramiko.SFTPServer.convert_errno(e.errno)

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        self.server.record.operations.append(("list", path))
        real = self._real(path)
        try:
            out = []
            for name in os.listdir(real):
                attr = paramiko.SFTPAttributes.from_stat(os.stat(os.path.join(real, name)))
                attr.filename = name
                out.append(attr)
            return out
        except OSError as e:
            return self._errno(e)

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        self.server.record.operations.append(("stat", path))
        try:
            return paramiko.SFTPAttributes.from_stat(os.stat(self._real(path)))
        except OSError as e:
            return self._errno(e)

    lstat = stat

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> _Handle | int:
        self.server.record.operations.append(("open", path))
        real = self._real(path)
        try:
            fd = os.open(real, flags, 0o644)
        except OSError as e:
            return self._errno(e)
        if flags & os.O_WRONLY:
            mode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            mode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            mode = "rb"
        handle = _Handle(self.session, flags)
        handle.path = path
        handle.filename = real  # type: ignore[attr-defined]
        handle.readfile = os.fdopen(fd, mode)  # type: ignore[attr-defined]
        handle.writefile = handle.readfile  # type: ignore[attr-defined]
        return handle

    def remove(self, path: str) -> int:
        self.server.record.operations.append(("remove", path))
        try:
            os.remove(self._real(path))
        except OSError as e:
            return self._errno(e)
        return paramiko.SFTP_OK

    def rename(self, oldpath: str, newpath: str) -> int:
        self.server.record.operations.append(("rename", newpath))
        old, new = self._real(oldpath), self._real(newpath)
        faults = self.server.faults
        if faults.create_target_before_rename is not None:
            Path(new).write_bytes(faults.create_target_before_rename)
            faults.create_target_before_rename = None
        if os.path.exists(new):  # SSH_FXP_RENAME never replaces (like OpenSSH)
            return paramiko.SFTP_FAILURE
        try:
            os.rename(old, new)
        except OSError as e:
            return self._errno(e)
        if faults.drop_after_rename:
            faults.drop_after_rename = False
            self.session.drop()
        return paramiko.SFTP_OK

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        try:
            os.mkdir(self._real(path))
        except OSError as e:
            return self._errno(e)
        return paramiko.SFTP_OK


class SftpTestServer:
    """Listens on 127.0.0.1 (random port) in a thread; one paramiko Transport per client."""

    def __init__(self, root: Path, host_key: paramiko.PKey, authorized_key: paramiko.PKey) -> None:
        self.root = root
        self.host_key = host_key
        self.authorized_key = authorized_key
        self.faults = Faults()
        self.record = ServerRecord()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._transports: list[paramiko.Transport] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sftp-test-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._listener.settimeout(0.05)  # poll, so that stop() is noticed promptly
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            session = _Session(self)
            session.transport = transport
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _Filesystem)
            self._transports.append(transport)
            # asynchronous: negotiation runs in the transport's own thread
            transport.start_server(event=threading.Event(), server=session)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._listener.close()
        for transport in self._transports:
            transport.close()


def load_host_key(dev_keys: Path) -> paramiko.PKey:
    return paramiko.Ed25519Key.from_private_key_file(str(dev_keys / K.sftp_host_key))


def load_authorized_key(dev_keys: Path) -> paramiko.PKey:
    kind, blob = (dev_keys / K.sftp_client_pub).read_text().split()[:2]
    return paramiko.PKey.from_type_string(kind, base64.b64decode(blob))


@pytest.fixture
def sftp_root(tmp_path: Path) -> Path:
    root = tmp_path / "sftp-root"
    (root / "inbox").mkdir(parents=True)
    (root / "outbox").mkdir()
    return root


@pytest.fixture
def sftp_username() -> str:
    return USERNAME


@pytest.fixture
def sftp_server_factory(dev_keys: Path, sftp_root: Path) -> Iterator[Callable[..., SftpTestServer]]:
    """Start test servers on ``sftp_root``; ``host_key`` replaces the dev host key."""
    started: list[SftpTestServer] = []

    def start(host_key: paramiko.PKey | None = None) -> SftpTestServer:
        server = SftpTestServer(
            sftp_root,
            host_key if host_key is not None else load_host_key(dev_keys),
            load_authorized_key(dev_keys),
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def sftp_server(sftp_server_factory: Callable[..., SftpTestServer]) -> SftpTestServer:
    """A server with the development host key, which the transport pins."""
    return sftp_server_factory()


@pytest.fixture
def make_transport(
    dev_keys: Path, sftp_server: SftpTestServer
) -> Iterator[Callable[..., SftpTransport]]:
    """Build an SftpTransport to the test server; keyword arguments override defaults."""
    made: list[SftpTransport] = []

    def make(**overrides: object) -> SftpTransport:
        kwargs: dict[str, object] = {
            "host": "127.0.0.1",
            "port": sftp_server.port,
            "username": USERNAME,
            "client_key_path": dev_keys / K.sftp_client_key,
            "host_public_key_path": dev_keys / K.sftp_host_pub,
            "timeout": 5.0,
            "operation_timeout": 5.0,
            **overrides,
        }
        transport = SftpTransport(**kwargs)  # type: ignore[arg-type]
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()
