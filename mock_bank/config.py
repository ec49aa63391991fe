"""Mock bank configuration, read from a TOML file.

Example (relative paths are resolved against the config file's directory)::

    data_dir = ".demo/bank"          # SFTP root, ledger, logs
    accounts_file = "accounts.json"  # optional; without it every account is active and matching
    result_delay_seconds = 1.0       # from taking a request file to writing its result file
    poll_interval_seconds = 0.2      # inbox scan interval
    dedupe_by_serial = true          # false: pays an item serial again when it comes again
    format = "fw-gb18030-v1"         # or "iso20022-v1" (pain.001 in, pain.002 + camt.054 out)

    [sftp]
    host = "127.0.0.1"
    port = 0                         # 0 = a free port, written to <data_dir>/sftp.port
    username = "gateway"
    host_key = "certs/dev/mock_bank_sftp_host.key"
    authorized_keys = "certs/dev/gateway_sftp_client.pub"

    [signing]
    bank_private_key = "certs/dev/mock_bank_signing.key.pem"
    bank_key_id = "mockbank-dev"
    gateway_public_key = "certs/dev/gateway_signing.pub.pem"
    # gateway_key_id = "gateway-dev"  # optional: when set, request signatures must name it
    alg = "RSA-PSS-SHA256"           # or "ECDSA-P256-SHA256" (keys then P-256 PEM)

    [faults]                         # optional: the seeded fault schedule (mock_bank/faults.py)
    seed = 42
    [[faults.rules]]
    kind = "lose_rename_reply"
    nth = [1]

    [api]                            # optional: the HTTPS open API (mock_bank/api/settings.py);
    server_cert = "..."              # with it, [sftp] is optional

    [[rules]]                        # checked first, in order
    account_suffix = "0102"
    code = "E102"
    # amount_fen = 12345             # optional
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mock_bank.api.settings import ApiConfig, ApiConfigError, parse_api_config
from mock_bank.faults import FaultConfigError, FaultsConfig, parse_faults_config
from mock_bank.rules import Rule


class ConfigError(ValueError):
    """The configuration file is missing, malformed or has a wrong value."""


@dataclass(frozen=True, slots=True)
class SftpConfig:
    host_key: Path
    authorized_keys: Path
    host: str = "127.0.0.1"
    port: int = 0
    username: str = "gateway"


@dataclass(frozen=True, slots=True)
class SigningConfig:
    bank_private_key: Path
    gateway_public_key: Path
    bank_key_id: str = "mockbank-dev"
    gateway_key_id: str | None = None
    alg: str = "RSA-PSS-SHA256"


@dataclass(frozen=True, slots=True)
class BankConfig:
    data_dir: Path
    sftp: SftpConfig | None  # None: no SFTP server (e.g. an API-only bank)
    signing: SigningConfig
    accounts_file: Path | None = None
    result_delay_seconds: float = 1.0
    poll_interval_seconds: float = 0.2
    dedupe_by_serial: bool = True
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    format: str = "fw-gb18030-v1"
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    api: ApiConfig | None = None  # the HTTPS open API ([api], mock_bank/api/settings.py)

    # Where the bank keeps its state, all under data_dir.
    @property
    def sftp_root(self) -> Path:
        return self.data_dir / "sftp"

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / "ledger.sqlite3"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "mock_bank.log"

    @property
    def port_file(self) -> Path:
        return self.data_dir / "sftp.port"

    @property
    def api_port_file(self) -> Path:
        return self.data_dir / "api.port"


_TOP_KEYS = {
    "data_dir",
    "accounts_file",
    "result_delay_seconds",
    "poll_interval_seconds",
    "dedupe_by_serial",
    "sftp",
    "signing",
    "rules",
    "format",
    "faults",
    "api",
}
_SFTP_KEYS = {"host", "port", "username", "host_key", "authorized_keys"}
_SIGNING_KEYS = {
    "bank_private_key",
    "bank_key_id",
    "gateway_public_key",
    "gateway_key_id",
    "alg",
}
#: Request/result file formats the bank speaks (``format`` key).
FORMATS = ("fw-gb18030-v1", "iso20022-v1")
#: Algorithms the bank signs its files with (``[signing] alg``).
SIGNING_ALGS = ("RSA-PSS-SHA256", "ECDSA-P256-SHA256")
_RULE_KEYS = {"account_suffix", "amount_fen", "code"}


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] table is required")
    return value


def _str(data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty string")
    return value


def _path(data: Mapping[str, Any], key: str, where: str, base: Path) -> Path:
    return (base / _str(data, key, where)).resolve()


def _seconds(data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{key} must be a number of seconds >= 0")
    return float(value)


def config_from_dict(data: Mapping[str, Any], base_dir: Path) -> BankConfig:
    """Validate decoded TOML; relative paths are taken relative to ``base_dir``."""
    _check_keys(data, _TOP_KEYS, "config")
    base = base_dir.resolve()

    try:
        api = parse_api_config(data.get("api"), base)
    except ApiConfigError as exc:
        raise ConfigError(str(exc)) from exc
    sftp: SftpConfig | None = None
    if api is None or data.get("sftp") is not None:  # [sftp] is optional only with [api]
        sftp_data = _table(data, "sftp", "config")
        _check_keys(sftp_data, _SFTP_KEYS, "[sftp]")
        port = sftp_data.get("port", 0)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError("[sftp]: port must be an integer 0..65535")
        sftp = SftpConfig(
            host=_str(sftp_data, "host", "[sftp]", "127.0.0.1"),
            port=port,
            username=_str(sftp_data, "username", "[sftp]", "gateway"),
            host_key=_path(sftp_data, "host_key", "[sftp]", base),
            authorized_keys=_path(sftp_data, "authorized_keys", "[sftp]", base),
        )

    signing_data = _table(data, "signing", "config")
    _check_keys(signing_data, _SIGNING_KEYS, "[signing]")
    gateway_key_id = signing_data.get("gateway_key_id")
    if gateway_key_id is not None and (not isinstance(gateway_key_id, str) or not gateway_key_id):
        raise ConfigError("[signing]: gateway_key_id must be a non-empty string when given")
    signing = SigningConfig(
        bank_private_key=_path(signing_data, "bank_private_key", "[signing]", base),
        bank_key_id=_str(signing_data, "bank_key_id", "[signing]", "mockbank-dev"),
        gateway_public_key=_path(signing_data, "gateway_public_key", "[signing]", base),
        gateway_key_id=gateway_key_id,
        alg=_str(signing_data, "alg", "[signing]", "RSA-PSS-SHA256"),
    )
    if signing.alg not in SIGNING_ALGS:
        raise ConfigError(f"[signing]: alg must be one of {list(SIGNING_ALGS)}")
    if not signing.bank_key_id.isascii() or any(c.isspace() for c in signing.bank_key_id):
        raise ConfigError("[signing]: bank_key_id must be ASCII without whitespace")

    rules_data = data.get("rules", [])
    if not isinstance(rules_data, list):
        raise ConfigError("rules must be an array of tables ([[rules]])")
    rules: list[Rule] = []
    for index, raw in enumerate(rules_data):
        where = f"[[rules]] #{index}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: must be a table")
        _check_keys(raw, _RULE_KEYS, where)
        try:
            rules.append(
                Rule(
                    account_suffix=_str(raw, "account_suffix", where),
                    code=_str(raw, "code", where),
                    amount_fen=raw.get("amount_fen"),
                )
            )
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc

    dedupe = data.get("dedupe_by_serial", True)
    if not isinstance(dedupe, bool):
        raise ConfigError("dedupe_by_serial must be true or false")
    poll = _seconds(data, "poll_interval_seconds", 0.2)
    if poll <= 0:
        raise ConfigError("poll_interval_seconds must be > 0")
    file_format = _str(data, "format", "config", "fw-gb18030-v1")
    if file_format not in FORMATS:
        raise ConfigError(f"format must be one of {list(FORMATS)}")
    faults_data = data.get("faults")
    if faults_data is not None and not isinstance(faults_data, dict):
        raise ConfigError("[faults] must be a table")
    try:
        faults = parse_faults_config(faults_data)
    except FaultConfigError as exc:
        raise ConfigError(str(exc)) from exc

    return BankConfig(
        data_dir=_path(data, "data_dir", "config", base),
        accounts_file=(
            _path(data, "accounts_file", "config", base)
            if data.get("accounts_file") is not None
            else None
        ),
        result_delay_seconds=_seconds(data, "result_delay_seconds", 1.0),
        poll_interval_seconds=poll,
        dedupe_by_serial=dedupe,
        sftp=sftp,
        signing=signing,
        rules=tuple(rules),
        format=file_format,
        faults=faults,
        api=api,
    )


def load_config(path: Path | str) -> BankConfig:
    """Read a TOML config file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    return config_from_dict(data, path.resolve().parent)
