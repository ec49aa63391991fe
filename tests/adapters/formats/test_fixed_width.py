"""Tests of ``fw-gb18030-v1`` against docs/formats/fw-gb18030-v1.md.

Golden files are built here from the spec's field tables with literal GB18030 bytes, never
with the renderer, so a layout or codec regression in the adapter shows up as a diff.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.formats.fixed_width import (
    SHANGHAI,
    FixedWidthGb18030Format,
    encode_text,
)
from gateway.ports import (
    FieldError,
    FormatError,
    RequestHeader,
    RequestItem,
    ResultFile,
    ResultItem,
    ResultStatus,
)

FMT = FixedWidthGb18030Format()
SERIAL = "2026A00000000001"
CRLF = b"\r\n"


# --- spec-level byte builders (independent of the adapter) ---------------------------------


def x(raw: bytes, width: int) -> bytes:
    """A text field: raw bytes padded with ASCII spaces to ``width``."""
    assert len(raw) <= width
    return raw + b" " * (width - len(raw))


def n(value: int, width: int) -> bytes:
    """A numeric field: zero-padded ASCII digits."""
    text = str(value).zfill(width).encode("ascii")
    assert len(text) == width
    return text


def gb(hexstr: str) -> bytes:
    return bytes.fromhex(hexstr)


# GB18030 bytes written by hand (GB18030-2005 mapping, Python's codec):
LI = gb("c0ee")  # 李
YAN = gb("fe9f")  # 䶮 U+4DAE (outside GBK; 2 bytes in the 2005 mapping)
WANG = gb("cdf5")  # 王
YU4 = gb("9931de30")  # 𬎆 U+2C386, 4 bytes
LIU = gb("c1f5")  # 刘
YAN2 = gb("fd8c")  # 龑 U+9F91
AYIGULI = gb("b0a2d2c0b9c5c0f6a1a4c2f2c2f2cce1")  # 阿依古丽·买买提
GDDL = gb("b8fbb5d8b5d8c1a6b1a3bba4b2b9ccf9")  # 耕地地力保护补贴
BU = gb("b2b9")  # 补
HMBF = gb("bba7c3fbb2bbb7fb")  # 户名不符
ZHDJ = gb("d5cbbba7b6b3bde1")  # 账户冻结


def request_header_record(
    *, serial: bytes = SERIAL.encode(), count: int, total: int, name: bytes = GDDL
) -> bytes:
    return b"".join(
        [
            b"H",
            b"FW01",
            x(serial, 16),
            n(1, 2),
            x(b"43060000000000000001", 32),
            x(b"GDDLBH", 12),
            x(name, 60),
            x(b"2026", 8),
            n(count, 9),
            n(total, 18),
            b"20260301",
            b" " * 22,
        ]
    )


def request_detail_record(
    seq: int, serial: bytes, account: bytes, name: bytes, id_no: bytes, amount: int, remark: bytes
) -> bytes:
    return b"".join(
        [
            b"D",
            n(seq, 9),
            x(serial, 24),
            x(account, 32),
            x(name, 60),
            x(id_no, 18),
            n(amount, 15),
            x(remark, 60),
            b" " * 37,
        ]
    )


def trailer_record(count: int, total: int, *, end: bytes = b"END") -> bytes:
    return b"".join([b"T", n(count, 9), n(total, 18), end, b" " * 33])


def result_header_record(
    *,
    status: bytes = b"A",
    reject: bytes = b"",
    count: int,
    paid: tuple[int, int],
    failed: tuple[int, int],
    version: bytes = b"FW01",
    date: bytes = b"20260302",
    reserved: bytes = b" " * 27,
) -> bytes:
    return b"".join(
        [
            b"H",
            version,
            x(SERIAL.encode(), 16),
            n(1, 2),
            status,
            x(reject, 6),
            n(count, 9),
            n(paid[0], 9),
            n(paid[1], 18),
            n(failed[0], 9),
            n(failed[1], 18),
            date,
            reserved,
        ]
    )


def result_detail_record(
    seq: int,
    serial: bytes,
    amount: int,
    status: bytes,
    code: bytes,
    message: bytes,
    ref: bytes,
    *,
    account: bytes = b"6228480000000000001",
    amount_field: bytes | None = None,
    at: bytes = b"20260302093015",
) -> bytes:
    return b"".join(
        [
            b"D",
            n(seq, 9),
            x(serial, 24),
            x(account, 32),
            amount_field if amount_field is not None else n(amount, 15),
            status,
            x(code, 6),
            x(message, 60),
            x(ref, 32),
            at,
            b" " * 30,
        ]
    )


def file_of(*records: bytes) -> bytes:
    return b"".join(r + CRLF for r in records)


# --- golden request ----------------------------------------------------------------------


GOLDEN_ITEMS = [
    RequestItem(1, "P20260301000001", "6228480000000000001", "李䶮", "430626198001010011", 123456),
    RequestItem(2, "P20260301000002", "6228480000000000002", "王𬎆", "43062619800101002X", 50),
    RequestItem(
        3,
        "P20260301000003",
        "6217000000000000003",
        "刘龑",
        "430626198001010038",
        100000,
        remark="a" + "补" * 30,  # 61 bytes: cut before the last 2-byte character
    ),
    RequestItem(
        4,
        "P20260301000004",
        "6217000000000000004",
        "阿依古丽·买买提",
        "650102199002020046",
        9,
        remark="补" * 29 + "𬎆",  # 62 bytes: the 4-byte character does not fit whole
    ),
]
GOLDEN_TOTAL = 123456 + 50 + 100000 + 9
GOLDEN_HEADER = RequestHeader(
    batch_serial=SERIAL,
    file_no=1,
    payer_account="43060000000000000001",
    subsidy_code="GDDLBH",
    subsidy_name="耕地地力保护补贴",
    period="2026",
    item_count=4,
    total_fen=GOLDEN_TOTAL,
    created_on=dt.date(2026, 3, 1),
)


def golden_request() -> bytes:
    return file_of(
        request_header_record(count=4, total=GOLDEN_TOTAL),
        request_detail_record(
            1, b"P20260301000001", b"6228480000000000001", LI + YAN,
            b"430626198001010011", 123456, b"",
        ),
        request_detail_record(
            2, b"P20260301000002", b"6228480000000000002", WANG + YU4,
            b"43062619800101002X", 50, b"",
        ),
        request_detail_record(
            3, b"P20260301000003", b"6217000000000000003", LIU + YAN2,
            b"430626198001010038", 100000, b"a" + BU * 29,
        ),
        request_detail_record(
            4, b"P20260301000004", b"6217000000000000004", AYIGULI,
            b"650102199002020046", 9, BU * 29,
        ),
        trailer_record(4, GOLDEN_TOTAL),
    )  # fmt: skip


def test_render_request_matches_golden_bytes() -> None:
    data = FMT.render_request(GOLDEN_HEADER, GOLDEN_ITEMS)
    expected = golden_request()
    assert data == expected
    lines = data.split(CRLF)
    assert lines[-1] == b""
    assert [len(line) for line in lines[:-1]] == [192, 256, 256, 256, 256, 64]
    assert not data.startswith(b"\xef\xbb\xbf")


def test_render_request_is_deterministic_and_accepts_generators() -> None:
    assert FMT.render_request(GOLDEN_HEADER, iter(GOLDEN_ITEMS)) == FMT.render_request(
        GOLDEN_HEADER, list(GOLDEN_ITEMS)
    )


def test_parse_request_reads_golden_file() -> None:
    header, items = FMT.parse_request(golden_request())
    assert header == GOLDEN_HEADER
    assert items[:2] == GOLDEN_ITEMS[:2]
    assert items[2].remark == "a" + "补" * 29
    assert items[3].remark == "补" * 29
    assert items[3].name == "阿依古丽·买买提"


def test_header_subsidy_name_is_cut_not_refused() -> None:
    long_name = "耕地地力保护补贴" * 4  # 64 bytes
    header = RequestHeader(**{**_header_kwargs(), "subsidy_name": long_name})
    data = FMT.render_request(header, GOLDEN_ITEMS)
    assert data[:192] == request_header_record(count=4, total=GOLDEN_TOTAL, name=(GDDL * 4)[:60])


def _header_kwargs() -> dict[str, object]:
    return {
        "batch_serial": SERIAL,
        "file_no": 1,
        "payer_account": "43060000000000000001",
        "subsidy_code": "GDDLBH",
        "subsidy_name": "耕地地力保护补贴",
        "period": "2026",
        "item_count": 4,
        "total_fen": GOLDEN_TOTAL,
        "created_on": dt.date(2026, 3, 1),
    }


# --- field errors ------------------------------------------------------------------------


def item(**overrides: object) -> RequestItem:
    base: dict[str, object] = {
        "seq": 1,
        "serial": "P1",
        "account_no": "6228480000000000001",
        "name": "张三",
        "id_number": "430626198001010011",
        "amount_fen": 100,
        "remark": "",
    }
    base.update(overrides)
    return RequestItem(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "field_name", "code"),
    [
        ({"name": "张" * 31}, "name", "too_long"),  # 62 bytes
        ({"name": "𬎆" * 16}, "name", "too_long"),  # 64 bytes, 16 characters
        ({"name": "张\ud800"}, "name", "not_encodable"),  # lone surrogate
        ({"name": "张\r\n三"}, "name", "not_encodable"),
        ({"name": "张\t三"}, "name", "not_encodable"),
        ({"account_no": "6" * 33}, "account_no", "too_long"),
        ({"id_number": "4306261980010100111"}, "id_number", "too_long"),
        ({"serial": "S" * 25}, "serial", "too_long"),
        ({"remark": "x\x00"}, "remark", "not_encodable"),
        ({"remark": "\udfff"}, "remark", "not_encodable"),
        ({"amount_fen": 0}, "amount_fen", "out_of_range"),
        ({"amount_fen": -5}, "amount_fen", "out_of_range"),
        ({"amount_fen": 10**15}, "amount_fen", "out_of_range"),
    ],
)
def test_check_item_and_render_report_the_field(
    overrides: dict[str, object], field_name: str, code: str
) -> None:
    bad = item(**overrides)
    errors = FMT.check_item(bad)
    assert [(e.field_name, e.code) for e in errors] == [(field_name, code)]
    total = max(bad.amount_fen, 0)
    header = RequestHeader(**{**_header_kwargs(), "item_count": 1, "total_fen": total})
    with pytest.raises(FieldError) as info:
        FMT.render_request(header, [bad])
    assert (info.value.field_name, info.value.code) == (field_name, code)


def test_field_errors_never_contain_personal_data() -> None:
    bad = item(name="欧阳" * 31, account_no="6" * 40, id_number="43062619800101001199")
    errors = FMT.check_item(bad)
    assert {e.field_name for e in errors} == {"name", "account_no", "id_number"}
    for e in errors:
        assert "欧阳" not in str(e)
        assert "6" * 40 not in str(e)
        assert "43062619800101001199" not in str(e)


def test_fitting_values_at_the_exact_width_are_fine() -> None:
    assert FMT.check_item(item(name="张" * 30)) == []  # 60 bytes
    assert FMT.check_item(item(name="𬎆" * 15)) == []  # 60 bytes of 4-byte characters
    assert FMT.check_item(item(account_no="6" * 32, serial="S" * 24, remark="补" * 40)) == []


@pytest.mark.parametrize(
    ("items", "header_changes", "message"),
    [
        (GOLDEN_ITEMS, {"item_count": 5}, "header item_count is 5"),
        (GOLDEN_ITEMS, {"total_fen": GOLDEN_TOTAL + 1}, "header total_fen"),
        ([GOLDEN_ITEMS[1], GOLDEN_ITEMS[0]], {"item_count": 2}, "sequence 2, expected 1"),
        (
            [GOLDEN_ITEMS[0], RequestItem(2, GOLDEN_ITEMS[0].serial, "1", "李", "1", 1)],
            {"item_count": 2},
            "repeats",
        ),
        ([], {"item_count": 0, "total_fen": 0}, "at least one item"),
    ],
)
def test_render_request_refuses_files_the_bank_would_reject(
    items: list[RequestItem], header_changes: dict[str, object], message: str
) -> None:
    header = RequestHeader(**{**_header_kwargs(), **header_changes})
    with pytest.raises(FormatError, match=message):
        FMT.render_request(header, items)


def test_render_request_enforces_max_items_per_file() -> None:
    small = FixedWidthGb18030Format(max_items_per_file=3)
    with pytest.raises(FormatError, match="more than 3 items"):
        small.render_request(GOLDEN_HEADER, GOLDEN_ITEMS)
    assert small.max_items_per_file == 3
    with pytest.raises(ValueError, match="max_items_per_file"):
        FixedWidthGb18030Format(max_items_per_file=0)


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"batch_serial": "2026a00000000001"}, "batch_serial"),
        ({"batch_serial": "SHORT"}, "batch_serial"),
        ({"file_no": 0}, "file_no"),
        ({"file_no": 100}, "file_no"),
        ({"payer_account": "9" * 33}, "payer_account"),
        ({"subsidy_code": "C" * 13}, "subsidy_code"),
        ({"period": "2026H1XYZ"}, "period"),
    ],
)
def test_header_field_errors(changes: dict[str, object], field_name: str) -> None:
    header = RequestHeader(**{**_header_kwargs(), **changes})
    with pytest.raises(FieldError) as info:
        FMT.render_request(header, GOLDEN_ITEMS)
    assert info.value.field_name == field_name


# --- file names --------------------------------------------------------------------------


def test_file_names() -> None:
    assert FMT.name == "fw-gb18030-v1"
    assert FMT.request_file_name(SERIAL, 1) == "PAY_2026A00000000001_01.txt"
    assert FMT.request_file_name(SERIAL, 12) == "PAY_2026A00000000001_12.txt"
    assert FMT.result_file_name(SERIAL, 3) == "RET_2026A00000000001_03.txt"
    assert FMT.signature_name("PAY_2026A00000000001_01.txt") == "PAY_2026A00000000001_01.txt.sig"
    assert FMT.is_result_file_name("RET_2026A00000000001_03.txt")
    assert FMT.parse_result_file_name("RET_2026A00000000001_03.txt") == (SERIAL, 3)
    for name in [
        "RET_2026A00000000001_03.txt.sig",
        ".RET_2026A00000000001_03.txt.part",
        "RET_2026a00000000001_03.txt",
        "RET_2026A0000000001_03.txt",
        "RET_2026A00000000001_00.txt",
        "RET_2026A00000000001_3.txt",
        "PAY_2026A00000000001_03.txt",
        "RET_2026A00000000001_03.TXT",
    ]:
        assert not FMT.is_result_file_name(name), name
    with pytest.raises(FieldError):
        FMT.request_file_name("../../etc/passwd", 1)


# --- golden result -----------------------------------------------------------------------


def golden_result() -> bytes:
    return file_of(
        result_header_record(count=3, paid=(2, 123456 + 100000), failed=(1, 50)),
        result_detail_record(1, b"P20260301000001", 123456, b"S", b"0000", b"", b"BR0001"),
        result_detail_record(2, b"P20260301000002", 50, b"F", b"E102", HMBF, b""),
        result_detail_record(3, b"P20260301000003", 100000, b"S", b"0000", b"", b"BR0003"),
        trailer_record(3, 123456 + 50 + 100000),
    )


def test_parse_result_reads_golden_file() -> None:
    result = FMT.parse_result(golden_result())
    at = dt.datetime(2026, 3, 2, 9, 30, 15, tzinfo=SHANGHAI)
    assert result == ResultFile(
        batch_serial=SERIAL,
        file_no=1,
        accepted=True,
        rejected_code="",
        items=(
            ResultItem(1, "P20260301000001", "6228480000000000001", 123456,
                       ResultStatus.PAID, "0000", "", "BR0001", at),
            ResultItem(2, "P20260301000002", "6228480000000000001", 50,
                       ResultStatus.FAILED, "E102", "户名不符", "", at),
            ResultItem(3, "P20260301000003", "6228480000000000001", 100000,
                       ResultStatus.PAID, "0000", "", "BR0003", at),
        ),
        paid_count=2,
        paid_fen=223456,
        failed_count=1,
        failed_fen=50,
    )  # fmt: skip
    assert result.items[0].processed_at.utcoffset() == dt.timedelta(hours=8)


def test_parse_result_reads_rejected_file() -> None:
    data = file_of(
        result_header_record(status=b"R", reject=b"F001", count=0, paid=(0, 0), failed=(0, 0)),
        trailer_record(0, 0),
    )
    result = FMT.parse_result(data)
    assert not result.accepted
    assert result.rejected_code == "F001"
    assert result.items == ()


GOOD_HEADER = result_header_record(count=3, paid=(2, 223456), failed=(1, 50))
D1 = result_detail_record(1, b"P20260301000001", 123456, b"S", b"0000", b"", b"BR0001")
D2 = result_detail_record(2, b"P20260301000002", 50, b"F", b"E102", HMBF, b"")
D3 = result_detail_record(3, b"P20260301000003", 100000, b"S", b"0000", b"", b"BR0003")
GOOD_TRAILER = trailer_record(3, 223506)


def with_header(**changes: object) -> bytes:
    """The golden result file with its header record built from changed values."""
    kwargs: dict[str, object] = {"count": 3, "paid": (2, 223456), "failed": (1, 50), **changes}
    return file_of(result_header_record(**kwargs), D1, D2, D3, GOOD_TRAILER)  # type: ignore[arg-type]


def with_d3(status: bytes = b"S", code: bytes = b"0000", ref: bytes = b"R", **kw: object) -> bytes:
    """The golden result file with detail 3 replaced (amount 100000 kept)."""
    serial = kw.pop("serial", b"P3")
    seq = kw.pop("seq", 3)
    d3 = result_detail_record(seq, serial, 100000, status, code, b"", ref, **kw)  # type: ignore[arg-type]
    return file_of(GOOD_HEADER, D1, D2, d3, GOOD_TRAILER)


def with_d2(code: bytes = b"E102", message: bytes = HMBF, ref: bytes = b"") -> bytes:
    """The golden result file with the failed detail 2 replaced (amount 50 kept)."""
    d2 = result_detail_record(2, b"P2", 50, b"F", code, message, ref)
    return file_of(GOOD_HEADER, D1, d2, D3, GOOD_TRAILER)


REJECTED_HEADER_ONLY = {"status": b"R", "count": 0, "paid": (0, 0), "failed": (0, 0)}

REJECT_CASES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "empty"),
    ("bom", b"\xef\xbb\xbf" + golden_result(), "byte order mark"),
    ("no final CRLF", golden_result()[:-2], "does not end with CRLF"),
    ("LF only", golden_result().replace(CRLF, b"\n"), "does not end with CRLF"),
    (
        "short detail",
        file_of(GOOD_HEADER, D1[:-1], D2, D3, GOOD_TRAILER),
        "line 2: result detail record is 223 bytes, expected 224",
    ),
    (
        "long detail",
        file_of(GOOD_HEADER, D1 + b" ", D2, D3, GOOD_TRAILER),
        "line 2: result detail record is 225 bytes",
    ),
    (
        "long header",
        file_of(GOOD_HEADER + b" ", D1, D2, D3, GOOD_TRAILER),
        "line 1: result header record is 129 bytes",
    ),
    (
        "long trailer",
        file_of(GOOD_HEADER, D1, D2, D3, GOOD_TRAILER + b" "),
        "line 5: trailer record is 65 bytes",
    ),
    (
        "bad detail type",
        file_of(GOOD_HEADER, b"X" + D1[1:], D2, D3, GOOD_TRAILER),
        "line 2: record type 'X', expected 'D'",
    ),
    ("no trailer", file_of(GOOD_HEADER, D1, D2, D3), "line 4: record type 'D', expected 'T'"),
    (
        "trailer in the middle",
        file_of(GOOD_HEADER, D1, GOOD_TRAILER, D2, D3, GOOD_TRAILER),
        "line 3: record type 'T', expected 'D'",
    ),
    ("no header", file_of(D1, GOOD_TRAILER), "line 1: record type 'D', expected 'H'"),
    ("header only", file_of(GOOD_HEADER), "fewer than two records"),
    (
        "trailer count",
        file_of(GOOD_HEADER, D1, D2, D3, trailer_record(2, 223506)),
        "trailer item_count is 2, the detail records give 3",
    ),
    (
        "trailer total",
        file_of(GOOD_HEADER, D1, D2, D3, trailer_record(3, 223505)),
        "trailer total_fen is 223505, the detail records give 223506",
    ),
    (
        "end marker",
        file_of(GOOD_HEADER, D1, D2, D3, trailer_record(3, 223506, end=b"EOF")),
        "end_marker",
    ),
    ("header count", with_header(count=4), "header item_count is 4"),
    (
        "header paid count",
        with_header(paid=(3, 223456)),
        "header paid_count is 3, the detail records give 2",
    ),
    ("header paid amount", with_header(paid=(2, 223457)), "header paid_fen is 223457"),
    ("header failed amount", with_header(failed=(1, 51)), "header failed_fen is 51"),
    ("version", with_header(version=b"FW02"), "format_version"),
    ("file status", with_header(status=b"X"), "file_status 'X'"),
    ("accepted with code", with_header(reject=b"F002"), "carries a reject code"),
    ("rejected with details", with_header(status=b"R", reject=b"F002"), "no detail records"),
    (
        "rejected without code",
        file_of(result_header_record(**REJECTED_HEADER_ONLY), trailer_record(0, 0)),  # type: ignore[arg-type]
        "no reject code",
    ),
    (
        "processing date",
        with_header(date=b"20260230"),
        "processing_date '20260230' is not a valid date",
    ),
    (
        "reserved",
        with_header(reserved=b"x" * 27),
        "line 1: reserved field is not all spaces",
    ),
    (
        "amount letters",
        with_d3(amount_field=b"0000000001OOOOO"),
        "line 4: amount_fen must be 15 ASCII digits",
    ),
    (
        "amount space",
        with_d3(amount_field=b" 00000000100000"),
        "amount_fen must be 15 ASCII digits",
    ),
    ("status", with_d3(status=b"X"), "line 4: status 'X'"),
    ("paid with error code", with_d3(code=b"E101"), r"status S \(paid\) with bank_code 'E101'"),
    ("paid without ref", with_d3(ref=b""), "without a bank_ref"),
    ("failed with 0000", with_d2(code=b"0000"), r"status F \(failed\) with bank_code '0000'"),
    ("failed with ref", with_d2(ref=b"R2"), "carries a bank_ref"),
    (
        "duplicate serial",
        with_d3(serial=b"P20260301000001"),
        "line 4: serial 'P20260301000001' repeats",
    ),
    ("duplicate seq", with_d3(seq=1), "line 4: sequence 1 repeats"),
    (
        "timestamp",
        with_d3(at=b"20260302250000"),
        "processed_at '20260302250000' is not a valid timestamp",
    ),
    ("bad GB18030", with_d2(message=b"\x81\x20"), "line 3: bank_message is not valid GB18030"),
    ("split character", with_d2(message=HMBF[:-1]), "bank_message is not valid GB18030"),
    ("control", with_d2(message=b"a\tb"), "bank_message contains a control character"),
]


@pytest.mark.parametrize(
    ("data", "message"), [c[1:] for c in REJECT_CASES], ids=[c[0] for c in REJECT_CASES]
)
def test_parse_result_rejects(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        FMT.parse_result(data)


def test_parse_result_ok_variants() -> None:
    # the bank message may be cut at a character boundary and carries GB18030 text
    d2 = result_detail_record(2, b"P20260301000002", 50, b"F", b"E103", ZHDJ * 7, b"")
    result = FMT.parse_result(file_of(GOOD_HEADER, D1, d2, D3, GOOD_TRAILER))
    assert result.items[1].bank_message == "账户冻结" * 7
    assert result.items[1].bank_code == "E103"


# --- properties ----------------------------------------------------------------------------

# Every Unicode scalar value except controls and surrogates; the codec covers all of them.
TEXT_CHARS = st.characters(codec="gb18030", exclude_categories=("Cc", "Cs"))
# Names: ordinary and rare CJK (Ext A, Ext B–G take 4 bytes), the middle dot, some Latin.
NAME_CHARS = st.one_of(
    st.sampled_from("张王李刘陈阿依古丽买提·䶮龑𬎆𠀀𪚥𫠝"),
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
    st.characters(min_codepoint=0x3400, max_codepoint=0x4DBF),
    st.characters(min_codepoint=0x20000, max_codepoint=0x2A6DF),
    st.characters(min_codepoint=0x30000, max_codepoint=0x3134F),
    st.sampled_from("ABCXYZ"),
)
names = st.text(NAME_CHARS, min_size=1, max_size=15)  # 15 × 4 bytes fits 60
remarks = st.text(TEXT_CHARS, max_size=45).filter(lambda s: not s.endswith(" "))


@st.composite
def request_items(draw: st.DrawFn) -> list[RequestItem]:
    count = draw(st.integers(min_value=1, max_value=12))
    serials = draw(
        st.lists(
            st.from_regex(r"[0-9A-Z]{1,24}", fullmatch=True),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    return [
        RequestItem(
            seq=i + 1,
            serial=serials[i],
            account_no=draw(st.from_regex(r"[0-9]{1,32}", fullmatch=True)),
            name=draw(names),
            id_number=draw(st.from_regex(r"[0-9]{17}[0-9X]", fullmatch=True)),
            amount_fen=draw(st.integers(min_value=1, max_value=10**13)),
            remark=draw(remarks),
        )
        for i in range(count)
    ]


def expected_cut(value: str, width: int) -> str:
    """The longest whole-character prefix of ``value`` within ``width`` bytes."""
    out = ""
    for ch in value:
        if len((out + ch).encode("gb18030")) > width:
            break
        out += ch
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_items())
def test_render_parse_round_trip(items: list[RequestItem]) -> None:
    total = sum(i.amount_fen for i in items)
    header = RequestHeader(**{**_header_kwargs(), "item_count": len(items), "total_fen": total})
    data = FMT.render_request(header, items)
    lines = data.split(CRLF)
    assert [len(line) for line in lines[1:-2]] == [256] * len(items)
    assert len(lines[0]) == 192
    assert len(lines[-2]) == 64
    parsed_header, parsed = FMT.parse_request(data)
    assert parsed_header == header
    # totals conserved: header, trailer and details agree
    assert parsed_header.total_fen == sum(p.amount_fen for p in parsed) == total
    assert int(lines[-2][10:28]) == total
    assert int(lines[-2][1:10]) == len(items)
    for original, back in zip(items, parsed, strict=True):
        assert back.name == original.name
        assert back.remark == expected_cut(original.remark, 60).rstrip(" ")
        assert back == dataclasses.replace(original, remark=back.remark)


@settings(max_examples=300, deadline=None)
@given(st.text(TEXT_CHARS, max_size=80), st.integers(min_value=1, max_value=80))
def test_cut_never_splits_a_character_and_fills_the_width(value: str, width: int) -> None:
    field = encode_text(value, width, "remark", cut=True)
    assert len(field) == width
    kept = field.rstrip(b" ")
    text = kept.decode("gb18030")  # strict: a split character would raise here
    assert value.startswith(text)
    assert value.encode("gb18030").startswith(kept)
    # maximal: every whole character that fits is kept
    assert field == expected_cut(value, width).encode("gb18030").ljust(width)


@settings(max_examples=200, deadline=None)
@given(st.text(TEXT_CHARS, max_size=40), st.integers(min_value=1, max_value=70))
def test_no_cut_fields_refuse_instead_of_cutting(value: str, width: int) -> None:
    fits = len(value.encode("gb18030")) <= width
    if fits:
        assert encode_text(value, width, "name", cut=False).rstrip(b" ") == value.encode(
            "gb18030"
        ).rstrip(b" ")
    else:
        with pytest.raises(FieldError) as info:
            encode_text(value, width, "name", cut=False)
        assert info.value.code == "too_long"


@settings(max_examples=150, deadline=None)
@given(
    name=st.text(st.characters(categories=("L", "Cs", "Cc", "Zs")), max_size=40),
    account=st.text(st.characters(), max_size=40),
    amount=st.integers(min_value=-10, max_value=10**16),
)
def test_check_item_agrees_with_render(name: str, account: str, amount: int) -> None:
    candidate = item(name=name, account_no=account, amount_fen=amount)
    header = RequestHeader(**{**_header_kwargs(), "item_count": 1, "total_fen": max(amount, 0)})
    errors = FMT.check_item(candidate)
    if errors:
        with pytest.raises(FieldError) as info:
            FMT.render_request(header, [candidate])
        assert (info.value.field_name, info.value.code) in {(e.field_name, e.code) for e in errors}
    else:
        FMT.render_request(header, [candidate])


@st.composite
def result_files(draw: st.DrawFn) -> ResultFile:
    count = draw(st.integers(min_value=0, max_value=10))
    at = dt.datetime(2026, 3, 2, 9, 30, 15, tzinfo=SHANGHAI)
    items = []
    for i in range(count):
        paid = draw(st.booleans())
        items.append(
            ResultItem(
                seq=i + 1,
                serial=f"P{i:05d}",
                account_no=draw(st.from_regex(r"[0-9]{1,32}", fullmatch=True)),
                amount_fen=draw(st.integers(min_value=1, max_value=10**12)),
                status=ResultStatus.PAID if paid else ResultStatus.FAILED,
                bank_code="0000" if paid else draw(st.sampled_from(["E101", "E102", "E199"])),
                bank_message="" if paid else draw(remarks),
                bank_ref=f"BR{i:08d}" if paid else "",
                processed_at=at,
            )
        )
    paid_items = [i for i in items if i.status is ResultStatus.PAID]
    failed_items = [i for i in items if i.status is ResultStatus.FAILED]
    return ResultFile(
        batch_serial=SERIAL,
        file_no=draw(st.integers(min_value=1, max_value=99)),
        accepted=True,
        rejected_code="",
        items=tuple(items),
        paid_count=len(paid_items),
        paid_fen=sum(i.amount_fen for i in paid_items),
        failed_count=len(failed_items),
        failed_fen=sum(i.amount_fen for i in failed_items),
    )


@settings(max_examples=100, deadline=None)
@given(result_files())
def test_result_round_trip_conserves_totals(result: ResultFile) -> None:
    data = FMT.render_result(result, dt.date(2026, 3, 2))
    parsed = FMT.parse_result(data)
    assert parsed.paid_fen + parsed.failed_fen == sum(i.amount_fen for i in result.items)
    assert parsed.paid_count + parsed.failed_count == len(result.items)
    assert int(data.split(CRLF)[-2][10:28]) == parsed.paid_fen + parsed.failed_fen
    for original, back in zip(result.items, parsed.items, strict=True):
        assert back.bank_message == expected_cut(original.bank_message, 60).rstrip(" ")
        assert (back.serial, back.amount_fen, back.status) == (
            original.serial,
            original.amount_fen,
            original.status,
        )


# --- a county-sized file (speed is measured by `make bench`, never asserted here) ----------


def test_render_100k_items() -> None:
    count = 100_000
    items = [
        RequestItem(
            seq=i,
            serial=f"P{i:023d}",
            account_no=f"62284800{i:011d}",
            name="阿依古丽·买买提𬎆",
            id_number="43062619800101001X",
            amount_fen=12_345,
            remark="耕地地力保护补贴2026年",
        )
        for i in range(1, count + 1)
    ]
    header = RequestHeader(**{**_header_kwargs(), "item_count": count, "total_fen": 12_345 * count})
    fmt = FixedWidthGb18030Format(max_items_per_file=count)
    data = fmt.render_request(header, items)
    assert len(data) == 192 + 2 + count * 258 + 64 + 2


def test_control_character_found_after_fast_path() -> None:
    items = [*GOLDEN_ITEMS[:3], RequestItem(4, "P4", "1", "李\x7f", "1", 9)]
    with pytest.raises(FieldError) as info:
        FMT.render_request(GOLDEN_HEADER, items)
    assert (info.value.field_name, info.value.code) == ("name", "not_encodable")
    assert "item seq 4" in str(info.value)
