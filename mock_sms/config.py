"""Mock SMS centre configuration, from a TOML file (relative paths: against its directory).

Example::

    data_dir = ".demo/sms"              # messages.sqlite3, mock_sms.log, sms.port
    host = "127.0.0.1"
    port = 0                            # 0 = a free port, written to <data_dir>/sms.port
    receipt_delay_seconds = 0.2         # from taking a message to its delivery report
    late_receipt_seconds = 5.0          # receipt_late: the report this much later
    hold_seconds = 30.0                 # timeout_after_accept: how long the answer is held
    push_attempts = 3                   # receipt pushes per report until a 2xx
    push_timeout_seconds = 5.0

    [aliyun]                            # optional: the Aliyun-style API at /aliyun/
    access_key_id = "mock-aliyun-dev"
    access_key_secret = "..."           # or access_key_secret_file = "path"
    callback_url = "http://127.0.0.1:8080/v1/sms-receipts/aliyun-style"   # optional
    sign_names = ["岳阳县财政局"]       # optional allow-list
    [aliyun.templates]                  # optional allow-list: code = its parameter names
    SMS_460001 = ["item", "amount", "date", "last4"]

    [tencent]                           # optional: the Tencent-style API at /tencent/
    secret_id = "mock-tencent-dev"
    secret_key = "..."                  # or secret_key_file = "path"
    sdk_app_id = "1400000001"
    callback_url = "http://127.0.0.1:8080/v1/sms-receipts/tencent-style"
    sign_names = ["岳阳县财政局"]       # optional allow-list
    [tencent.templates]                 # optional allow-list: id = number of parameters
    "1860001" = 4

    [faults]                            # optional: mock_sms/faults.py
    seed = 7
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from mock_sms.faults import FaultConfigError, FaultsConfig, parse_faults


class ConfigError(ValueError):
    """The configuration is missing, malformed or has a wrong value."""


@dataclass(frozen=True, slots=True)
class AliyunAccount:
    access_key_id: str
    access_key_secret: str
    callback_url: str | None = None
    sign_names: frozenset[str] | None = None
    templates: Mapping[str, tuple[str, ...]] | None = None


@dataclass(frozen=True, slots=True)
class TencentAccount:
    secret_id: str
    secret_key: str
    sdk_app_id: str
    callback_url: str | None = None
    sign_names: frozenset[str] | None = None
    templates: Mapping[str, int] | None = None


@dataclass(frozen=True, slots=True)
class SmsCentreConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    receipt_delay_seconds: float = 0.2
    late_receipt_seconds: float = 5.0
    hold_seconds: float = 30.0
    push_attempts: int = 3
    push_timeout_seconds: float = 5.0
    aliyun: AliyunAccount | None = None
    tencent: TencentAccount | None = None
    faults: FaultsConfig = field(default_factory=FaultsConfig)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "messages.sqlite3"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "mock_sms.log"

    @property
    def port_file(self) -> Path:
        return self.data_dir / "sms.port"


_TOP: Final = {
    "data_dir",
    "host",
    "port",
    "receipt_delay_seconds",
    "late_receipt_seconds",
    "hold_seconds",
    "push_attempts",
    "push_timeout_seconds",
    "aliyun",
    "tencent",
    "faults",
}
_ALIYUN: Final = {
    "access_key_id",
    "access_key_secret",
    "access_key_secret_file",
    "callback_url",
    "sign_names",
    "templates",
}
_TENCENT: Final = {
    "secret_id",
    "secret_key",
    "secret_key_file",
    "sdk_app_id",
    "callback_url",
    "sign_names",
    "templates",
}


def _keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")


def _str(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty string")
    return value


def _optional_str(table: Mapping[str, Any], key: str, where: str) -> str | None:
    return None if table.get(key) is None else _str(table, key, where)


def _seconds(table: Mapping[str, Any], key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{key} must be a number of seconds >= 0")
    return float(value)


def _secret(table: Mapping[str, Any], key: str, where: str, base: Path) -> str:
    file_key = f"{key}_file"
    if (key in table) == (file_key in table):
        raise ConfigError(f"{where}: give exactly one of {key} and {file_key}")
    if key in table:
        return _str(table, key, where)
    path = base / _str(table, file_key, where)
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    if not secret:
        raise ConfigError(f"{where}: {path} is empty")
    return secret


def _sign_names(table: Mapping[str, Any], where: str) -> frozenset[str] | None:
    value = table.get("sign_names")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: sign_names must be a list of strings")
    return frozenset(value)


def _aliyun(table: object, base: Path) -> AliyunAccount | None:
    if table is None:
        return None
    where = "[aliyun]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    _keys(table, _ALIYUN, where)
    templates: dict[str, tuple[str, ...]] | None = None
    raw = table.get("templates")
    if raw is not None:
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: templates must be a table")
        templates = {}
        for code, names in raw.items():
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ConfigError(f"{where}: templates.{code} must be a list of names")
            templates[code] = tuple(names)
    return AliyunAccount(
        access_key_id=_str(table, "access_key_id", where),
        access_key_secret=_secret(table, "access_key_secret", where, base),
        callback_url=_optional_str(table, "callback_url", where),
        sign_names=_sign_names(table, where),
        templates=templates,
    )


def _tencent(table: object, base: Path) -> TencentAccount | None:
    if table is None:
        return None
    where = "[tencent]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    _keys(table, _TENCENT, where)
    templates: dict[str, int] | None = None
    raw = table.get("templates")
    if raw is not None:
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: templates must be a table")
        templates = {}
        for template_id, count in raw.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ConfigError(f"{where}: templates.{template_id} must be a count >= 0")
            templates[template_id] = count
    return TencentAccount(
        secret_id=_str(table, "secret_id", where),
        secret_key=_secret(table, "secret_key", where, base),
        sdk_app_id=_str(table, "sdk_app_id", where),
        callback_url=_optional_str(table, "callback_url", where),
        sign_names=_sign_names(table, where),
        templates=templates,
    )


def config_from_dict(data: Mapping[str, Any], base_dir: Path) -> SmsCentreConfig:
    """Validate decoded TOML; relative paths are taken relative to ``base_dir``."""
    _keys(data, _TOP, "config")
    base = base_dir.resolve()
    port = data.get("port", 0)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError("port must be an integer 0..65535")
    attempts = data.get("push_attempts", 3)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ConfigError("push_attempts must be an integer >= 1")
    try:
        faults = parse_faults(data.get("faults"))
    except FaultConfigError as exc:
        raise ConfigError(str(exc)) from exc
    config = SmsCentreConfig(
        data_dir=(base / _str(data, "data_dir", "config")).resolve(),
        host=_str(data, "host", "config") if "host" in data else "127.0.0.1",
        port=port,
        receipt_delay_seconds=_seconds(data, "receipt_delay_seconds", 0.2),
        late_receipt_seconds=_seconds(data, "late_receipt_seconds", 5.0),
        hold_seconds=_seconds(data, "hold_seconds", 30.0),
        push_attempts=attempts,
        push_timeout_seconds=_seconds(data, "push_timeout_seconds", 5.0),
        aliyun=_aliyun(data.get("aliyun"), base),
        tencent=_tencent(data.get("tencent"), base),
        faults=faults,
    )
    if config.aliyun is None and config.tencent is None:
        raise ConfigError("config: give [aliyun], [tencent] or both")
    return config


def load_config(path: str | Path) -> SmsCentreConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config_from_dict(data, path.parent)
