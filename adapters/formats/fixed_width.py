"""Bank format ``fw-gb18030-v1``: fixed-width GB18030 request and result files (代发文件/回盘)
and the bank's account movements files (``ACT_…``: debits of the payer account, 退票 credits).

The contract is ``docs/formats/fw-gb18030-v1.md``; where this module and the text disagree,
the text wins. The mock bank implements the same text independently (no shared code).

Rules this module enforces:

- Every width is counted in **bytes** of the GB18030 encoding (Python's ``gb18030`` codec,
  i.e. the GB18030-2005 mapping). Records end with CRLF; the record lengths in the spec
  (192/256/64 and 128/224/64) exclude the CRLF.
- A text field marked *cut allowed* (subsidy name, remark, bank message) that is too long is
  cut after the last whole character that fits, never inside a 2- or 4-byte character, and
  padded with ASCII spaces. Every other text field that does not fit raises
  :class:`~gateway.ports.FieldError` (``code="too_long"``).
- A value that cannot be written at all raises ``FieldError(code="not_encodable")``: lone
  surrogates (not Unicode scalar values, so not encodable in GB18030) and ASCII control
  characters (CR/LF/TAB/NUL… would break the record structure and have no business in a
  name or remark). In GB18030 the bytes 0x00–0x1F and 0x7F only ever stand for themselves
  (they are never a byte of a multi-byte character), so the check runs on encoded bytes.
- Numbers that do not fit their width, and amounts that are not > 0, raise
  ``FieldError(code="out_of_range")``.
- Parsing is strict: record types, lengths, digits, reserved space, encodings, sequences,
  duplicate serials, counts and totals must all tie out, else :class:`FormatError` naming
  the line and field. Error messages never contain names, account or ID numbers.

``field_name`` in a FieldError is the attribute name of the port's data class
(``RequestItem.name``, ``RequestHeader.payer_account``…) so the gateway can point at it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from gateway.ports import (
    AccountEntry,
    AccountNotice,
    FieldError,
    FormatError,
    RequestHeader,
    RequestItem,
    ResultFile,
    ResultItem,
    ResultStatus,
)

ENCODING: Final = "gb18030"
CRLF: Final = b"\r\n"
FORMAT_VERSION: Final = b"FW01"

#: Asia/Shanghai local time. China has kept UTC+8 without daylight saving since 1991, so a
#: fixed offset is exact for every date a payment file can carry and needs no tz database.
SHANGHAI: Final = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")

# FieldError codes
TOO_LONG: Final = "too_long"
NOT_ENCODABLE: Final = "not_encodable"
OUT_OF_RANGE: Final = "out_of_range"
INVALID: Final = "invalid"

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_NON_CONTROL_BYTES: Final = bytes(b for b in range(256) if 0x20 <= b != 0x7F)
_SERIAL = re.compile(r"[0-9A-Z]{16}")
_REQUEST_NAME = re.compile(r"PAY_([0-9A-Z]{16})_([0-9]{2})\.txt")
_RESULT_NAME = re.compile(r"RET_([0-9A-Z]{16})_([0-9]{2})\.txt")
# The movements booked for a request file, or (``_R<k>``) the k-th later one (a return).
_NOTICE_NAME = re.compile(r"ACT_([0-9A-Z]{16})_([0-9]{2})(?:_R[1-9][0-9]{0,5})?\.txt")
_NOTICE_ID = re.compile(r"[0-9A-Z]{1,32}")
_RETURN_CODE = re.compile(r"R(?!000)[0-9]{3}")

PAID_CODE: Final = "0000"

# Reason codes of account movements (``ACT_…`` files): a payment's debit, returns (``R…``,
# credits naming the item), and movements that are no item's.
PAYMENT_DEBIT: Final = "0000"
OTHER_DEBIT: Final = "D999"
OTHER_CREDIT: Final = "C999"


# --- layouts -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """One fixed-width field: ``kind`` ``X`` is text, ``9`` is unsigned digits."""

    name: str
    kind: Literal["X", "9"]
    width: int
    cut: bool = False


class Layout:
    """A record layout: field order, widths, and the byte slice of each field."""

    def __init__(self, record: str, record_type: bytes, fields: tuple[Field, ...]) -> None:
        self.record = record
        self.record_type = record_type
        self.fields = fields
        self.length = sum(f.width for f in fields)
        slices: dict[str, slice] = {}
        start = 0
        for f in fields:
            slices[f.name] = slice(start, start + f.width)
            start += f.width
        self.slices = slices

    def split(self, line: bytes, line_no: int) -> dict[str, bytes]:
        if len(line) != self.length:
            raise FormatError(
                f"line {line_no}: {self.record} record is {len(line)} bytes, expected {self.length}"
            )
        return {name: line[s] for name, s in self.slices.items()}


REQUEST_HEADER: Final = Layout(
    "request header",
    b"H",
    (
        Field("record_type", "X", 1),
        Field("format_version", "X", 4),
        Field("batch_serial", "X", 16),
        Field("file_no", "9", 2),
        Field("payer_account", "X", 32),
        Field("subsidy_code", "X", 12),
        Field("subsidy_name", "X", 60, cut=True),
        Field("period", "X", 8),
        Field("item_count", "9", 9),
        Field("total_fen", "9", 18),
        Field("created_on", "9", 8),
        Field("reserved", "X", 22),
    ),
)

REQUEST_DETAIL: Final = Layout(
    "request detail",
    b"D",
    (
        Field("record_type", "X", 1),
        Field("seq", "9", 9),
        Field("serial", "X", 24),
        Field("account_no", "X", 32),
        Field("name", "X", 60),
        Field("id_number", "X", 18),
        Field("amount_fen", "9", 15),
        Field("remark", "X", 60, cut=True),
        Field("reserved", "X", 37),
    ),
)

TRAILER: Final = Layout(
    "trailer",
    b"T",
    (
        Field("record_type", "X", 1),
        Field("item_count", "9", 9),
        Field("total_fen", "9", 18),
        Field("end_marker", "X", 3),
        Field("reserved", "X", 33),
    ),
)

RESULT_HEADER: Final = Layout(
    "result header",
    b"H",
    (
        Field("record_type", "X", 1),
        Field("format_version", "X", 4),
        Field("batch_serial", "X", 16),
        Field("file_no", "9", 2),
        Field("file_status", "X", 1),
        Field("reject_code", "X", 6),
        Field("item_count", "9", 9),
        Field("paid_count", "9", 9),
        Field("paid_fen", "9", 18),
        Field("failed_count", "9", 9),
        Field("failed_fen", "9", 18),
        Field("processing_date", "9", 8),
        Field("reserved", "X", 27),
    ),
)

RESULT_DETAIL: Final = Layout(
    "result detail",
    b"D",
    (
        Field("record_type", "X", 1),
        Field("seq", "9", 9),
        Field("serial", "X", 24),
        Field("account_no", "X", 32),
        Field("amount_fen", "9", 15),
        Field("status", "X", 1),
        Field("bank_code", "X", 6),
        Field("bank_message", "X", 60, cut=True),
        Field("bank_ref", "X", 32),
        Field("processed_at", "9", 14),
        Field("reserved", "X", 30),
    ),
)

MOVEMENTS_HEADER: Final = Layout(
    "movements header",
    b"H",
    (
        Field("record_type", "X", 1),
        Field("format_version", "X", 4),
        Field("notice_id", "X", 32),
        Field("batch_serial", "X", 16),
        Field("file_no", "9", 2),
        Field("payer_account", "X", 32),
        Field("record_count", "9", 9),
        Field("debit_count", "9", 9),
        Field("debit_fen", "9", 18),
        Field("credit_count", "9", 9),
        Field("credit_fen", "9", 18),
        Field("created_at", "9", 14),
        Field("reserved", "X", 28),
    ),
)

MOVEMENTS_DETAIL: Final = Layout(
    "movements detail",
    b"D",
    (
        Field("record_type", "X", 1),
        Field("seq", "9", 9),
        Field("direction", "X", 1),
        Field("amount_fen", "9", 15),
        Field("booked_on", "9", 8),
        Field("bank_ref", "X", 32),
        Field("serial", "X", 24),
        Field("reason_code", "X", 4),
        Field("description", "X", 60, cut=True),
        Field("reserved", "X", 38),
    ),
)

# The spec's record lengths; a layout typo must fail at import, not in production.
assert REQUEST_HEADER.length == 192  # noqa: S101
assert REQUEST_DETAIL.length == 256  # noqa: S101
assert TRAILER.length == 64  # noqa: S101
assert RESULT_HEADER.length == 128  # noqa: S101
assert RESULT_DETAIL.length == 224  # noqa: S101
assert MOVEMENTS_HEADER.length == 192  # noqa: S101
assert MOVEMENTS_DETAIL.length == 192  # noqa: S101


@dataclass(frozen=True, slots=True)
class Movement:
    """One detail record of an account movements file (``ACT_…``), for rendering.

    ``direction`` ``"debit"`` (money left the payer account) or ``"credit"`` (it came
    back); ``serial`` empty for a movement that is no item's (reason ``D999``/``C999``)."""

    direction: Literal["debit", "credit"]
    amount_fen: int
    booked_on: dt.date
    bank_ref: str
    serial: str
    reason_code: str
    description: str = ""


# --- encoding helpers ------------------------------------------------------------------------


def cut_to_width(value: str, width: int) -> bytes:
    """GB18030 bytes of the longest prefix of ``value`` (whole characters) within ``width``.

    Not padded. Raises ``UnicodeEncodeError`` for characters GB18030 cannot encode.
    """
    raw = value.encode(ENCODING)
    if len(raw) <= width:
        return raw
    out = bytearray()
    for ch in value:
        b = ch.encode(ENCODING)
        if len(out) + len(b) > width:
            break
        out += b
    return bytes(out)


def _where(seq: int | None) -> str:
    return "" if seq is None else f"item seq {seq}: "


def encode_text(
    value: str, width: int, field_name: str, *, cut: bool, seq: int | None = None
) -> bytes:
    """``value`` as a padded text field of exactly ``width`` bytes, or FieldError."""
    try:
        raw = value.encode(ENCODING)
    except UnicodeEncodeError as exc:
        raise FieldError(
            f"{_where(seq)}{field_name}: character at position {exc.start} "
            "cannot be encoded in GB18030",
            field_name=field_name,
            code=NOT_ENCODABLE,
        ) from None
    if _CONTROL.search(raw) is not None:
        raise FieldError(
            f"{_where(seq)}{field_name}: contains a control character",
            field_name=field_name,
            code=NOT_ENCODABLE,
        )
    if len(raw) > width:
        if not cut:
            raise FieldError(
                f"{_where(seq)}{field_name}: {len(raw)} bytes in GB18030, the field holds "
                f"{width} and may not be cut",
                field_name=field_name,
                code=TOO_LONG,
                limit=width,
                unit="gb18030_bytes",
            )
        raw = cut_to_width(value, width)
    return raw.ljust(width)


def encode_number(value: int, width: int, field_name: str, *, seq: int | None = None) -> bytes:
    """``value`` as zero-padded ASCII digits of exactly ``width`` bytes, or FieldError."""
    if not 0 <= value < 10**width:
        raise FieldError(
            f"{_where(seq)}{field_name}: {value} does not fit {width} unsigned digits",
            field_name=field_name,
            code=OUT_OF_RANGE,
            limit=width,
            unit="digits",
        )
    return b"%0*d" % (width, value)


def _encode_date(value: dt.date, field_name: str) -> bytes:
    if value.year < 1000:
        raise FieldError(
            f"{field_name}: year {value.year} cannot be written as YYYYMMDD",
            field_name=field_name,
            code=OUT_OF_RANGE,
        )
    return b"%04d%02d%02d" % (value.year, value.month, value.day)


def _encode_timestamp(value: dt.datetime) -> bytes:
    local = value.astimezone(SHANGHAI) if value.tzinfo is not None else value
    return b"%04d%02d%02d%02d%02d%02d" % (
        local.year,
        local.month,
        local.day,
        local.hour,
        local.minute,
        local.second,
    )


_SPACES: dict[int, bytes] = {}
_RESERVED_37: Final = b" " * 37


def _spaces(width: int) -> bytes:
    s = _SPACES.get(width)
    if s is None:
        s = _SPACES[width] = b" " * width
    return s


# --- decoding helpers ------------------------------------------------------------------------


def _split_records(data: bytes) -> list[bytes]:
    if data.startswith(b"\xef\xbb\xbf") or data.startswith(b"\x84\x31\x95\x33"):
        raise FormatError("file starts with a byte order mark; the format has none")
    if not data:
        raise FormatError("file is empty")
    if not data.endswith(CRLF):
        raise FormatError("file does not end with CRLF after the trailer record")
    lines = data[: -len(CRLF)].split(CRLF)
    if len(lines) < 2:
        raise FormatError("file holds fewer than two records (header and trailer)")
    return lines


def _check_type(line: bytes, line_no: int, layout: Layout) -> None:
    if line[:1] != layout.record_type:
        found = line[:1].decode("ascii", errors="replace") or "nothing"
        raise FormatError(
            f"line {line_no}: record type {found!r}, expected "
            f"{layout.record_type.decode()!r} ({layout.record})"
        )


def _number(raw: bytes, name: str, line_no: int) -> int:
    if not raw.isdigit():
        shown = raw.decode("ascii", errors="replace")
        raise FormatError(
            f"line {line_no}: {name} must be {len(raw)} ASCII digits, found {shown!r}"
        )
    return int(raw)


def _text(raw: bytes, name: str, line_no: int) -> str:
    stripped = raw.rstrip(b" ")
    if _CONTROL.search(stripped) is not None:
        raise FormatError(f"line {line_no}: {name} contains a control character")
    try:
        return stripped.decode(ENCODING)
    except UnicodeDecodeError:
        raise FormatError(f"line {line_no}: {name} is not valid GB18030") from None


def _fixed(raw: bytes, expected: bytes, name: str, line_no: int) -> None:
    if raw != expected:
        shown = raw.decode("ascii", errors="replace")
        raise FormatError(
            f"line {line_no}: {name} is {shown!r}, expected {expected.decode('ascii')!r}"
        )


def _reserved(raw: bytes, line_no: int) -> None:
    if raw.strip(b" "):
        raise FormatError(f"line {line_no}: reserved field is not all spaces")


def _date(raw: bytes, name: str, line_no: int) -> dt.date:
    _number(raw, name, line_no)
    try:
        return dt.date(int(raw[0:4]), int(raw[4:6]), int(raw[6:8]))
    except ValueError:
        raise FormatError(f"line {line_no}: {name} {raw.decode()!r} is not a valid date") from None


def _timestamp(raw: bytes, name: str, line_no: int) -> dt.datetime:
    _number(raw, name, line_no)
    try:
        return dt.datetime(
            int(raw[0:4]),
            int(raw[4:6]),
            int(raw[6:8]),
            int(raw[8:10]),
            int(raw[10:12]),
            int(raw[12:14]),
            tzinfo=SHANGHAI,
        )
    except ValueError:
        raise FormatError(
            f"line {line_no}: {name} {raw.decode()!r} is not a valid timestamp"
        ) from None


def _batch_serial(raw: bytes, line_no: int) -> str:
    serial = _text(raw, "batch_serial", line_no)
    if _SERIAL.fullmatch(serial) is None:
        raise FormatError(f"line {line_no}: batch_serial {serial!r} is not 16 of [0-9A-Z]")
    return serial


def _trailer(lines: list[bytes]) -> tuple[int, int]:
    line_no = len(lines)
    line = lines[-1]
    _check_type(line, line_no, TRAILER)
    f = TRAILER.split(line, line_no)
    _fixed(f["end_marker"], b"END", "end_marker", line_no)
    _reserved(f["reserved"], line_no)
    return (
        _number(f["item_count"], "trailer item_count", line_no),
        _number(f["total_fen"], "trailer total_fen", line_no),
    )


def _tie(name: str, stated: int, actual: int, where: str) -> None:
    if stated != actual:
        raise FormatError(f"{where} {name} is {stated}, the detail records give {actual}")


# --- the format ----------------------------------------------------------------------------


class FixedWidthGb18030Format:
    """``fw-gb18030-v1`` (implements ``gateway.ports.BankFormat`` and
    ``AccountNoticeFormat``: the bank's account movements files ``ACT_…txt``)."""

    name = "fw-gb18030-v1"

    def __init__(self, max_items_per_file: int = 50_000) -> None:
        if not 1 <= max_items_per_file <= 999_999_999:
            raise ValueError(f"max_items_per_file must be 1…999999999, got {max_items_per_file}")
        self.max_items_per_file = max_items_per_file

    # --- file names ---

    @staticmethod
    def _check_name_parts(batch_serial: str, file_no: int) -> None:
        if _SERIAL.fullmatch(batch_serial) is None:
            raise FieldError(
                f"batch_serial {batch_serial!r} is not 16 of [0-9A-Z]",
                field_name="batch_serial",
                code=INVALID,
            )
        if not 1 <= file_no <= 99:
            raise FieldError(
                f"file_no {file_no} is not 1…99", field_name="file_no", code=OUT_OF_RANGE
            )

    def request_file_name(self, batch_serial: str, file_no: int) -> str:
        self._check_name_parts(batch_serial, file_no)
        return f"PAY_{batch_serial}_{file_no:02d}.txt"

    def result_file_name(self, batch_serial: str, file_no: int) -> str:
        self._check_name_parts(batch_serial, file_no)
        return f"RET_{batch_serial}_{file_no:02d}.txt"

    def is_result_file_name(self, name: str) -> bool:
        return self.parse_result_file_name(name) is not None

    def parse_result_file_name(self, name: str) -> tuple[str, int] | None:
        """``(batch_serial, file_no)`` of a result file name, or None if it is not one."""
        m = _RESULT_NAME.fullmatch(name)
        if m is None or m.group(2) == "00":
            return None
        return m.group(1), int(m.group(2))

    def account_notice_file_name(
        self, batch_serial: str, file_no: int, return_no: int | None = None
    ) -> str:
        """``ACT_<serial>_<nn>.txt``, or ``ACT_<serial>_<nn>_R<k>.txt`` for the k-th later
        movement (a return)."""
        self._check_name_parts(batch_serial, file_no)
        if return_no is None:
            return f"ACT_{batch_serial}_{file_no:02d}.txt"
        if not 1 <= return_no <= 999_999:
            raise FieldError(
                f"return_no {return_no} is not 1…999999", field_name="return_no", code=OUT_OF_RANGE
            )
        return f"ACT_{batch_serial}_{file_no:02d}_R{return_no}.txt"

    def is_account_notice_name(self, name: str) -> bool:
        return self.parse_account_notice_file_name(name) is not None

    def parse_account_notice_file_name(self, name: str) -> tuple[str, int] | None:
        """``(batch_serial, file_no)`` of an account movements file name, or None."""
        m = _NOTICE_NAME.fullmatch(name)
        if m is None or m.group(2) == "00":
            return None
        return m.group(1), int(m.group(2))

    def parse_request_file_name(self, name: str) -> tuple[str, int] | None:
        """``(batch_serial, file_no)`` of a request file name, or None if it is not one."""
        m = _REQUEST_NAME.fullmatch(name)
        if m is None or m.group(2) == "00":
            return None
        return m.group(1), int(m.group(2))

    def signature_name(self, file_name: str) -> str:
        return f"{file_name}.sig"

    # --- request ---

    def check_item(self, item: RequestItem) -> list[FieldError]:
        errors: list[FieldError] = []
        seq = item.seq
        for field_name, value, width, cut in (
            ("serial", item.serial, 24, False),
            ("account_no", item.account_no, 32, False),
            ("name", item.name, 60, False),
            ("id_number", item.id_number, 18, False),
            ("remark", item.remark, 60, True),
        ):
            try:
                encode_text(value, width, field_name, cut=cut, seq=seq)
            except FieldError as exc:
                errors.append(exc)
        try:
            encode_number(seq, 9, "seq", seq=seq)
        except FieldError as exc:
            errors.append(exc)
        try:
            self._amount(item.amount_fen, seq)
        except FieldError as exc:
            errors.append(exc)
        return errors

    def check_header(self, header: RequestHeader) -> list[FieldError]:
        """Every reason the request header cannot be written (empty when it fits):
        ``render_request`` raises the first, intake refuses a batch for any of them."""
        errors: list[FieldError] = []
        try:
            self._check_name_parts(header.batch_serial, header.file_no)
        except FieldError as exc:
            errors.append(exc)
        for field_name, value, width, cut in (
            ("batch_serial", header.batch_serial, 16, False),
            ("payer_account", header.payer_account, 32, False),
            ("subsidy_code", header.subsidy_code, 12, False),
            ("subsidy_name", header.subsidy_name, 60, True),
            ("period", header.period, 8, False),
        ):
            try:
                encode_text(value, width, field_name, cut=cut)
            except FieldError as exc:
                errors.append(exc)
        for field_name, number, width in (
            ("file_no", header.file_no, 2),
            ("item_count", header.item_count, 9),
            ("total_fen", header.total_fen, 18),
        ):
            try:
                encode_number(number, width, field_name)
            except FieldError as exc:
                errors.append(exc)
        try:
            _encode_date(header.created_on, "created_on")
        except FieldError as exc:
            errors.append(exc)
        return errors

    @staticmethod
    def _amount(amount_fen: int, seq: int | None) -> bytes:
        if amount_fen <= 0:
            raise FieldError(
                f"{_where(seq)}amount_fen must be > 0, got {amount_fen}",
                field_name="amount_fen",
                code=OUT_OF_RANGE,
            )
        return encode_number(amount_fen, 15, "amount_fen", seq=seq)

    def _render_request_header(self, header: RequestHeader) -> bytes:
        self._check_name_parts(header.batch_serial, header.file_no)
        return b"".join(
            (
                b"H",
                FORMAT_VERSION,
                encode_text(header.batch_serial, 16, "batch_serial", cut=False),
                encode_number(header.file_no, 2, "file_no"),
                encode_text(header.payer_account, 32, "payer_account", cut=False),
                encode_text(header.subsidy_code, 12, "subsidy_code", cut=False),
                encode_text(header.subsidy_name, 60, "subsidy_name", cut=True),
                encode_text(header.period, 8, "period", cut=False),
                encode_number(header.item_count, 9, "item_count"),
                encode_number(header.total_fen, 18, "total_fen"),
                _encode_date(header.created_on, "created_on"),
                _spaces(22),
            )
        )

    def _render_request_detail(self, item: RequestItem) -> bytes:
        # Fast path: encode each field once, check all widths, format the record in one go.
        # Anything unusual takes the field-by-field path, which raises the precise FieldError.
        seq = item.seq
        amount = item.amount_fen
        try:
            serial = item.serial.encode(ENCODING)
            account = item.account_no.encode(ENCODING)
            name = item.name.encode(ENCODING)
            id_number = item.id_number.encode(ENCODING)
            remark = item.remark.encode(ENCODING)
        except UnicodeEncodeError:
            return self._render_request_detail_checked(item)
        if (
            len(serial) <= 24
            and len(account) <= 32
            and len(name) <= 60
            and len(id_number) <= 18
            and len(remark) <= 60
            and 0 <= seq < 1_000_000_000
            and 0 < amount < 1_000_000_000_000_000
        ):
            # Control bytes are not checked here: render_request scans all details at once.
            return b"D%09d%-24s%-32s%-60s%-18s%015d%-60s%s" % (
                seq,
                serial,
                account,
                name,
                id_number,
                amount,
                remark,
                _RESERVED_37,
            )
        return self._render_request_detail_checked(item)

    def _render_request_detail_checked(self, item: RequestItem) -> bytes:
        seq = item.seq
        return b"".join(
            (
                b"D",
                encode_number(seq, 9, "seq", seq=seq),
                encode_text(item.serial, 24, "serial", cut=False, seq=seq),
                encode_text(item.account_no, 32, "account_no", cut=False, seq=seq),
                encode_text(item.name, 60, "name", cut=False, seq=seq),
                encode_text(item.id_number, 18, "id_number", cut=False, seq=seq),
                self._amount(item.amount_fen, seq),
                encode_text(item.remark, 60, "remark", cut=True, seq=seq),
                _spaces(37),
            )
        )

    def render_request(self, header: RequestHeader, items: Iterable[RequestItem]) -> bytes:
        """The request file's exact bytes.

        Raises FieldError for a value that cannot be written, and FormatError when the items
        do not make a file the bank would accept: more than ``max_items_per_file``, no items,
        sequences not 1…n, a repeated item serial, or a header count/total that disagrees
        with the items.
        """
        header_errors = self.check_header(header)
        if header_errors:
            raise header_errors[0]
        head = self._render_request_header(header)
        details: list[bytes] = []
        kept: list[RequestItem] = []
        count = 0
        total = 0
        serials: set[str] = set()
        limit = self.max_items_per_file
        for item in items:
            count += 1
            if count > limit:
                raise FormatError(f"more than {limit} items for one file")
            if item.seq != count:
                raise FormatError(
                    f"item {count}: sequence {item.seq}, expected {count} (sequences run 1…n)"
                )
            if item.serial in serials:
                raise FormatError(f"item seq {count}: serial {item.serial!r} repeats in the file")
            serials.add(item.serial)
            details.append(self._render_request_detail(item))
            kept.append(item)
            total += item.amount_fen
        if count == 0:
            raise FormatError("a request file needs at least one item")
        # One pass over all details for control bytes (deleting every other byte value is
        # several times faster than a regex search); only on a hit, find the record and let
        # the field-by-field path name the field.
        if b"".join(details).translate(None, _NON_CONTROL_BYTES):
            for item in kept:
                self._render_request_detail_checked(item)
            raise AssertionError("control byte not attributed to a field")  # pragma: no cover
        _tie("item_count", header.item_count, count, "header")
        _tie("total_fen", header.total_fen, total, "header")
        trailer = b"".join(
            (
                b"T",
                encode_number(count, 9, "item_count"),
                encode_number(total, 18, "total_fen"),
                b"END",
                _spaces(33),
            )
        )
        return CRLF.join((head, *details, trailer, b""))

    def parse_request(self, data: bytes) -> tuple[RequestHeader, list[RequestItem]]:
        """Parse a request file as strictly as the bank does (round trips and self-checks)."""
        lines = _split_records(data)
        line = lines[0]
        _check_type(line, 1, REQUEST_HEADER)
        h = REQUEST_HEADER.split(line, 1)
        _fixed(h["format_version"], FORMAT_VERSION, "format_version", 1)
        _reserved(h["reserved"], 1)
        header = RequestHeader(
            batch_serial=_batch_serial(h["batch_serial"], 1),
            file_no=_number(h["file_no"], "file_no", 1),
            payer_account=_text(h["payer_account"], "payer_account", 1),
            subsidy_code=_text(h["subsidy_code"], "subsidy_code", 1),
            subsidy_name=_text(h["subsidy_name"], "subsidy_name", 1),
            period=_text(h["period"], "period", 1),
            item_count=_number(h["item_count"], "item_count", 1),
            total_fen=_number(h["total_fen"], "total_fen", 1),
            created_on=_date(h["created_on"], "created_on", 1),
        )
        items: list[RequestItem] = []
        serials: set[str] = set()
        total = 0
        for index, line in enumerate(lines[1:-1], start=1):
            line_no = index + 1
            _check_type(line, line_no, REQUEST_DETAIL)
            d = REQUEST_DETAIL.split(line, line_no)
            _reserved(d["reserved"], line_no)
            seq = _number(d["seq"], "seq", line_no)
            if seq != index:
                raise FormatError(f"line {line_no}: sequence {seq}, expected {index}")
            serial = _text(d["serial"], "serial", line_no)
            if serial in serials:
                raise FormatError(f"line {line_no}: serial {serial!r} repeats in the file")
            serials.add(serial)
            amount = _number(d["amount_fen"], "amount_fen", line_no)
            if amount <= 0:
                raise FormatError(f"line {line_no}: amount_fen must be > 0")
            total += amount
            items.append(
                RequestItem(
                    seq=seq,
                    serial=serial,
                    account_no=_text(d["account_no"], "account_no", line_no),
                    name=_text(d["name"], "name", line_no),
                    id_number=_text(d["id_number"], "id_number", line_no),
                    amount_fen=amount,
                    remark=_text(d["remark"], "remark", line_no),
                )
            )
        t_count, t_total = _trailer(lines)
        _tie("item_count", header.item_count, len(items), "header")
        _tie("total_fen", header.total_fen, total, "header")
        _tie("item_count", t_count, len(items), "trailer")
        _tie("total_fen", t_total, total, "trailer")
        return header, items

    # --- result ---

    def parse_result(self, data: bytes) -> ResultFile:
        """Parse a result file (回盘); FormatError unless every record and total ties out."""
        lines = _split_records(data)
        line = lines[0]
        _check_type(line, 1, RESULT_HEADER)
        h = RESULT_HEADER.split(line, 1)
        _fixed(h["format_version"], FORMAT_VERSION, "format_version", 1)
        _reserved(h["reserved"], 1)
        batch_serial = _batch_serial(h["batch_serial"], 1)
        file_no = _number(h["file_no"], "file_no", 1)
        if file_no == 0:
            raise FormatError("line 1: file_no must be 01…99")
        status = h["file_status"]
        reject_code = _text(h["reject_code"], "reject_code", 1)
        item_count = _number(h["item_count"], "item_count", 1)
        paid_count = _number(h["paid_count"], "paid_count", 1)
        paid_fen = _number(h["paid_fen"], "paid_fen", 1)
        failed_count = _number(h["failed_count"], "failed_count", 1)
        failed_fen = _number(h["failed_fen"], "failed_fen", 1)
        _date(h["processing_date"], "processing_date", 1)
        if status == b"A":
            if reject_code:
                raise FormatError("line 1: accepted file (status A) carries a reject code")
        elif status == b"R":
            if not reject_code:
                raise FormatError("line 1: rejected file (status R) has no reject code")
            if len(lines) != 2:
                raise FormatError("rejected file (status R) must hold no detail records")
        else:
            shown = status.decode("ascii", errors="replace")
            raise FormatError(f"line 1: file_status {shown!r}, expected 'A' or 'R'")

        items: list[ResultItem] = []
        serials: set[str] = set()
        seqs: set[int] = set()
        actual = {"paid_count": 0, "paid_fen": 0, "failed_count": 0, "failed_fen": 0}
        for line_no, line in enumerate(lines[1:-1], start=2):
            item = self._parse_result_detail(line, line_no)
            if item.seq in seqs:
                raise FormatError(f"line {line_no}: sequence {item.seq} repeats in the file")
            seqs.add(item.seq)
            if item.serial in serials:
                raise FormatError(f"line {line_no}: serial {item.serial!r} repeats in the file")
            serials.add(item.serial)
            key = "paid" if item.status is ResultStatus.PAID else "failed"
            actual[f"{key}_count"] += 1
            actual[f"{key}_fen"] += item.amount_fen
            items.append(item)

        t_count, t_total = _trailer(lines)
        _tie("item_count", item_count, len(items), "header")
        stated: Mapping[str, int] = {
            "paid_count": paid_count,
            "paid_fen": paid_fen,
            "failed_count": failed_count,
            "failed_fen": failed_fen,
        }
        for key, value in stated.items():
            _tie(key, value, actual[key], "header")
        _tie("item_count", t_count, len(items), "trailer")
        _tie("total_fen", t_total, actual["paid_fen"] + actual["failed_fen"], "trailer")
        return ResultFile(
            batch_serial=batch_serial,
            file_no=file_no,
            accepted=status == b"A",
            rejected_code=reject_code,
            items=tuple(items),
            paid_count=paid_count,
            paid_fen=paid_fen,
            failed_count=failed_count,
            failed_fen=failed_fen,
        )

    @staticmethod
    def _parse_result_detail(line: bytes, line_no: int) -> ResultItem:
        _check_type(line, line_no, RESULT_DETAIL)
        d = RESULT_DETAIL.split(line, line_no)
        _reserved(d["reserved"], line_no)
        seq = _number(d["seq"], "seq", line_no)
        if seq == 0:
            raise FormatError(f"line {line_no}: sequence must be >= 1")
        serial = _text(d["serial"], "serial", line_no)
        if not serial:
            raise FormatError(f"line {line_no}: serial is empty")
        account_no = _text(d["account_no"], "account_no", line_no)
        amount = _number(d["amount_fen"], "amount_fen", line_no)
        if amount == 0:
            raise FormatError(f"line {line_no}: amount_fen must be > 0")
        code = _text(d["bank_code"], "bank_code", line_no)
        ref = _text(d["bank_ref"], "bank_ref", line_no)
        raw_status = d["status"]
        if raw_status == b"S":
            status = ResultStatus.PAID
            if code != PAID_CODE:
                raise FormatError(
                    f"line {line_no}: status S (paid) with bank_code {code!r}, expected "
                    f"{PAID_CODE!r}"
                )
            if not ref:
                raise FormatError(f"line {line_no}: status S (paid) without a bank_ref")
        elif raw_status == b"F":
            status = ResultStatus.FAILED
            if not code or code == PAID_CODE:
                raise FormatError(
                    f"line {line_no}: status F (failed) with bank_code {code!r}; a failure "
                    "needs the bank's error code"
                )
            if ref:
                raise FormatError(f"line {line_no}: status F (failed) carries a bank_ref")
        else:
            shown = raw_status.decode("ascii", errors="replace")
            raise FormatError(f"line {line_no}: status {shown!r}, expected 'S' or 'F'")
        return ResultItem(
            seq=seq,
            serial=serial,
            account_no=account_no,
            amount_fen=amount,
            status=status,
            bank_code=code,
            bank_message=_text(d["bank_message"], "bank_message", line_no),
            bank_ref=ref,
            processed_at=_timestamp(d["processed_at"], "processed_at", line_no),
        )

    def render_result(self, result: ResultFile, processing_date: dt.date) -> bytes:
        """Bytes of a result file, for tests and tools (the mock bank has its own codec).

        The header's counts and amounts are written as given in ``result`` (so tests can
        build inconsistent files); the trailer is computed from the items. Naive
        ``processed_at`` values are taken as Asia/Shanghai time.
        """
        self._check_name_parts(result.batch_serial, result.file_no)
        header = b"".join(
            (
                b"H",
                FORMAT_VERSION,
                encode_text(result.batch_serial, 16, "batch_serial", cut=False),
                encode_number(result.file_no, 2, "file_no"),
                b"A" if result.accepted else b"R",
                encode_text(result.rejected_code, 6, "rejected_code", cut=False),
                encode_number(len(result.items), 9, "item_count"),
                encode_number(result.paid_count, 9, "paid_count"),
                encode_number(result.paid_fen, 18, "paid_fen"),
                encode_number(result.failed_count, 9, "failed_count"),
                encode_number(result.failed_fen, 18, "failed_fen"),
                _encode_date(processing_date, "processing_date"),
                _spaces(27),
            )
        )
        records = [header]
        total = 0
        for item in result.items:
            seq = item.seq
            records.append(
                b"".join(
                    (
                        b"D",
                        encode_number(seq, 9, "seq", seq=seq),
                        encode_text(item.serial, 24, "serial", cut=False, seq=seq),
                        encode_text(item.account_no, 32, "account_no", cut=False, seq=seq),
                        encode_number(item.amount_fen, 15, "amount_fen", seq=seq),
                        b"S" if item.status is ResultStatus.PAID else b"F",
                        encode_text(item.bank_code, 6, "bank_code", cut=False, seq=seq),
                        encode_text(item.bank_message, 60, "bank_message", cut=True, seq=seq),
                        encode_text(item.bank_ref, 32, "bank_ref", cut=False, seq=seq),
                        _encode_timestamp(item.processed_at),
                        _spaces(30),
                    )
                )
            )
            total += item.amount_fen
        records.append(
            b"".join(
                (
                    b"T",
                    encode_number(len(result.items), 9, "item_count"),
                    encode_number(total, 18, "total_fen"),
                    b"END",
                    _spaces(33),
                )
            )
        )
        records.append(b"")
        return CRLF.join(records)

    # --- account movements (ACT_…) ---

    def parse_account_notice(self, data: bytes) -> AccountNotice:
        """Parse an account movements file (``ACT_…txt``) into an AccountNotice.

        Each booking (the detail records sharing a bank reference) is one AccountEntry of
        the header's payer account, in the order of its first record: ``amount_fen`` the sum
        of its records, ``details`` its itemised records as ``(item serial, fen)``.
        FormatError unless every record, code, count and total ties out.
        """
        lines = _split_records(data)
        line = lines[0]
        _check_type(line, 1, MOVEMENTS_HEADER)
        h = MOVEMENTS_HEADER.split(line, 1)
        _fixed(h["format_version"], FORMAT_VERSION, "format_version", 1)
        _reserved(h["reserved"], 1)
        notice_id = _text(h["notice_id"], "notice_id", 1)
        if _NOTICE_ID.fullmatch(notice_id) is None:
            raise FormatError("line 1: notice_id must be 1…32 of [0-9A-Z]")
        batch_serial = _batch_serial(h["batch_serial"], 1)
        file_no = _number(h["file_no"], "file_no", 1)
        if file_no == 0:
            raise FormatError("line 1: file_no must be 01…99")
        account = _text(h["payer_account"], "payer_account", 1)
        if not account:
            raise FormatError("line 1: payer_account is empty")
        stated = {
            "record_count": _number(h["record_count"], "record_count", 1),
            "debit_count": _number(h["debit_count"], "debit_count", 1),
            "debit_fen": _number(h["debit_fen"], "debit_fen", 1),
            "credit_count": _number(h["credit_count"], "credit_count", 1),
            "credit_fen": _number(h["credit_fen"], "credit_fen", 1),
        }
        _timestamp(h["created_at"], "created_at", 1)

        actual = dict.fromkeys(stated, 0)
        # bank_ref -> (direction, booked_on, reason code, amounts, itemised details)
        bookings: dict[str, tuple[str, dt.date, str, list[int], list[tuple[str, int]]]] = {}
        seen: set[tuple[str, str]] = set()  # (bank_ref, item serial)
        for index, line in enumerate(lines[1:-1], start=1):
            line_no = index + 1
            direction, amount, booked_on, ref, serial, code = self._parse_movement(
                line, line_no, index
            )
            if serial:
                if (ref, serial) in seen:
                    raise FormatError(
                        f"line {line_no}: serial {serial!r} repeats in booking {ref!r}"
                    )
                seen.add((ref, serial))
            booking = bookings.get(ref)
            if booking is None:
                booking = bookings[ref] = (direction, booked_on, code, [], [])
            elif booking[:3] != (direction, booked_on, code):
                raise FormatError(
                    f"line {line_no}: bank_ref {ref!r} names a booking with another "
                    "direction, booking date or reason code"
                )
            booking[3].append(amount)
            if serial:
                booking[4].append((serial, amount))
            actual["record_count"] += 1
            actual[f"{direction}_count"] += 1
            actual[f"{direction}_fen"] += amount

        t_count, t_total = _trailer(lines)
        for key, value in stated.items():
            _tie(key, value, actual[key], "header")
        _tie("item_count", t_count, actual["record_count"], "trailer")
        _tie("total_fen", t_total, actual["debit_fen"] + actual["credit_fen"], "trailer")
        entries = tuple(
            AccountEntry(
                account=account,
                amount_fen=sum(amounts),
                direction="debit" if direction == "debit" else "credit",
                booked_on=booked_on,
                bank_ref=ref,
                batch_serial=batch_serial,
                file_no=file_no,
                details=tuple(details),
                reason_code=code if direction == "credit" else "",
            )
            for ref, (direction, booked_on, code, amounts, details) in bookings.items()
        )
        return AccountNotice(message_id=notice_id, entries=entries)

    @staticmethod
    def _parse_movement(
        line: bytes, line_no: int, index: int
    ) -> tuple[str, int, dt.date, str, str, str]:
        """``(direction, fen, booked_on, bank_ref, serial, reason code)`` of one detail."""
        _check_type(line, line_no, MOVEMENTS_DETAIL)
        d = MOVEMENTS_DETAIL.split(line, line_no)
        _reserved(d["reserved"], line_no)
        seq = _number(d["seq"], "seq", line_no)
        if seq != index:
            raise FormatError(f"line {line_no}: sequence {seq}, expected {index}")
        raw_direction = d["direction"]
        if raw_direction == b"D":
            direction = "debit"
        elif raw_direction == b"C":
            direction = "credit"
        else:
            shown = raw_direction.decode("ascii", errors="replace")
            raise FormatError(f"line {line_no}: direction {shown!r}, expected 'D' or 'C'")
        amount = _number(d["amount_fen"], "amount_fen", line_no)
        if amount == 0:
            raise FormatError(f"line {line_no}: amount_fen must be > 0")
        booked_on = _date(d["booked_on"], "booked_on", line_no)
        ref = _text(d["bank_ref"], "bank_ref", line_no)
        if not ref:
            raise FormatError(f"line {line_no}: bank_ref is empty")
        serial = _text(d["serial"], "serial", line_no)
        code = _text(d["reason_code"], "reason_code", line_no)
        _text(d["description"], "description", line_no)
        if direction == "debit":
            itemised = code == PAYMENT_DEBIT
            known = itemised or code == OTHER_DEBIT
        else:
            itemised = _RETURN_CODE.fullmatch(code) is not None
            known = itemised or code == OTHER_CREDIT
        if not known:
            raise FormatError(
                f"line {line_no}: reason_code {code!r} is not a {direction} code of the format"
            )
        if itemised and not serial:
            raise FormatError(f"line {line_no}: reason_code {code!r} needs an item serial")
        if not itemised and serial:
            raise FormatError(
                f"line {line_no}: reason_code {code!r} is for movements of no item, "
                "but the record names one"
            )
        return direction, amount, booked_on, ref, serial, code

    def render_account_notice(
        self,
        *,
        notice_id: str,
        batch_serial: str,
        file_no: int,
        payer_account: str,
        created_at: dt.datetime,
        movements: Iterable[Movement],
    ) -> bytes:
        """Bytes of an account movements file, for tests and tools (the mock bank has its
        own codec). Counts and totals are computed from ``movements``; nothing else is
        checked, so tests can build files a reader refuses. Naive ``created_at`` is taken
        as Asia/Shanghai time."""
        self._check_name_parts(batch_serial, file_no)
        details: list[bytes] = []
        sums = {"debit": [0, 0], "credit": [0, 0]}
        for seq, m in enumerate(movements, start=1):
            details.append(
                b"".join(
                    (
                        b"D",
                        encode_number(seq, 9, "seq", seq=seq),
                        b"D" if m.direction == "debit" else b"C",
                        encode_number(m.amount_fen, 15, "amount_fen", seq=seq),
                        _encode_date(m.booked_on, "booked_on"),
                        encode_text(m.bank_ref, 32, "bank_ref", cut=False, seq=seq),
                        encode_text(m.serial, 24, "serial", cut=False, seq=seq),
                        encode_text(m.reason_code, 4, "reason_code", cut=False, seq=seq),
                        encode_text(m.description, 60, "description", cut=True, seq=seq),
                        _spaces(38),
                    )
                )
            )
            sums[m.direction][0] += 1
            sums[m.direction][1] += m.amount_fen
        header = b"".join(
            (
                b"H",
                FORMAT_VERSION,
                encode_text(notice_id, 32, "notice_id", cut=False),
                encode_text(batch_serial, 16, "batch_serial", cut=False),
                encode_number(file_no, 2, "file_no"),
                encode_text(payer_account, 32, "payer_account", cut=False),
                encode_number(len(details), 9, "record_count"),
                encode_number(sums["debit"][0], 9, "debit_count"),
                encode_number(sums["debit"][1], 18, "debit_fen"),
                encode_number(sums["credit"][0], 9, "credit_count"),
                encode_number(sums["credit"][1], 18, "credit_fen"),
                _encode_timestamp(created_at),
                _spaces(28),
            )
        )
        trailer = b"".join(
            (
                b"T",
                encode_number(len(details), 9, "item_count"),
                encode_number(sums["debit"][1] + sums["credit"][1], 18, "total_fen"),
                b"END",
                _spaces(33),
            )
        )
        return CRLF.join((header, *details, trailer, b""))
