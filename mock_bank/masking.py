"""Masking of personal data for logs and CLI output (PIPL: never log full card numbers, ID
numbers or names)."""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any, Final

#: Event keys whose values are always masked, whatever they look like.
_ACCOUNT_KEYS: Final = frozenset({"account_no", "account", "card_no", "payer_account"})
_ID_KEYS: Final = frozenset({"id_number", "id_no"})
_NAME_KEYS: Final = frozenset({"name", "account_name", "holder_name"})

#: Anything that looks like a card number or an ID number inside free text: a run of 12 or
#: more digits, optionally ending in ``X``/``x`` (ID numbers).
#: ``_`` counts as part of a word so that file names such as ``PAY_2026031500000001_01.txt``
#: stay readable.
_LONG_NUMBER: Final = re.compile(r"(?<![0-9A-Za-z_])[0-9]{11,}[0-9Xx](?![0-9A-Za-z_])")
#: Identifiers of files, batches and transactions: not personal data, never scrubbed.
_SAFE_KEYS: Final = frozenset(
    {"batch_serial", "item_serial", "file", "file_name", "result_file", "bank_ref", "sha256"}
    | {"request_id", "event_id"}  # HTTPS API: batch serial + file number; callback event id
)


def mask_tail(value: str, keep: int = 4) -> str:
    """``6217000012345678`` → ``************5678``; short values are fully masked."""
    value = value.strip()
    if len(value) <= keep:
        return "*" * len(value)
    return "*" * (len(value) - keep) + value[-keep:]


def mask_name(value: str) -> str:
    """``张三丰`` → ``张**``; a one-character name becomes ``*``."""
    value = value.strip()
    if len(value) <= 1:
        return "*" * len(value)
    return value[0] + "*" * (len(value) - 1)


def scrub_text(text: str) -> str:
    """Mask every long digit run (card or ID number look-alike) in free text."""
    return _LONG_NUMBER.sub(lambda m: mask_tail(m.group(0)), text)


def _scrub_value(key: str, value: Any) -> Any:
    if isinstance(value, str):
        if key in _ACCOUNT_KEYS or key in _ID_KEYS:
            return mask_tail(value)
        if key in _NAME_KEYS:
            return mask_name(value)
        if key in _SAFE_KEYS:
            return value
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {k: _scrub_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(key, v) for v in value]
    return value


def scrub_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the last line of defence against personal data in logs."""
    for key in list(event_dict):
        event_dict[key] = _scrub_value(key, event_dict[key])
    return event_dict
