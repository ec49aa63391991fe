"""SFTP file transport (implements ``gateway.ports.FileTransport``) on paramiko.

Security
    The server's host key is **pinned**: it must equal the configured OpenSSH public key
    (a ``.pub`` line). An unknown or changed key raises :class:`HostKeyError` naming
    ``host:port`` and both SHA256 fingerprints, right after the key exchange and before we
    authenticate or send any data. There is no known_hosts file, no AutoAddPolicy, no SSH
    agent and no look-up in ``~/.ssh``: only the configured client key is offered.

Error classification (decided here, the only place that sees the wire)
    ==========================================  ========================================
    what failed                                 raised
    ==========================================  ========================================
    connect: refused, DNS, TCP timeout,         NeverSentError
    SSH banner/kex, authentication, opening
    the SFTP channel
    host key differs from the pinned key        HostKeyError
    put_atomic, before the temporary file is    NeverSentError (nothing of the file
    opened (stat of the final name, removing a  exists under any name yet)
    stale ``.<name>.part``)
    put_atomic, final name already exists       RemoteExistsError (an OutcomeUnknownError)
    put_atomic, while writing the temporary     OutcomeUnknownError (see below)
    file (connection lost, timeout, server
    error)
    put_atomic, the rename: connection lost,    OutcomeUnknownError: the rename may have
    timeout, no reply, refused                  happened; inquire with ``stat``
    stat / get / list: connection lost, time-   NeverSentError: they change nothing on
    out                                         the server, so repeating them is safe,
                                                which is what NeverSentError promises
                                                (after an upload the caller treats a
                                                failed look as an unknown outcome:
                                                docs/delivery-errors.md)
    stat / get / list / remove, and put_atomic  RemoteRefusedError / RemoteNotFoundError
    before the temporary file is opened: the
    server answered with an error status
    remove: connection lost, timeout            OutcomeUnknownError
    ==========================================  ========================================

    Why a failure while writing the temporary file is *OutcomeUnknownError*: strictly, the
    final name cannot exist yet (we send the rename only after the temporary file is
    complete) and the bank ignores dot-names, so this is "never sent" *if the server behaves
    as specified*. We do not bet a possible double payment on that: a server that picks up
    files regardless of the leading dot, or a proxy that replays, would break the
    assumption. Reporting "unknown" costs one inquiry (``stat`` of the final name); if the
    name is absent the gateway re-uploads under the same name.

    A transport-level failure (timeout, dropped connection) closes the session; the next
    operation on this object reconnects. The object never retries on its own.

Uploads use plain (non-pipelined) SFTP writes: with pipelined writes paramiko reads and
drops the status replies still outstanding when the file is closed, so a failed write could
go unnoticed. Each 32 KiB write waits for its reply (throughput is bounded by the round-trip
time); after closing, the temporary file's size is checked before the rename. Use one object
per thread.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import posixpath
import socket
import stat as stat_mode
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

import paramiko
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from paramiko.pkey import UnknownKeyType

from adapters.transports.errors import RemoteExistsError, RemoteNotFoundError, RemoteRefusedError
from gateway.ports import (
    AdapterError,
    HostKeyError,
    NeverSentError,
    OutcomeUnknownError,
    RemoteFile,
    TransportError,
)

log = structlog.get_logger(__name__)

#: Exceptions paramiko raises for both wire failures and SFTP status replies.
_PARAMIKO_ERRORS: Final = (paramiko.SSHException, paramiko.SFTPError, OSError, EOFError)

DEFAULT_MAX_FILE_BYTES: Final = 256 * 1024 * 1024


# --- keys --------------------------------------------------------------------------------


def fingerprint_sha256(key_blob: bytes) -> str:
    """OpenSSH-style fingerprint: ``SHA256:`` + unpadded base64 of SHA-256 of the key blob."""
    digest = base64.b64encode(hashlib.sha256(key_blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


@dataclass(frozen=True, slots=True)
class PinnedHostKey:
    """The one host key we accept, from an OpenSSH public key line."""

    key_type: str
    blob: bytes
    source: str

    @property
    def fingerprint(self) -> str:
        return fingerprint_sha256(self.blob)

    @classmethod
    def from_openssh_line(cls, line: str, source: str) -> PinnedHostKey:
        if line.startswith("-----BEGIN"):
            raise ValueError(
                f"{source}: this is a PEM file (a private key?); expected the server's "
                "OpenSSH public key line ('<type> <base64> [comment]')"
            )
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(f"{source}: not an OpenSSH public key line ('<type> <base64> …')")
        key_type, b64 = parts[0], parts[1]
        try:
            blob = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise ValueError(f"{source}: public key is not valid base64") from None
        try:
            key = paramiko.PKey.from_type_string(key_type, blob)
        except (paramiko.SSHException, UnknownKeyType, ValueError) as exc:
            raise ValueError(f"{source}: unsupported or broken {key_type} key: {exc}") from None
        if key.asbytes() != blob:
            raise ValueError(f"{source}: key blob does not match its type {key_type!r}")
        return cls(key_type=key.get_name(), blob=blob, source=source)

    @classmethod
    def from_file(cls, path: Path) -> PinnedHostKey:
        text = path.read_text(encoding="ascii")
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                return cls.from_openssh_line(line, str(path))
        raise ValueError(f"{path}: no public key line found")

    def host_key_algorithms(self) -> list[str]:
        """The SSH host key algorithm names that produce this key type."""
        if self.key_type == "ssh-rsa":
            return ["rsa-sha2-512", "rsa-sha2-256"]
        return [self.key_type]


def load_client_key(path: Path) -> paramiko.PKey:
    """The SFTP client's private key (OpenSSH or PEM, unencrypted): Ed25519, ECDSA or RSA."""
    data = path.read_bytes()
    try:
        loaded: object = serialization.load_ssh_private_key(data, password=None)
    except ValueError:
        try:
            loaded = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: cannot load the SFTP client key: {exc}") from None
    key_class: type[paramiko.PKey]
    if isinstance(loaded, ed25519.Ed25519PrivateKey):
        key_class = paramiko.Ed25519Key
    elif isinstance(loaded, ec.EllipticCurvePrivateKey):
        key_class = paramiko.ECDSAKey
    elif isinstance(loaded, rsa.RSAPrivateKey):
        key_class = paramiko.RSAKey
    else:
        raise ValueError(f"{path}: unsupported SFTP client key type {type(loaded).__name__}")
    return key_class.from_private_key(io.StringIO(data.decode("ascii")))


# --- helpers -----------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_name(name: str) -> None:
    if not name or name in {".", ".."} or "/" in name or "\x00" in name or name.startswith("."):
        raise ValueError(f"invalid remote file name {name!r}")


def _join(directory: str, name: str) -> str:
    return posixpath.join(directory, name)


def _size(attrs: paramiko.SFTPAttributes) -> int:
    return attrs.st_size if attrs.st_size is not None else -1


def _mtime(attrs: paramiko.SFTPAttributes) -> int | None:
    """The server's modification time (SFTP v3: whole seconds), when it sent one."""
    return int(attrs.st_mtime) if attrs.st_mtime is not None else None


# --- the transport -----------------------------------------------------------------------


class SftpTransport:
    """One SFTP session with a bank's file server (``gateway.ports.FileTransport``).

    ``timeout`` bounds connecting: TCP connect, SSH banner and key exchange, authentication
    and opening the SFTP channel together. ``operation_timeout`` bounds each wait for the
    server during an operation (the SSH channel timeout). Key files are read at
    construction, so a broken configuration fails early.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        client_key_path: str | Path,
        host_public_key_path: str | Path,
        *,
        timeout: float = 30.0,
        operation_timeout: float = 60.0,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        if timeout <= 0 or operation_timeout <= 0:
            raise ValueError("timeouts must be positive")
        self.host = host
        self.port = port
        self.username = username
        self.timeout = timeout
        self.operation_timeout = operation_timeout
        self.max_file_bytes = max_file_bytes
        self._client_key = load_client_key(Path(client_key_path))
        self.pinned_host_key = PinnedHostKey.from_file(Path(host_public_key_path))
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    # --- session ---

    def __enter__(self) -> SftpTransport:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session (safe to call twice); the next operation reconnects."""
        sftp, transport = self._sftp, self._transport
        self._sftp = None
        self._transport = None
        if sftp is not None:
            with contextlib.suppress(*_PARAMIKO_ERRORS):
                sftp.close()
        if transport is not None:
            transport.close()

    def _alive(self) -> bool:
        if self._sftp is None or self._transport is None:
            return False
        channel = self._sftp.get_channel()
        return self._transport.is_active() and channel is not None and not channel.closed

    def connect(self) -> None:
        """Open the session unless one is open; NeverSentError or HostKeyError on failure."""
        if self._alive():
            return
        self.close()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise NeverSentError(f"SFTP {self.where}: cannot connect: {_describe(exc)}") from exc
        # Each write waits for its reply; without TCP_NODELAY, Nagle's algorithm and delayed
        # ACKs add ~40 ms to every round trip (a 13 MB upload took 15 s instead of ~1 s).
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(sock)
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            transport.close()

        deadline = threading.Timer(self.timeout, expire)
        deadline.daemon = True
        try:
            self._secure(transport)
            deadline.start()
            sftp = self._handshake(transport, expired)
            if expired.is_set():  # the deadline fired just as the setup finished
                raise NeverSentError(f"SFTP {self.where}: session setup timed out")
        except AdapterError:
            transport.close()
            raise
        except _PARAMIKO_ERRORS as exc:
            transport.close()
            why = "timed out" if expired.is_set() else _describe(exc)
            raise NeverSentError(f"SFTP {self.where}: session setup failed: {why}") from exc
        finally:
            deadline.cancel()
        self._transport = transport
        self._sftp = sftp
        log.debug("sftp.connected", server=self.where, host_key=self.pinned_host_key.fingerprint)

    def _secure(self, transport: paramiko.Transport) -> None:
        for attr in ("banner_timeout", "handshake_timeout", "auth_timeout", "channel_timeout"):
            setattr(transport, attr, self.timeout)
        # Ask for the pinned key's algorithm first, so a server holding several host keys
        # shows the one we know; other types stay allowed so that a server which changed its
        # key type is reported as a changed key rather than as a failed negotiation.
        options = transport.get_security_options()
        offered = list(options.key_types)
        pinned = [a for a in self.pinned_host_key.host_key_algorithms() if a in offered]
        options.key_types = pinned + [a for a in offered if a not in pinned]

    def _handshake(
        self, transport: paramiko.Transport, expired: threading.Event
    ) -> paramiko.SFTPClient:
        done = threading.Event()
        started = time.monotonic()
        transport.start_client(event=done)
        if not done.wait(self.timeout) or expired.is_set():
            raise NeverSentError(
                f"SFTP {self.where}: SSH handshake timed out after {self.timeout:g} s"
            )
        if not transport.is_active():
            cause = transport.get_exception()
            why = _describe(cause) if cause is not None else "connection closed"
            elapsed = time.monotonic() - started
            raise NeverSentError(
                f"SFTP {self.where}: SSH handshake failed after {elapsed:.1f} s: {why}"
            )
        self._check_host_key(transport.get_remote_server_key())
        try:
            remaining = transport.auth_publickey(self.username, self._client_key)
        except paramiko.AuthenticationException as exc:
            raise NeverSentError(
                f"SFTP {self.where}: authentication as {self.username!r} with the configured "
                f"client key was refused: {_describe(exc)}"
            ) from exc
        if remaining:
            raise NeverSentError(
                f"SFTP {self.where}: server wants further authentication ({', '.join(remaining)})"
            )
        channel = transport.open_session(timeout=self.timeout)
        channel.settimeout(self.operation_timeout)
        channel.invoke_subsystem("sftp")
        return paramiko.SFTPClient(channel)

    def _check_host_key(self, key: paramiko.PKey) -> None:
        blob = key.asbytes()
        pinned = self.pinned_host_key
        if blob != pinned.blob:
            raise HostKeyError(
                f"SFTP {self.where}: host key mismatch: the server presented "
                f"{key.get_name()} {fingerprint_sha256(blob)}, the configured key is "
                f"{pinned.key_type} {pinned.fingerprint} ({pinned.source}). Refusing to "
                "connect. If the bank changed its key, confirm the new fingerprint with the "
                "bank out of band and update the bank profile."
            )

    def _client(self) -> paramiko.SFTPClient:
        self.connect()
        assert self._sftp is not None  # noqa: S101 - connect() either sets it or raises
        return self._sftp

    # --- classification ---

    def _is_status(self, exc: BaseException) -> bool:
        """True when ``exc`` is the server's answer (an SFTP status) on a live session."""
        return (
            isinstance(exc, OSError)
            and not isinstance(exc, TimeoutError | EOFError)
            and self._alive()
        )

    def _wire_failure(self, kind: type[TransportError], what: str, exc: BaseException) -> NoReturn:
        self.close()
        log.warning(
            "sftp.failed", server=self.where, what=what, error=_describe(exc), raised=kind.__name__
        )
        raise kind(f"SFTP {self.where}: {what}: {_describe(exc)}") from exc

    def _refused(self, what: str, exc: BaseException) -> NoReturn:
        kind = RemoteNotFoundError if isinstance(exc, FileNotFoundError) else RemoteRefusedError
        raise kind(f"SFTP {self.where}: {what}: server refused: {_describe(exc)}") from exc

    # --- operations ---

    def put_atomic(self, directory: str, name: str, data: bytes) -> None:
        """Write ``data`` to ``.<name>.part``, then rename it to ``name`` (never overwrites)."""
        _check_name(name)
        final = _join(directory, name)
        part = _join(directory, f".{name}.part")
        sftp = self._client()

        # Phase 0: nothing of this file exists anywhere yet.
        try:
            existing = self._stat(sftp, final)
        except _PARAMIKO_ERRORS as exc:
            if self._is_status(exc):
                self._refused(f"stat {final}", exc)
            self._wire_failure(NeverSentError, f"stat {final} before upload", exc)
        if existing is not None:
            raise RemoteExistsError(
                f"SFTP {self.where}: {final} already exists ({existing.size} bytes); "
                "not overwriting",
                existing=existing,
            )
        try:
            sftp.remove(part)
        except FileNotFoundError:
            pass
        except _PARAMIKO_ERRORS as exc:
            if self._is_status(exc):
                self._refused(f"remove stale {part}", exc)
            self._wire_failure(NeverSentError, f"remove stale {part}", exc)

        # Phase 1: the temporary dot-name (ignored by the bank). See the module docstring
        # for why a failure here is reported as an unknown outcome.
        try:
            with sftp.open(part, "wbx") as fh:
                fh.write(data)
            written = _size(sftp.stat(part))
        except _PARAMIKO_ERRORS as exc:
            if self._is_status(exc):
                raise OutcomeUnknownError(
                    f"SFTP {self.where}: writing {part}: server refused: {_describe(exc)}"
                ) from exc
            self._wire_failure(OutcomeUnknownError, f"writing {part}", exc)
        if written != len(data):
            raise OutcomeUnknownError(
                f"SFTP {self.where}: {part} is {written} bytes after writing {len(data)}"
            )

        # Phase 2: the rename (SSH_FXP_RENAME, which fails when the target exists).
        try:
            sftp.rename(part, final)
        except _PARAMIKO_ERRORS as exc:
            if not self._is_status(exc):
                self._wire_failure(OutcomeUnknownError, f"rename {part} -> {final}", exc)
            self._rename_refused(sftp, part, final, exc)
        log.info("sftp.put_atomic", server=self.where, path=final, size=len(data))

    def _rename_refused(
        self, sftp: paramiko.SFTPClient, part: str, final: str, exc: BaseException
    ) -> NoReturn:
        # The server answered, so the rename did not happen; find out whether the name is
        # taken (the usual reason, since SFTP v3 has no "already exists" status).
        try:
            existing = self._stat(sftp, final)
        except _PARAMIKO_ERRORS as exc2:
            self._wire_failure(OutcomeUnknownError, f"stat {final} after a refused rename", exc2)
        if existing is not None:
            # a stale dot-name is also removed by the next upload
            with contextlib.suppress(*_PARAMIKO_ERRORS):
                sftp.remove(part)
            raise RemoteExistsError(
                f"SFTP {self.where}: cannot rename to {final}: it already exists "
                f"({existing.size} bytes); not overwriting",
                existing=existing,
            ) from exc
        raise OutcomeUnknownError(
            f"SFTP {self.where}: rename {part} -> {final} refused: {_describe(exc)}"
        ) from exc

    @staticmethod
    def _stat(sftp: paramiko.SFTPClient, path: str) -> RemoteFile | None:
        try:
            attrs = sftp.stat(path)
        except FileNotFoundError:
            return None
        return RemoteFile(name=posixpath.basename(path), size=_size(attrs), mtime=_mtime(attrs))

    def stat(self, directory: str, name: str) -> RemoteFile | None:
        """The remote file, or None when it does not exist."""
        _check_name(name)
        path = _join(directory, name)
        sftp = self._client()
        try:
            return self._stat(sftp, path)
        except _PARAMIKO_ERRORS as exc:
            if self._is_status(exc):
                self._refused(f"stat {path}", exc)
            self._wire_failure(NeverSentError, f"stat {path}", exc)

    def get(self, directory: str, name: str) -> bytes:
        """The whole remote file (size checked against the server's stat)."""
        _check_name(name)
        path = _join(directory, name)
        sftp = self._client()
        try:
            with sftp.open(path, "rb") as fh:
                size = _size(fh.stat())
                if size > self.max_file_bytes:
                    raise TransportError(
                        f"SFTP {self.where}: {path} is {size} bytes, more than the "
                        f"{self.max_file_bytes} this transport reads"
                    )
                if size > 0:
                    fh.prefetch(size, max_concurrent_requests=64)
                data = fh.read()
        except _PARAMIKO_ERRORS as exc:
            if self._is_status(exc):
                self._refused(f"get {path}", exc)
            self._wire_failure(NeverSentError, f"get {path}", exc)
        if len(data) != size:
            raise NeverSentError(
                f"SFTP {self.where}: get {path}: read {len(data)} bytes, server said {size}"
            )
        return data

    def list(self, directory: str) -> list[RemoteFile]:
        """Regular files in ``directory`` by name, without dot-names (temporary files)."""
        sftp = self._client()
        try:
            entries = sftp.listdir_attr(directory)
        except _PARAMIKO_ERRORS as exc:
            if self._is_status(exc):
                self._refused(f"list {directory}", exc)
            self._wire_failure(NeverSentError, f"list {directory}", exc)
        files = [
            RemoteFile(name=a.filename, size=_size(a), mtime=_mtime(a))
            for a in entries
            if not a.filename.startswith(".")
            and (a.st_mode is None or stat_mode.S_ISREG(a.st_mode))
        ]
        return sorted(files, key=lambda f: f.name)

    def remove(self, directory: str, name: str) -> None:
        """Remove a remote file; a file that is already gone is not an error."""
        _check_name(name)
        path = _join(directory, name)
        sftp = self._client()
        try:
            sftp.remove(path)
        except FileNotFoundError:
            return
        except _PARAMIKO_ERRORS as exc:
            if self._is_status(exc):
                self._refused(f"remove {path}", exc)
            self._wire_failure(OutcomeUnknownError, f"remove {path}", exc)
