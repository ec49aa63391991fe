"""The JSON documents of ``docs/formats/openapi-v1.md``: rendered and parsed strictly.

Rendering is deterministic (fixed key order, compact separators, ``ensure_ascii=False``,
UTF-8), so the same batch always gives the same bytes. Parsing refuses anything the
contract does not say: duplicate keys, unknown or missing keys, wrong JSON types (a float
or a boolean where an integer belongs), ``NaN``, statuses or dates out of the contract,
item serials of another batch, counts and amounts that disagree with the items.

Errors: a value we cannot write is a ``FieldError`` (with the field name), a structure we
cannot render or a document we cannot read a ``FormatError``. Messages name fields and
serials, never personal data.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from gateway.ports import (
    AccountEntry,
    ApiItemResult,
    ApiItemStatus,
    ApiStatus,
    FieldError,
    FormatError,
    MovementsPage,
    RequestHeader,
    RequestItem,
)

BATCH_SERIAL_RE: Final = re.compile(r"[0-9A-Z]{16}")
MAX_FILE_NO: Final = 99
#: ``alg`` of the encrypted body: SM4-CBC, then HMAC-SM3 over IV ‖ ciphertext.
SM4_CBC_HMAC_SM3: Final = "SM4-CBC-HMAC-SM3"
#: HKDF ``info`` deriving the envelope's MAC key from the pre-shared SM4 key.
ENVELOPE_MAC_KEY_INFO: Final = b"openapi-v1 SM4-CBC-HMAC-SM3 mac key"
ENVELOPE_IV_BYTES: Final = 16
ENVELOPE_MAC_BYTES: Final = 32

_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")
_TIME_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}")
_EVENT_ID_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_CODE_RE: Final = re.compile(r"[A-Za-z0-9_]{0,32}")
_MAX_TEXT: Final = 256
CALLBACK_EVENTS: Final = frozenset({"disbursement.completed", "item.returned"})
#: Entries one page of account movements may hold (the contract's bound).
MAX_MOVEMENTS_PER_PAGE: Final = 1000
ACCOUNT_RE: Final = re.compile(r"[0-9]{1,32}")
CURSOR_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ENTRY_ID_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_CHINA: Final = dt.timezone(dt.timedelta(hours=8))


def check_batch_serial(batch_serial: str) -> None:
    if not isinstance(batch_serial, str) or BATCH_SERIAL_RE.fullmatch(batch_serial) is None:
        raise ValueError(f"batch serial {batch_serial!r} is not 16 characters [0-9A-Z]")


def check_file_no(file_no: int) -> None:
    if isinstance(file_no, bool) or not isinstance(file_no, int) or not 1 <= file_no <= 99:
        raise ValueError(f"file number {file_no!r} is not 1…{MAX_FILE_NO}")


def item_serial_re(batch_serial: str) -> re.Pattern[str]:
    """Item serials of a batch: its 16-character serial and an 8-digit sequence."""
    return re.compile(re.escape(batch_serial) + r"[0-9]{8}")


def dump(value: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a document (key order as built; compact; UTF-8)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )


# --- rendering ---------------------------------------------------------------------------


def _text(value: object, field: str, *, seq: int | None = None, empty: bool = False) -> str:
    where = f"item seq {seq}: " if seq is not None else ""
    if not isinstance(value, str):
        raise FieldError(f"{where}{field} is not text", field_name=field, code="not_encodable")
    if not value and not empty:
        raise FieldError(f"{where}{field} is empty", field_name=field, code="empty")
    if len(value) > _MAX_TEXT:
        raise FieldError(
            f"{where}{field} is longer than {_MAX_TEXT} characters",
            field_name=field,
            code="too_long",
        )
    if _CONTROL_RE.search(value):
        raise FieldError(
            f"{where}{field} contains a control character", field_name=field, code="not_encodable"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldError(
            f"{where}{field} is not valid Unicode (lone surrogate)",
            field_name=field,
            code="not_encodable",
        ) from None
    return value


def _fen(value: object, field: str, *, seq: int | None = None) -> int:
    where = f"item seq {seq}: " if seq is not None else ""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise FieldError(
            f"{where}{field} must be a positive integer number of fen",
            field_name=field,
            code="out_of_range",
        )
    return value


def render_disbursement(
    header: RequestHeader,
    items: Iterable[RequestItem],
    *,
    payer_name: str | None,
    max_items: int,
) -> bytes:
    """The plain JSON body of ``POST /openapi/v1/disbursements``.

    ``payer_name`` is the profile's fallback when the header carries none.
    """
    try:
        check_batch_serial(header.batch_serial)
        check_file_no(header.file_no)
    except ValueError as exc:
        raise FormatError(str(exc)) from None
    serial_re = item_serial_re(header.batch_serial)
    rendered: list[dict[str, Any]] = []
    serials: set[str] = set()
    total = 0
    for item in items:
        count = len(rendered) + 1
        if count > max_items:
            raise FormatError(f"more than {max_items} items for one request")
        if item.seq != count:
            raise FormatError(f"item {count}: sequence {item.seq}, expected {count} (1…n)")
        if not isinstance(item.serial, str) or serial_re.fullmatch(item.serial) is None:
            raise FieldError(
                f"item seq {count}: serial is not the batch serial and 8 digits",
                field_name="serial",
                code="invalid",
            )
        if item.serial in serials:
            raise FormatError(f"item seq {count}: serial {item.serial} repeats in the request")
        serials.add(item.serial)
        amount = _fen(item.amount_fen, "amount_fen", seq=count)
        total += amount
        rendered.append(
            {
                "seq": count,
                "serial": item.serial,
                "name": _text(item.name, "name", seq=count),
                "id_number": _text(item.id_number, "id_number", seq=count),
                "account_no": _text(item.account_no, "account_no", seq=count),
                "amount_fen": amount,
                "remark": _text(item.remark, "remark", seq=count, empty=True),
            }
        )
    if not rendered:
        raise FormatError("a request needs at least one item")
    if header.item_count != len(rendered):
        raise FormatError(
            f"header item_count is {header.item_count}, the items give {len(rendered)}"
        )
    if header.total_fen != total:
        raise FormatError(f"header total_fen is {header.total_fen}, the items give {total}")
    name = header.payer_name or payer_name or ""
    document = {
        "batch_serial": header.batch_serial,
        "file_no": header.file_no,
        "payer_account": _text(header.payer_account, "payer_account"),
        "payer_name": _text(name, "payer_name"),
        "subsidy_code": _text(header.subsidy_code, "subsidy_code"),
        "subsidy_name": _text(header.subsidy_name, "subsidy_name"),
        "period": _text(header.period, "period"),
        "item_count": len(rendered),
        "total_fen": total,
        "items": rendered,
    }
    return dump(document)


@dataclass(frozen=True, slots=True)
class Envelope:
    """The parts of an encrypted body (``{"encrypted": {…}}``), base64 decoded."""

    key_id: str
    iv: bytes
    ciphertext: bytes
    mac: bytes


def render_envelope(envelope: Envelope) -> bytes:
    """The encrypted body: ``{"encrypted": {"alg", "key_id", "iv", "data", "mac"}}``."""
    return dump(
        {
            "encrypted": {
                "alg": SM4_CBC_HMAC_SM3,
                "key_id": envelope.key_id,
                "iv": base64.b64encode(envelope.iv).decode("ascii"),
                "data": base64.b64encode(envelope.ciphertext).decode("ascii"),
                "mac": base64.b64encode(envelope.mac).decode("ascii"),
            }
        }
    )


# --- parsing -----------------------------------------------------------------------------


def _fail(message: str) -> NoReturn:
    raise FormatError(message)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            _fail(f"key {key!r} appears twice")
        out[key] = value
    return out


def _no_constants(name: str) -> NoReturn:
    _fail(f"{name} is not JSON")


def load_object(data: bytes, what: str) -> dict[str, Any]:
    """A JSON object from UTF-8 bytes, refusing duplicate keys and NaN/Infinity."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        _fail(f"{what}: not UTF-8")
    if text.startswith("\ufeff"):
        _fail(f"{what}: starts with a byte order mark")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except FormatError as exc:
        _fail(f"{what}: {exc}")
    except (ValueError, RecursionError) as exc:
        _fail(f"{what}: not JSON ({exc})")
    if not isinstance(value, dict):
        _fail(f"{what}: not a JSON object")
    return value


class _Reader:
    """Typed access to one JSON object; every key must be read (or allowed) exactly."""

    def __init__(self, obj: object, where: str) -> None:
        if not isinstance(obj, dict):
            _fail(f"{where} is not a JSON object")
        self.obj: dict[str, Any] = obj
        self.where = where
        self.seen: set[str] = set()

    def _get(self, key: str, *, optional: bool = False) -> Any:
        self.seen.add(key)
        if key not in self.obj:
            if optional:
                return None
            _fail(f"{self.where}: {key!r} is missing")
        return self.obj[key]

    def text(
        self,
        key: str,
        *,
        pattern: re.Pattern[str] | None = None,
        empty: bool = True,
        max_length: int = _MAX_TEXT,
    ) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            _fail(f"{self.where}: {key!r} is not a string")
        if not value and not empty:
            _fail(f"{self.where}: {key!r} is empty")
        if len(value) > max_length or _CONTROL_RE.search(value):
            _fail(f"{self.where}: {key!r} is too long or contains a control character")
        if pattern is not None and pattern.fullmatch(value) is None:
            _fail(f"{self.where}: {key!r} is not in the expected form")
        return value

    def integer(self, key: str, *, minimum: int = 0) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(f"{self.where}: {key!r} is not an integer")
        if value < minimum:
            _fail(f"{self.where}: {key!r} is below {minimum}")
        return value

    def time(self, key: str, *, optional: bool = False) -> dt.datetime | None:
        value = self._get(key, optional=optional)
        if value is None and optional:
            return None
        if not isinstance(value, str) or _TIME_RE.fullmatch(value) is None:
            _fail(f"{self.where}: {key!r} is not YYYY-MM-DDThh:mm:ss±hh:mm")
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            _fail(f"{self.where}: {key!r} is not a valid date and time")

    def array(self, key: str) -> list[Any]:
        value = self._get(key)
        if not isinstance(value, list):
            _fail(f"{self.where}: {key!r} is not an array")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.obj) - self.seen)
        if unknown:
            _fail(f"{self.where}: unknown key(s) {', '.join(map(repr, unknown))}")


@dataclass(frozen=True, slots=True)
class Ack:
    batch_serial: str
    file_no: int
    accepted_at: str


def parse_ack(data: bytes) -> Ack:
    """The 202/200 answer to a submission."""
    r = _Reader(load_object(data, "acknowledgement"), "acknowledgement")
    batch_serial = r.text("batch_serial", pattern=BATCH_SERIAL_RE)
    file_no = r.integer("file_no", minimum=1)
    if r.text("status") != "accepted":
        _fail("acknowledgement: 'status' is not 'accepted'")
    r.time("accepted_at")
    accepted_at = r.obj["accepted_at"]  # kept as the bank wrote it (checked just above)
    r.done()
    return Ack(batch_serial, file_no, accepted_at)


def parse_error_code(data: bytes) -> tuple[str | None, str]:
    """``(code, message)`` of an error body; ``(None, "")`` when it is not one.

    Lenient on purpose: an error answer is already final or already a retry; its body only
    adds the bank's words to it.
    """
    try:
        obj = load_object(data, "error body")
    except FormatError:
        return None, ""
    code = obj.get("code")
    message = obj.get("message")
    if not isinstance(code, str) or _CODE_RE.fullmatch(code) is None or not code:
        return None, ""
    return code, message[:_MAX_TEXT] if isinstance(message, str) else ""


def parse_status(data: bytes, batch_serial: str, file_no: int) -> ApiStatus:
    """The 200 answer to ``GET /disbursements/{batch_serial}/{file_no}``."""
    r = _Reader(load_object(data, "status"), "status")
    if r.text("batch_serial") != batch_serial:
        _fail("status: 'batch_serial' is not the one asked for")
    if r.integer("file_no", minimum=1) != file_no:
        _fail("status: 'file_no' is not the one asked for")
    state = r.text("status")
    if state not in {"processing", "completed"}:
        _fail(f"status: 'status' {state!r} is neither 'processing' nor 'completed'")
    completed = state == "completed"
    stated = {
        "paid": (r.integer("paid_count"), r.integer("paid_fen")),
        "failed": (r.integer("failed_count"), r.integer("failed_fen")),
    }
    serial_re = item_serial_re(batch_serial)
    items: list[ApiItemResult] = []
    serials: set[str] = set()
    for index, raw_item in enumerate(r.array("items"), start=1):
        item = _parse_item(raw_item, f"status item {index}", serial_re)
        if item.serial in serials:
            _fail(f"status item {index}: serial {item.serial} repeats")
        serials.add(item.serial)
        if completed and item.status == ApiItemStatus.PENDING:
            _fail(f"status item {index}: 'pending' in a completed disbursement")
        items.append(item)
    r.done()
    for status in ("paid", "failed"):
        mine = [i.amount_fen for i in items if i.status == status]
        count, fen = stated[status]
        if (count, fen) != (len(mine), sum(mine)):
            _fail(
                f"status: {status}_count/{status}_fen say {count}/{fen}, "
                f"the items give {len(mine)}/{sum(mine)}"
            )
    return ApiStatus(
        batch_serial=batch_serial,
        file_no=file_no,
        completed=completed,
        items=tuple(items),
        raw=data,
    )


def _parse_item(obj: object, where: str, serial_re: re.Pattern[str]) -> ApiItemResult:
    r = _Reader(obj, where)
    serial = r.text("serial", pattern=serial_re)
    raw_status = r.text("status")
    try:
        status = ApiItemStatus(raw_status)
    except ValueError:
        _fail(f"{where}: 'status' {raw_status!r} is not pending, paid, failed or returned")
    code = r.text("code", pattern=_CODE_RE)
    message = r.text("message")
    amount = r.integer("amount_fen", minimum=1)
    bank_ref = r.text("bank_ref")
    pending = status == ApiItemStatus.PENDING
    processed_at = r.time("processed_at", optional=pending)
    returned_at = r.time("returned_at", optional=status != ApiItemStatus.RETURNED)
    r.done()
    if pending and code:
        _fail(f"{where}: a pending item has code {code!r}")
    if not pending and not code:
        _fail(f"{where}: a decided item has no code")
    return ApiItemResult(
        serial=serial,
        status=status,
        bank_code=code,
        bank_message=message,
        amount_fen=amount,
        bank_ref=bank_ref,
        processed_at=processed_at,
        returned_at=returned_at,
    )


@dataclass(frozen=True, slots=True)
class CallbackEvent:
    event_id: str
    event: str
    batch_serial: str
    file_no: int
    sent_at: dt.datetime


def parse_callback(data: bytes) -> CallbackEvent:
    """A callback body: ``{"event_id", "event", "batch_serial", "file_no", "sent_at"}``."""
    r = _Reader(load_object(data, "callback"), "callback")
    event_id = r.text("event_id", pattern=_EVENT_ID_RE)
    event = r.text("event")
    if event not in CALLBACK_EVENTS:
        _fail(f"callback: unknown event {event!r}")
    batch_serial = r.text("batch_serial", pattern=BATCH_SERIAL_RE)
    file_no = r.integer("file_no", minimum=1)
    if file_no > MAX_FILE_NO:
        _fail(f"callback: 'file_no' is above {MAX_FILE_NO}")
    sent_at = r.time("sent_at")
    r.done()
    assert sent_at is not None  # noqa: S101 (not optional above)
    return CallbackEvent(event_id, event, batch_serial, file_no, sent_at)


def decode_envelope(data: bytes) -> Envelope:
    """The parts of an encrypted body, checked for form (steps 1–3 and 5 of the receiver's
    checks in the contract; the caller checks the key id and the MAC, then decrypts)."""
    outer = _Reader(load_object(data, "envelope"), "envelope")
    inner = _Reader(outer._get("encrypted"), "envelope.encrypted")
    outer.done()
    if inner.text("alg") != SM4_CBC_HMAC_SM3:
        _fail(f"envelope: 'alg' is not {SM4_CBC_HMAC_SM3}")
    key_id = inner.text("key_id", empty=False)
    try:
        iv = base64.b64decode(inner.text("iv"), validate=True)
        ciphertext = base64.b64decode(inner.text("data", max_length=1 << 30), validate=True)
        mac = base64.b64decode(inner.text("mac"), validate=True)
    except ValueError:
        _fail("envelope: 'iv', 'data' or 'mac' is not base64")
    inner.done()
    if len(iv) != ENVELOPE_IV_BYTES or len(mac) != ENVELOPE_MAC_BYTES:
        _fail(f"envelope: 'iv' must be {ENVELOPE_IV_BYTES} bytes and 'mac' {ENVELOPE_MAC_BYTES}")
    if not ciphertext or len(ciphertext) % 16:
        _fail("envelope: 'data' is not a non-empty multiple of 16 bytes")
    return Envelope(key_id, iv, ciphertext, mac)


# --- account movements ---------------------------------------------------------------------


def check_account(account: str) -> None:
    if not isinstance(account, str) or ACCOUNT_RE.fullmatch(account) is None:
        raise ValueError("a payer account is 1-32 ASCII digits")


def check_cursor(cursor: str) -> None:
    if not isinstance(cursor, str) or CURSOR_RE.fullmatch(cursor) is None:
        raise ValueError("a cursor is 1-64 characters [A-Za-z0-9_-]")


def parse_movements(data: bytes, account: str, day: dt.date) -> MovementsPage:
    """The 200 answer to ``GET /accounts/{account}/movements?date=…``: every rule of the
    contract checked, or ``FormatError`` (nothing of a broken page is used)."""
    r = _Reader(load_object(data, "movements"), "movements")
    if r.text("account") != account:
        _fail("movements: 'account' is not the one asked for")
    if r.text("date") != day.isoformat():
        _fail("movements: 'date' is not the one asked for")
    raw_entries = r.array("entries")
    if len(raw_entries) > MAX_MOVEMENTS_PER_PAGE:
        _fail(f"movements: more than {MAX_MOVEMENTS_PER_PAGE} entries in one page")
    entries: list[AccountEntry] = []
    ids: set[str] = set()
    for index, raw in enumerate(raw_entries, start=1):
        entry = _parse_movement(raw, f"movements entry {index}", account, day)
        if entry.entry_id in ids:
            _fail(f"movements entry {index}: entry_id repeats in the page")
        ids.add(entry.entry_id or "")
        entries.append(entry)
    next_cursor = r.text("next_cursor", max_length=64)
    if next_cursor and CURSOR_RE.fullmatch(next_cursor) is None:
        _fail("movements: 'next_cursor' is not 1-64 characters [A-Za-z0-9_-]")
    has_more = r._get("has_more")
    if not isinstance(has_more, bool):
        _fail("movements: 'has_more' is not true or false")
    r.done()
    if has_more and (not entries or not next_cursor):
        _fail("movements: 'has_more' with an empty page or no 'next_cursor'")
    if entries and not next_cursor:
        _fail("movements: entries but no 'next_cursor'")
    return MovementsPage(
        account=account,
        day=day,
        entries=tuple(entries),
        next_cursor=next_cursor,
        has_more=has_more,
        raw=data,
    )


def _parse_movement(obj: object, where: str, account: str, day: dt.date) -> AccountEntry:
    r = _Reader(obj, where)
    entry_id = r.text("entry_id", pattern=_ENTRY_ID_RE)
    booked_at = r.time("booked_at")
    assert booked_at is not None  # noqa: S101 (not optional above)
    try:
        booked_on = booked_at.astimezone(_CHINA).date()
    except OverflowError:
        _fail(f"{where}: 'booked_at' is out of range")
    if booked_on != day:
        _fail(f"{where}: 'booked_at' is not on the day asked for")
    direction = r.text("direction")
    if direction not in ("debit", "credit"):
        _fail(f"{where}: 'direction' is neither 'debit' nor 'credit'")
    amount = r.integer("amount_fen", minimum=1)
    if amount > 10**15:
        _fail(f"{where}: 'amount_fen' is beyond any account's range")
    bank_ref = r.text("bank_ref", max_length=64)
    batch_serial = r._get("batch_serial")
    file_no = r._get("file_no")
    item_serial = r._get("item_serial")
    if batch_serial is not None and (
        not isinstance(batch_serial, str) or BATCH_SERIAL_RE.fullmatch(batch_serial) is None
    ):
        _fail(f"{where}: 'batch_serial' is neither null nor 16 characters [0-9A-Z]")
    if file_no is not None and (
        isinstance(file_no, bool) or not isinstance(file_no, int) or not 1 <= file_no <= 99
    ):
        _fail(f"{where}: 'file_no' is neither null nor 1...{MAX_FILE_NO}")
    if item_serial is not None and (
        batch_serial is None
        or not isinstance(item_serial, str)
        or item_serial_re(batch_serial).fullmatch(item_serial) is None
    ):
        _fail(f"{where}: 'item_serial' is not null nor an item serial of 'batch_serial'")
    if batch_serial is None and file_no is not None:
        _fail(f"{where}: 'file_no' without 'batch_serial'")
    reason_code = r.text("reason_code", pattern=_CODE_RE)
    if direction == "debit" and reason_code:
        _fail(f"{where}: a debit has a reason code")
    r.done()
    details = ((item_serial, amount),) if item_serial is not None else ()
    return AccountEntry(
        account=account,
        amount_fen=amount,
        direction="debit" if direction == "debit" else "credit",
        booked_on=day,
        bank_ref=bank_ref,
        batch_serial=batch_serial,
        file_no=file_no,
        details=details,
        entry_id=entry_id,
        reason_code=reason_code,
    )
