"""The ``[api]`` table of the mock bank's config: the HTTPS open API (``openapi-v1``).

Example (relative paths are resolved against the config file's directory)::

    [api]
    host = "127.0.0.1"
    port = 0                                   # 0 = a free port, written to <data_dir>/api.port
    server_cert = "certs/dev/mock_bank_api.crt.pem"     # PEM, SAN 127.0.0.1 / localhost
    server_key = "certs/dev/mock_bank_api.key.pem"
    client_ca = "certs/dev/dev_ca.crt.pem"     # signs acceptable client certificates (mTLS)
    client_id = "gateway"                      # X-Client-Id the gateway must send
    gateway_public_key = "certs/dev/gateway_signing.pub.pem"
    gateway_key_id = "gateway-dev"             # optional: X-Key-Id must name it when set
    bank_private_key = "certs/dev/mock_bank_signing.key.pem"
    bank_key_id = "mockbank-dev"
    signature_alg = "RSA-PSS-SHA256"           # | "ECDSA-P256-SHA256" | "SM2-SM3"
    signature_encoding = "der"                 # ECDSA / SM2: "der" | "raw" (r‖s, 64 bytes)
    sm2_signer_id = "1234567812345678"         # SM2 only
    payer_accounts = ["43001700062050500001"]  # optional: the only payer accounts accepted
    callback_url = "https://127.0.0.1:8443/v1/bank-callbacks/mockbank"   # optional
    callback_ca = "certs/dev/dev_ca.crt.pem"   # required for an https callback_url
    callback_client_cert = "certs/dev/mock_bank_api.crt.pem"  # optional client cert + key
    callback_client_key = "certs/dev/mock_bank_api.key.pem"
    callback_retries = 5                       # retries after the first attempt (non-2xx)
    callback_retry_seconds = 1.0               # first retry delay; doubles, at most 30 s
    # result_delay_seconds = 1.0               # default: the bank-wide result_delay_seconds
    hold_seconds = 30.0                        # fault timeout_after_apply: response held
    retry_after_seconds = 1                    # fault rate_limit: Retry-After
    bounce_after_seconds = 2.0                 # fault bounce_after_paid: after completion
    movements_page_size = 500                  # entries per page of the account movements

    [api.sm4_keys]                             # for SM4-CBC-HMAC-SM3 encrypted bodies
    k2026 = "0123456789abcdeffedcba9876543210" # key_id = 128-bit key in hex

Keys for ``RSA-PSS-SHA256`` and ``ECDSA-P256-SHA256`` are PEM (PKCS#8 private, SPKI public).
``SM2-SM3`` keys are PEM (PKCS#8 / SPKI, curve OID ``1.2.156.10197.1.301``, as written by
``openssl genpkey -algorithm SM2``) or hex: 64 hex digits private, ``04‖x‖y`` public.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

SIGNATURE_ALGS: Final = ("RSA-PSS-SHA256", "ECDSA-P256-SHA256", "SM2-SM3")
SignatureEncoding = Literal["der", "raw"]
DEFAULT_SM2_SIGNER_ID: Final = "1234567812345678"

_KEYS: Final = frozenset(
    {
        "host",
        "port",
        "server_cert",
        "server_key",
        "client_ca",
        "client_id",
        "gateway_public_key",
        "gateway_key_id",
        "bank_private_key",
        "bank_key_id",
        "signature_alg",
        "signature_encoding",
        "sm2_signer_id",
        "sm4_keys",
        "payer_accounts",
        "callback_url",
        "callback_ca",
        "callback_client_cert",
        "callback_client_key",
        "callback_retries",
        "callback_retry_seconds",
        "result_delay_seconds",
        "hold_seconds",
        "retry_after_seconds",
        "bounce_after_seconds",
        "movements_page_size",
    }
)
_TOKEN: Final = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces
_HEX_KEY: Final = re.compile(r"[0-9a-fA-F]{32}")


class ApiConfigError(ValueError):
    """The ``[api]`` table is malformed."""


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """The decoded ``[api]`` table (see the module docstring)."""

    server_cert: Path
    server_key: Path
    client_ca: Path
    gateway_public_key: Path
    bank_private_key: Path
    host: str = "127.0.0.1"
    port: int = 0
    client_id: str = "gateway"
    gateway_key_id: str | None = None
    bank_key_id: str = "mockbank-dev"
    signature_alg: str = "RSA-PSS-SHA256"
    signature_encoding: SignatureEncoding = "der"
    sm2_signer_id: str = DEFAULT_SM2_SIGNER_ID
    sm4_keys: Mapping[str, bytes] = field(default_factory=dict)
    payer_accounts: tuple[str, ...] = ()
    callback_url: str | None = None
    callback_ca: Path | None = None
    callback_client_cert: Path | None = None
    callback_client_key: Path | None = None
    callback_retries: int = 5
    callback_retry_seconds: float = 1.0
    result_delay_seconds: float | None = None
    hold_seconds: float = 30.0
    retry_after_seconds: int = 1
    bounce_after_seconds: float = 2.0
    movements_page_size: int = 500


def _text(data: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise ApiConfigError(f"[api]: {key} must be a non-empty string")
    return value


def _token(data: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = _text(data, key, default)
    if _TOKEN.fullmatch(value) is None:
        raise ApiConfigError(f"[api]: {key} must be printable ASCII without spaces")
    return value


def _path(data: Mapping[str, Any], key: str, base: Path) -> Path:
    return (base / _text(data, key)).resolve()


def _optional_path(data: Mapping[str, Any], key: str, base: Path) -> Path | None:
    return None if data.get(key) is None else _path(data, key, base)


def _number(data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ApiConfigError(f"[api]: {key} must be a number >= 0")
    return float(value)


def _integer(data: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiConfigError(f"[api]: {key} must be an integer {low}..{high}")
    return value


def _sm4_keys(raw: object) -> dict[str, bytes]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ApiConfigError("[api]: sm4_keys must be a table of key_id = hex key")
    keys: dict[str, bytes] = {}
    for key_id, value in raw.items():
        if _TOKEN.fullmatch(str(key_id)) is None:
            raise ApiConfigError(f"[api.sm4_keys]: bad key id {key_id!r}")
        if not isinstance(value, str) or _HEX_KEY.fullmatch(value) is None:
            raise ApiConfigError(f"[api.sm4_keys]: {key_id} must be 32 hex digits (128 bits)")
        keys[str(key_id)] = bytes.fromhex(value)
    return keys


def _payer_accounts(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(a, str) and a for a in raw):
        raise ApiConfigError("[api]: payer_accounts must be a list of account numbers")
    return tuple(raw)


def parse_api_config(data: object, base: Path) -> ApiConfig | None:
    """Validate a decoded ``[api]`` table (``None``: the bank has no API)."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ApiConfigError("[api] must be a table")
    unknown = set(data) - _KEYS
    if unknown:
        raise ApiConfigError(f"[api]: unknown keys {sorted(unknown)}")

    alg = _text(data, "signature_alg", "RSA-PSS-SHA256")
    if alg not in SIGNATURE_ALGS:
        raise ApiConfigError(f"[api]: signature_alg must be one of {list(SIGNATURE_ALGS)}")
    encoding = _text(data, "signature_encoding", "der")
    if encoding not in ("der", "raw"):
        raise ApiConfigError('[api]: signature_encoding must be "der" or "raw"')
    gateway_key_id = None if data.get("gateway_key_id") is None else _token(data, "gateway_key_id")

    callback_url = data.get("callback_url")
    callback_ca = _optional_path(data, "callback_ca", base)
    if callback_url is not None:
        if not isinstance(callback_url, str):
            raise ApiConfigError("[api]: callback_url must be a string")
        parts = urlsplit(callback_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiConfigError("[api]: callback_url must be an http(s) URL")
        if parts.scheme == "https" and callback_ca is None:
            raise ApiConfigError("[api]: an https callback_url needs callback_ca")
    client_cert = _optional_path(data, "callback_client_cert", base)
    client_key = _optional_path(data, "callback_client_key", base)
    if (client_cert is None) != (client_key is None):
        raise ApiConfigError("[api]: give callback_client_cert and callback_client_key together")

    delay = data.get("result_delay_seconds")
    return ApiConfig(
        host=_text(data, "host", "127.0.0.1"),
        port=_integer(data, "port", 0, 0, 65535),
        server_cert=_path(data, "server_cert", base),
        server_key=_path(data, "server_key", base),
        client_ca=_path(data, "client_ca", base),
        client_id=_token(data, "client_id", "gateway"),
        gateway_public_key=_path(data, "gateway_public_key", base),
        gateway_key_id=gateway_key_id,
        bank_private_key=_path(data, "bank_private_key", base),
        bank_key_id=_token(data, "bank_key_id", "mockbank-dev"),
        signature_alg=alg,
        signature_encoding="raw" if encoding == "raw" else "der",
        sm2_signer_id=_text(data, "sm2_signer_id", DEFAULT_SM2_SIGNER_ID),
        sm4_keys=_sm4_keys(data.get("sm4_keys")),
        payer_accounts=_payer_accounts(data.get("payer_accounts")),
        callback_url=callback_url,
        callback_ca=callback_ca,
        callback_client_cert=client_cert,
        callback_client_key=client_key,
        callback_retries=_integer(data, "callback_retries", 5, 0, 100),
        callback_retry_seconds=_number(data, "callback_retry_seconds", 1.0),
        result_delay_seconds=None if delay is None else _number(data, "result_delay_seconds", 0),
        hold_seconds=_number(data, "hold_seconds", 30.0),
        retry_after_seconds=_integer(data, "retry_after_seconds", 1, 0, 86400),
        bounce_after_seconds=_number(data, "bounce_after_seconds", 2.0),
        movements_page_size=_integer(data, "movements_page_size", 500, 1, 1000),
    )
