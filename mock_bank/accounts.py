"""The bank's account registry (the holders of 一卡通 cards and passbooks).

The accounts file is a JSON list of objects::

    [{"account_no": "6217...", "name": "张三", "id_number": "4306...", "status": "active"}]

``status`` is one of ``active``, ``frozen`` (账户冻结) or ``closed`` (账户已销户).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, cast

AccountStatus = Literal["active", "frozen", "closed"]
ACCOUNT_STATUSES: Final[frozenset[str]] = frozenset({"active", "frozen", "closed"})


class AccountsFileError(ValueError):
    """The accounts file is not a valid list of accounts."""


@dataclass(frozen=True, slots=True)
class Account:
    """One card or passbook held at the bank."""

    account_no: str
    name: str
    id_number: str
    status: AccountStatus


class AccountRegistry:
    """Accounts by account number (compared after stripping surrounding whitespace)."""

    def __init__(self, accounts: Iterable[Account] = ()) -> None:
        self._by_no: dict[str, Account] = {}
        for account in accounts:
            key = account.account_no.strip()
            if key in self._by_no:
                raise AccountsFileError(f"duplicate account number ending {key[-4:]}")
            self._by_no[key] = account

    def get(self, account_no: str) -> Account | None:
        return self._by_no.get(account_no.strip())

    def __len__(self) -> int:
        return len(self._by_no)

    def __iter__(self) -> Iterator[Account]:
        return iter(self._by_no.values())


def _text(entry: dict[str, object], key: str, index: int) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise AccountsFileError(f"account #{index}: {key!r} must be a non-empty string")
    return value


def parse_accounts(data: object) -> AccountRegistry:
    """Build a registry from decoded JSON (a list of account objects)."""
    if not isinstance(data, list):
        raise AccountsFileError("the accounts file must hold a JSON list")
    accounts: list[Account] = []
    for index, raw in enumerate(data):
        if not isinstance(raw, dict):
            raise AccountsFileError(f"account #{index} is not an object")
        entry = cast(dict[str, object], raw)
        unknown = set(entry) - {"account_no", "name", "id_number", "status"}
        if unknown:
            raise AccountsFileError(f"account #{index}: unknown keys {sorted(unknown)}")
        status = entry.get("status", "active")
        if not isinstance(status, str) or status not in ACCOUNT_STATUSES:
            raise AccountsFileError(
                f"account #{index}: status must be one of {sorted(ACCOUNT_STATUSES)}"
            )
        accounts.append(
            Account(
                account_no=_text(entry, "account_no", index).strip(),
                name=_text(entry, "name", index),
                id_number=_text(entry, "id_number", index),
                status=cast(AccountStatus, status),
            )
        )
    return AccountRegistry(accounts)


def load_accounts(path: Path) -> AccountRegistry:
    """Read and validate an accounts JSON file (UTF-8)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AccountsFileError(f"{path}: not valid JSON: {exc}") from exc
    return parse_accounts(data)
