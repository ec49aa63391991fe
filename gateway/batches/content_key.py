"""The canonical content of a batch, and its SHA-256: the key of idempotent intake.

The same batch re-serialised — other whitespace, other key order, other string escapes,
``amount_yuan`` instead of ``amount_fen``, blanks around a value, another Unicode
normalisation form of a name — has the same canonical content, so it is answered as a
replay instead of ``409 batch_no_reused``. What counts (``docs/intake.md``):

- the header and every item as parsed, with each field normalised the way validation
  normalises it before it checks it (trimmed; names and free text NFC, middle dots
  unified; ID numbers upper-case; an amount as integer fen when it is a valid amount); a
  field that is ``null`` counts as absent, and so does a blank optional one (``phone``,
  ``remark``) or a blank header text;
- the order of the items (a JSON array is ordered), and the names of the top-level keys.

Two bodies with the same key are validated alike and store the same data: every
normalisation here is one validation applies anyway. The key is computed incrementally,
one item at a time, so a batch of a million items never has to be held in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from gateway.kit.identity import normalize_id_number, normalize_name, normalize_text
from gateway.kit.money import MAX_FEN, MAX_TOTAL_FEN, AmountError, fen_from_int, fen_from_yuan

_VERSION = b"gateway batch content v1\n"


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _free_text(value: Any) -> Any:
    return normalize_text(value) if isinstance(value, str) else value


def _name(value: Any) -> Any:
    return normalize_name(value) if isinstance(value, str) else value


def _id_number(value: Any) -> Any:
    return normalize_id_number(value) if isinstance(value, str) else value


def _reissue(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    return {k: _strip(v) if k == "batch_no" else v for k, v in value.items()}


_HEADER = {
    "batch_no": _strip,
    "region_code": _strip,
    "subsidy_code": _strip,
    "subsidy_name": _free_text,
    "period": _strip,
    "payer_account": _strip,
    "payer_name": _free_text,
    "bank_profile": _strip,
}
_ITEM = {
    "name": _name,
    "id_number": _id_number,
    "account_no": _strip,
    "phone": _strip,
    "remark": _free_text,
    "reissue_of": _reissue,
}
# known fields that count as absent when null, and those that count as absent when blank
# too: exactly as validation treats them (an item's blank name is ``name_empty``, its
# missing name ``required``; a header's blank text and its missing one are both
# ``required``; a blank phone or remark is none)
_HEADER_NULLABLE = frozenset({*_HEADER, "fiscal_year", "item_count"})
_HEADER_BLANKABLE = frozenset(_HEADER)
_ITEM_NULLABLE = frozenset({*_ITEM, "seq"})
_ITEM_BLANKABLE = frozenset({"phone", "remark"})


def _amount(raw: Mapping[str, Any], out: dict[str, Any], prefix: str, maximum: int) -> None:
    fen_key, yuan_key = f"{prefix}_fen", f"{prefix}_yuan"
    if (fen_key in raw) == (yuan_key in raw):
        if fen_key in raw:
            out[fen_key], out[yuan_key] = raw[fen_key], raw[yuan_key]
        return
    try:
        if fen_key in raw:
            out[fen_key] = fen_from_int(raw[fen_key], maximum=maximum)
        else:
            out[fen_key] = fen_from_yuan(raw[yuan_key], maximum=maximum)
    except AmountError:
        key = fen_key if fen_key in raw else yuan_key
        out[key] = raw[key]


def _normalised(
    raw: Any,
    fields: Mapping[str, Any],
    nullable: frozenset[str],
    blankable: frozenset[str],
    prefix: str,
    maximum: int,
) -> Any:
    if type(raw) is not dict and not isinstance(raw, Mapping):
        return raw
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in (f"{prefix}_fen", f"{prefix}_yuan"):
            continue
        normalise = fields.get(key)
        norm = normalise(value) if normalise is not None else value
        if key in nullable and (norm is None or (key in blankable and norm == "")):
            continue
        out[key] = norm
    _amount(raw, out, prefix, maximum)
    return out


def canonical_header(raw: Any) -> Any:
    return _normalised(
        raw, _HEADER, _HEADER_NULLABLE, _HEADER_BLANKABLE, "total_amount", MAX_TOTAL_FEN
    )


def canonical_item(raw: Any) -> Any:
    return _normalised(raw, _ITEM, _ITEM_NULLABLE, _ITEM_BLANKABLE, "amount", MAX_FEN)


def encode(value: Any) -> bytes:
    """An injective byte encoding of a JSON value as parsed: compact JSON with sorted keys
    when it holds no Decimal (the common case, and fast: ``json`` refuses a Decimal), else a
    tagged encoding of every value (Decimals by their text). The tags keep the two apart."""
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except (RecursionError, TypeError, ValueError):
        return b"G" + _encode_tagged(value)
    return b"J" + text.encode("utf-8", "surrogatepass")


def _encode_tagged(value: Any) -> bytes:
    """The tagged encoding (no recursion: any depth)."""
    out = bytearray()
    stack: list[Any] = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, bytes):  # a closing bracket pushed below
            out += v
        elif v is None:
            out += b"n"
        elif v is True:
            out += b"t"
        elif v is False:
            out += b"f"
        elif isinstance(v, int):
            out += b"i%d;" % v
        elif isinstance(v, Decimal | float):
            out += b"d" + str(v).encode("ascii") + b";"
        elif isinstance(v, str):
            data = v.encode("utf-8", "surrogatepass")
            out += b"s%d:" % len(data) + data
        elif isinstance(v, Mapping):
            out += b"{"
            stack.append(b"}")
            for key in sorted(v, key=str, reverse=True):
                stack.append(v[key])
                stack.append(str(key))
        elif isinstance(v, list | tuple):
            out += b"["
            stack.append(b"]")
            stack.extend(reversed(v))
        else:  # pragma: no cover (a JSON parser yields nothing else)
            out += b"?" + repr(type(v)).encode("ascii", "replace") + b";"
    return bytes(out)


class ContentKey:
    """SHA-256 over the canonical content, fed in the order of the body."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256(_VERSION)

    def _record(self, tag: bytes, data: bytes) -> None:
        self._hash.update(tag + b"%d:" % len(data))
        self._hash.update(data)

    def header(self, raw: Any) -> None:
        self._record(b"H", encode(canonical_header(raw)))

    def item(self, raw: Any) -> None:
        self._record(b"I", encode(canonical_item(raw)))

    def top_level(self, keys: Iterable[str]) -> None:
        self._record(b"K", encode(sorted(set(keys))))

    def hexdigest(self) -> str:
        return self._hash.copy().hexdigest()
