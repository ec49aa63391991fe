"""Tests of ``iso20022-v1`` against docs/formats/iso20022-v1.md.

The golden files under ``golden/iso20022/`` were written by hand from the usage guide and
the schemas' element order (never produced by the renderer and frozen); the renderer must
reproduce the pain.001 byte for byte, and the parsers must read the pain.002 and camt.054
to the values written out below.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib.resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters.formats.iso20022 import (
    MAX_FEN,
    NS_PAIN001,
    PAIN001,
    SHANGHAI,
    Iso20022Format,
    format_amount,
    parse_amount,
    schema,
)
from gateway.ports import (
    AccountEntry,
    AccountNotice,
    AccountNoticeFormat,
    FieldError,
    FormatError,
    RequestHeader,
    RequestItem,
    ResultFile,
    ResultItem,
    ResultStatus,
)

GOLDEN = Path(__file__).parent / "golden" / "iso20022"
SERIAL = "2026A00000000001"
PAYER = "岳阳县财政局惠民惠农资金专户"
FMT = Iso20022Format(bank_id="HNRCU", payer_name=PAYER)


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def _header_kwargs(**changes: object) -> dict[str, object]:
    return {
        "batch_serial": SERIAL,
        "file_no": 1,
        "payer_account": "43060000000000000001",
        "subsidy_code": "GDBH",
        "subsidy_name": "耕地地力保护补贴",
        "period": "2026",
        "item_count": 3,
        "total_fen": 155_006,
        "created_on": dt.date(2026, 3, 1),
        "payer_name": PAYER,
        **changes,
    }


GOLDEN_HEADER = RequestHeader(**_header_kwargs())  # type: ignore[arg-type]
GOLDEN_ITEMS = [
    RequestItem(
        1, "P20260301000000000000001", "6217000000000000001", "刘䶮", "43062619800101001X",
        35_001,
    ),
    RequestItem(
        2, "P20260301000000000000002", "6228480000000000002", "王𬎆", "430626199002020046",
        120_000, "补发 A&B <2025>",
    ),
    RequestItem(
        3, "P20260301000000000000003", "6217000000000000003", "阿依古丽·买买提",
        "650102199002020046", 5, "第一批",
    ),
]  # fmt: skip


def header(**changes: object) -> RequestHeader:
    return RequestHeader(**_header_kwargs(**changes))  # type: ignore[arg-type]


def item(**changes: object) -> RequestItem:
    return dataclasses.replace(GOLDEN_ITEMS[0], **changes)  # type: ignore[arg-type]


def single(bad: RequestItem) -> tuple[RequestHeader, list[RequestItem]]:
    return header(item_count=1, total_fen=max(bad.amount_fen, 0)), [bad]


# --- a test-only pain.001 reader (lxml queries, independent of the renderer) ----------------

N = {"p": NS_PAIN001}


def read_pain001(data: bytes) -> dict[str, object]:
    root = etree.fromstring(data)

    def one(el: etree._Element, path: str) -> str:
        found = el.xpath(path, namespaces=N)
        assert isinstance(found, list) and len(found) == 1, path
        text = found[0]
        assert isinstance(text, str)
        return text

    def fen(text: str) -> int:
        whole, _, cents = text.partition(".")
        assert len(cents) == 2, text
        return int(whole) * 100 + int(cents)

    txs = root.xpath("/p:Document/p:CstmrCdtTrfInitn/p:PmtInf/p:CdtTrfTxInf", namespaces=N)
    assert isinstance(txs, list)
    items = []
    for tx in txs:
        assert isinstance(tx, etree._Element)
        items.append(
            {
                "seq": int(one(tx, "p:PmtId/p:InstrId/text()")),
                "serial": one(tx, "p:PmtId/p:EndToEndId/text()"),
                "amount_fen": fen(one(tx, "p:Amt/p:InstdAmt/text()")),
                "ccy": one(tx, "p:Amt/p:InstdAmt/@Ccy"),
                "name": one(tx, "p:Cdtr/p:Nm/text()"),
                "id_number": one(tx, "p:Cdtr/p:Id/p:PrvtId/p:Othr/p:Id/text()"),
                "account_no": one(tx, "p:CdtrAcct/p:Id/p:Othr/p:Id/text()"),
                "ustrd": one(tx, "p:RmtInf/p:Ustrd/text()"),
            }
        )
    grp = "/p:Document/p:CstmrCdtTrfInitn/p:GrpHdr/"
    pmt = "/p:Document/p:CstmrCdtTrfInitn/p:PmtInf/"
    return {
        "msg_id": one(root, grp + "p:MsgId/text()"),
        "group_count": int(one(root, grp + "p:NbOfTxs/text()")),
        "group_sum": fen(one(root, grp + "p:CtrlSum/text()")),
        "pmt_count": int(one(root, pmt + "p:NbOfTxs/text()")),
        "pmt_sum": fen(one(root, pmt + "p:CtrlSum/text()")),
        "items": items,
    }


# --- schemas ----------------------------------------------------------------------------------


def test_schemas_are_the_checked_official_files() -> None:
    """The digests recorded in adapters/formats/schemas/README.md."""
    vendored = importlib.resources.files("adapters.formats") / "schemas"
    files = {
        "pain.001.001.09": importlib.resources.files("sepaxml") / "schemas" / "pain.001.001.09.xsd",
        "pain.002.001.10": vendored / "pain.002.001.10.xsd",
        "camt.054.001.08": vendored / "camt.054.001.08.xsd",
    }
    digests = {m: hashlib.sha256(f.read_bytes()).hexdigest() for m, f in files.items()}
    assert digests == {
        "pain.001.001.09": "de038b373e47b0077b1832ddd81f4b2f1eb25d35721f62da1e38b7f5a09fda24",
        "pain.002.001.10": "3eaa417745a92d7077d6f966b5a35943014c92164d2973b671d16012bf733686",
        "camt.054.001.08": "2b392a1f7e70e70902fd0d803ff85989613bd1cae351663240b0bb9243be2c28",
    }
    for message in files:
        assert schema(message) is schema(message)  # compiled once


def test_each_thread_validates_with_its_own_compiled_schema() -> None:
    """An XMLSchema keeps its last error log: threads must not share one."""
    from concurrent.futures import ThreadPoolExecutor

    bad = golden("P002_2026A00000000001_01.xml").replace(b"<GrpHdr>", b"<GrpHdr><X/>", 1)

    def work(n: int) -> tuple[int, str]:
        for _ in range(20):
            try:
                FMT.parse_result(bad if n % 2 else golden("P002_2026A00000000001_01.xml"))
            except FormatError as exc:
                message = str(exc)
            else:
                message = "ok"
        return id(schema(PAIN001)), message

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(8)))
    assert {m for n, (_, m) in enumerate(results) if n % 2 == 0} == {"ok"}
    assert len({m for n, (_, m) in enumerate(results) if n % 2}) == 1
    assert schema(PAIN001) is schema(PAIN001)


def test_golden_files_validate_against_the_official_schemas() -> None:
    for name, message in (
        ("P001_2026A00000000001_01.xml", "pain.001.001.09"),
        ("P002_2026A00000000001_01.xml", "pain.002.001.10"),
        ("P002_2026A00000000002_01.xml", "pain.002.001.10"),
        ("C054_2026A00000000001_01.xml", "camt.054.001.08"),
    ):
        assert schema(message).validate(etree.fromstring(golden(name))), name


def test_pain001_schema_is_not_restricted_to_sepa() -> None:
    """The generic ISO schema: any currency code, free Unicode text (no EPC character set)."""
    data = golden("P001_2026A00000000001_01.xml").replace(b'Ccy="CNY"', b'Ccy="JPY"', 1)
    assert schema(PAIN001).validate(etree.fromstring(data))


# --- pain.001 ---------------------------------------------------------------------------------


def test_render_request_matches_hand_written_golden_file() -> None:
    data = FMT.render_request(GOLDEN_HEADER, GOLDEN_ITEMS)
    assert data == golden("P001_2026A00000000001_01.xml")
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="')
    assert schema(PAIN001).validate(etree.fromstring(data))


def test_render_request_is_deterministic_and_accepts_generators() -> None:
    assert FMT.render_request(GOLDEN_HEADER, iter(GOLDEN_ITEMS)) == FMT.render_request(
        GOLDEN_HEADER, list(GOLDEN_ITEMS)
    )


def test_payer_name_comes_from_the_header_else_from_the_profile() -> None:
    other = Iso20022Format(bank_id="HNRCU", payer_name="别的名字")
    assert other.render_request(GOLDEN_HEADER, GOLDEN_ITEMS) == golden(
        "P001_2026A00000000001_01.xml"
    )
    assert FMT.render_request(header(payer_name=""), GOLDEN_ITEMS) == golden(
        "P001_2026A00000000001_01.xml"
    )
    with pytest.raises(FieldError) as info:
        Iso20022Format(bank_id="HNRCU").render_request(header(payer_name=""), GOLDEN_ITEMS)
    assert (info.value.field_name, info.value.code) == ("payer_name", "invalid")


def test_remittance_is_cut_to_140_characters() -> None:
    remark = "𬎆" * 200
    data = FMT.render_request(*single(item(remark=remark)))
    (ustrd,) = read_pain001(data)["items"]  # type: ignore[misc]
    assert ustrd["ustrd"] == ("耕地地力保护补贴 2026 " + remark)[:140]
    assert len(ustrd["ustrd"]) == 140


@pytest.mark.parametrize(
    ("overrides", "field_name", "code"),
    [
        ({"name": "欧" * 141}, "name", "too_long"),
        ({"name": ""}, "name", "invalid"),
        ({"name": "李\x00明"}, "name", "not_encodable"),
        ({"name": "李\r明"}, "name", "not_encodable"),
        ({"name": "李\ud800"}, "name", "not_encodable"),
        ({"name": "李\ufffe"}, "name", "not_encodable"),
        ({"account_no": "6" * 35}, "account_no", "too_long"),
        ({"id_number": "4" * 36}, "id_number", "too_long"),
        ({"serial": "P" * 36}, "serial", "too_long"),
        ({"serial": ""}, "serial", "invalid"),
        ({"remark": "补发\x1b"}, "remark", "not_encodable"),
        ({"amount_fen": 0}, "amount_fen", "out_of_range"),
        ({"amount_fen": -5}, "amount_fen", "out_of_range"),
        ({"amount_fen": MAX_FEN + 1}, "amount_fen", "out_of_range"),
    ],
)  # fmt: skip
def test_check_item_and_render_report_the_field(
    overrides: dict[str, object], field_name: str, code: str
) -> None:
    bad = item(**overrides)
    errors = FMT.check_item(bad)
    assert [(e.field_name, e.code) for e in errors] == [(field_name, code)]
    with pytest.raises(FieldError) as info:
        FMT.render_request(*single(bad))
    assert (info.value.field_name, info.value.code) == (field_name, code)


def test_values_at_the_schema_limits_are_fine() -> None:
    fine = item(
        name="𬎆" * 140,  # 140 characters (560 UTF-8 bytes): XSD counts characters
        account_no="6" * 34,
        id_number="4" * 35,
        serial="P" * 35,
        remark="补" * 500,
        amount_fen=MAX_FEN,
    )
    assert FMT.check_item(fine) == []
    data = FMT.render_request(*single(fine))
    assert b'<InstdAmt Ccy="CNY">9999999999999999.99</InstdAmt>' in data


def test_field_errors_never_contain_personal_data() -> None:
    bad = item(name="欧阳" * 71, account_no="6" * 40, id_number="43062619800101001199" * 2)
    errors = FMT.check_item(bad)
    assert {e.field_name for e in errors} == {"name", "account_no", "id_number"}
    for e in errors:
        assert "欧阳" not in str(e)
        assert "6" * 40 not in str(e)
        assert "43062619800101001199" not in str(e)


@pytest.mark.parametrize(
    ("items", "head", "message"),
    [
        ([], {}, "at least one item"),
        (GOLDEN_ITEMS[1:], {}, "sequence 2, expected 1"),
        ([GOLDEN_ITEMS[0], item(seq=2)], {}, "item seq 2: serial 'P2026.*' repeats"),
        (GOLDEN_ITEMS, {"item_count": 4}, "item_count is 4, the items give 3"),
        (GOLDEN_ITEMS, {"total_fen": 155_007}, "total_fen is 155007, the items give 155006"),
    ],
)  # fmt: skip
def test_render_request_refuses_files_the_bank_would_reject(
    items: list[RequestItem], head: dict[str, object], message: str
) -> None:
    with pytest.raises(FormatError, match=message) as info:
        FMT.render_request(header(**head), items)
    assert not isinstance(info.value, FieldError)


def test_render_request_enforces_max_items_per_file() -> None:
    fmt = Iso20022Format(bank_id="HNRCU", payer_name=PAYER, max_items_per_file=2)
    with pytest.raises(FormatError, match="more than 2 items"):
        fmt.render_request(GOLDEN_HEADER, GOLDEN_ITEMS)


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"batch_serial": "2026a00000000001"}, "batch_serial"),
        ({"file_no": 100}, "file_no"),
        ({"file_no": 0}, "file_no"),
        ({"payer_account": "4" * 35}, "payer_account"),
        ({"subsidy_code": ""}, "subsidy_code"),
        ({"subsidy_code": "G" * 36}, "subsidy_code"),
        ({"subsidy_name": "耕地\n补贴"}, "subsidy_name"),
        ({"payer_name": "岳" * 141}, "payer_name"),
    ],
)
def test_header_field_errors(changes: dict[str, object], field_name: str) -> None:
    with pytest.raises(FieldError) as info:
        FMT.render_request(header(**changes), GOLDEN_ITEMS)
    assert info.value.field_name == field_name


def test_constructor_checks_the_profile_values() -> None:
    with pytest.raises(ValueError, match="bank_id"):
        Iso20022Format(bank_id="")
    with pytest.raises(ValueError, match="bank_id"):
        Iso20022Format(bank_id="B" * 36)
    with pytest.raises(ValueError, match="payer_name"):
        Iso20022Format(bank_id="402", payer_name="x" * 141)
    with pytest.raises(ValueError, match="max_items_per_file"):
        Iso20022Format(bank_id="402", max_items_per_file=0)
    fmt = Iso20022Format(bank_id="402")
    assert (fmt.name, fmt.max_items_per_file, fmt.payer_name) == ("iso20022-v1", 50_000, "")


def test_file_names() -> None:
    assert FMT.request_file_name(SERIAL, 1) == "P001_2026A00000000001_01.xml"
    assert FMT.result_file_name(SERIAL, 12) == "P002_2026A00000000001_12.xml"
    assert FMT.account_notice_file_name(SERIAL, 3) == "C054_2026A00000000001_03.xml"
    assert FMT.signature_name("P001_2026A00000000001_01.xml") == "P001_2026A00000000001_01.xml.sig"
    assert FMT.parse_request_file_name("P001_2026A00000000001_01.xml") == (SERIAL, 1)
    assert FMT.parse_result_file_name("P002_2026A00000000001_07.xml") == (SERIAL, 7)
    assert FMT.is_result_file_name("P002_2026A00000000001_07.xml")
    assert FMT.parse_account_notice_file_name("C054_2026A00000000001_02.xml") == (SERIAL, 2)
    assert FMT.parse_account_notice_file_name("C054_2026A00000000001_02_R1.xml") == (SERIAL, 2)
    assert FMT.is_account_notice_name("C054_2026A00000000001_02.xml")
    for name in (
        "P002_2026A00000000001_00.xml",
        "P002_2026A00000000001_01.xml.sig",
        ".P002_2026A00000000001_01.xml.part",
        "P001_2026A00000000001_01.xml",
        "C054_2026A00000000001_01.xml",
        "P002_2026a00000000001_01.xml",
        "RET_2026A00000000001_01.txt",
    ):
        assert not FMT.is_result_file_name(name), name
    for name in (
        "C054_2026A00000000001_00.xml",
        "C054_2026A00000000001_01_R0.xml",
        "C054_2026A00000000001_01.xml.sig",
        "P002_2026A00000000001_01.xml",
    ):
        assert not FMT.is_account_notice_name(name), name
    with pytest.raises(FieldError):
        FMT.request_file_name("SHORT", 1)
    with pytest.raises(FieldError):
        FMT.request_file_name(SERIAL, 100)


def test_the_format_implements_both_ports() -> None:
    assert isinstance(FMT, AccountNoticeFormat)


# --- pain.002 ---------------------------------------------------------------------------------


def at(hh: int, mm: int, ss: int) -> dt.datetime:
    return dt.datetime(2026, 3, 2, hh, mm, ss, tzinfo=SHANGHAI)


def test_parse_result_reads_hand_written_mixed_report() -> None:
    result = FMT.parse_result(golden("P002_2026A00000000001_01.xml"))
    assert result == ResultFile(
        batch_serial=SERIAL,
        file_no=1,
        accepted=True,
        rejected_code="",
        items=(
            ResultItem(
                seq=1,
                serial="P20260301000000000000001",
                account_no="6217000000000000001",
                amount_fen=35_001,
                status=ResultStatus.PAID,
                bank_code="ACSC",
                bank_message="",
                bank_ref="HNRCU20260302000000001",
                processed_at=at(9, 15, 30),
            ),
            ResultItem(
                seq=2,
                serial="P20260301000000000000002",
                account_no="6228480000000000002",
                amount_fen=120_000,
                status=ResultStatus.FAILED,
                bank_code="AC04",
                bank_message="账户已销户",
                bank_ref="",
                processed_at=at(9, 15, 31),
            ),
            ResultItem(
                seq=3,
                serial="P20260301000000000000003",
                account_no="6217000000000000003",
                amount_fen=5,
                status=ResultStatus.PAID,
                bank_code="ACSC",
                bank_message="",
                bank_ref="HNRCU20260302000000003",
                processed_at=at(9, 15, 32),
            ),
        ),
        paid_count=2,
        paid_fen=35_006,
        failed_count=1,
        failed_fen=120_000,
    )
    assert result.items[0].processed_at.utcoffset() == dt.timedelta(hours=8)


def test_parse_result_reads_whole_message_rejection() -> None:
    result = FMT.parse_result(golden("P002_2026A00000000002_01.xml"))
    assert result == ResultFile(
        batch_serial="2026A00000000002", file_no=1, accepted=False, rejected_code="AM10"
    )


@pytest.mark.parametrize("code", ["AC01", "BE01", "AC06", "AC04", "BE16", "NARR"])
def test_parse_result_keeps_the_bank_reason_code(code: str) -> None:
    data = golden("P002_2026A00000000001_01.xml").replace(
        b"<Cd>AC04</Cd>", f"<Cd>{code}</Cd>".encode()
    )
    failed = FMT.parse_result(data).items[1]
    assert (failed.status, failed.bank_code) == (ResultStatus.FAILED, code)


@pytest.mark.parametrize("code", ["DS0B", "FF01", "DU05"])
def test_parse_result_keeps_the_message_reason_code(code: str) -> None:
    data = golden("P002_2026A00000000002_01.xml").replace(b"AM10", code.encode())
    assert FMT.parse_result(data).rejected_code == code


def test_parse_result_converts_other_offsets_to_shanghai() -> None:
    data = golden("P002_2026A00000000001_01.xml").replace(
        b"2026-03-02T09:15:30+08:00", b"2026-03-02T01:15:30Z"
    )
    assert FMT.parse_result(data).items[0].processed_at == at(9, 15, 30)


PAIN002 = golden("P002_2026A00000000001_01.xml")
REJECTED = golden("P002_2026A00000000002_01.xml")
CAMT054 = golden("C054_2026A00000000001_01.xml")
TX2_REASON = """        <StsRsnInf>
          <Rsn>
            <Cd>AC04</Cd>
          </Rsn>
          <AddtlInf>账户已销户</AddtlInf>
        </StsRsnInf>
""".encode()
NS002 = b"urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"
TX1 = "TxInfAndSts 1 \\(OrgnlInstrId 1\\)"
TX2 = "TxInfAndSts 2 \\(OrgnlInstrId 2\\)"
TX3 = "TxInfAndSts 3 \\(OrgnlInstrId 3\\)"


def sub(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) >= 1, old
    return data.replace(old, new, 1)


def without(data: bytes, old: bytes) -> bytes:
    return sub(data, old, b"")


def case(old: bytes, new: bytes, message: str, base: bytes = PAIN002) -> object:
    return pytest.param(sub(base, old, new), message, id=message[:40])


def raw(data: bytes, message: str) -> object:
    return pytest.param(data, message, id=message[:40])


ACSC_REF = b"<AcctSvcrRef>HNRCU20260302000000001</AcctSvcrRef>"
TX2_TIME = b"<AccptncDtTm>2026-03-02T09:15:31+08:00</AccptncDtTm>"
PMT_ID = b"<OrgnlPmtInfId>2026A0000000000101</OrgnlPmtInfId>"
REJECTION_CASES = [
    raw(b"", "file is empty"),
    raw(PAIN002[:500], "not well-formed XML \\(line 15\\): Premature end of data"),
    case(
        b"<OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>",
        b"",
        "does not validate against its XSD \\(line 11\\): Element 'OrgnlNbOfTxs': This "
        "element is not expected. Expected is \\( OrgnlMsgNmId \\)",
    ),
    case(b"<MsgId>HNRCU2026030200017</MsgId>", b"", "does not validate.*CreDtTm"),
    case(
        b"<OrgnlEndToEndId>P20260301000000000000002</OrgnlEndToEndId>",
        b"",
        f"{TX2}: OrgnlEndToEndId is missing",
    ),
    case(
        b'Ccy="CNY">1200.00',
        b'Ccy="USD">1200.00',
        f"{TX2}/OrgnlTxRef: Amt/InstdAmt currency 'USD', expected 'CNY'",
    ),
    case(b">350.01<", b">350.010<", f"{TX1}/OrgnlTxRef: .*3 decimals, at most 2 allowed"),
    case(b">350.01<", b">350.01234<", "amount has 5 decimals"),
    case(b">350.01<", b">350.012345<", "does not validate.*fractionDigits"),
    case(b">0.05<", b">0.00<", f"{TX3}/OrgnlTxRef: Amt/InstdAmt must be > 0"),
    case(
        b"P20260301000000000000003",
        b"P20260301000000000000001",
        "TxInfAndSts 3: OrgnlEndToEndId 'P20260301000000000000001' repeats",
    ),
    case(b"<OrgnlInstrId>3<", b"<OrgnlInstrId>1<", "TxInfAndSts 3: OrgnlInstrId 1 repeats"),
    case(b"<OrgnlInstrId>3<", b"<OrgnlInstrId>4<", "OrgnlInstrId 4 is beyond the 3 trans"),
    case(b"<OrgnlInstrId>3<", b"<OrgnlInstrId>x3<", "OrgnlInstrId is not a number"),
    case(b"<OrgnlInstrId>3<", b"<OrgnlInstrId>0<", "OrgnlInstrId must be >= 1"),
    case(b"<GrpSts>ACCP", b"<GrpSts>PART", "GrpSts is 'PART', expected 'ACCP' or 'RJCT'"),
    case(b"<GrpSts>ACCP</GrpSts>", b"", "GrpSts is None, expected"),
    case(b"<TxSts>RJCT", b"<TxSts>PDNG", f"{TX2}: TxSts 'PDNG', expected 'ACSC' or 'RJCT'"),
    case(TX2_REASON, b"", f"{TX2}: RJCT needs exactly one StsRsnInf, found 0"),
    case(ACSC_REF, b"", f"{TX1}: TxSts ACSC \\(paid\\) without an AcctSvcrRef"),
    case(
        b"<TxSts>ACSC</TxSts>\n",
        b"<TxSts>ACSC</TxSts>\n" + TX2_REASON,
        f"{TX1}: TxSts ACSC \\(paid\\) carries a StsRsnInf",
    ),
    case(
        TX2_TIME,
        TX2_TIME + b"<AcctSvcrRef>R</AcctSvcrRef>",
        f"{TX2}: TxSts RJCT \\(failed\\) carries an AcctSvcrRef",
    ),
    case(
        b"2026-03-02T09:15:30+08:00",
        b"2026-03-02T09:15:30",
        f"{TX1}: AccptncDtTm '2026-03-02T09:15:30' has no UTC offset",
    ),
    case(
        b"<AccptncDtTm>2026-03-02T09:15:30+08:00</AccptncDtTm>",
        b"",
        f"{TX1}: AccptncDtTm is missing",
    ),
    case(
        b"<Othr>\n                <Id>6217000000000000001</Id>\n              </Othr>",
        b"<IBAN>CN12345</IBAN>",
        f"{TX1}/OrgnlTxRef: CdtrAcct/Id/Othr/Id is missing",
    ),
    case(b"<OrgnlNbOfTxs>3<", b"<OrgnlNbOfTxs>4<", "OrgnlNbOfTxs is 4, the report holds 3"),
    case(
        b"<OrgnlCtrlSum>1550.06<",
        b"<OrgnlCtrlSum>1550.07<",
        "OrgnlCtrlSum is 1550.07, the TxInfAndSts amounts add up to 1550.06",
    ),
    case(b"<OrgnlCtrlSum>1550.06</OrgnlCtrlSum>", b"", "OrgnlCtrlSum is missing"),
    case(
        b"<OrgnlMsgId>2026A0000000000101<",
        b"<OrgnlMsgId>2026A0000000000100<",
        "OrgnlMsgId '2026A0000000000100' is not",
    ),
    case(
        b"<OrgnlMsgNmId>pain.001.001.09<",
        b"<OrgnlMsgNmId>pain.001.001.03<",
        "OrgnlMsgNmId is 'pain.001.001.03', expected 'pain.001.001.09'",
    ),
    case(
        b"<OrgnlPmtInfId>2026A0000000000101<",
        b"<OrgnlPmtInfId>2026A0000000000102<",
        "OrgnlPmtInfId '2026A0000000000102' is not the OrgnlMsgId",
    ),
    case(
        PMT_ID,
        PMT_ID + b"<OrgnlNbOfTxs>2</OrgnlNbOfTxs>",
        "OrgnlPmtInfAndSts/OrgnlNbOfTxs is 2",
    ),
    case(
        PMT_ID,
        PMT_ID + b"<OrgnlCtrlSum>1.00</OrgnlCtrlSum>",
        "OrgnlPmtInfAndSts/OrgnlCtrlSum is 1.00",
    ),
    case(
        b"</OrgnlPmtInfAndSts>",
        b"</OrgnlPmtInfAndSts><OrgnlPmtInfAndSts>" + PMT_ID + b"</OrgnlPmtInfAndSts>",
        "GrpSts ACCP needs exactly one OrgnlPmtInfAndSts, found 2",
    ),
    case(
        b"<GrpSts>ACCP</GrpSts>",
        b"<GrpSts>ACCP</GrpSts><StsRsnInf><Rsn><Cd>NARR</Cd></Rsn></StsRsnInf>",
        "GrpSts ACCP carries a StsRsnInf",
    ),
    case(
        b"</OrgnlGrpInfAndSts>",
        b"</OrgnlGrpInfAndSts><OrgnlPmtInfAndSts><OrgnlPmtInfId>X</OrgnlPmtInfId>"
        b"</OrgnlPmtInfAndSts>",
        "GrpSts RJCT \\(message refused\\) with OrgnlPmtInfAndSts",
        base=REJECTED,
    ),
    case(b"<Cd>AM10</Cd>", b"<Prtry>AM10</Prtry>", "StsRsnInf: Rsn/Cd is missing", REJECTED),
    case(
        b"</StsRsnInf>",
        b"</StsRsnInf><StsRsnInf><Rsn><Cd>FF01</Cd></Rsn></StsRsnInf>",
        "RJCT needs exactly one StsRsnInf, found 2",
        base=REJECTED,
    ),
    case(
        NS002,
        b"urn:iso:std:iso:20022:tech:xsd:pain.002.001.03",
        "root element is 'Document' in namespace "
        "'urn:iso:std:iso:20022:tech:xsd:pain.002.001.03', expected Document in",
    ),
    case(
        b'xmlns="' + NS002 + b'"',
        b'xmlns="' + NS002 + b'" xmlns:x="urn:x"',
        "namespaces other than the default",
    ),
    raw(
        sub(PAIN002, b'encoding="UTF-8"', b'encoding="GB18030"').decode().encode("gb18030"),
        "encoding 'GB18030', expected 'UTF-8'",
    ),
    case(
        b'encoding="UTF-8"',
        b'encoding="GB18030"',
        "not well-formed XML \\(line 1\\): Invalid bytes",
    ),
    case(
        b"<Document",
        b'<!DOCTYPE Document [<!ENTITY x "AC01">]>\n<Document',
        "a document type declaration is not allowed",
    ),
    raw(
        golden("C054_2026A00000000001_01.xml"),
        "root element is 'Document' in namespace 'urn:iso:std:iso:20022:tech:xsd:camt.054.001.08'",
    ),
]


@pytest.mark.parametrize(("data", "message"), REJECTION_CASES)
def test_parse_result_rejects(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        FMT.parse_result(data)


def test_schema_errors_never_repeat_the_offending_value() -> None:
    account = "62170000000000000000000000000000000099"  # 38 digits: Max34Text
    data = sub(PAIN002, b"6217000000000000001", account.encode())
    with pytest.raises(FormatError, match="maxLength") as info:
        FMT.parse_result(data)
    assert account not in str(info.value)
    assert "urn:iso" not in str(info.value)
    data = sub(PAIN002, b"<OrgnlNbOfTxs>3<", b"<OrgnlNbOfTxs>6217x<")
    with pytest.raises(FormatError, match="pattern") as info:
        FMT.parse_result(data)
    assert "6217x" not in str(info.value)
    data = sub(PAIN002, b"2026-03-02T10:00:00+08:00", "欧'阳 is not 4306".encode())
    with pytest.raises(FormatError, match="Element 'CreDtTm': the value is not valid") as info:
        FMT.parse_result(data)
    assert "阳" not in str(info.value) and "4306" not in str(info.value)


def test_rendered_documents_are_validated_before_they_leave() -> None:
    broken = Iso20022Format(bank_id="HNRCU", payer_name=PAYER)
    broken.bank_id = ""  # bypass the constructor's check: the XSD is the last line
    with pytest.raises(FormatError, match=r"rendered pain\.001\.001\.09 does not validate.*'Id'"):
        broken.render_request(GOLDEN_HEADER, GOLDEN_ITEMS)


def test_parse_result_accepts_spec_variants() -> None:
    # two fraction digits are what the guide writes; fewer are still exact amounts
    for text in (b">1200<", b">1200.0<", b">1200.<"):
        data = sub(PAIN002, b">1200.00<", text)
        assert FMT.parse_result(data).items[1].amount_fen == 120_000
    # optional counts of the payment information are checked when present
    counts = b"<OrgnlNbOfTxs>3</OrgnlNbOfTxs><OrgnlCtrlSum>1550.06</OrgnlCtrlSum>"
    data = sub(PAIN002, PMT_ID, PMT_ID + counts)
    assert FMT.parse_result(data).paid_count == 2
    # a whole-message rejection need not echo counts it could not read
    data = sub(REJECTED, b"<OrgnlNbOfTxs>3</OrgnlNbOfTxs>", b"")
    data = sub(data, b"<OrgnlCtrlSum>1550.07</OrgnlCtrlSum>", b"")
    assert FMT.parse_result(data).rejected_code == "AM10"


# --- camt.054 ---------------------------------------------------------------------------------


def test_parse_account_notice_reads_hand_written_debit() -> None:
    assert FMT.parse_account_notice(CAMT054) == AccountNotice(
        message_id="HNRCU-C054-2026030200009",
        entries=(
            AccountEntry(
                account="43060000000000000001",
                amount_fen=35_006,
                direction="debit",
                booked_on=dt.date(2026, 3, 2),
                bank_ref="HNRCU20260302D0000042",
                batch_serial=SERIAL,
                file_no=1,
                details=(("P20260301000000000000001", 35_001), ("P20260301000000000000003", 5)),
            ),
        ),
    )


def test_parse_account_notice_reads_a_return_credit() -> None:
    """A 退票: the amount of one paid item credited back, without a batch reference."""
    data = sub(CAMT054, b"<CdtDbtInd>DBIT</CdtDbtInd>", b"<CdtDbtInd>CRDT</CdtDbtInd>")
    data = sub(data, b'<Amt Ccy="CNY">350.06</Amt>', b'<Amt Ccy="CNY">350.01</Amt>')
    start, end = data.index(b"<Btch>"), data.index(b"</Btch>") + len(b"</Btch>")
    data = data[:start] + data[end:]
    start = data.index(b"<TxDtls>", data.index(b"</TxDtls>"))
    end = data.index(b"</TxDtls>", start) + len(b"</TxDtls>")
    data = data[:start] + data[end:]
    (entry,) = FMT.parse_account_notice(data).entries
    assert (entry.direction, entry.amount_fen, entry.batch_serial, entry.file_no) == (
        "credit",
        35_001,
        None,
        None,
    )
    assert entry.details == (("P20260301000000000000001", 35_001),)


CAMT_TX2 = "Ntfctn 1 Ntry 1 TxDtls 2"
NOTICE_REJECTION_CASES = [
    case(
        b'<Amt Ccy="CNY">350.06',
        b'<Amt Ccy="HKD">350.06',
        "Ntfctn 1 Ntry 1: Amt currency 'HKD', expected 'CNY'",
        base=CAMT054,
    ),
    case(b">0.05<", b">0.050<", f"{CAMT_TX2}: Amt: amount has 3 decimals", CAMT054),
    case(b">350.06<", b">350.07<", "Amt is 350.07, its TxDtls add up to 350.06", CAMT054),
    case(b"<Cd>BOOK</Cd>", b"<Cd>PDNG</Cd>", "Sts/Cd is 'PDNG', expected 'BOOK'", CAMT054),
    case(
        b"<NbOfTxs>2<",
        b"<NbOfTxs>3<",
        "Btch/NbOfTxs is 3, the entry holds 2 TxDtls",
        base=CAMT054,
    ),
    case(
        b"P20260301000000000000003",
        b"P20260301000000000000001",
        f"{CAMT_TX2}: EndToEndId 'P20260301000000000000001' repeats",
        base=CAMT054,
    ),
    case(
        b"<PmtInfId>2026A0000000000101<",
        b"<PmtInfId>2026A0000000000102<",
        "Btch/PmtInfId '2026A0000000000102' is not Btch/MsgId",
        base=CAMT054,
    ),
    case(b"<MsgId>2026A0000000000101<", b"<MsgId>X<", "Btch/MsgId 'X' is not", CAMT054),
    case(
        b"<AcctSvcrRef>HNRCU20260302D0000042</AcctSvcrRef>",
        b"",
        "Ntfctn 1 Ntry 1: AcctSvcrRef is missing",
        base=CAMT054,
    ),
    case(
        b"<Dt>2026-03-02</Dt>",
        b"<DtTm>2026-03-02T10:00:00+08:00</DtTm>",
        "BookgDt/Dt is missing",
        base=CAMT054,
    ),
    case(b"<CdtDbtInd>DBIT</CdtDbtInd>", b"", "does not validate", CAMT054),
    case(
        b"<EndToEndId>P20260301000000000000001</EndToEndId>",
        b"",
        "TxDtls 1: Refs/EndToEndId is missing",
        base=CAMT054,
    ),
    raw(
        CAMT054[: CAMT054.index(b"<Ntry>")] + CAMT054[CAMT054.index(b"</Ntry>") + 7 :],
        "the notification holds no Ntry",
    ),
    raw(
        PAIN002,
        "root element is 'Document' in namespace 'urn:iso:std:iso:20022:tech:xsd:pain.002.001.10'",
    ),
]


@pytest.mark.parametrize(("data", "message"), NOTICE_REJECTION_CASES)
def test_parse_account_notice_rejects(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        FMT.parse_account_notice(data)


# --- properties -------------------------------------------------------------------------------

RARE = "䶮𬎆龑𠀀𪚥·"
names = st.text(
    alphabet=st.one_of(
        st.sampled_from(RARE),
        st.characters(exclude_categories=("Cs", "Cc", "Cn")),
    ),
    min_size=1,
    max_size=140,
)


@st.composite
def request_items(draw: st.DrawFn) -> list[RequestItem]:
    count = draw(st.integers(min_value=1, max_value=12))
    serials = draw(
        st.lists(
            st.from_regex(r"P[0-9A-Z]{23}", fullmatch=True),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    return [
        RequestItem(
            seq=i + 1,
            serial=serials[i],
            account_no=draw(st.from_regex(r"[0-9]{1,34}", fullmatch=True)),
            name=draw(names),
            id_number=draw(st.from_regex(r"[0-9]{17}[0-9X]", fullmatch=True)),
            amount_fen=draw(st.integers(min_value=1, max_value=MAX_FEN // 20)),
            remark=draw(st.text(alphabet=st.sampled_from(RARE + "补发<&>\"' "), max_size=200)),
        )
        for i in range(count)
    ]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_items())
def test_render_round_trips_amounts_and_names(items: list[RequestItem]) -> None:
    total = sum(i.amount_fen for i in items)
    data = FMT.render_request(header(item_count=len(items), total_fen=total), items)
    assert schema(PAIN001).validate(etree.fromstring(data))
    doc = read_pain001(data)
    assert doc["msg_id"] == f"{SERIAL}01"
    assert doc["group_count"] == doc["pmt_count"] == len(items)
    assert doc["group_sum"] == doc["pmt_sum"] == total  # CtrlSum is always the sum
    parsed = doc["items"]
    assert isinstance(parsed, list)
    for original, back in zip(items, parsed, strict=True):
        assert back["seq"] == original.seq
        assert back["serial"] == original.serial
        assert back["amount_fen"] == original.amount_fen
        assert back["ccy"] == "CNY"
        assert back["name"] == original.name
        assert back["id_number"] == original.id_number
        assert back["account_no"] == original.account_no


@given(st.integers(min_value=0, max_value=MAX_FEN))
def test_amount_text_round_trips(fen: int) -> None:
    text = format_amount(fen)
    assert text.count(".") == 1 and len(text.split(".")[1]) == 2
    assert parse_amount(text, "x") == fen


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=150), st.integers(min_value=-1, max_value=MAX_FEN + 1))
def test_check_item_agrees_with_render(name: str, amount: int) -> None:
    candidate = item(name=name, amount_fen=amount)
    errors = FMT.check_item(candidate)
    if errors:
        with pytest.raises(FieldError):
            FMT.render_request(*single(candidate))
    else:
        FMT.render_request(*single(candidate))


# --- a large file (speed is measured by `make bench`, never asserted here) -------------------


def test_render_and_validate_50k_items() -> None:
    count = 50_000
    items = [
        RequestItem(
            seq=i,
            serial=f"P{i:023d}",
            account_no=f"62284800{i:011d}",
            name="阿依古丽·买买提𬎆",
            id_number="43062619800101001X",
            amount_fen=12_345,
            remark="第一批",
        )
        for i in range(1, count + 1)
    ]
    head = header(item_count=count, total_fen=12_345 * count)
    schema(PAIN001)
    data = FMT.render_request(head, items)
    assert data.count(b"<CdtTrfTxInf>") == count


# --- bank profile -----------------------------------------------------------------------------


def test_build_format_from_a_bank_profile() -> None:
    from adapters.registry import build_format

    fmt = build_format(
        {"format": "iso20022-v1", "bank_id": "402", "payer_name": PAYER, "max_items_per_file": 20}
    )
    assert isinstance(fmt, Iso20022Format)
    assert (fmt.name, fmt.bank_id, fmt.payer_name, fmt.max_items_per_file) == (
        "iso20022-v1",
        "402",
        PAYER,
        20,
    )
    assert build_format({"format": "iso20022-v1", "bank_id": "HNRCU"}).max_items_per_file == 50_000


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"format": "iso20022-v1"}, r"\[format\]: missing key 'bank_id'"),
        ({"format": "iso20022-v1", "bank_id": ""}, "'bank_id' must be a non-empty string"),
        ({"format": "iso20022-v1", "bank_id": "B" * 36}, r"\[format\]: bank_id: 36 characters"),
        ({"format": "iso20022-v1", "bank_id": "402", "payer": "x"}, "unknown key.*payer"),
        ({"format": "iso20022-v1", "bank_id": "402", "payer_name": 5}, "'payer_name' must be"),
        ({"format": "iso20022-v1", "bank_id": "4", "max_items_per_file": 0}, "max_items_per"),
    ],
)  # fmt: skip
def test_build_format_errors(config: dict[str, object], message: str) -> None:
    from adapters.registry import build_format

    with pytest.raises(ValueError, match=message):
        build_format(config)
