"""Bank format ``iso20022-v1``: ISO 20022 pain.001 out, pain.002 and camt.054 back (XML).

The contract is ``docs/formats/iso20022-v1.md`` (the usage guide); where this module and the
text disagree, the text wins. The mock bank implements the same text independently (no shared
code).

Messages and the official schemas they are checked against (compiled once per thread)::

    P001_<serial>_<nn>.xml   pain.001.001.09   gateway → bank   XSD shipped by ``sepaxml``
    P002_<serial>_<nn>.xml   pain.002.001.10   bank → gateway   XSD vendored in schemas/
    C054_<serial>_<nn>.xml   camt.054.001.08   bank → gateway   XSD vendored in schemas/

(``schemas/README.md`` says where each vendored file comes from and how it was checked.)

Rules this module enforces:

- XML is built with lxml, never by string concatenation: UTF-8, the declaration
  ``<?xml version="1.0" encoding="UTF-8"?>``, the message's namespace as the default
  namespace and no other, two-space indentation, a final newline. The bytes are a function
  of the input alone (no clock, no random ids), so a retry renders the same file.
- Every rendered document is validated against the official XSD before it is returned, and
  every received document before anything is read from it. Passing the schema is not
  enough: the business rules of the usage guide are checked after it (counts, sums,
  statuses, reason codes, currency ``CNY``, at most two decimals, duplicates).
- Money crosses the port as integer fen and the wire as decimal yuan (``35001`` ↔
  ``"350.01"``); the conversion uses integer arithmetic only.
- Text the schema cannot carry raises :class:`~gateway.ports.FieldError`: longer than its
  ``MaxNText`` (``too_long``), empty where the schema needs one character (``invalid``),
  or holding a control character, a lone surrogate or U+FFFE/U+FFFF (``not_encodable``:
  XML 1.0 cannot carry most of them, and a CR or TAB in a name does not survive an XML
  round trip unchanged). ``RmtInf/Ustrd`` is the one field that is cut (to 140 characters).
  Lengths are counted in characters (code points), as XSD counts them: 𬎆 is one.
- Parsing refuses DTDs (so no entity tricks), external resources and any encoding but
  UTF-8. Error messages name the element, line and rule, never a name, ID or account
  number: schema messages have the offending value removed.

Date-times: the pain.001 creation time is ``RequestHeader.created_on`` at a fixed
``00:00:00+08:00`` (the port carries a date, and a wall-clock time would make the bytes
differ between a first attempt and its retry). Times the bank sends are returned as aware
datetimes in Asia/Shanghai (UTC+8), like ``fw-gb18030-v1`` does.

``field_name`` in a FieldError is the attribute name of the port's data class
(``RequestItem.name``, ``RequestHeader.payer_account``…) so the gateway can point at it.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
import re
import threading
from collections.abc import Iterable
from typing import Final, Literal, Protocol, cast

from lxml import etree

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

#: Asia/Shanghai local time. China has kept UTC+8 without daylight saving since 1991, so a
#: fixed offset is exact for every date a payment file can carry and needs no tz database.
SHANGHAI: Final = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")

PAIN001: Final = "pain.001.001.09"
PAIN002: Final = "pain.002.001.10"
CAMT054: Final = "camt.054.001.08"
NS_PAIN001: Final = f"urn:iso:std:iso:20022:tech:xsd:{PAIN001}"
NS_PAIN002: Final = f"urn:iso:std:iso:20022:tech:xsd:{PAIN002}"
NS_CAMT054: Final = f"urn:iso:std:iso:20022:tech:xsd:{CAMT054}"
NAMESPACES: Final = {PAIN001: NS_PAIN001, PAIN002: NS_PAIN002, CAMT054: NS_CAMT054}

XML_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'
CURRENCY: Final = "CNY"
CATEGORY_PURPOSE: Final = "GOVT"
ID_SCHEME: Final = "NIDN"
PAID_STATUS: Final = "ACSC"
REJECTED_STATUS: Final = "RJCT"
ACCEPTED_GROUP: Final = "ACCP"
BOOKED: Final = "BOOK"

# FieldError codes (the same words as fw-gb18030-v1)
TOO_LONG: Final = "too_long"
NOT_ENCODABLE: Final = "not_encodable"
OUT_OF_RANGE: Final = "out_of_range"
INVALID: Final = "invalid"

#: Largest amount (fen) an ``ActiveOrHistoricCurrencyAndAmount``/``DecimalNumber`` can
#: hold with two fraction digits (``totalDigits`` 18).
MAX_FEN: Final = 10**18 - 1

# C0 and C1 controls, DEL, lone surrogates and the two XML non-characters.
_UNWRITABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_SERIAL = re.compile(r"[0-9A-Z]{16}")
_MESSAGE_ID = re.compile(r"([0-9A-Z]{16})([0-9]{2})")
_REQUEST_NAME = re.compile(r"P001_([0-9A-Z]{16})_([0-9]{2})\.xml")
_RESULT_NAME = re.compile(r"P002_([0-9A-Z]{16})_([0-9]{2})\.xml")
# The debit of a request file, or (``_R<k>``) the k-th return (退票) of one of its items.
_NOTICE_NAME = re.compile(r"C054_([0-9A-Z]{16})_([0-9]{2})(?:_R[1-9][0-9]{0,5})?\.xml")
_AMOUNT = re.compile(r"([0-9]{1,16})(?:\.([0-9]*))?")
_DIGITS = re.compile(r"[0-9]{1,15}")


# --- schemas ---------------------------------------------------------------------------------


@functools.cache
def _schema_bytes(message: str) -> bytes:
    """The XSD file of ``message``, read once per process."""
    if message not in NAMESPACES:
        raise KeyError(message)
    if message == PAIN001:
        # sepaxml ships the unmodified ISO 20022 schema (the generic one, not the EPC's).
        return (importlib.resources.files("sepaxml") / "schemas" / f"{PAIN001}.xsd").read_bytes()
    return (
        importlib.resources.files("adapters.formats") / "schemas" / f"{message}.xsd"
    ).read_bytes()


_compiled = threading.local()


def schema(message: str) -> etree.XMLSchema:
    """The official XSD of ``message`` (``pain.001.001.09``…), compiled once per thread.

    Per thread rather than per process because an ``XMLSchema`` keeps the error log of its
    last validation on itself: shared between threads, one thread could report another's
    errors. Compiling all three takes about 20 ms.
    """
    cache: dict[str, etree.XMLSchema] | None = getattr(_compiled, "schemas", None)
    if cache is None:
        cache = _compiled.schemas = {}
    compiled = cache.get(message)
    if compiled is None:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        compiled = etree.XMLSchema(etree.fromstring(_schema_bytes(message), parser))
        cache[message] = compiled
    return compiled


_CLARK = re.compile(r"\{[^}]*\}")
_HEAD = re.compile(r"Element '[^']*'(?:, attribute '[^']*')?: (?:\[facet '[^']*'\] )?")


class _LogEntry(Protocol):
    """What is read from an lxml error log entry (lxml-stubs leaves the log untyped)."""

    message: str
    line: int
    type_name: str


def _redact(entry: _LogEntry) -> str:
    """A libxml2 schema message without the offending value (it may be a name or an ID).

    The element, attribute and facet are kept, and so is the rest of the message when it
    quotes nothing (``This element is not expected. Expected is ( … )``) or only lengths;
    anything that quotes the value becomes the libxml2 error type instead.
    """
    message = _CLARK.sub("", entry.message).strip()
    head = _HEAD.match(message)
    prefix = head.group(0) if head else ""
    rest = message[len(prefix) :]
    if "'" in rest and not rest.startswith("The value has a length of"):
        rest = f"the value is not valid ({entry.type_name})"
    return (prefix + rest)[:300]


def _schema_error(message: str, validator: etree.XMLSchema, *, rendered: bool) -> FormatError:
    # lxml-stubs declares error_log as an empty class; at run time it iterates log entries.
    errors = list(cast("Iterable[_LogEntry]", validator.error_log))
    if not errors:  # pragma: no cover - libxml2 always logs why
        return FormatError(f"{message} does not validate against its XSD")
    first = errors[0]
    where = "" if rendered else f" (line {first.line})"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return FormatError(
        f"{message} does not validate against its XSD{where}: {_redact(first)}{more}"
    )


# --- small helpers -----------------------------------------------------------------------------


def format_amount(fen: int) -> str:
    """``35001`` → ``"350.01"`` (integer arithmetic only)."""
    if fen < 0:
        raise ValueError("amounts are not negative")
    return f"{fen // 100}.{fen % 100:02d}"


def parse_amount(text: str | None, what: str) -> int:
    """Decimal yuan with at most two fraction digits → fen; FormatError otherwise.

    ``what`` names the element for the message. The schema has already checked that the
    text is an ``xs:decimal`` ≥ 0 with at most 18 digits.
    """
    value = (text or "").strip()
    m = _AMOUNT.fullmatch(value)
    if m is None:
        raise FormatError(f"{what}: amount is not a plain decimal number of yuan")
    fraction = m.group(2) or ""
    if len(fraction) > 2:
        raise FormatError(f"{what}: amount has {len(fraction)} decimals, at most 2 allowed")
    return int(m.group(1)) * 100 + int(fraction.ljust(2, "0"))


def _where(seq: int | None) -> str:
    return "" if seq is None else f"item seq {seq}: "


def text_error(
    value: str,
    field_name: str,
    max_chars: int,
    *,
    seq: int | None = None,
    cut: bool = False,
    empty_ok: bool = False,
) -> FieldError | None:
    """Why ``value`` cannot be written as an ISO 20022 ``Max<max_chars>Text``, or None."""
    if _UNWRITABLE.search(value) is not None:
        return FieldError(
            f"{_where(seq)}{field_name}: contains a control character or a character XML "
            "cannot carry",
            field_name=field_name,
            code=NOT_ENCODABLE,
        )
    if not value and not empty_ok:
        return FieldError(
            f"{_where(seq)}{field_name}: is empty; the schema needs at least one character",
            field_name=field_name,
            code=INVALID,
        )
    if len(value) > max_chars and not cut:
        return FieldError(
            f"{_where(seq)}{field_name}: {len(value)} characters, the schema's "
            f"Max{max_chars}Text holds {max_chars}",
            field_name=field_name,
            code=TOO_LONG,
            limit=max_chars,
            unit="characters",
        )
    return None


def _check_text(
    value: str, field_name: str, max_chars: int, *, seq: int | None = None, cut: bool = False
) -> None:
    error = text_error(value, field_name, max_chars, seq=seq, cut=cut)
    if error is not None:
        raise error


def _amount_error(amount_fen: int, field_name: str, seq: int | None) -> FieldError | None:
    if not 0 < amount_fen <= MAX_FEN:
        return FieldError(
            f"{_where(seq)}{field_name} must be 1…{MAX_FEN}, got {amount_fen}",
            field_name=field_name,
            code=OUT_OF_RANGE,
            limit=MAX_FEN,
            unit="fen",
        )
    return None


def _check_name_parts(batch_serial: str, file_no: int) -> None:
    if _SERIAL.fullmatch(batch_serial) is None:
        raise FieldError(
            f"batch_serial {batch_serial!r} is not 16 of [0-9A-Z]",
            field_name="batch_serial",
            code=INVALID,
        )
    if not 1 <= file_no <= 99:
        raise FieldError(f"file_no {file_no} is not 1…99", field_name="file_no", code=OUT_OF_RANGE)


def message_id(batch_serial: str, file_no: int) -> str:
    """The pain.001 ``MsgId`` and ``PmtInfId``: ``<serial><nn>`` (18 characters)."""
    _check_name_parts(batch_serial, file_no)
    return f"{batch_serial}{file_no:02d}"


def parse_message_id(value: str, what: str) -> tuple[str, int]:
    """``(batch serial, file number)`` of a ``<serial><nn>`` message id; FormatError else."""
    m = _MESSAGE_ID.fullmatch(value)
    if m is None or m.group(2) == "00":
        raise FormatError(f"{what} {value!r} is not <16 of [0-9A-Z]><file number 01…99>")
    return m.group(1), int(m.group(2))


def _shanghai(value: str | None, what: str) -> dt.datetime:
    """An ``xs:dateTime`` with an offset as an aware Asia/Shanghai datetime."""
    text = (value or "").strip()
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise FormatError(f"{what} {text!r} is not an ISO date-time") from None
    if parsed.tzinfo is None:
        raise FormatError(f"{what} {text!r} has no UTC offset (expected e.g. +08:00)")
    return parsed.astimezone(SHANGHAI)


# --- reading parsed documents --------------------------------------------------------------------


class _Reader:
    """Finds children of one namespace; every miss is a FormatError naming the path."""

    def __init__(self, ns: str) -> None:
        self.prefix = f"{{{ns}}}"
        self._paths: dict[str, str] = {}

    def _q(self, path: str) -> str:
        q = self._paths.get(path)
        if q is None:
            q = self._paths[path] = "/".join(self.prefix + part for part in path.split("/"))
        return q

    def opt(self, parent: etree._Element, path: str) -> etree._Element | None:
        return parent.find(self._q(path))

    def one(self, parent: etree._Element, path: str, where: str) -> etree._Element:
        found = parent.find(self._q(path))
        if found is None:
            raise FormatError(f"{where}: {path} is missing")
        return found

    def all(self, parent: etree._Element, path: str) -> list[etree._Element]:
        return parent.findall(self._q(path))

    def text(self, parent: etree._Element, path: str, where: str) -> str:
        value = (self.one(parent, path, where).text or "").strip()
        if not value:
            raise FormatError(f"{where}: {path} is empty")
        return value

    def opt_text(self, parent: etree._Element, path: str) -> str | None:
        found = parent.find(self._q(path))
        return None if found is None else (found.text or "").strip()

    def amount(self, parent: etree._Element, path: str, where: str) -> int:
        element = self.one(parent, path, where)
        currency = element.get("Ccy")
        if currency != CURRENCY:
            raise FormatError(f"{where}: {path} currency {currency!r}, expected {CURRENCY!r}")
        fen = parse_amount(element.text, f"{where}: {path}")
        if fen <= 0:
            raise FormatError(f"{where}: {path} must be > 0")
        return fen


def _parse_document(data: bytes, message: str) -> etree._Element:
    """The root of ``data`` once it is well-formed UTF-8 XML that validates as ``message``."""
    if not data:
        raise FormatError(f"{message}: file is empty")
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.position[0] if exc.position else 0
        raise FormatError(f"{message}: not well-formed XML (line {line}): {exc.msg}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None:  # set by any <!DOCTYPE …>, internal subset or not
        raise FormatError(f"{message}: a document type declaration is not allowed")
    if (docinfo.encoding or "").upper() != "UTF-8":
        raise FormatError(f"{message}: encoding {docinfo.encoding!r}, expected 'UTF-8'")
    ns = NAMESPACES[message]
    if root.tag != f"{{{ns}}}Document":
        raise FormatError(
            f"{message}: root element is {_CLARK.sub('', str(root.tag))!r} in namespace "
            f"{etree.QName(root).namespace!r}, expected Document in {ns!r}"
        )
    if root.nsmap != {None: ns}:
        raise FormatError(f"{message}: namespaces other than the default {ns!r} are declared")
    validator = schema(message)
    if not validator.validate(root):
        raise _schema_error(message, validator, rendered=False)
    return root


# --- the format ------------------------------------------------------------------------------


class Iso20022Format:
    """``iso20022-v1`` (implements ``gateway.ports.BankFormat`` and ``AccountNoticeFormat``).

    ``bank_id`` goes to ``DbtrAgt/FinInstnId/Othr/Id`` (the bank profile's id of the paying
    bank, e.g. ``HNRCU`` or ``402``). ``payer_name`` is the name written as ``InitgPty/Nm``
    and ``Dbtr/Nm`` when ``RequestHeader.payer_name`` is empty.
    """

    name = "iso20022-v1"

    def __init__(
        self, *, bank_id: str, payer_name: str = "", max_items_per_file: int = 50_000
    ) -> None:
        if not 1 <= max_items_per_file <= 999_999_999:
            raise ValueError(f"max_items_per_file must be 1…999999999, got {max_items_per_file}")
        for what, value, limit, empty_ok in (
            ("bank_id", bank_id, 35, False),
            ("payer_name", payer_name, 140, True),
        ):
            error = text_error(value, what, limit, empty_ok=empty_ok)
            if error is not None:
                raise ValueError(str(error))
        self.bank_id = bank_id
        self.payer_name = payer_name
        self.max_items_per_file = max_items_per_file
        self._q1 = f"{{{NS_PAIN001}}}"

    # --- file names ---

    def request_file_name(self, batch_serial: str, file_no: int) -> str:
        _check_name_parts(batch_serial, file_no)
        return f"P001_{batch_serial}_{file_no:02d}.xml"

    def result_file_name(self, batch_serial: str, file_no: int) -> str:
        _check_name_parts(batch_serial, file_no)
        return f"P002_{batch_serial}_{file_no:02d}.xml"

    def account_notice_file_name(self, batch_serial: str, file_no: int) -> str:
        _check_name_parts(batch_serial, file_no)
        return f"C054_{batch_serial}_{file_no:02d}.xml"

    @staticmethod
    def _match(pattern: re.Pattern[str], name: str) -> tuple[str, int] | None:
        m = pattern.fullmatch(name)
        if m is None or m.group(2) == "00":
            return None
        return m.group(1), int(m.group(2))

    def parse_request_file_name(self, name: str) -> tuple[str, int] | None:
        """``(batch_serial, file_no)`` of ``P001_<serial>_<nn>.xml``, or None."""
        return self._match(_REQUEST_NAME, name)

    def is_result_file_name(self, name: str) -> bool:
        return self.parse_result_file_name(name) is not None

    def parse_result_file_name(self, name: str) -> tuple[str, int] | None:
        """``(batch_serial, file_no)`` of ``P002_<serial>_<nn>.xml``, or None."""
        return self._match(_RESULT_NAME, name)

    def is_account_notice_name(self, name: str) -> bool:
        return self.parse_account_notice_file_name(name) is not None

    def parse_account_notice_file_name(self, name: str) -> tuple[str, int] | None:
        """``(batch_serial, file_no)`` of ``C054_<serial>_<nn>.xml`` (the batch debit) or
        ``C054_<serial>_<nn>_R<k>.xml`` (a return of one of its items), or None."""
        return self._match(_NOTICE_NAME, name)

    def signature_name(self, file_name: str) -> str:
        return f"{file_name}.sig"

    # --- request ---

    def check_item(self, item: RequestItem) -> list[FieldError]:
        seq = item.seq
        errors = [
            error
            for error in (
                text_error(item.serial, "serial", 35, seq=seq),
                text_error(item.account_no, "account_no", 34, seq=seq),
                text_error(item.name, "name", 140, seq=seq),
                text_error(item.id_number, "id_number", 35, seq=seq),
                text_error(item.remark, "remark", 140, seq=seq, cut=True, empty_ok=True),
                _amount_error(item.amount_fen, "amount_fen", seq),
            )
            if error is not None
        ]
        if not 1 <= seq <= 999_999_999:
            errors.append(
                FieldError(f"seq {seq} is not 1…999999999", field_name="seq", code=OUT_OF_RANGE)
            )
        return errors

    def check_header(self, header: RequestHeader) -> list[FieldError]:
        """Every reason the header cannot be written (empty when it fits): ``render_request``
        raises the first, intake refuses a batch for any of them. The payer name checked is
        the one written: ``header.payer_name``, else the constructor's. (Counts and totals
        are checked against the items by ``render_request``.)"""
        errors: list[FieldError] = []
        try:
            _check_name_parts(header.batch_serial, header.file_no)
        except FieldError as exc:
            errors.append(exc)
        for error in (
            text_error(header.payer_account, "payer_account", 34),
            text_error(header.subsidy_code, "subsidy_code", 35),
            text_error(header.subsidy_name, "subsidy_name", 140, cut=True),
            text_error(header.period, "period", 140, cut=True),
            text_error(header.payer_name or self.payer_name, "payer_name", 140),
        ):
            if error is not None:
                errors.append(error)
        return errors

    def _check_header(self, header: RequestHeader) -> str:
        """The payer name to write; FieldError for a header value the schema cannot carry."""
        errors = self.check_header(header)
        if errors:
            raise errors[0]
        return header.payer_name or self.payer_name

    def render_request(self, header: RequestHeader, items: Iterable[RequestItem]) -> bytes:
        """The exact bytes of a ``pain.001.001.09`` for one request file.

        Deterministic: ``CreDtTm`` is ``created_on`` at ``00:00:00+08:00`` and
        ``ReqdExctnDt`` is ``created_on``. The payer name is ``header.payer_name``, or the
        constructor's ``payer_name`` when that is empty.

        Raises FieldError for a value that cannot be written, and FormatError when the items
        do not make a file the bank would accept: more than ``max_items_per_file``, no items,
        sequences not 1…n, a repeated item serial, or a header count/total that disagrees
        with the items. The document is validated against the XSD before it is returned.
        """
        payer_name = self._check_header(header)
        msg_id = message_id(header.batch_serial, header.file_no)
        remittance_head = f"{header.subsidy_name} {header.period}"
        q = self._q1
        sub = etree.SubElement

        # lxml-stubs types nsmap as Mapping[str, str]; lxml takes None for the default namespace
        root = etree.Element(q + "Document", nsmap={None: NS_PAIN001})  # type: ignore[dict-item]
        initiation = sub(root, q + "CstmrCdtTrfInitn")
        group = sub(initiation, q + "GrpHdr")
        sub(group, q + "MsgId").text = msg_id
        sub(group, q + "CreDtTm").text = f"{header.created_on.isoformat()}T00:00:00+08:00"
        group_count = sub(group, q + "NbOfTxs")
        group_sum = sub(group, q + "CtrlSum")
        sub(sub(group, q + "InitgPty"), q + "Nm").text = payer_name

        pmt = sub(initiation, q + "PmtInf")
        sub(pmt, q + "PmtInfId").text = msg_id
        sub(pmt, q + "PmtMtd").text = "TRF"
        sub(pmt, q + "BtchBookg").text = "true"
        pmt_count = sub(pmt, q + "NbOfTxs")
        pmt_sum = sub(pmt, q + "CtrlSum")
        purpose = sub(sub(pmt, q + "PmtTpInf"), q + "CtgyPurp")
        sub(purpose, q + "Cd").text = CATEGORY_PURPOSE
        sub(sub(pmt, q + "ReqdExctnDt"), q + "Dt").text = header.created_on.isoformat()
        sub(sub(pmt, q + "Dbtr"), q + "Nm").text = payer_name
        self._account(pmt, "DbtrAcct", header.payer_account)
        agent = sub(sub(pmt, q + "DbtrAgt"), q + "FinInstnId")
        sub(sub(agent, q + "Othr"), q + "Id").text = self.bank_id

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
            errors = self.check_item(item)
            if errors:
                raise errors[0]
            self._transaction(pmt, item, remittance_head, header.subsidy_code)
            total += item.amount_fen
        if count == 0:
            raise FormatError("a request file needs at least one item")
        if header.item_count != count:
            raise FormatError(f"header item_count is {header.item_count}, the items give {count}")
        if header.total_fen != total:
            raise FormatError(f"header total_fen is {header.total_fen}, the items give {total}")
        if total > MAX_FEN:
            raise FieldError(
                f"total_fen {total} does not fit the schema's DecimalNumber",
                field_name="total_fen",
                code=OUT_OF_RANGE,
            )
        group_count.text = pmt_count.text = str(count)
        group_sum.text = pmt_sum.text = format_amount(total)

        validator = schema(PAIN001)
        if not validator.validate(root):
            raise _schema_error(f"rendered {PAIN001}", validator, rendered=True)
        return XML_DECLARATION + etree.tostring(
            root, encoding="UTF-8", xml_declaration=False, pretty_print=True
        )

    def _account(self, parent: etree._Element, tag: str, number: str) -> None:
        q = self._q1
        sub = etree.SubElement
        sub(sub(sub(sub(parent, q + tag), q + "Id"), q + "Othr"), q + "Id").text = number

    def _transaction(
        self, pmt: etree._Element, item: RequestItem, remittance_head: str, subsidy_code: str
    ) -> None:
        q = self._q1
        sub = etree.SubElement
        tx = sub(pmt, q + "CdtTrfTxInf")
        pmt_id = sub(tx, q + "PmtId")
        sub(pmt_id, q + "InstrId").text = str(item.seq)
        sub(pmt_id, q + "EndToEndId").text = item.serial
        amount = sub(sub(tx, q + "Amt"), q + "InstdAmt", Ccy=CURRENCY)
        amount.text = format_amount(item.amount_fen)
        creditor = sub(tx, q + "Cdtr")
        sub(creditor, q + "Nm").text = item.name
        other = sub(sub(sub(creditor, q + "Id"), q + "PrvtId"), q + "Othr")
        sub(other, q + "Id").text = item.id_number
        sub(sub(other, q + "SchmeNm"), q + "Cd").text = ID_SCHEME
        self._account(tx, "CdtrAcct", item.account_no)
        sub(sub(tx, q + "Purp"), q + "Prtry").text = subsidy_code
        remittance = f"{remittance_head} {item.remark}" if item.remark else remittance_head
        sub(sub(tx, q + "RmtInf"), q + "Ustrd").text = remittance[:140]

    # --- pain.002 ---

    def parse_result(self, data: bytes) -> ResultFile:
        """Parse a ``pain.002.001.10`` payment status report into a ResultFile.

        ``GrpSts`` ``RJCT`` (the whole message refused) gives ``accepted=False`` and
        ``rejected_code`` = its ``StsRsnInf/Rsn/Cd``. With ``ACCP``, every ``TxInfAndSts`` is
        one item: ``ACSC`` → PAID (``bank_code`` ``ACSC``, ``bank_ref`` = ``AcctSvcrRef``),
        ``RJCT`` → FAILED (``bank_code`` = the reason code, ``bank_message`` = its
        ``AddtlInf``). FormatError unless the document validates and follows the usage guide.
        """
        root = _parse_document(data, PAIN002)
        r = _Reader(NS_PAIN002)
        report = r.one(root, "CstmrPmtStsRpt", PAIN002)
        group = r.one(report, "OrgnlGrpInfAndSts", PAIN002)
        where = "OrgnlGrpInfAndSts"
        original = r.text(group, "OrgnlMsgId", where)
        batch_serial, file_no = parse_message_id(original, f"{where}/OrgnlMsgId")
        name_id = r.text(group, "OrgnlMsgNmId", where)
        if name_id != PAIN001:
            raise FormatError(f"{where}/OrgnlMsgNmId is {name_id!r}, expected {PAIN001!r}")
        status = r.opt_text(group, "GrpSts")
        reasons = r.all(group, "StsRsnInf")
        payments = r.all(report, "OrgnlPmtInfAndSts")

        if status == REJECTED_STATUS:
            if payments:
                raise FormatError("GrpSts RJCT (message refused) with OrgnlPmtInfAndSts")
            code = self._reason(r, reasons, where)
            return ResultFile(
                batch_serial=batch_serial, file_no=file_no, accepted=False, rejected_code=code
            )
        if status != ACCEPTED_GROUP:
            raise FormatError(f"{where}/GrpSts is {status!r}, expected 'ACCP' or 'RJCT'")
        if reasons:
            raise FormatError(f"{where}: GrpSts ACCP carries a StsRsnInf")
        stated_count = self._count(r.text(group, "OrgnlNbOfTxs", where), f"{where}/OrgnlNbOfTxs")
        stated_sum = parse_amount(r.text(group, "OrgnlCtrlSum", where), f"{where}/OrgnlCtrlSum")
        if len(payments) != 1:
            raise FormatError(
                f"GrpSts ACCP needs exactly one OrgnlPmtInfAndSts, found {len(payments)}"
            )
        payment = payments[0]
        pmt_inf_id = r.text(payment, "OrgnlPmtInfId", "OrgnlPmtInfAndSts")
        if pmt_inf_id != original:
            raise FormatError(
                f"OrgnlPmtInfAndSts/OrgnlPmtInfId {pmt_inf_id!r} is not the OrgnlMsgId {original!r}"
            )

        items: list[ResultItem] = []
        serials: set[str] = set()
        seqs: set[int] = set()
        paid_count = paid_fen = failed_count = failed_fen = 0
        for index, tx in enumerate(r.all(payment, "TxInfAndSts"), start=1):
            item = self._result_item(r, tx, index)
            if item.seq in seqs:
                raise FormatError(f"TxInfAndSts {index}: OrgnlInstrId {item.seq} repeats")
            seqs.add(item.seq)
            if item.serial in serials:
                raise FormatError(f"TxInfAndSts {index}: OrgnlEndToEndId {item.serial!r} repeats")
            serials.add(item.serial)
            if item.status is ResultStatus.PAID:
                paid_count += 1
                paid_fen += item.amount_fen
            else:
                failed_count += 1
                failed_fen += item.amount_fen
            items.append(item)

        if stated_count != len(items):
            raise FormatError(
                f"{where}/OrgnlNbOfTxs is {stated_count}, the report holds {len(items)} "
                "TxInfAndSts (one per transaction of the request)"
            )
        if stated_sum != paid_fen + failed_fen:
            raise FormatError(
                f"{where}/OrgnlCtrlSum is {format_amount(stated_sum)}, the TxInfAndSts "
                f"amounts add up to {format_amount(paid_fen + failed_fen)}"
            )
        if max(seqs, default=0) > len(items):
            raise FormatError(f"OrgnlInstrId {max(seqs)} is beyond the {len(items)} transactions")
        self._tie_payment(r, payment, len(items), paid_fen + failed_fen)
        return ResultFile(
            batch_serial=batch_serial,
            file_no=file_no,
            accepted=True,
            rejected_code="",
            items=tuple(items),
            paid_count=paid_count,
            paid_fen=paid_fen,
            failed_count=failed_count,
            failed_fen=failed_fen,
        )

    @staticmethod
    def _count(text: str, what: str) -> int:
        if _DIGITS.fullmatch(text) is None:
            raise FormatError(f"{what} is not a number of transactions")
        return int(text)

    def _tie_payment(self, r: _Reader, payment: etree._Element, count: int, total: int) -> None:
        """``OrgnlNbOfTxs``/``OrgnlCtrlSum`` of the payment information, when present."""
        where = "OrgnlPmtInfAndSts"
        stated = r.opt_text(payment, "OrgnlNbOfTxs")
        if stated is not None and self._count(stated, f"{where}/OrgnlNbOfTxs") != count:
            raise FormatError(f"{where}/OrgnlNbOfTxs is {stated}, the report holds {count}")
        stated = r.opt_text(payment, "OrgnlCtrlSum")
        if stated is not None and parse_amount(stated, f"{where}/OrgnlCtrlSum") != total:
            raise FormatError(
                f"{where}/OrgnlCtrlSum is {stated}, the amounts add up to {format_amount(total)}"
            )

    @staticmethod
    def _reason(r: _Reader, reasons: list[etree._Element], where: str) -> str:
        if len(reasons) != 1:
            raise FormatError(f"{where}: RJCT needs exactly one StsRsnInf, found {len(reasons)}")
        return r.text(reasons[0], "Rsn/Cd", f"{where}/StsRsnInf")

    def _result_item(self, r: _Reader, tx: etree._Element, index: int) -> ResultItem:
        where = f"TxInfAndSts {index}"
        seq_text = r.text(tx, "OrgnlInstrId", where)
        seq = self._count(seq_text, f"{where}/OrgnlInstrId")
        if seq == 0:
            raise FormatError(f"{where}: OrgnlInstrId must be >= 1")
        where = f"{where} (OrgnlInstrId {seq})"
        serial = r.text(tx, "OrgnlEndToEndId", where)
        tx_status = r.text(tx, "TxSts", where)
        reasons = r.all(tx, "StsRsnInf")
        bank_ref = r.opt_text(tx, "AcctSvcrRef") or ""
        if tx_status == PAID_STATUS:
            status = ResultStatus.PAID
            code = PAID_STATUS
            message = ""
            if reasons:
                raise FormatError(f"{where}: TxSts ACSC (paid) carries a StsRsnInf")
            if not bank_ref:
                raise FormatError(f"{where}: TxSts ACSC (paid) without an AcctSvcrRef")
        elif tx_status == REJECTED_STATUS:
            status = ResultStatus.FAILED
            code = self._reason(r, reasons, where)
            message = " ".join(
                (e.text or "").strip() for e in r.all(reasons[0], "AddtlInf")
            ).strip()
            if bank_ref:
                raise FormatError(f"{where}: TxSts RJCT (failed) carries an AcctSvcrRef")
        else:
            raise FormatError(f"{where}: TxSts {tx_status!r}, expected 'ACSC' or 'RJCT'")
        reference = r.one(tx, "OrgnlTxRef", where)
        return ResultItem(
            seq=seq,
            serial=serial,
            account_no=r.text(reference, "CdtrAcct/Id/Othr/Id", f"{where}/OrgnlTxRef"),
            amount_fen=r.amount(reference, "Amt/InstdAmt", f"{where}/OrgnlTxRef"),
            status=status,
            bank_code=code,
            bank_message=message,
            bank_ref=bank_ref,
            processed_at=_shanghai(r.text(tx, "AccptncDtTm", where), f"{where}: AccptncDtTm"),
        )

    # --- camt.054 ---

    def parse_account_notice(self, data: bytes) -> AccountNotice:
        """Parse a ``camt.054.001.08`` debit/credit notification of the payer account.

        One AccountEntry per ``Ntry`` (the guide sends exactly one: the batch debit, ``DBIT``
        → ``"debit"``; a return is a ``CRDT`` → ``"credit"``), with ``details`` =
        ``(EndToEndId, fen)`` of each ``TxDtls``. FormatError unless the document validates,
        every entry is booked (``BOOK``) in CNY with at most two decimals, and the details
        add up to the entry.
        """
        root = _parse_document(data, CAMT054)
        r = _Reader(NS_CAMT054)
        notification = r.one(root, "BkToCstmrDbtCdtNtfctn", CAMT054)
        message = r.text(notification, "GrpHdr/MsgId", "GrpHdr")
        entries: list[AccountEntry] = []
        for n_index, ntfctn in enumerate(r.all(notification, "Ntfctn"), start=1):
            where = f"Ntfctn {n_index}"
            account = r.text(ntfctn, "Acct/Id/Othr/Id", where)
            for e_index, entry in enumerate(r.all(ntfctn, "Ntry"), start=1):
                entries.append(self._entry(r, entry, account, f"{where} Ntry {e_index}"))
        if not entries:
            raise FormatError(f"{CAMT054}: the notification holds no Ntry")
        return AccountNotice(message_id=message, entries=tuple(entries))

    def _entry(self, r: _Reader, entry: etree._Element, account: str, where: str) -> AccountEntry:
        amount = r.amount(entry, "Amt", where)
        indicator = r.text(entry, "CdtDbtInd", where)
        direction: Literal["debit", "credit"] = "debit" if indicator == "DBIT" else "credit"
        entry_status = r.opt_text(entry, "Sts/Cd")
        if entry_status != BOOKED:
            raise FormatError(f"{where}: Sts/Cd is {entry_status!r}, expected 'BOOK'")
        booked_on_text = r.text(entry, "BookgDt/Dt", where)
        try:
            booked_on = dt.date.fromisoformat(booked_on_text)
        except ValueError:
            raise FormatError(f"{where}: BookgDt/Dt {booked_on_text!r} is not a date") from None
        bank_ref = r.text(entry, "AcctSvcrRef", where)
        batch_serial: str | None = None
        file_no: int | None = None
        details: list[tuple[str, int]] = []
        serials: set[str] = set()
        stated_batch_count: int | None = None
        for entry_details in r.all(entry, "NtryDtls"):
            batch = r.opt(entry_details, "Btch")
            if batch is not None:
                if batch_serial is not None:
                    raise FormatError(f"{where}: more than one NtryDtls/Btch")
                batch_id = r.text(batch, "MsgId", f"{where}/NtryDtls/Btch")
                batch_serial, file_no = parse_message_id(batch_id, f"{where}: Btch/MsgId")
                pmt_inf_id = r.opt_text(batch, "PmtInfId")
                if pmt_inf_id is not None and pmt_inf_id != batch_id:
                    raise FormatError(
                        f"{where}: Btch/PmtInfId {pmt_inf_id!r} is not Btch/MsgId {batch_id!r}"
                    )
                count = r.opt_text(batch, "NbOfTxs")
                if count is not None:
                    stated_batch_count = self._count(count, f"{where}: Btch/NbOfTxs")
            for t_index, tx in enumerate(r.all(entry_details, "TxDtls"), start=len(details) + 1):
                tx_where = f"{where} TxDtls {t_index}"
                serial = r.text(tx, "Refs/EndToEndId", tx_where)
                if serial in serials:
                    raise FormatError(f"{tx_where}: EndToEndId {serial!r} repeats")
                serials.add(serial)
                details.append((serial, r.amount(tx, "Amt", tx_where)))
        if stated_batch_count is not None and stated_batch_count != len(details):
            raise FormatError(
                f"{where}: Btch/NbOfTxs is {stated_batch_count}, the entry holds "
                f"{len(details)} TxDtls"
            )
        detail_sum = sum(fen for _, fen in details)
        if details and detail_sum != amount:
            raise FormatError(
                f"{where}: Amt is {format_amount(amount)}, its TxDtls add up to "
                f"{format_amount(detail_sum)}"
            )
        return AccountEntry(
            account=account,
            amount_fen=amount,
            direction=direction,
            booked_on=booked_on,
            bank_ref=bank_ref,
            batch_serial=batch_serial,
            file_no=file_no,
            details=tuple(details),
        )
