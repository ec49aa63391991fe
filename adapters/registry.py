"""Build formats, signers and transports from a bank profile's plain configuration.

The gateway reads the bank-profile TOML and passes each table as a plain mapping. Every
builder rejects unknown names and unknown or missing keys with a ``ValueError`` that says
which one, so a typo in a profile fails at start-up instead of silently using a default.

Accepted configuration::

    format     {"format": "fw-gb18030-v1", "max_items_per_file": 50000}
               max_items_per_file is optional (default 50000)
               {"format": "iso20022-v1", "bank_id": "HNRCU", "payer_name": "...",
                "max_items_per_file": 50000}
               bank_id (DbtrAgt id, 1…35 characters) is required; payer_name (used when
               the request header has none) and max_items_per_file are optional

    crypto     {"crypto": "rsa-pss-sha256", "own_key": "<path, PEM PKCS#8 private key>",
                "own_key_id": "<key-id written to our .sig files>",
                "peer_public_key": "<path, PEM SubjectPublicKeyInfo>",
                "peer_key_id": "<optional: required key-id of the bank's .sig files>"}

    transport  {"transport": "sftp", "host": "...", "port": 22, "username": "...",
                "client_key": "<path, OpenSSH private key>",
                "host_public_key": "<path, OpenSSH .pub line of the server's host key>",
                "timeout": 30.0, "operation_timeout": 60.0, "max_file_bytes": 268435456}
               port, timeout, operation_timeout and max_file_bytes are optional

    api        {"api": "openapi-v1", "base_url": "https://host[:port]", "client_id": "...",
                "client_cert": "<path, PEM>", "client_key": "<path, PEM>",
                "server_ca": "<path, PEM: the only trust anchor for the bank's server>",
                "connect_timeout": 10.0, "read_timeout": 60.0, "write_timeout": 60.0,
                "encrypt": "none" | "SM4-CBC", "sm4_key_id": "...",
                "sm4_key_file": "<path, 32 hex digits>", "payer_name": "...",
                "max_items_per_request": 50000, "max_response_bytes": 67108864,
                "crypto": {<the profile's [crypto] table>}}
               api defaults to "openapi-v1"; sm4_key_id and sm4_key_file are required with
               (and refused without) encrypt = "SM4-CBC"; payer_name (used when the request
               header has none), the timeouts and the limits are optional; crypto is checked
               by adapters.crypto.config (own_key, own_key_id and peer_public_key needed)

Relative paths are resolved against ``base_dir`` when given (e.g. the profile's directory).
``build_transport`` returns an unconnected transport; use it as a context manager.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from adapters.api.openapi import OpenApiBank, Sm4Encryption
from adapters.api.tls import build_client_ssl_context
from adapters.crypto.config import CRYPTO_PROFILES, build_detached_signer
from adapters.crypto.raw import build_raw_signer, build_raw_verifier
from adapters.formats.fixed_width import FixedWidthGb18030Format
from adapters.formats.iso20022 import Iso20022Format
from adapters.sms import AliyunStyleSms, TencentStyleSms
from adapters.transports.sftp import DEFAULT_MAX_FILE_BYTES, SftpTransport
from gateway.ports import BankApi, BankFormat, FileTransport, Signer, SmsProvider

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


def _iso20022_v1(cfg: _Config, base_dir: Path | None) -> BankFormat:
    fmt: BankFormat = Iso20022Format(
        bank_id=cfg.text("bank_id"),
        payer_name=cfg.optional_text("payer_name") or "",
        max_items_per_file=cfg.integer("max_items_per_file", 50_000),
    )
    return fmt


FORMATS: dict[str, Callable[[_Config, Path | None], BankFormat]] = {
    "fw-gb18030-v1": _fw_gb18030_v1,
    "iso20022-v1": _iso20022_v1,
}


def build_format(config: Mapping[str, object], *, base_dir: Path | None = None) -> BankFormat:
    """A bank format from ``{"format": name, ...}``."""
    return _build("format", config, FORMATS, base_dir)


# --- crypto ------------------------------------------------------------------------------


def _crypto_profile(cfg: _Config, base_dir: Path | None) -> Signer:
    cfg.used.update(cfg.raw)  # adapters.crypto.config checks every key itself
    signer: Signer = build_detached_signer(cfg.raw, base_dir=base_dir)
    return signer


CRYPTO: dict[str, Callable[[_Config, Path | None], Signer]] = {
    name: _crypto_profile for name in CRYPTO_PROFILES
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


# --- bank APIs ---------------------------------------------------------------------------

_ENCRYPT_MODES = ("none", "SM4-CBC")


def _positive(cfg: _Config, key: str, default: float) -> float:
    value = cfg.number(key, default)
    if not 0 < value < float("inf"):
        raise cfg.error(f"{key!r} must be a positive number of seconds")
    return value


def _sm4_key(cfg: _Config, base_dir: Path | None) -> bytes:
    text = cfg.read("sm4_key_file", base_dir).decode("ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise cfg.error("'sm4_key_file' must hold the key as 32 hex digits") from None
    if len(key) != 16:
        raise cfg.error(f"'sm4_key_file' holds {len(key)} bytes; an SM4 key is 16")
    return key


def _openapi_v1(cfg: _Config, base_dir: Path | None) -> BankApi:
    crypto = cfg.raw.get("crypto")
    cfg.used.add("crypto")
    if not isinstance(crypto, Mapping):
        raise cfg.error("'crypto' must be the profile's [crypto] table")
    signer = build_raw_signer(crypto, base_dir=base_dir)
    verifier = build_raw_verifier(crypto, base_dir=base_dir)
    encrypt = cfg.optional_text("encrypt") or "none"
    if encrypt not in _ENCRYPT_MODES:
        raise cfg.error(f"'encrypt' must be one of {', '.join(_ENCRYPT_MODES)}, not {encrypt!r}")
    encryption: Sm4Encryption | None = None
    if encrypt == "SM4-CBC":
        encryption = Sm4Encryption(key_id=cfg.text("sm4_key_id"), key=_sm4_key(cfg, base_dir))
    else:
        for key in ("sm4_key_id", "sm4_key_file"):
            if key in cfg.raw:
                raise cfg.error(f"{key!r} is only for encrypt = 'SM4-CBC'")
    client_cert = cfg.path("client_cert", base_dir)
    client_key = cfg.path("client_key", base_dir)
    for key, path in (("client_cert", client_cert), ("client_key", client_key)):
        if not path.is_file():
            raise cfg.error(f"{key!r}: {path} is not a readable file")
    server_ca = cfg.read("server_ca", base_dir)
    max_items = cfg.integer("max_items_per_request", 50_000)
    if max_items < 1:
        raise cfg.error("'max_items_per_request' must be at least 1")
    base_url = cfg.text("base_url")
    client_id = cfg.text("client_id")
    payer_name = cfg.optional_text("payer_name")
    connect_timeout = _positive(cfg, "connect_timeout", 10.0)
    read_timeout = _positive(cfg, "read_timeout", 60.0)
    write_timeout = _positive(cfg, "write_timeout", 60.0)
    max_response_bytes = cfg.integer("max_response_bytes", 64 * 1024 * 1024)
    cfg.check_unknown()  # before the client (and its connection pool) exists
    ssl_context = build_client_ssl_context(
        client_cert=client_cert, client_key=client_key, server_ca_pem=server_ca
    )
    api: BankApi = OpenApiBank(
        base_url=base_url,
        client_id=client_id,
        ssl_context=ssl_context,
        signer=signer,
        verifier=verifier,
        payer_name=payer_name,
        encryption=encryption,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        write_timeout=write_timeout,
        max_items_per_request=max_items,
        max_response_bytes=max_response_bytes,
    )
    return api


BANK_APIS: dict[str, Callable[[_Config, Path | None], BankApi]] = {
    "openapi-v1": _openapi_v1,
}


def build_bank_api(config: Mapping[str, object], *, base_dir: Path | None = None) -> BankApi:
    """A bank API client from the profile's ``[api]`` table plus ``"crypto"``: its
    ``[crypto]`` table. ``{"api": name}`` defaults to ``openapi-v1``. Close it when done
    (``OpenApiBank.close``)."""
    return _build("api", {"api": "openapi-v1", **config}, BANK_APIS, base_dir)


# --- SMS providers -------------------------------------------------------------------------

SMS_PROVIDERS = ("aliyun-style", "tencent-style")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class _SmsConfig(_Config):
    def error(self, message: str) -> ValueError:
        return ValueError(f"sms provider: {message}")


def _sms_secret(cfg: _Config, base_dir: Path | None) -> str:
    inline = "access_key_secret" in cfg.raw
    from_file = "secret_file" in cfg.raw
    if inline == from_file:
        raise cfg.error("give exactly one of 'access_key_secret' and 'secret_file'")
    if inline:
        return cfg.text("access_key_secret")
    secret = cfg.read("secret_file", base_dir).decode("utf-8", errors="replace").strip()
    if not secret:
        raise cfg.error("'secret_file' is empty")
    return secret


def _sms_base_url(cfg: _Config) -> str:
    base_url = cfg.text("base_url")
    url = urlsplit(base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise cfg.error(f"'base_url' {base_url!r} is not an http(s) URL")
    if url.scheme == "http" and url.hostname not in _LOOPBACK_HOSTS:
        raise cfg.error("'base_url' must be https:// (plain http only on loopback)")
    if url.query or url.fragment:
        raise cfg.error("'base_url' must not carry a query or fragment")
    return base_url


def build_sms_provider(
    config: Mapping[str, object], *, base_dir: Path | None = None
) -> SmsProvider:
    """An SMS provider client (``docs/formats/sms-v1.md``) from::

        {"provider": "aliyun-style" | "tencent-style",
         "base_url": "https://dysmsapi.example.cn/",   # http:// only for loopback hosts
         "access_key_id": "...",                        # Tencent-style: the SecretId
         "access_key_secret": "..." | "secret_file": "<path: the secret, one line>",
         "sdk_app_id": "1400000001",                    # tencent-style only, required
         "sign_name": "岳阳县财政局",                   # optional: used when a message has none
         "server_ca": "<path, PEM>",                    # optional: trust only this CA
         "connect_timeout": 5.0, "read_timeout": 10.0, "write_timeout": 10.0,
         "receipt_window_seconds": 300.0}               # optional

    Exactly one of ``access_key_secret`` and ``secret_file``. The secret signs requests
    and verifies receipt pushes. Close the provider when done (``close()``)."""
    cfg = _SmsConfig("provider", config)
    if cfg.kind not in SMS_PROVIDERS:
        raise cfg.error(f"unknown provider {cfg.kind!r} (known: {', '.join(SMS_PROVIDERS)})")
    base_url = _sms_base_url(cfg)
    key_id = cfg.text("access_key_id")
    secret = _sms_secret(cfg, base_dir)
    sign_name = cfg.optional_text("sign_name")
    connect_timeout = _positive(cfg, "connect_timeout", 5.0)
    read_timeout = _positive(cfg, "read_timeout", 10.0)
    write_timeout = _positive(cfg, "write_timeout", 10.0)
    receipt_window = _positive(cfg, "receipt_window_seconds", 300.0)
    verify: object = True
    if "server_ca" in cfg.raw:
        cadata = cfg.read("server_ca", base_dir).decode("ascii", errors="replace")
        try:
            verify = ssl.create_default_context(cadata=cadata)
        except ssl.SSLError as exc:
            raise cfg.error(f"'server_ca': not a PEM certificate: {exc}") from None
    sdk_app_id = cfg.text("sdk_app_id") if cfg.kind == "tencent-style" else None
    cfg.check_unknown()  # before the client (and its connection pool) exists
    provider: SmsProvider
    if sdk_app_id is None:
        provider = AliyunStyleSms(
            base_url=base_url,
            access_key_id=key_id,
            access_key_secret=secret,
            default_sign_name=sign_name,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            verify=verify,
            receipt_window_seconds=receipt_window,
        )
    else:
        provider = TencentStyleSms(
            base_url=base_url,
            secret_id=key_id,
            secret_key=secret,
            sdk_app_id=sdk_app_id,
            default_sign_name=sign_name,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            verify=verify,
            receipt_window_seconds=receipt_window,
        )
    return provider
