"""The bank's own codec for ``fw-gb18030-v1`` (``docs/formats/fw-gb18030-v1.md``).

Written from the spec, independently of the gateway's adapter: it parses payment request
files (``PAY_<serial>_<nn>.txt``), writes result files (``RET_<serial>_<nn>.txt``) and
account movements files (``ACT_<serial>_<nn>.txt``, ``ACT_<serial>_<nn>_R<k>.txt``: the
payer account's debits and 退票 credits), and reads and writes detached signature files
(``<name>.sig``).

Layout rules, all in **bytes** of GB18030 (Python's ``gb18030`` codec):

- one fixed-length record per line, CRLF after every record including the last, no BOM;
- text fields (``X``) left-aligned, right-padded with ASCII spaces; a writer cuts over-long
  text at the last whole character that fits (never splitting a 2- or 4-byte character),
  except for *no cut* fields where an over-long value is an error;
- numeric fields (``9``) are zero-padded unsigned ASCII digits; money is integer fen.

A reader strips only ASCII spaces on the right. That is safe byte-wise: 0x20 is never a
trailing byte of a multi-byte GB18030 character, and neither are CR (0x0D) and LF (0x0A), so
records can be split on CRLF before decoding.

The parser is deliberately strict: whatever the spec states about a request file is checked,
and any violation rejects the whole file with ``F002`` (see :func:`parse_request`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar, Final, Literal, NamedTuple

from mock_bank import codes

ENCODING: Final = "gb18030"
CRLF: Final = b"\r\n"
FORMAT_VERSION: Final = "FW01"
END_MARKER: Final = "END"
SIGNATURE_ALG: Final = "RSA-PSS-SHA256"
#: ``alg=`` values a ``.sig`` file may carry (the bank profile picks one: ``[signing] alg``).
SIGNATURE_ALGS: Final = frozenset({SIGNATURE_ALG, "ECDSA-P256-SHA256"})

# --------------------------------------------------------------------------------------------
# Errors


class FileRejectedError(ValueError):
    """The whole file is rejected; ``code`` is the file reject code for the result header."""

    code: ClassVar[str] = codes.FILE_BAD_FORMAT

    def __init__(self, reason: str, *, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(f"line {line}: {reason}" if line is not None else reason)


class FormatError(FileRejectedError):
    """Bad format or control totals (``F002``)."""

    code: ClassVar[str] = codes.FILE_BAD_FORMAT


class SignatureError(FileRejectedError):
    """Missing, malformed or non-verifying signature, or sha256 mismatch (``F001``)."""

    code: ClassVar[str] = codes.FILE_BAD_SIGNATURE


class FieldTooLongError(ValueError):
    """A writer was asked to put a too-long value into a *no cut* field (or a too-big
    number into a numeric field)."""


# --------------------------------------------------------------------------------------------
# Layouts


class Field(NamedTuple):
    name: str
    kind: Literal["X", "9"]
    width: int
    cut: bool = False  # a writer may cut an over-long value (text fields only)


class Layout:
    """A fixed-width record layout: fields in order, with byte offsets."""

    def __init__(self, record: str, length: int, fields: Sequence[Field]) -> None:
        self.record = record
        self.fields = tuple(fields)
        self.length = sum(f.width for f in self.fields)
        if self.length != length:  # guard against a typo in the tables below
            raise AssertionError(f"{record}: fields add up to {self.length}, not {length}")
        self.by_name = {f.name: f for f in self.fields}


X: Final = "X"
N: Final = "9"

REQUEST_HEADER: Final = Layout(
    "request header",
    192,
    [
        Field("record_type", X, 1),
        Field("format_version", X, 4),
        Field("batch_serial", X, 16),
        Field("file_no", N, 2),
        Field("payer_account", X, 32),
        Field("subsidy_code", X, 12),
        Field("subsidy_name", X, 60, cut=True),
        Field("period", X, 8),
        Field("item_count", N, 9),
        Field("total_amount", N, 18),
        Field("creation_date", N, 8),
        Field("reserved", X, 22),
    ],
)

REQUEST_DETAIL: Final = Layout(
    "request detail",
    256,
    [
        Field("record_type", X, 1),
        Field("sequence", N, 9),
        Field("item_serial", X, 24),
        Field("account_no", X, 32),
        Field("account_name", X, 60),
        Field("id_number", X, 18),
        Field("amount", N, 15),
        Field("remark", X, 60, cut=True),
        Field("reserved", X, 37),
    ],
)

TRAILER: Final = Layout(
    "trailer",
    64,
    [
        Field("record_type", X, 1),
        Field("item_count", N, 9),
        Field("total_amount", N, 18),
        Field("end_marker", X, 3),
        Field("reserved", X, 33),
    ],
)

RESULT_HEADER: Final = Layout(
    "result header",
    128,
    [
        Field("record_type", X, 1),
        Field("format_version", X, 4),
        Field("batch_serial", X, 16),
        Field("file_no", N, 2),
        Field("file_status", X, 1),
        Field("reject_code", X, 6),
        Field("item_count", N, 9),
        Field("paid_count", N, 9),
        Field("paid_amount", N, 18),
        Field("failed_count", N, 9),
        Field("failed_amount", N, 18),
        Field("processing_date", N, 8),
        Field("reserved", X, 27),
    ],
)

RESULT_DETAIL: Final = Layout(
    "result detail",
    224,
    [
        Field("record_type", X, 1),
        Field("sequence", N, 9),
        Field("item_serial", X, 24),
        Field("account_no", X, 32),
        Field("amount", N, 15),
        Field("status", X, 1),
        Field("code", X, 6),
        Field("message", X, 60, cut=True),
        Field("bank_ref", X, 32),
        Field("processed_at", N, 14),
        Field("reserved", X, 30),
    ],
)

MOVEMENTS_HEADER: Final = Layout(
    "movements header",
    192,
    [
        Field("record_type", X, 1),
        Field("format_version", X, 4),
        Field("notice_id", X, 32),
        Field("batch_serial", X, 16),
        Field("file_no", N, 2),
        Field("payer_account", X, 32),
        Field("record_count", N, 9),
        Field("debit_count", N, 9),
        Field("debit_amount", N, 18),
        Field("credit_count", N, 9),
        Field("credit_amount", N, 18),
        Field("created_at", N, 14),
        Field("reserved", X, 28),
    ],
)

MOVEMENTS_DETAIL: Final = Layout(
    "movements detail",
    192,
    [
        Field("record_type", X, 1),
        Field("sequence", N, 9),
        Field("direction", X, 1),
        Field("amount", N, 15),
        Field("booking_date", N, 8),
        Field("bank_ref", X, 32),
        Field("item_serial", X, 24),
        Field("reason_code", X, 4),
        Field("description", X, 60, cut=True),
        Field("reserved", X, 38),
    ],
)

# --------------------------------------------------------------------------------------------
# File names

_REQUEST_NAME: Final = re.compile(r"PAY_([0-9A-Z]{16})_([0-9]{2})\.txt")
_BATCH_SERIAL: Final = re.compile(r"[0-9A-Z]{16}")
_ID_NUMBER: Final = re.compile(r"[0-9]{17}[0-9X]")
_DIGITS: Final = re.compile(rb"[0-9]+")
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")


def parse_request_name(name: str) -> tuple[str, int] | None:
    """``PAY_<serial>_<nn>.txt`` → ``(serial, nn)``; ``None`` for any other name
    (including ``nn`` = ``00``)."""
    match = _REQUEST_NAME.fullmatch(name)
    if match is None or int(match.group(2)) < 1:
        return None
    return match.group(1), int(match.group(2))


def request_name(batch_serial: str, file_no: int) -> str:
    return f"PAY_{batch_serial}_{file_no:02d}.txt"


def result_name(batch_serial: str, file_no: int) -> str:
    return f"RET_{batch_serial}_{file_no:02d}.txt"


def movements_name(batch_serial: str, file_no: int, return_no: int | None = None) -> str:
    """``ACT_<serial>_<nn>.txt`` (the movements booked when the request file was processed)
    or ``ACT_<serial>_<nn>_R<k>.txt`` (the k-th later one: a return)."""
    if return_no is None:
        return f"ACT_{batch_serial}_{file_no:02d}.txt"
    if not 1 <= return_no <= 999_999:
        raise ValueError(f"return number {return_no} is not 1…999999")
    return f"ACT_{batch_serial}_{file_no:02d}_R{return_no}.txt"


def signature_name(name: str) -> str:
    return f"{name}.sig"


def temp_name(name: str) -> str:
    """The temporary name a file is written under before its rename: ``.<name>.part``."""
    return f".{name}.part"


# --------------------------------------------------------------------------------------------
# Writing fields


def fit_text(value: str, width: int, *, cut: bool) -> bytes:
    """Encode ``value`` as GB18030, left-aligned and space-padded to ``width`` bytes.

    Over-long text is cut after the last whole character that fits when ``cut`` is true
    (a 2- or 4-byte character is never split; the freed bytes become padding), and raises
    :class:`FieldTooLongError` otherwise. Characters Python's codec cannot encode raise
    ``UnicodeEncodeError``.
    """
    encoded = value.encode(ENCODING)
    if len(encoded) > width:
        if not cut:
            raise FieldTooLongError(f"{len(encoded)} bytes do not fit a {width}-byte field")
        kept = bytearray()
        for char in value:  # GB18030 is stateless: per-character encoding concatenates
            char_bytes = char.encode(ENCODING)
            if len(kept) + len(char_bytes) > width:
                break
            kept += char_bytes
        encoded = bytes(kept)
    return encoded + b" " * (width - len(encoded))


def fit_number(value: int, width: int) -> bytes:
    """Zero-padded unsigned decimal ASCII digits, exactly ``width`` bytes."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"numeric fields are unsigned integers, got {value!r}")
    digits = str(value).encode("ascii")
    if len(digits) > width:
        raise FieldTooLongError(f"{value} does not fit a {width}-digit field")
    return digits.rjust(width, b"0")


def _render(layout: Layout, values: Mapping[str, str | int]) -> bytes:
    parts: list[bytes] = []
    for fld in layout.fields:
        value = values.get(fld.name, "")
        if fld.kind == N:
            if not isinstance(value, int):
                raise TypeError(f"{layout.record}.{fld.name} needs an int")
            parts.append(fit_number(value, fld.width))
        else:
            if not isinstance(value, str):
                raise TypeError(f"{layout.record}.{fld.name} needs a str")
            try:
                parts.append(fit_text(value, fld.width, cut=fld.cut))
            except FieldTooLongError as exc:
                raise FieldTooLongError(f"{layout.record}.{fld.name}: {exc}") from exc
    record = b"".join(parts)
    if len(record) != layout.length:  # pragma: no cover - guarded by fit_text/fit_number
        raise AssertionError(f"{layout.record}: rendered {len(record)} bytes")
    return record


# --------------------------------------------------------------------------------------------
# Reading fields


def _slice(line: bytes, layout: Layout, lineno: int) -> dict[str, bytes]:
    if len(line) != layout.length:
        raise FormatError(
            f"{layout.record} record is {len(line)} bytes, expected {layout.length}",
            line=lineno,
        )
    out: dict[str, bytes] = {}
    offset = 0
    for fld in layout.fields:
        out[fld.name] = line[offset : offset + fld.width]
        offset += fld.width
    return out


def _text(raw: Mapping[str, bytes], name: str, lineno: int, *, required: bool = False) -> str:
    value = raw[name].rstrip(b" ")
    try:
        text = value.decode(ENCODING)  # strict: invalid bytes or a split character fail
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"{name}: not valid GB18030 (or a character split at the field edge)",
            line=lineno,
        ) from exc
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise FormatError(f"{name}: control character in a text field", line=lineno)
    if required:
        if not text:
            raise FormatError(f"{name}: required field is blank", line=lineno)
        if text[0] == " ":
            raise FormatError(f"{name}: text field is not left-aligned", line=lineno)
    return text


def _number(raw: Mapping[str, bytes], name: str, lineno: int) -> int:
    value = raw[name]
    if _DIGITS.fullmatch(value) is None:
        raise FormatError(f"{name}: numeric field must be zero-padded ASCII digits", line=lineno)
    return int(value)


def _spaces(raw: Mapping[str, bytes], name: str, lineno: int) -> None:
    if raw[name].strip(b" "):
        raise FormatError(f"{name}: reserved field must be spaces", line=lineno)


def _literal(raw: Mapping[str, bytes], name: str, expected: str, lineno: int) -> None:
    if raw[name] != expected.encode("ascii"):
        raise FormatError(f"{name}: expected {expected!r}, got {raw[name]!r}", line=lineno)


def _yyyymmdd(value: int, name: str, lineno: int) -> date:
    try:
        return datetime.strptime(f"{value:08d}", "%Y%m%d").date()  # noqa: DTZ007 - a date only
    except ValueError as exc:
        raise FormatError(f"{name}: not a valid YYYYMMDD date", line=lineno) from exc


def split_records(data: bytes) -> list[bytes]:
    """Split a file into records: CRLF after every record, no bare CR or LF, no BOM."""
    if not data:
        raise FormatError("empty file")
    if data.startswith((b"\xef\xbb\xbf", b"\x84\x31\x95\x33")):
        raise FormatError("byte order mark is not allowed", line=1)
    if not data.endswith(CRLF):
        raise FormatError("file must end with CRLF after the trailer")
    records = data[: -len(CRLF)].split(CRLF)
    for lineno, record in enumerate(records, start=1):
        if b"\r" in record or b"\n" in record:
            raise FormatError("bare CR or LF inside a record (lines end with CRLF)", line=lineno)
    return records


# --------------------------------------------------------------------------------------------
# Request file


@dataclass(frozen=True, slots=True)
class RequestHeader:
    batch_serial: str
    file_no: int
    payer_account: str
    subsidy_code: str
    subsidy_name: str
    period: str
    item_count: int
    total_amount_fen: int
    creation_date: date


@dataclass(frozen=True, slots=True)
class RequestItem:
    sequence: int
    item_serial: str
    account_no: str
    account_name: str
    id_number: str
    amount_fen: int
    remark: str


@dataclass(frozen=True, slots=True)
class RequestFile:
    header: RequestHeader
    items: tuple[RequestItem, ...]


def _parse_header(line: bytes) -> RequestHeader:
    raw = _slice(line, REQUEST_HEADER, 1)
    _literal(raw, "record_type", "H", 1)
    _literal(raw, "format_version", FORMAT_VERSION, 1)
    batch_serial = _text(raw, "batch_serial", 1, required=True)
    if _BATCH_SERIAL.fullmatch(batch_serial) is None:
        raise FormatError("batch_serial: must be 16 characters [0-9A-Z]", line=1)
    file_no = _number(raw, "file_no", 1)
    if file_no < 1:
        raise FormatError("file_no: must be 01 or more", line=1)
    header = RequestHeader(
        batch_serial=batch_serial,
        file_no=file_no,
        payer_account=_text(raw, "payer_account", 1, required=True),
        subsidy_code=_text(raw, "subsidy_code", 1, required=True),
        subsidy_name=_text(raw, "subsidy_name", 1),
        period=_text(raw, "period", 1, required=True),
        item_count=_number(raw, "item_count", 1),
        total_amount_fen=_number(raw, "total_amount", 1),
        creation_date=_yyyymmdd(_number(raw, "creation_date", 1), "creation_date", 1),
    )
    _spaces(raw, "reserved", 1)
    return header


def _parse_detail(line: bytes, lineno: int) -> RequestItem:
    raw = _slice(line, REQUEST_DETAIL, lineno)
    _literal(raw, "record_type", "D", lineno)
    item = RequestItem(  # fields read in record order, so the first bad field is reported
        sequence=_number(raw, "sequence", lineno),
        item_serial=_text(raw, "item_serial", lineno, required=True),
        account_no=_text(raw, "account_no", lineno, required=True),
        account_name=_text(raw, "account_name", lineno, required=True),
        id_number=_text(raw, "id_number", lineno, required=True),
        amount_fen=_number(raw, "amount", lineno),
        remark=_text(raw, "remark", lineno),
    )
    if _ID_NUMBER.fullmatch(item.id_number) is None:
        raise FormatError(
            "id_number: must be 18 characters, 17 digits and a digit or upper-case X",
            line=lineno,
        )
    if item.amount_fen <= 0:
        raise FormatError("amount: must be > 0 fen", line=lineno)
    _spaces(raw, "reserved", lineno)
    return item


def _parse_trailer(line: bytes, lineno: int) -> tuple[int, int]:
    raw = _slice(line, TRAILER, lineno)
    _literal(raw, "record_type", "T", lineno)
    _literal(raw, "end_marker", END_MARKER, lineno)
    _spaces(raw, "reserved", lineno)
    return _number(raw, "item_count", lineno), _number(raw, "total_amount", lineno)


def _record_type(line: bytes) -> bytes:
    return line[:1]


def parse_request(
    data: bytes, *, expected_serial: str | None = None, expected_file_no: int | None = None
) -> RequestFile:
    """Parse and validate a request file; any violation raises :class:`FormatError`.

    Checked: CRLF framing; record lengths and types (``H``, then ``D``…, then ``T``); the
    format version and ``END`` marker; numeric fields are digits; text fields are valid
    GB18030 without control characters; required fields are present and left-aligned;
    reserved fields are spaces; batch serial ``[0-9A-Z]{16}``; ID numbers of 18 characters
    with an upper-case ``X``; amounts > 0; creation date is a date; sequences are 1…n;
    item serials are unique; header and trailer counts and totals equal the details'; at
    least one detail record; and, when given, the batch serial and file number from the
    file name equal the header's.
    """
    records = split_records(data)
    if len(records) < 2:
        raise FormatError("a request file needs a header and a trailer")
    if _record_type(records[0]) != b"H":
        raise FormatError("the first record must be the header (H)", line=1)
    header = _parse_header(records[0])

    last = len(records)
    if _record_type(records[-1]) != b"T":
        raise FormatError("the last record must be the trailer (T)", line=last)
    trailer_count, trailer_total = _parse_trailer(records[-1], last)

    items: list[RequestItem] = []
    serials: set[str] = set()
    for lineno, line in enumerate(records[1:-1], start=2):
        if _record_type(line) != b"D":
            raise FormatError("records between header and trailer must be details (D)", line=lineno)
        item = _parse_detail(line, lineno)
        if item.sequence != len(items) + 1:
            raise FormatError(
                f"sequence {item.sequence} out of order, expected {len(items) + 1}", line=lineno
            )
        if item.item_serial in serials:
            raise FormatError("item serial repeats within the file", line=lineno)
        serials.add(item.item_serial)
        items.append(item)

    if not items:
        raise FormatError("a request file must contain at least one detail record")
    total = sum(item.amount_fen for item in items)
    if header.item_count != len(items):
        raise FormatError(f"header item count {header.item_count} != {len(items)} details", line=1)
    if header.total_amount_fen != total:
        raise FormatError(f"header total {header.total_amount_fen} != details' sum {total}", line=1)
    if trailer_count != len(items):
        raise FormatError(f"trailer item count {trailer_count} != {len(items)} details", line=last)
    if trailer_total != total:
        raise FormatError(f"trailer total {trailer_total} != details' sum {total}", line=last)
    if expected_serial is not None and header.batch_serial != expected_serial:
        raise FormatError("batch serial in the header differs from the file name", line=1)
    if expected_file_no is not None and header.file_no != expected_file_no:
        raise FormatError("file number in the header differs from the file name", line=1)
    return RequestFile(header=header, items=tuple(items))


# --------------------------------------------------------------------------------------------
# Result file

ItemStatus = Literal["S", "F"]


@dataclass(frozen=True, slots=True)
class ResultItem:
    sequence: int
    item_serial: str
    account_no: str
    amount_fen: int
    status: ItemStatus
    code: str
    message: str
    bank_ref: str  # "" when failed
    processed_at: datetime  # Asia/Shanghai wall time


def _trailer(count: int, total: int) -> bytes:
    return _render(
        TRAILER,
        {"record_type": "T", "item_count": count, "total_amount": total, "end_marker": END_MARKER},
    )


def render_result(
    *,
    batch_serial: str,
    file_no: int,
    items: Sequence[ResultItem],
    processing_date: date,
) -> bytes:
    """An accepted result file (header status ``A``) with one detail per item."""
    paid = [i for i in items if i.status == "S"]
    failed = [i for i in items if i.status == "F"]
    if len(paid) + len(failed) != len(items):
        raise ValueError("item status must be S or F")
    header = _render(
        RESULT_HEADER,
        {
            "record_type": "H",
            "format_version": FORMAT_VERSION,
            "batch_serial": batch_serial,
            "file_no": file_no,
            "file_status": "A",
            "reject_code": "",
            "item_count": len(items),
            "paid_count": len(paid),
            "paid_amount": sum(i.amount_fen for i in paid),
            "failed_count": len(failed),
            "failed_amount": sum(i.amount_fen for i in failed),
            "processing_date": int(processing_date.strftime("%Y%m%d")),
        },
    )
    lines = [header]
    for item in items:
        lines.append(
            _render(
                RESULT_DETAIL,
                {
                    "record_type": "D",
                    "sequence": item.sequence,
                    "item_serial": item.item_serial,
                    "account_no": item.account_no,
                    "amount": item.amount_fen,
                    "status": item.status,
                    "code": item.code,
                    "message": item.message,
                    "bank_ref": item.bank_ref if item.status == "S" else "",
                    "processed_at": int(item.processed_at.strftime("%Y%m%d%H%M%S")),
                },
            )
        )
    lines.append(_trailer(len(items), sum(i.amount_fen for i in items)))
    return b"".join(line + CRLF for line in lines)


def render_rejected_result(
    *, batch_serial: str, file_no: int, reject_code: str, processing_date: date
) -> bytes:
    """A rejected result file: header status ``R`` with the reject code, no details,
    zero counts and totals, and a trailer of zeros."""
    header = _render(
        RESULT_HEADER,
        {
            "record_type": "H",
            "format_version": FORMAT_VERSION,
            "batch_serial": batch_serial,
            "file_no": file_no,
            "file_status": "R",
            "reject_code": reject_code,
            "item_count": 0,
            "paid_count": 0,
            "paid_amount": 0,
            "failed_count": 0,
            "failed_amount": 0,
            "processing_date": int(processing_date.strftime("%Y%m%d")),
        },
    )
    return header + CRLF + _trailer(0, 0) + CRLF


# --------------------------------------------------------------------------------------------
# Detached signature file


@dataclass(frozen=True, slots=True)
class DetachedSignature:
    """The content of a ``<name>.sig`` file."""

    key_id: str
    sha256_hex: str
    signature: bytes
    alg: str = SIGNATURE_ALG


def render_signature_file(sig: DetachedSignature) -> bytes:
    """``alg=…``, ``key-id=…``, ``sha256=…``, ``sig=…`` lines, LF after each, ASCII."""
    if not sig.key_id.isascii() or any(c.isspace() or c == "=" for c in sig.key_id):
        raise ValueError("key-id must be ASCII without whitespace or '='")
    if _SHA256_HEX.fullmatch(sig.sha256_hex) is None:
        raise ValueError("sha256 must be 64 lower-case hex digits")
    text = (
        f"alg={sig.alg}\n"
        f"key-id={sig.key_id}\n"
        f"sha256={sig.sha256_hex}\n"
        f"sig={base64.b64encode(sig.signature).decode('ascii')}\n"
    )
    return text.encode("ascii")


def parse_signature_file(data: bytes) -> DetachedSignature:
    """Parse a ``.sig`` file strictly: the four keys in the spec's order, LF line ends
    (a final LF included), ASCII, a supported ``alg``; else :class:`SignatureError`."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise SignatureError("signature file is not ASCII") from exc
    if "\r" in text:
        raise SignatureError("signature file lines must end with LF, not CRLF")
    if not text.endswith("\n"):
        raise SignatureError("signature file must end with LF")
    lines = text[:-1].split("\n")
    keys = ["alg", "key-id", "sha256", "sig"]
    if len(lines) != len(keys):
        raise SignatureError(f"signature file must have {len(keys)} lines, has {len(lines)}")
    values: dict[str, str] = {}
    for lineno, (line, key) in enumerate(zip(lines, keys, strict=True), start=1):
        name, sep, value = line.partition("=")
        if not sep or name != key:
            raise SignatureError(f"expected '{key}=…'", line=lineno)
        values[key] = value
    if values["alg"] not in SIGNATURE_ALGS:
        raise SignatureError(f"unsupported signature algorithm {values['alg']!r}", line=1)
    if not values["key-id"]:
        raise SignatureError("key-id is empty", line=2)
    if _SHA256_HEX.fullmatch(values["sha256"]) is None:
        raise SignatureError("sha256 must be 64 lower-case hex digits", line=3)
    try:
        signature = base64.b64decode(values["sig"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("sig is not standard base64", line=4) from exc
    if not signature:
        raise SignatureError("sig is empty", line=4)
    return DetachedSignature(
        alg=values["alg"],
        key_id=values["key-id"],
        sha256_hex=values["sha256"],
        signature=signature,
    )


# --------------------------------------------------------------------------------------------
# Account movements file (ACT_…): what the bank booked on the payer account

Direction = Literal["D", "C"]

#: Reason codes of movements: the debit paying an item, a return (退票) credit naming it.
PAYMENT_DEBIT_CODE: Final = "0000"
PAYMENT_DEBIT_TEXT: Final = "代发扣款"
RETURN_CODE: Final = "R001"
RETURN_TEXT: Final = "退票"


@dataclass(frozen=True, slots=True)
class Movement:
    """One detail record: money that left (``D``) or came back to (``C``) the payer
    account. ``item_serial`` is ``""`` for a movement that is no item's (``D999``/``C999``)."""

    direction: Direction
    amount_fen: int
    booking_date: date
    bank_ref: str
    item_serial: str
    reason_code: str
    description: str


def render_movements(
    *,
    notice_id: str,
    batch_serial: str,
    file_no: int,
    payer_account: str,
    created_at: datetime,
    movements: Sequence[Movement],
) -> bytes:
    """An account movements file: header with the per-direction counts and amounts, one
    detail per movement (sequence 1…n), trailer with the count and the total of all
    amounts. ``movements`` may be empty (nothing was booked)."""
    debits = [m for m in movements if m.direction == "D"]
    credits = [m for m in movements if m.direction == "C"]
    if len(debits) + len(credits) != len(movements):
        raise ValueError("movement direction must be D or C")
    if any(m.amount_fen <= 0 for m in movements):
        raise ValueError("a movement is a positive number of fen")
    header = _render(
        MOVEMENTS_HEADER,
        {
            "record_type": "H",
            "format_version": FORMAT_VERSION,
            "notice_id": notice_id,
            "batch_serial": batch_serial,
            "file_no": file_no,
            "payer_account": payer_account,
            "record_count": len(movements),
            "debit_count": len(debits),
            "debit_amount": sum(m.amount_fen for m in debits),
            "credit_count": len(credits),
            "credit_amount": sum(m.amount_fen for m in credits),
            "created_at": int(created_at.strftime("%Y%m%d%H%M%S")),
        },
    )
    lines = [header]
    for sequence, m in enumerate(movements, start=1):
        lines.append(
            _render(
                MOVEMENTS_DETAIL,
                {
                    "record_type": "D",
                    "sequence": sequence,
                    "direction": m.direction,
                    "amount": m.amount_fen,
                    "booking_date": int(m.booking_date.strftime("%Y%m%d")),
                    "bank_ref": m.bank_ref,
                    "item_serial": m.item_serial,
                    "reason_code": m.reason_code,
                    "description": m.description,
                },
            )
        )
    lines.append(_trailer(len(movements), sum(m.amount_fen for m in movements)))
    return b"".join(line + CRLF for line in lines)
