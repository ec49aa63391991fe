"""Build formats, signers and transports from a bank profile's plain configuration.

The gateway reads the bank-profile TOML and passes each table as a plain mapping. Every
builder rejects unknown names and unknown or missing keys with a ``ValueError`` that says
which one, so a typo in a profile fails at start-up instead of silently using a default.

Accepted configuration::

    format     {"format": "fw-gb18030-v1", "max_items_per_file": 50000}
               max_items_per_file is optional (default 50000)

    crypto     {"crypto": "rsa-pss-sha256", "own_key": "<path, PEM PKCS#8 private key>",
                "own_key_id": "<key-id written to our .sig files>",
                "peer_public_key": "<path, PEM SubjectPublicKeyInfo>",
                "peer_key_id": "<optional: required key-id of the bank's .sig files>"}

    transport  {"transport": "sftp", "host": "...", "port": 22, "username": "...",
                "client_key": "<path, OpenSSH private key>",
                "host_public_key": "<path, OpenSSH .pub line of the server's host key>",
                "timeout": 30.0, "operation_timeout": 60.0, "max_file_bytes": 268435456}
               port, timeout, operation_timeout and max_file_bytes are optional

Relative paths are resolved against ``base_dir`` when given (e.g. the profile's directory).
``build_transport`` returns an unconnected transport; use it as a context manager.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from adapters.crypto.detached import RSA_PSS_SHA256, DetachedSigner
from adapters.formats.fixed_width import FixedWidthGb18030Format
from adapters.transports.sftp import DEFAULT_MAX_FILE_BYTES, SftpTransport
from gateway.ports import BankFormat, FileTransport, Signer

_T = TypeVar("_T")


class _Config:
    """Typed, checked access to one configuration table."""

    def __init__(self, section: str, raw: Mapping[str, object]) -> None:
        self.section = section
        self.raw = raw
        self.used: set[str] = {section}
        self.kind = self.text(section)

    def error(self, message: str) -> ValueError:
        return ValueError(f"bank profile [{self.section}]: {message}")

    def _get(self, key: str, *, required: bool) -> object:
        self.used.add(key)
        if key in self.raw:
            return self.raw[key]
        if required:
            raise self.error(f"missing key {key!r}")
        return None

    def text(self, key: str) -> str:
        value = self._get(key, required=True)
        if not isinstance(value, str) or not value:
            raise self.error(f"{key!r} must be a non-empty string")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self._get(key, required=False)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.error(f"{key!r} must be a non-empty string")
        return value

    def integer(self, key: str, default: int) -> int:
        value = self._get(key, required=False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"{key!r} must be an integer")
        return value

    def number(self, key: str, default: float) -> float:
        value = self._get(key, required=False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(f"{key!r} must be a number")
        return float(value)

    def path(self, key: str, base_dir: Path | None) -> Path:
        path = Path(self.text(key))
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        return path

    def read(self, key: str, base_dir: Path | None) -> bytes:
        path = self.path(key, base_dir)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise self.error(f"{key!r}: cannot read {path}: {exc.strerror or exc}") from None

    def check_unknown(self) -> None:
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            raise self.error(f"unknown key(s) for {self.kind!r}: {', '.join(unknown)}")


def _build(
    section: str,
    config: Mapping[str, object],
    builders: Mapping[str, Callable[[_Config, Path | None], _T]],
    base_dir: Path | None,
) -> _T:
    cfg = _Config(section, config)
    builder = builders.get(cfg.kind)
    if builder is None:
        known = ", ".join(sorted(builders))
        raise cfg.error(f"unknown {section} {cfg.kind!r} (known: {known})")
    try:
        result = builder(cfg, base_dir)
        cfg.check_unknown()
    except ValueError as exc:
        message = str(exc)
        if message.startswith("bank profile ["):
            raise
        raise cfg.error(message) from exc
    return result


# --- formats -----------------------------------------------------------------------------


def _fw_gb18030_v1(cfg: _Config, base_dir: Path | None) -> BankFormat:
    fmt: BankFormat = FixedWidthGb18030Format(
        max_items_per_file=cfg.integer("max_items_per_file", 50_000)
    )
    return fmt


FORMATS: dict[str, Callable[[_Config, Path | None], BankFormat]] = {
    "fw-gb18030-v1": _fw_gb18030_v1,
}


def build_format(config: Mapping[str, object], *, base_dir: Path | None = None) -> BankFormat:
    """A bank format from ``{"format": name, ...}``."""
    return _build("format", config, FORMATS, base_dir)


# --- crypto ------------------------------------------------------------------------------


def _rsa_pss_sha256(cfg: _Config, base_dir: Path | None) -> Signer:
    signer: Signer = DetachedSigner(
        RSA_PSS_SHA256,
        cfg.read("own_key", base_dir),
        cfg.text("own_key_id"),
        cfg.read("peer_public_key", base_dir),
        peer_key_id=cfg.optional_text("peer_key_id"),
    )
    return signer


CRYPTO: dict[str, Callable[[_Config, Path | None], Signer]] = {
    "rsa-pss-sha256": _rsa_pss_sha256,
}


def build_signer(config: Mapping[str, object], *, base_dir: Path | None = None) -> Signer:
    """A signer from ``{"crypto": name, ...}``."""
    return _build("crypto", config, CRYPTO, base_dir)


# --- transports --------------------------------------------------------------------------


def _sftp(cfg: _Config, base_dir: Path | None) -> FileTransport:
    port = cfg.integer("port", 22)
    if not 1 <= port <= 65535:
        raise cfg.error(f"port {port} is not 1…65535")
    client_key = cfg.path("client_key", base_dir)
    host_public_key = cfg.path("host_public_key", base_dir)
    for key, path in (("client_key", client_key), ("host_public_key", host_public_key)):
        if not path.is_file():
            raise cfg.error(f"{key!r}: {path} is not a readable file")
    transport: FileTransport = SftpTransport(
        cfg.text("host"),
        port,
        cfg.text("username"),
        client_key,
        host_public_key,
        timeout=cfg.number("timeout", 30.0),
        operation_timeout=cfg.number("operation_timeout", 60.0),
        max_file_bytes=cfg.integer("max_file_bytes", DEFAULT_MAX_FILE_BYTES),
    )
    return transport


TRANSPORTS: dict[str, Callable[[_Config, Path | None], FileTransport]] = {
    "sftp": _sftp,
}


def build_transport(config: Mapping[str, object], *, base_dir: Path | None = None) -> FileTransport:
    """An unconnected file transport from ``{"transport": name, ...}``."""
    return _build("transport", config, TRANSPORTS, base_dir)
