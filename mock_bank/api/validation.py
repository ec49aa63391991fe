"""The ``POST /openapi/v1/disbursements`` body, decoded and checked like the file formats do.

Checks (the first failure answers; nothing is taken):

- ``DECRYPTION_FAILED`` (400): an ``{"encrypted": …}`` envelope that is malformed, is not
  ``SM4-CBC-HMAC-SM3``, names an unknown ``key_id``, has parts of the wrong length, whose
  HMAC-SM3 does not verify (a wrong key or altered bytes: checked before decrypting, so this
  never depends on what garbage decrypts to), or whose PKCS#7 padding is wrong;
- ``INVALID_REQUEST`` (400): a plaintext (decrypted, or sent plain) that is not a UTF-8
  JSON object, duplicate or unknown keys, a missing
  field or one of the wrong type (amounts and counts are JSON integers, never floats or
  booleans), batch serial not ``[0-9A-Z]{16}``, file number not 1..99, no items, sequences not
  1…n ascending, an item serial repeated, an ID number not ``[0-9]{17}[0-9X]``, an amount ≤ 0,
  text with control characters, ``X-Request-Id`` not the batch serial + file number;
- ``TOTALS_MISMATCH`` (422): ``item_count`` or ``total_fen`` disagree with the items;
- ``PAYER_ACCOUNT_INVALID`` (422): the payer account is not 1–32 ASCII digits, or not one of
  ``[api] payer_accounts`` when that list is configured.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from mock_bank.api.crypto import (
    ENVELOPE_ALG,
    DecryptionError,
    sm4_cbc_hmac_sm3_open,
    sm4_cbc_hmac_sm3_seal,
)

BATCH_SERIAL: Final = re.compile(r"[0-9A-Z]{16}")
_ID_NUMBER: Final = re.compile(r"[0-9]{17}[0-9X]")
_TOKEN: Final = re.compile(r"[\x21-\x7e]+")  # printable ASCII without spaces
_PAYER_ACCOUNT: Final = re.compile(r"[0-9]{1,32}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")

_TOP_KEYS: Final = frozenset(
    {
        "batch_serial",
        "file_no",
        "payer_account",
        "payer_name",
        "subsidy_code",
        "subsidy_name",
        "period",
        "item_count",
        "total_fen",
        "items",
    }
)
_ITEM_KEYS: Final = frozenset(
    {"seq", "serial", "name", "id_number", "account_no", "amount_fen", "remark"}
)
_ENVELOPE_KEYS: Final = frozenset({"alg", "key_id", "iv", "data", "mac"})


class RequestRejectedError(Exception):
    """A request answered with a final 4xx: ``status``, ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def invalid(message: str) -> RequestRejectedError:
    return RequestRejectedError(400, "INVALID_REQUEST", message)


@dataclass(frozen=True, slots=True)
class DisbursementItem:
    seq: int
    serial: str
    name: str
    id_number: str
    account_no: str
    amount_fen: int
    remark: str = ""


@dataclass(frozen=True, slots=True)
class Disbursement:
    batch_serial: str
    file_no: int
    payer_account: str
    payer_name: str
    subsidy_code: str
    subsidy_name: str
    period: str
    item_count: int
    total_fen: int
    items: tuple[DisbursementItem, ...]

    @property
    def request_id(self) -> str:
        return f"{self.batch_serial}{self.file_no:02d}"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(body: bytes) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN/Infinity."""
    try:
        text = body.decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise invalid(f"body is not UTF-8 JSON: {exc}") from exc


def _decryption_failed(message: str) -> RequestRejectedError:
    return RequestRejectedError(400, "DECRYPTION_FAILED", message)


def decrypt_body(body: bytes, sm4_keys: Mapping[str, bytes]) -> tuple[bytes, str | None]:
    """The plain body and the SM4 key id it was encrypted under (None: it was not).

    The receiver's steps of the contract, in its order: a body is an envelope when it is a
    JSON object whose only key is ``encrypted`` (1); the envelope has exactly ``alg``,
    ``key_id``, ``iv``, ``data``, ``mac``, all strings (2); ``alg`` is ``SM4-CBC-HMAC-SM3``
    (3); the key id is known (4); base64 and lengths (5); the MAC (6); the padding (7). Any
    failure is ``DECRYPTION_FAILED``. The caller then reads the plaintext like a plain body
    (8: ``INVALID_REQUEST`` and the rest)."""
    try:
        doc = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError):
        return body, None  # not (strict) JSON at all: validation answers INVALID_REQUEST
    if not isinstance(doc, dict) or set(doc) != {"encrypted"}:
        return body, None
    envelope = doc["encrypted"]
    if (
        not isinstance(envelope, dict)
        or set(envelope) != _ENVELOPE_KEYS
        or not all(isinstance(value, str) for value in envelope.values())
    ):
        raise _decryption_failed("encrypted must hold the strings alg, key_id, iv, data and mac")
    if envelope["alg"] != ENVELOPE_ALG:
        raise _decryption_failed(f"alg must be {ENVELOPE_ALG}")
    key_id: str = envelope["key_id"]
    key = sm4_keys.get(key_id)
    if key is None:
        raise _decryption_failed("unknown key_id")
    try:
        iv, data, mac = (
            base64.b64decode(envelope[name], validate=True) for name in ("iv", "data", "mac")
        )
    except ValueError as exc:  # binascii.Error, and non-ASCII text
        raise _decryption_failed("iv, data and mac must be base64") from exc
    try:
        return sm4_cbc_hmac_sm3_open(key, iv, data, mac), key_id
    except DecryptionError as exc:
        raise _decryption_failed(str(exc)) from exc


def encrypt_body(plain: bytes, key_id: str, key: bytes, iv: bytes) -> bytes:
    """The sender's envelope of ``plain`` (the bank never sends one: for tests and tools that
    play the gateway). ``iv`` must be fresh and random for every message."""
    ciphertext, mac = sm4_cbc_hmac_sm3_seal(key, iv, plain)
    envelope = {
        "alg": ENVELOPE_ALG,
        "key_id": key_id,
        "iv": base64.b64encode(iv).decode("ascii"),
        "data": base64.b64encode(ciphertext).decode("ascii"),
        "mac": base64.b64encode(mac).decode("ascii"),
    }
    return json.dumps({"encrypted": envelope}, separators=(",", ":")).encode("ascii")


def _get(doc: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in doc:
        raise invalid(f"{where}{key} is required")
    value = doc[key]
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(f"{where}{key} must be an integer")
    elif not isinstance(value, kind):
        raise invalid(f"{where}{key} must be a {kind.__name__}")
    return value


def _text(doc: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
    if not required and key not in doc:
        return ""
    value: str = _get(doc, key, str, where)
    if required and not value.strip():
        raise invalid(f"{where}{key} must not be empty")
    if _CONTROL.search(value):
        raise invalid(f"{where}{key} contains control characters")
    return value


def _token(doc: Mapping[str, Any], key: str, where: str, max_len: int) -> str:
    value = _text(doc, key, where)
    if len(value) > max_len or _TOKEN.fullmatch(value) is None:
        raise invalid(f"{where}{key} must be 1..{max_len} printable ASCII characters")
    return value


def _item(raw: object, index: int) -> DisbursementItem:
    where = f"items[{index}]."
    if not isinstance(raw, dict):
        raise invalid(f"items[{index}] must be an object")
    unknown = set(raw) - _ITEM_KEYS
    if unknown:
        raise invalid(f"{where} unknown keys {sorted(unknown)}")
    id_number = _text(raw, "id_number", where)
    if _ID_NUMBER.fullmatch(id_number) is None:
        raise invalid(f"{where}id_number must be 17 digits and a digit or X")
    amount: int = _get(raw, "amount_fen", int, where)
    if amount <= 0:
        raise invalid(f"{where}amount_fen must be > 0")
    return DisbursementItem(
        seq=_get(raw, "seq", int, where),
        serial=_token(raw, "serial", where, 24),
        name=_text(raw, "name", where),
        id_number=id_number,
        account_no=_token(raw, "account_no", where, 32),
        amount_fen=amount,
        remark=_text(raw, "remark", where, required=False),
    )


def parse_disbursement(
    body: bytes, *, request_id: str, payer_accounts: Sequence[str] = ()
) -> Disbursement:
    """Decode and check a plain (decrypted) body; raise :class:`RequestRejectedError`."""
    doc = decode_json(body)
    if not isinstance(doc, dict):
        raise invalid("body must be a JSON object")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise invalid(f"unknown keys {sorted(unknown)}")
    batch_serial = _text(doc, "batch_serial", "")
    if BATCH_SERIAL.fullmatch(batch_serial) is None:
        raise invalid("batch_serial must be 16 characters [0-9A-Z]")
    file_no: int = _get(doc, "file_no", int, "")
    if not 1 <= file_no <= 99:
        raise invalid("file_no must be 1..99")
    if request_id != f"{batch_serial}{file_no:02d}":
        raise invalid("X-Request-Id must be the batch serial followed by the 2-digit file_no")
    raw_items = _get(doc, "items", list, "")
    if not raw_items:
        raise invalid("items must not be empty")
    items = tuple(_item(raw, index) for index, raw in enumerate(raw_items))
    for expected, item in enumerate(items, start=1):
        if item.seq != expected:
            raise invalid(f"items[{expected - 1}].seq must be {expected} (1…n ascending)")
    serials = [item.serial for item in items]
    if len(set(serials)) != len(serials):
        raise invalid("item serials must be unique")
    disbursement = Disbursement(
        batch_serial=batch_serial,
        file_no=file_no,
        payer_account=_text(doc, "payer_account", ""),
        payer_name=_text(doc, "payer_name", ""),
        subsidy_code=_token(doc, "subsidy_code", "", 12),
        subsidy_name=_text(doc, "subsidy_name", ""),
        period=_token(doc, "period", "", 8),
        item_count=_get(doc, "item_count", int, ""),
        total_fen=_get(doc, "total_fen", int, ""),
        items=items,
    )
    if disbursement.item_count != len(items):
        raise RequestRejectedError(
            422, "TOTALS_MISMATCH", f"item_count {disbursement.item_count} != {len(items)} items"
        )
    total = sum(item.amount_fen for item in items)
    if disbursement.total_fen != total:
        raise RequestRejectedError(
            422, "TOTALS_MISMATCH", f"total_fen {disbursement.total_fen} != sum of items {total}"
        )
    payer = disbursement.payer_account
    if _PAYER_ACCOUNT.fullmatch(payer) is None or (payer_accounts and payer not in payer_accounts):
        raise RequestRejectedError(
            422, "PAYER_ACCOUNT_INVALID", "the payer account is not an account of this bank"
        )
    return disbursement
