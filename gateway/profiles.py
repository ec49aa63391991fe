"""Bank profiles (代发银行配置): configuration, not code.

A profile names a format, a transport and a crypto profile, with their settings, plus the
mapping of the bank's result codes onto our reason codes. This module is the composition
root that turns a profile into adapter objects behind the ports in ``gateway.ports``.

Relative paths in the TOML file are resolved against the file's directory (or against
``base_dir`` when the file sets it).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.dispatch.calendar import BankHours
from gateway.ports import BankApi, BankFormat, FileTransport, Signer

_PATH_KEYS = {
    "own_key",
    "peer_public_key",
    "client_key",
    "host_public_key",
    "client_cert",
    "server_ca",
    "sm4_key_file",
}


class ProfileError(ValueError):
    """The bank profile file is missing something or names something unknown."""


@dataclass
class BankProfile:
    """One paying bank: either a *file* bank (format + signer + SFTP transport) or an *api*
    bank (HTTPS open API with its own signing)."""

    name: str
    display_name: str
    accounts_are_cards: bool
    format_config: dict[str, Any]
    crypto_config: dict[str, Any]
    transport_config: dict[str, Any]
    result_codes: dict[str, str]
    paid_codes: frozenset[str]
    inbox: str
    outbox: str
    hours: BankHours = field(default_factory=BankHours)
    kind: str = "file"  # file | api
    api_config: dict[str, Any] = field(default_factory=dict)
    poll_seconds: float = 5.0
    # an API bank whose account movements (openapi-v1 ``/accounts/{a}/movements``) the
    # gateway reads and reconciles against (issue 12): ``account_movements`` in the profile,
    # on by default for API banks (the contract has the endpoint); off → reconciled
    # against the bank's reported results only
    account_movements: bool = False
    _format: BankFormat | None = field(default=None, repr=False)
    _signer: Signer | None = field(default=None, repr=False)
    _api: BankApi | None = field(default=None, repr=False)

    @property
    def is_api(self) -> bool:
        return self.kind == "api"

    @property
    def api(self) -> BankApi:
        if self._api is None:
            from adapters.registry import build_bank_api  # noqa: PLC0415

            self._api = build_bank_api({**self.api_config, "crypto": self.crypto_config})
        return self._api

    @property
    def format(self) -> BankFormat:
        if self._format is None:
            from adapters.registry import build_format  # noqa: PLC0415 (composition root)

            self._format = build_format(self.format_config)
        return self._format

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            from adapters.registry import build_signer  # noqa: PLC0415

            self._signer = build_signer(self.crypto_config)
        return self._signer

    def open_transport(self) -> FileTransport:
        from adapters.registry import build_transport  # noqa: PLC0415

        return build_transport(self.transport_config)

    def reason_for(self, bank_code: str) -> str:
        return self.result_codes.get(bank_code, "unmapped_bank_code")


def _resolve(section: Mapping[str, Any], base: Path) -> dict[str, Any]:
    out = dict(section)
    for key in _PATH_KEYS & out.keys():
        path = Path(str(out[key]))
        out[key] = str(path if path.is_absolute() else (base / path).resolve())
    return out


def _flag(raw: Mapping[str, Any], name: str, key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ProfileError(f"bank profile {name!r}: {key} must be true or false")
    return value


def load_profiles(
    path: Path, *, overrides: Mapping[str, Callable[[dict[str, Any]], None]] | None = None
) -> dict[str, BankProfile]:
    """Read every ``[profiles.<name>]`` table from ``path``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"bank profile file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"bank profile file {path} is not valid TOML: {exc}") from None
    base = Path(data.get("base_dir", path.parent))
    if not base.is_absolute():
        base = (path.parent / base).resolve()
    profiles: dict[str, BankProfile] = {}
    for name, raw in (data.get("profiles") or {}).items():
        kind = str(raw.get("kind", "file"))
        if kind not in {"file", "api"}:
            raise ProfileError(f"bank profile {name!r}: kind must be 'file' or 'api'")
        try:
            if kind == "file":
                transport = _resolve(raw["transport"], base)
                format_config = dict(raw["format"])
                api_config: dict[str, Any] = {}
            else:
                transport, format_config = {}, {}
                api_config = _resolve(raw["api"], base)
            profiles[name] = BankProfile(
                name=name,
                display_name=str(raw.get("display_name", name)),
                accounts_are_cards=bool(raw.get("accounts_are_cards", False)),
                format_config=format_config,
                crypto_config=_resolve(raw["crypto"], base),
                transport_config=transport,
                result_codes={str(k): str(v) for k, v in raw.get("result_codes", {}).items()},
                paid_codes=frozenset(raw.get("paid_codes", ["0000"])),
                inbox=str(transport.pop("inbox", "/inbox")),
                outbox=str(transport.pop("outbox", "/outbox")),
                hours=BankHours.parse(raw.get("cutoff", "16:00"), bool(raw.get("every_day"))),
                kind=kind,
                api_config=api_config,
                poll_seconds=float(raw.get("poll_seconds", 5.0)),
                account_movements=kind == "api" and _flag(raw, name, "account_movements", True),
            )
        except KeyError as exc:
            raise ProfileError(f"bank profile {name!r} has no {exc.args[0]!r} section") from None
        if overrides and name in overrides:
            overrides[name](profiles[name].transport_config)
    return profiles
