"""The bank's SFTP server (paramiko server mode), serving a chroot-like root directory.

- Public-key authentication only, for one configured user, against an authorized_keys file;
  passwords and keyboard-interactive are refused.
- Only the ``sftp`` subsystem on ``session`` channels; no shell, exec or forwarding.
- Paths are virtual: ``/`` is ``<data_dir>/sftp``; ``..`` never climbs above it (as under
  chroot) and a path whose real location (symlinks resolved) is outside the root is refused
  with permission denied.
- ``rename`` refuses to replace an existing target (like OpenSSH's ``SSH_FXP_RENAME``: it
  answers ``SSH_FX_FAILURE``); ``posix-rename@openssh.com`` replaces, as in OpenSSH.
- One thread per connection; :meth:`BankSFTPServer.stop` closes the listener and every
  transport and joins the threads.
- Fault hook points (:mod:`mock_bank.faults`): ``refuse_connection`` once per TCP connection
  accepted (reset at once, before the SSH banner); ``drop_mid_upload`` once per file opened
  for writing (the first write stores half its bytes, then the connection is dropped);
  ``lose_rename_reply`` once per successful rename or posix-rename (done, then the connection
  is dropped before the reply).

The filesystem-backed interface follows paramiko's own ``tests/_stub_sftp.py``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import os
import socket
import stat as stat_module
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, TypeVar

import paramiko
import structlog
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.sftp import (
    SFTP_FAILURE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_PERMISSION_DENIED,
)

from mock_bank.faults import FaultSchedule

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12

log = structlog.get_logger("mock_bank.sftp")

_ACCEPT_POLL_SECONDS: Final = 0.2
_AUTH_TIMEOUT_SECONDS: Final = 30.0
_KEY_TYPE_PREFIXES: Final = ("ssh-", "ecdsa-sha2-", "sk-")

T = TypeVar("T")


class _PathEscapeError(Exception):
    """The requested path resolves outside the SFTP root."""


def load_authorized_keys(path: Path) -> frozenset[bytes]:
    """The key blobs of an OpenSSH ``authorized_keys``-style file (``type base64 [comment]``
    per line; ``#`` comments and blank lines ignored; options before the type are skipped)."""
    blobs: set[bytes] = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        tokens = text.split()
        for index, token in enumerate(tokens[:-1]):
            if token.startswith(_KEY_TYPE_PREFIXES):
                try:
                    blobs.add(base64.b64decode(tokens[index + 1], validate=True))
                except (binascii.Error, ValueError) as exc:
                    raise ValueError(f"{path}:{lineno}: key is not base64") from exc
                break
        else:
            raise ValueError(f"{path}:{lineno}: no public key found")
    if not blobs:
        raise ValueError(f"{path}: no authorized keys")
    return frozenset(blobs)


class BankSSHServer(paramiko.ServerInterface):
    """Authentication and channel policy of one connection."""

    def __init__(self, *, username: str, authorized_keys: frozenset[bytes], peer: str) -> None:
        self._username = username
        self._authorized = authorized_keys
        self._peer = peer

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_none(self, username: str) -> int:
        return AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        log.warning("sftp_auth_refused", method="password", peer=self._peer)
        return AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if username == self._username and key.asbytes() in self._authorized:
            log.info(
                "sftp_auth_ok", user=username, peer=self._peer, key_fingerprint=key.fingerprint
            )
            return AUTH_SUCCESSFUL
        log.warning(
            "sftp_auth_refused",
            method="publickey",
            user=username,
            peer=self._peer,
            key_fingerprint=key.fingerprint,
        )
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        if name != "sftp":
            return False
        return super().check_channel_subsystem_request(channel, name)


def _apply_attr(local: str, attr: paramiko.SFTPAttributes, fd: int | None = None) -> None:
    """Apply permissions and times; ownership changes are ignored on purpose (the server
    may run as root; a client must not chown files)."""
    flags = getattr(attr, "_flags", 0)
    if flags & paramiko.SFTPAttributes.FLAG_PERMISSIONS and attr.st_mode is not None:
        mode = stat_module.S_IMODE(attr.st_mode)
        if fd is not None:
            os.fchmod(fd, mode)
        else:
            os.chmod(local, mode)
    if (
        flags & paramiko.SFTPAttributes.FLAG_AMTIME
        and attr.st_atime is not None
        and attr.st_mtime is not None
    ):
        times = (attr.st_atime, attr.st_mtime)
        if fd is not None:
            os.utime(fd, times)
        else:
            os.utime(local, times)


class _FileHandle(paramiko.SFTPHandle):
    """An open file; paramiko's default ``read``/``write`` use ``readfile``/``writefile``.

    ``drop_on_write`` (fault ``drop_mid_upload``): the first write stores only the first half
    of its bytes, then the connection is dropped; the partial file stays."""

    def __init__(
        self,
        flags: int,
        fileobj: IO[bytes],
        local: str,
        drop_on_write: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(flags)
        self.readfile: IO[bytes] = fileobj
        self.writefile: IO[bytes] = fileobj
        self.local = local
        self._drop_on_write = drop_on_write

    def write(self, offset: int, data: Buffer) -> int:
        if self._drop_on_write is None:
            result: int = super().write(offset, data)
            return result
        drop, self._drop_on_write = self._drop_on_write, None
        half = bytes(data)[: len(memoryview(data)) // 2]
        super().write(offset, half)
        with contextlib.suppress(OSError):
            self.writefile.flush()
        log.warning("fault_drop_mid_upload", path=self.local, written=len(half))
        drop()
        return SFTP_FAILURE

    def stat(self) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 0)

    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        try:
            _apply_attr(self.local, attr, self.readfile.fileno())
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 0)
        return SFTP_OK


class RootedSFTPServerInterface(paramiko.SFTPServerInterface):
    """A filesystem-backed SFTP interface confined to ``root``."""

    def __init__(
        self,
        server: paramiko.ServerInterface,
        *args: Any,
        root: Path,
        faults: FaultSchedule | None = None,
        drop: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(server, *args, **kwargs)
        self._root = os.path.realpath(root)
        self._faults = faults if faults is not None else FaultSchedule.never()
        self._drop = drop if drop is not None else (lambda: None)

    def _after_rename(self, result: T | int, old: str, new: str) -> T | int:
        """Hook point ``lose_rename_reply``: the rename is done; drop the connection so the
        reply never leaves."""
        if result == SFTP_OK and self._faults.should("lose_rename_reply"):
            log.warning(
                "fault_lose_rename_reply", old=self.canonicalize(old), new=self.canonicalize(new)
            )
            self._drop()
        return result

    # --- paths --------------------------------------------------------------------------------

    def _local(self, path: str) -> str:
        """The local path of a virtual path; raises :class:`_PathEscapeError` when its real
        location is outside the root."""
        if "\x00" in path:
            raise _PathEscapeError(path)
        virtual = self.canonicalize(path)  # normpath("/" + path): ".." stops at "/"
        local = os.path.join(self._root, virtual.lstrip("/"))
        real = os.path.realpath(local)
        if real != self._root and not real.startswith(self._root + os.sep):
            raise _PathEscapeError(path)
        return local

    def _guard(self, op: str, fn: Callable[[], T], *paths: str) -> T | int:
        try:
            return fn()
        except _PathEscapeError:
            log.warning("sftp_path_refused", op=op, paths=list(paths))
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 0)
        except ValueError:
            return SFTP_FAILURE

    # --- operations ---------------------------------------------------------------------------

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        def run() -> list[paramiko.SFTPAttributes]:
            local = self._local(path)
            out: list[paramiko.SFTPAttributes] = []
            for name in sorted(os.listdir(local)):
                try:
                    st = os.lstat(os.path.join(local, name))
                except FileNotFoundError:  # renamed or removed meanwhile (a ``.part`` file)
                    continue
                out.append(paramiko.SFTPAttributes.from_stat(st, filename=name))
            return out

        return self._guard("list_folder", run, path)

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        return self._guard(
            "stat", lambda: paramiko.SFTPAttributes.from_stat(os.stat(self._local(path))), path
        )

    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        return self._guard(
            "lstat", lambda: paramiko.SFTPAttributes.from_stat(os.lstat(self._local(path))), path
        )

    def open(
        self, path: str, flags: int, attr: paramiko.SFTPAttributes
    ) -> paramiko.SFTPHandle | int:
        def run() -> paramiko.SFTPHandle:
            local = self._local(path)
            mode = 0o666
            if attr is not None and attr.st_mode is not None:
                mode = stat_module.S_IMODE(attr.st_mode)
            fd = os.open(local, flags | getattr(os, "O_NOFOLLOW", 0), mode)
            try:
                if flags & os.O_WRONLY:
                    fmode = "ab" if flags & os.O_APPEND else "wb"
                elif flags & os.O_RDWR:
                    fmode = "a+b" if flags & os.O_APPEND else "r+b"
                else:
                    fmode = "rb"
                fileobj = os.fdopen(fd, fmode)
            except BaseException:
                os.close(fd)
                raise
            writing = bool(flags & (os.O_WRONLY | os.O_RDWR))
            if writing and self._faults.should("drop_mid_upload"):
                return _FileHandle(flags, fileobj, local, drop_on_write=self._drop)
            return _FileHandle(flags, fileobj, local)

        return self._guard("open", run, path)

    def remove(self, path: str) -> int:
        def run() -> int:
            local = self._local(path)
            os.remove(local)
            log.info("sftp_remove", path=self.canonicalize(path))
            return SFTP_OK

        return self._guard("remove", run, path)

    def rename(self, oldpath: str, newpath: str) -> int:
        """SSH_FXP_RENAME: fails (``SSH_FX_FAILURE``) when ``newpath`` exists.

        For regular files the no-replace move is atomic: ``link`` (fails with EEXIST) then
        ``unlink``; directories fall back to check-then-rename."""

        def run() -> int:
            old_local = self._local(oldpath)
            new_local = self._local(newpath)
            if not os.path.lexists(old_local):
                return SFTP_NO_SUCH_FILE
            if os.path.lexists(new_local):
                return SFTP_FAILURE
            if stat_module.S_ISREG(os.lstat(old_local).st_mode):
                try:
                    os.link(old_local, new_local, follow_symlinks=False)
                except FileExistsError:
                    return SFTP_FAILURE
                except OSError as exc:
                    if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK):
                        raise
                    os.rename(old_local, new_local)
                else:
                    os.unlink(old_local)
            else:
                os.rename(old_local, new_local)
            log.info("sftp_rename", old=self.canonicalize(oldpath), new=self.canonicalize(newpath))
            return SFTP_OK

        return self._after_rename(self._guard("rename", run, oldpath, newpath), oldpath, newpath)

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        def run() -> int:
            os.replace(self._local(oldpath), self._local(newpath))
            log.info(
                "sftp_posix_rename", old=self.canonicalize(oldpath), new=self.canonicalize(newpath)
            )
            return SFTP_OK

        return self._after_rename(
            self._guard("posix_rename", run, oldpath, newpath), oldpath, newpath
        )

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        def run() -> int:
            mode = 0o777
            if attr is not None and attr.st_mode is not None:
                mode = stat_module.S_IMODE(attr.st_mode)
            os.mkdir(self._local(path), mode)
            return SFTP_OK

        return self._guard("mkdir", run, path)

    def rmdir(self, path: str) -> int:
        def run() -> int:
            local = self._local(path)
            if os.path.realpath(local) == self._root:
                return SFTP_PERMISSION_DENIED
            os.rmdir(local)
            return SFTP_OK

        return self._guard("rmdir", run, path)

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        def run() -> int:
            _apply_attr(self._local(path), attr)
            return SFTP_OK

        return self._guard("chattr", run, path)


class BankSFTPServer:
    """A listening SFTP server: one accept thread and one thread per connection."""

    def __init__(
        self,
        *,
        root: Path,
        host: str,
        port: int,
        username: str,
        host_key: paramiko.PKey,
        authorized_keys: frozenset[bytes],
        faults: FaultSchedule | None = None,
    ) -> None:
        self.root = root
        self.faults = faults if faults is not None else FaultSchedule.never()
        self._host = host
        self._requested_port = port
        self._username = username
        self._host_key = host_key
        self._authorized = authorized_keys
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: dict[threading.Thread, paramiko.Transport | None] = {}
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the SFTP server is not listening")
        return self._port

    def connection_count(self) -> int:
        """Connection threads still running (a clean shutdown leaves none)."""
        with self._lock:
            return sum(1 for thread in self._connections if thread.is_alive())

    def start(self) -> None:
        if self._sock is not None:
            raise RuntimeError("already started")
        self.root.mkdir(parents=True, exist_ok=True)
        infos = socket.getaddrinfo(self._host, self._requested_port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
            sock.listen(16)
        except OSError:
            sock.close()
            raise
        sock.settimeout(_ACCEPT_POLL_SECONDS)
        self._sock = sock
        self._port = int(sock.getsockname()[1])
        self._requested_port = self._port  # started again after stop(): the same port
        self._stop.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="mock-bank-sftp-accept", daemon=True
        )
        self._accept_thread.start()
        log.info("sftp_listening", host=self._host, port=self._port)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
            self._accept_thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with self._lock:
            connections = dict(self._connections)
        for transport in connections.values():
            if transport is not None:
                transport.close()
        deadline = time.monotonic() + timeout
        for thread in connections:
            thread.join(max(0.0, deadline - time.monotonic()))
        log.info("sftp_stopped")

    def _accept_loop(self) -> None:
        assert self._sock is not None  # noqa: S101 - set before the thread starts
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                log.exception("sftp_accept_failed")
                time.sleep(_ACCEPT_POLL_SECONDS)
                continue
            if self.faults.should("refuse_connection"):
                log.warning("fault_refuse_connection", peer=f"{peer[0]}:{peer[1]}")
                _reset(conn)
                continue
            thread = threading.Thread(
                target=self._serve,
                args=(conn, f"{peer[0]}:{peer[1]}"),
                name=f"mock-bank-sftp-{peer[0]}:{peer[1]}",
                daemon=True,
            )
            with self._lock:
                self._connections[thread] = None
            thread.start()

    def _serve(self, conn: socket.socket, peer: str) -> None:
        me = threading.current_thread()
        transport: paramiko.Transport | None = None
        try:
            conn.settimeout(None)
            transport = paramiko.Transport(conn)
            with self._lock:
                self._connections[me] = transport
            if self._stop.is_set():
                return
            transport.add_server_key(self._host_key)
            transport.set_subsystem_handler(
                "sftp",
                paramiko.SFTPServer,
                RootedSFTPServerInterface,
                root=self.root,
                faults=self.faults,
                drop=lambda: _drop(conn),
            )
            server = BankSSHServer(
                username=self._username, authorized_keys=self._authorized, peer=peer
            )
            try:
                transport.start_server(server=server)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                log.info("sftp_handshake_failed", peer=peer, error=str(exc))
                return
            log.info("sftp_connected", peer=peer)
            started = time.monotonic()
            # Accepted channels must stay referenced: paramiko's Channel.__del__ closes a
            # channel that is garbage-collected, which would race the subsystem request.
            channels: list[paramiko.Channel] = []
            while not self._stop.is_set() and transport.is_active():
                if (
                    not transport.is_authenticated()
                    and time.monotonic() - started > _AUTH_TIMEOUT_SECONDS
                ):
                    log.warning("sftp_auth_timeout", peer=peer)
                    break
                channel = transport.accept(timeout=_ACCEPT_POLL_SECONDS)
                if channel is not None:
                    channels.append(channel)
                channels = [c for c in channels if not c.closed]
        except Exception:
            log.exception("sftp_connection_failed", peer=peer)
        finally:
            if transport is not None:
                transport.close()
            else:
                with contextlib.suppress(OSError):
                    conn.close()
            log.info("sftp_disconnected", peer=peer)
            with self._lock:
                self._connections.pop(me, None)


def _drop(conn: socket.socket) -> None:
    """Drop a connection from under its transport (faults): both directions shut at once, so
    nothing more is sent — not even a reply already decided."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


def _reset(conn: socket.socket) -> None:
    """Close a just-accepted connection with a TCP reset (fault ``refuse_connection``)."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        conn.close()
