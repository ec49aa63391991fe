"""The bank's own codec for ``iso20022-v1`` (``docs/formats/iso20022-v1.md``).

Written from the usage guide, independently of the gateway's adapter: it parses
``pain.001.001.09`` credit transfer initiations (``P001_<serial>_<nn>.xml``) and writes
``pain.002.001.10`` payment status reports (``P002_…``) and ``camt.054.001.08`` debit/credit
notifications (``C054_…``).

Parsing uses ``defusedxml`` (no DTDs, no entities: the request is untrusted input) and checks
the structure the bank needs; full XSD validation is the gateway's job. A request is refused
as a whole (pain.002 ``GrpSts`` ``RJCT``) with:

- ``FF01`` — not well-formed, not UTF-8, wrong namespace or root, an element of another
  namespace or an attribute other than ``Ccy`` on an amount (``schemaLocation`` included), a
  required element missing or repeated, a value that breaks its schema type (lengths,
  numbers, dates, amounts with other than two fraction digits, a currency other than
  ``CNY``), a fixed value of the guide other than the guide's (``PmtMtd`` ``TRF``,
  ``BtchBookg`` ``true``, ``CtgyPurp/Cd`` ``GOVT``, ``SchmeNm/Cd`` ``NIDN``), ``MsgId`` or
  ``PmtInfId`` other than ``<serial><nn>`` of the file name, ``InstrId`` not ``1…n`` in order,
  or ``NbOfTxs`` (group header or payment information) other than the number of transactions;
- ``AM10`` — a ``CtrlSum`` other than the sum of the transactions' amounts;
- ``DU05`` — an ``EndToEndId`` that appears twice;
- ``DS0B`` — the signature fails (checked by the processor, before any parsing).

The checks run in that order (structure, counts, sums, duplicates); the first failure wins.

XML is built with ElementTree (never by string concatenation) in the message's default
namespace, UTF-8, with the declaration ``<?xml version="1.0" encoding="UTF-8"?>``. Amounts
go between integer fen and decimal yuan (``"350.01"``) with integer arithmetic only.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # building only: untrusted input is parsed by defusedxml
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar, Final, Literal

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeElementTree

from mock_bank import codes

FORMAT: Final = "iso20022-v1"

NS_PAIN001: Final = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
NS_PAIN002: Final = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"
NS_CAMT054: Final = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"
PAIN001_NAME: Final = "pain.001.001.09"
CURRENCY: Final = "CNY"
XML_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'

# Group and transaction statuses, entry codes.
ACCP: Final = "ACCP"
RJCT: Final = "RJCT"
ACSC: Final = "ACSC"
BOOK: Final = "BOOK"
DBIT: Final = "DBIT"
CRDT: Final = "CRDT"
SUBSIDY_TX_CODE: Final = "SUBSIDY"
RETURN_TX_CODE: Final = "RETURN"

# Whole-message reject reasons.
SIGNATURE_INVALID: Final = "DS0B"
INVALID_FILE_FORMAT: Final = "FF01"
CONTROL_SUM_INVALID: Final = "AM10"
DUPLICATE_END_TO_END_ID: Final = "DU05"

#: The bank's item outcome (``mock_bank.codes``) → ISO external status reason code.
REASON_CODES: Final[dict[str, str]] = {
    codes.ACCOUNT_NOT_FOUND: "AC01",
    codes.NAME_MISMATCH: "BE01",
    codes.ACCOUNT_FROZEN: "AC06",
    codes.ACCOUNT_CLOSED: "AC04",
    codes.ID_NUMBER_MISMATCH: "BE16",
    codes.OTHER_FAILURE: "NARR",
}

TxStatus = Literal["ACSC", "RJCT"]

# --------------------------------------------------------------------------------------------
# Errors


class MessageRejectedError(ValueError):
    """The whole message is refused; ``code`` is the pain.002 ``StsRsnInf/Rsn/Cd``.

    ``nb_of_txs`` and ``ctrl_sum`` are the request's group header values when the structure
    was valid (echoed as ``OrgnlNbOfTxs``/``OrgnlCtrlSum``), else ``None``."""

    code: ClassVar[str] = INVALID_FILE_FORMAT

    def __init__(
        self, reason: str, *, nb_of_txs: int | None = None, ctrl_sum: str | None = None
    ) -> None:
        self.reason = reason
        self.nb_of_txs = nb_of_txs
        self.ctrl_sum = ctrl_sum
        super().__init__(reason)


class InvalidFormatError(MessageRejectedError):
    code: ClassVar[str] = INVALID_FILE_FORMAT


class ControlSumError(MessageRejectedError):
    code: ClassVar[str] = CONTROL_SUM_INVALID


class DuplicateEndToEndIdError(MessageRejectedError):
    code: ClassVar[str] = DUPLICATE_END_TO_END_ID


# --------------------------------------------------------------------------------------------
# File names

_REQUEST_NAME: Final = re.compile(r"P001_([0-9A-Z]{16})_([0-9]{2})\.xml")


def parse_request_name(name: str) -> tuple[str, int] | None:
    """``P001_<serial>_<nn>.xml`` → ``(serial, nn)``; ``None`` for any other name (and
    ``nn`` = ``00``)."""
    match = _REQUEST_NAME.fullmatch(name)
    if match is None or int(match.group(2)) < 1:
        return None
    return match.group(1), int(match.group(2))


def request_name(batch_serial: str, file_no: int) -> str:
    return f"P001_{batch_serial}_{file_no:02d}.xml"


def status_report_name(batch_serial: str, file_no: int) -> str:
    return f"P002_{batch_serial}_{file_no:02d}.xml"


def notification_name(batch_serial: str, file_no: int, return_no: int | None = None) -> str:
    """``C054_<serial>_<nn>.xml`` (the batch debit) or ``C054_<serial>_<nn>_R<k>.xml`` (the
    ``k``-th return of an item of that file)."""
    suffix = "" if return_no is None else f"_R{return_no}"
    return f"C054_{batch_serial}_{file_no:02d}{suffix}.xml"


def message_id(batch_serial: str, file_no: int) -> str:
    """The request's ``MsgId`` and ``PmtInfId``: ``<serial><nn>``."""
    return f"{batch_serial}{file_no:02d}"


# --------------------------------------------------------------------------------------------
# Money: integer fen <-> decimal yuan, no floating point

_AMOUNT: Final = re.compile(r"(0|[1-9][0-9]{0,15})\.([0-9]{2})")
_DECIMAL: Final = re.compile(r"([0-9]{1,18})(?:\.([0-9]{1,17}))?")


def format_amount(fen: int) -> str:
    """``35001`` → ``"350.01"``."""
    if isinstance(fen, bool) or not isinstance(fen, int) or fen < 0:
        raise ValueError("an amount is a non-negative integer number of fen")
    return f"{fen // 100}.{fen % 100:02d}"


def parse_amount(text: str) -> int:
    """``"350.01"`` → ``35001``: decimal yuan with exactly two fraction digits, > 0."""
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise InvalidFormatError(f"amount {text!r} is not decimal yuan with two fraction digits")
    fen = int(match.group(1)) * 100 + int(match.group(2))
    if fen <= 0:
        raise InvalidFormatError("amount must be > 0")
    return fen


def parse_control_sum(text: str) -> tuple[int, bool]:
    """A ``DecimalNumber`` → ``(fen, exact)``; ``exact`` is False when it has a part below
    one fen (it then equals no sum of amounts)."""
    match = _DECIMAL.fullmatch(text)
    if match is None:
        raise InvalidFormatError(f"CtrlSum {text!r} is not a decimal number")
    fraction = match.group(2) or ""
    fen = int(match.group(1)) * 100 + int((fraction + "00")[:2])
    return fen, not fraction[2:].strip("0")


# --------------------------------------------------------------------------------------------
# pain.001.001.09


@dataclass(frozen=True, slots=True)
class CreditTransfer:
    """One ``CdtTrfTxInf``."""

    instr_id: int
    end_to_end_id: str
    amount_fen: int
    creditor_name: str
    creditor_id: str
    account_no: str
    subsidy_code: str
    remittance: str

    @property
    def subsidy_name(self) -> str:
        return self.remittance.split(" ", 2)[0]

    @property
    def period(self) -> str:
        """``RmtInf/Ustrd`` is ``<subsidy item name> <period>[ <remark>]``; ``""`` if cut."""
        parts = self.remittance.split(" ", 2)
        return parts[1] if len(parts) > 1 else ""


@dataclass(frozen=True, slots=True)
class Pain001:
    msg_id: str
    created: datetime
    nb_of_txs: int
    ctrl_sum_fen: int
    initiating_party: str
    pmt_inf_id: str
    requested_date: date
    debtor_name: str
    debtor_account: str
    debtor_agent: str
    transactions: tuple[CreditTransfer, ...]


_NUMERIC15: Final = re.compile(r"[0-9]{1,15}")
_ISO_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ISO_DATETIME: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_DECLARATION: Final = re.compile(
    rb"<\?xml\s+version\s*=\s*([\"'])1\.0\1\s+encoding\s*=\s*([\"'])(?i:utf-8)\2"
    rb"(\s+standalone\s*=\s*([\"'])(yes|no)\4)?\s*\?>"
)
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class _Reader:
    """Finds elements of one namespace and checks their cardinality and lexical form."""

    def __init__(self, ns: str) -> None:
        self.ns = ns

    def _path(self, path: str) -> str:
        return "/".join(f"{{{self.ns}}}{step}" for step in path.split("/"))

    def one(self, parent: ET.Element, path: str) -> ET.Element:
        found = parent.findall(self._path(path))
        if len(found) != 1:
            what = "missing" if not found else "repeated"
            raise InvalidFormatError(f"{path} {what}")
        return found[0]

    def many(self, parent: ET.Element, path: str) -> list[ET.Element]:
        return parent.findall(self._path(path))

    def text(self, parent: ET.Element, path: str, *, max_len: int = 35) -> str:
        element = self.one(parent, path)
        if len(element) != 0:
            raise InvalidFormatError(f"{path} must be text, not elements")
        value = element.text or ""
        if not value.strip():
            raise InvalidFormatError(f"{path} is empty")
        if len(value) > max_len:
            raise InvalidFormatError(f"{path} longer than {max_len} characters")
        if _CONTROL.search(value):
            raise InvalidFormatError(f"{path} has control characters")
        return value

    def fixed(self, parent: ET.Element, path: str, expected: str) -> None:
        if self.text(parent, path) != expected:
            raise InvalidFormatError(f"{path} must be {expected}")


def _check_document(root: ET.Element, ns: str) -> None:
    """Every element in ``ns``; the only attribute allowed is ``Ccy`` on an amount."""
    prefix = f"{{{ns}}}"
    for element in root.iter():
        if not isinstance(element.tag, str) or not element.tag.startswith(prefix):
            raise InvalidFormatError(f"element {element.tag!r} outside {ns}")
        allowed = {"Ccy"} if element.tag.endswith(("}InstdAmt", "}Amt")) else set()
        extra = set(element.attrib) - allowed
        if extra:
            raise InvalidFormatError(f"unexpected attributes {sorted(extra)}")


def _amount(reader: _Reader, parent: ET.Element, path: str) -> int:
    element = reader.one(parent, path)
    if element.get("Ccy") != CURRENCY:
        raise InvalidFormatError(f"{path} must have Ccy={CURRENCY}")
    return parse_amount(reader.text(parent, path))


def _datetime(value: str, what: str) -> datetime:
    if _ISO_DATETIME.fullmatch(value) is None:
        raise InvalidFormatError(f"{what} is not an ISO date-time")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidFormatError(f"{what} is not a valid date-time") from exc


def _date(value: str, what: str) -> date:
    if _ISO_DATE.fullmatch(value) is None:
        raise InvalidFormatError(f"{what} is not an ISO date")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidFormatError(f"{what} is not a valid date") from exc


def _count(value: str, what: str) -> int:
    if _NUMERIC15.fullmatch(value) is None:
        raise InvalidFormatError(f"{what} is not a number of transactions")
    return int(value)


def parse_xml(data: bytes, ns: str, root_child: str) -> ET.Element:
    """Parse a message safely and return its ``Document/<root_child>`` element."""
    if _DECLARATION.match(data) is None:
        raise InvalidFormatError('the file must start with <?xml version="1.0" encoding="UTF-8"?>')
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFormatError("the file is not UTF-8") from exc
    try:
        root = SafeElementTree.fromstring(data, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise InvalidFormatError(f"not well-formed XML: {exc}") from exc
    if root.tag != f"{{{ns}}}Document":
        raise InvalidFormatError(f"root element must be Document in {ns}")
    _check_document(root, ns)
    if len(root) != 1 or root[0].tag != f"{{{ns}}}{root_child}":
        raise InvalidFormatError(f"Document must hold exactly one {root_child}")
    return root[0]


def parse_pain001(data: bytes, *, expected_msg_id: str) -> Pain001:
    """Parse and check a pain.001.001.09 request (see the module docstring for the checks);
    raise a :class:`MessageRejectedError` subclass."""
    r = _Reader(NS_PAIN001)
    initn = parse_xml(data, NS_PAIN001, "CstmrCdtTrfInitn")

    grp = r.one(initn, "GrpHdr")
    msg_id = r.text(grp, "MsgId")
    created = _datetime(r.text(grp, "CreDtTm"), "GrpHdr/CreDtTm")
    nb_of_txs = _count(r.text(grp, "NbOfTxs"), "GrpHdr/NbOfTxs")
    ctrl_sum_text = r.text(grp, "CtrlSum")
    ctrl_sum_fen, ctrl_exact = parse_control_sum(ctrl_sum_text)
    initiating_party = r.text(grp, "InitgPty/Nm", max_len=140)

    pmt = r.one(initn, "PmtInf")
    pmt_inf_id = r.text(pmt, "PmtInfId")
    r.fixed(pmt, "PmtMtd", "TRF")
    if r.text(pmt, "BtchBookg") not in ("true", "1"):
        raise InvalidFormatError("BtchBookg must be true (one debit per file)")
    pmt_nb_of_txs = _count(r.text(pmt, "NbOfTxs"), "PmtInf/NbOfTxs")
    pmt_ctrl_sum_fen, pmt_ctrl_exact = parse_control_sum(r.text(pmt, "CtrlSum"))
    r.fixed(pmt, "PmtTpInf/CtgyPurp/Cd", "GOVT")
    requested_date = _date(r.text(pmt, "ReqdExctnDt/Dt"), "ReqdExctnDt/Dt")
    debtor_name = r.text(pmt, "Dbtr/Nm", max_len=140)
    debtor_account = r.text(pmt, "DbtrAcct/Id/Othr/Id", max_len=34)
    debtor_agent = r.text(pmt, "DbtrAgt/FinInstnId/Othr/Id")

    if msg_id != expected_msg_id:
        raise InvalidFormatError(f"MsgId {msg_id!r} differs from the file name's")
    if pmt_inf_id != expected_msg_id:
        raise InvalidFormatError(f"PmtInfId {pmt_inf_id!r} differs from the file name's")

    transactions: list[CreditTransfer] = []
    for index, tx in enumerate(r.many(pmt, "CdtTrfTxInf"), start=1):
        instr_id = r.text(tx, "PmtId/InstrId")
        if instr_id != str(index):
            raise InvalidFormatError(f"transaction {index}: InstrId must be {index}")
        r.fixed(tx, "Cdtr/Id/PrvtId/Othr/SchmeNm/Cd", "NIDN")
        transactions.append(
            CreditTransfer(
                instr_id=index,
                end_to_end_id=r.text(tx, "PmtId/EndToEndId"),
                amount_fen=_amount(r, tx, "Amt/InstdAmt"),
                creditor_name=r.text(tx, "Cdtr/Nm", max_len=140),
                creditor_id=r.text(tx, "Cdtr/Id/PrvtId/Othr/Id"),
                account_no=r.text(tx, "CdtrAcct/Id/Othr/Id", max_len=34),
                subsidy_code=r.text(tx, "Purp/Prtry"),
                remittance=r.text(tx, "RmtInf/Ustrd", max_len=140),
            )
        )
    if not transactions:
        raise InvalidFormatError("PmtInf holds no CdtTrfTxInf")

    count = len(transactions)
    if nb_of_txs != count or pmt_nb_of_txs != count:
        raise InvalidFormatError(
            f"NbOfTxs {nb_of_txs}/{pmt_nb_of_txs} but {count} transactions",
            nb_of_txs=nb_of_txs,
            ctrl_sum=ctrl_sum_text,
        )
    total = sum(t.amount_fen for t in transactions)
    if not (ctrl_exact and pmt_ctrl_exact) or total != ctrl_sum_fen or total != pmt_ctrl_sum_fen:
        raise ControlSumError(
            f"CtrlSum differs from the sum {format_amount(total)}",
            nb_of_txs=nb_of_txs,
            ctrl_sum=ctrl_sum_text,
        )
    seen: set[str] = set()
    for transfer in transactions:
        if transfer.end_to_end_id in seen:
            raise DuplicateEndToEndIdError(
                f"EndToEndId repeats (transaction {transfer.instr_id})",
                nb_of_txs=nb_of_txs,
                ctrl_sum=ctrl_sum_text,
            )
        seen.add(transfer.end_to_end_id)

    return Pain001(
        msg_id=msg_id,
        created=created,
        nb_of_txs=nb_of_txs,
        ctrl_sum_fen=ctrl_sum_fen,
        initiating_party=initiating_party,
        pmt_inf_id=pmt_inf_id,
        requested_date=requested_date,
        debtor_name=debtor_name,
        debtor_account=debtor_account,
        debtor_agent=debtor_agent,
        transactions=tuple(transactions),
    )


# --------------------------------------------------------------------------------------------
# Writing


class _Builder:
    """Elements in one namespace, children appended in schema order by the caller.

    Tags are written unqualified under a default ``xmlns`` on ``Document`` (ElementTree's
    ``default_namespace`` refuses the unqualified ``Ccy`` attribute)."""

    def __init__(self, ns: str) -> None:
        self.ns = ns

    def el(
        self, parent: ET.Element, tag: str, text: str | None = None, **attrib: str
    ) -> ET.Element:
        element = ET.SubElement(parent, tag, attrib)
        if text is not None:
            element.text = text
        return element

    def path(self, parent: ET.Element, path: str, text: str) -> ET.Element:
        """``a/b/c`` with ``text`` in ``c`` (each step a new element)."""
        steps = path.split("/")
        for step in steps[:-1]:
            parent = self.el(parent, step)
        return self.el(parent, steps[-1], text)

    def amount(self, parent: ET.Element, tag: str, fen: int) -> ET.Element:
        return self.el(parent, tag, format_amount(fen), Ccy=CURRENCY)

    def document(self, root_child: str) -> tuple[ET.Element, ET.Element]:
        document = ET.Element("Document", xmlns=self.ns)
        return document, self.el(document, root_child)

    def serialize(self, document: ET.Element) -> bytes:
        ET.indent(document, space="  ")
        body = ET.tostring(document, encoding="unicode")
        return XML_DECLARATION + body.encode("utf-8") + b"\n"


def format_datetime(value: datetime) -> str:
    """``YYYY-MM-DDThh:mm:ss+08:00`` (seconds, with the offset of ``value``)."""
    if value.tzinfo is None:
        raise ValueError("date-times must be timezone-aware")
    return value.replace(microsecond=0).isoformat()


@dataclass(frozen=True, slots=True)
class TransactionStatus:
    """One ``TxInfAndSts`` of a pain.002."""

    instr_id: int
    end_to_end_id: str
    status: TxStatus
    reason: str | None  # RJCT only
    accepted_at: datetime
    bank_ref: str | None  # ACSC only
    amount_fen: int
    account_no: str


def render_status_report(
    *,
    msg_id: str,
    created: datetime,
    request: Pain001,
    statuses: Sequence[TransactionStatus],
) -> bytes:
    """A pain.002.001.10 with ``GrpSts`` ``ACCP`` and one status per transaction."""
    b = _Builder(NS_PAIN002)
    document, report = b.document("CstmrPmtStsRpt")
    grp = b.el(report, "GrpHdr")
    b.el(grp, "MsgId", msg_id)
    b.el(grp, "CreDtTm", format_datetime(created))
    orig = b.el(report, "OrgnlGrpInfAndSts")
    b.el(orig, "OrgnlMsgId", request.msg_id)
    b.el(orig, "OrgnlMsgNmId", PAIN001_NAME)
    b.el(orig, "OrgnlNbOfTxs", str(request.nb_of_txs))
    b.el(orig, "OrgnlCtrlSum", format_amount(request.ctrl_sum_fen))
    b.el(orig, "GrpSts", ACCP)
    pmt = b.el(report, "OrgnlPmtInfAndSts")
    b.el(pmt, "OrgnlPmtInfId", request.pmt_inf_id)
    for st in statuses:
        if (st.status == ACSC) != (st.reason is None) or (st.status == ACSC) != bool(st.bank_ref):
            raise ValueError("ACSC goes with a bank reference, RJCT with a reason")
        tx = b.el(pmt, "TxInfAndSts")
        b.el(tx, "OrgnlInstrId", str(st.instr_id))
        b.el(tx, "OrgnlEndToEndId", st.end_to_end_id)
        b.el(tx, "TxSts", st.status)
        if st.reason is not None:
            b.path(tx, "StsRsnInf/Rsn/Cd", st.reason)
        b.el(tx, "AccptncDtTm", format_datetime(st.accepted_at))
        if st.bank_ref:
            b.el(tx, "AcctSvcrRef", st.bank_ref)
        ref = b.el(tx, "OrgnlTxRef")
        b.amount(b.el(ref, "Amt"), "InstdAmt", st.amount_fen)
        b.path(ref, "CdtrAcct/Id/Othr/Id", st.account_no)
    return b.serialize(document)


def render_rejected_report(
    *,
    msg_id: str,
    created: datetime,
    original_msg_id: str,
    reason: str,
    nb_of_txs: int | None = None,
    ctrl_sum: str | None = None,
) -> bytes:
    """A pain.002.001.10 refusing the whole message: ``GrpSts`` ``RJCT`` with ``reason``,
    no ``OrgnlPmtInfAndSts``. ``OrgnlNbOfTxs``/``OrgnlCtrlSum`` only when known."""
    b = _Builder(NS_PAIN002)
    document, report = b.document("CstmrPmtStsRpt")
    grp = b.el(report, "GrpHdr")
    b.el(grp, "MsgId", msg_id)
    b.el(grp, "CreDtTm", format_datetime(created))
    orig = b.el(report, "OrgnlGrpInfAndSts")
    b.el(orig, "OrgnlMsgId", original_msg_id)
    b.el(orig, "OrgnlMsgNmId", PAIN001_NAME)
    if nb_of_txs is not None:
        b.el(orig, "OrgnlNbOfTxs", str(nb_of_txs))
    if ctrl_sum is not None:
        b.el(orig, "OrgnlCtrlSum", ctrl_sum)
    b.el(orig, "GrpSts", RJCT)
    b.path(orig, "StsRsnInf/Rsn/Cd", reason)
    return b.serialize(document)


def render_debit_notification(
    *,
    msg_id: str,
    created: datetime,
    payer_account: str,
    booking_date: date,
    bank_ref: str,
    request: Pain001,
    paid: Sequence[tuple[str, int]],
) -> bytes:
    """A camt.054.001.08 with one ``DBIT`` entry: the batch debit of the payer account for
    the paid transactions ``(EndToEndId, amount fen)``."""
    if not paid:
        raise ValueError("a debit notification needs at least one paid transaction")
    b = _Builder(NS_CAMT054)
    document, ntfctn_root = b.document("BkToCstmrDbtCdtNtfctn")
    grp = b.el(ntfctn_root, "GrpHdr")
    b.el(grp, "MsgId", msg_id)
    b.el(grp, "CreDtTm", format_datetime(created))
    ntfctn = b.el(ntfctn_root, "Ntfctn")
    b.el(ntfctn, "Id", msg_id)
    b.el(ntfctn, "CreDtTm", format_datetime(created))
    b.path(ntfctn, "Acct/Id/Othr/Id", payer_account)
    entry = b.el(ntfctn, "Ntry")
    b.amount(entry, "Amt", sum(amount for _, amount in paid))
    b.el(entry, "CdtDbtInd", DBIT)
    b.path(entry, "Sts/Cd", BOOK)
    b.path(entry, "BookgDt/Dt", booking_date.isoformat())
    b.el(entry, "AcctSvcrRef", bank_ref)
    b.path(entry, "BkTxCd/Prtry/Cd", SUBSIDY_TX_CODE)
    details = b.el(entry, "NtryDtls")
    batch = b.el(details, "Btch")
    b.el(batch, "MsgId", request.msg_id)
    b.el(batch, "PmtInfId", request.pmt_inf_id)
    b.el(batch, "NbOfTxs", str(len(paid)))
    for end_to_end_id, amount in paid:
        tx = b.el(details, "TxDtls")
        b.path(tx, "Refs/EndToEndId", end_to_end_id)
        b.amount(tx, "Amt", amount)
    return b.serialize(document)


def render_return_notification(
    *,
    msg_id: str,
    created: datetime,
    payer_account: str,
    booking_date: date,
    bank_ref: str,
    end_to_end_id: str,
    amount_fen: int,
) -> bytes:
    """A camt.054.001.08 with one ``CRDT`` entry (``BkTxCd/Prtry/Cd`` ``RETURN``): an item
    paid earlier came back (退票) and its amount is credited back to the payer account."""
    b = _Builder(NS_CAMT054)
    document, ntfctn_root = b.document("BkToCstmrDbtCdtNtfctn")
    grp = b.el(ntfctn_root, "GrpHdr")
    b.el(grp, "MsgId", msg_id)
    b.el(grp, "CreDtTm", format_datetime(created))
    ntfctn = b.el(ntfctn_root, "Ntfctn")
    b.el(ntfctn, "Id", msg_id)
    b.el(ntfctn, "CreDtTm", format_datetime(created))
    b.path(ntfctn, "Acct/Id/Othr/Id", payer_account)
    entry = b.el(ntfctn, "Ntry")
    b.amount(entry, "Amt", amount_fen)
    b.el(entry, "CdtDbtInd", CRDT)
    b.path(entry, "Sts/Cd", BOOK)
    b.path(entry, "BookgDt/Dt", booking_date.isoformat())
    b.el(entry, "AcctSvcrRef", bank_ref)
    b.path(entry, "BkTxCd/Prtry/Cd", RETURN_TX_CODE)
    tx = b.el(b.el(entry, "NtryDtls"), "TxDtls")
    b.path(tx, "Refs/EndToEndId", end_to_end_id)
    b.amount(tx, "Amt", amount_fen)
    return b.serialize(document)
