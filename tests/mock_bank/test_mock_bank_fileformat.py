"""The bank's codec against golden bytes built by hand from the spec."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mock_bank import fileformat as ff
from mock_bank.fileformat import FieldTooLongError, FormatError, SignatureError

# 䶮 U+4DAE and 𬎆 U+2C386 are outside GBK; 龑 U+9F91 is inside GBK. Python's gb18030 codec
# (GB18030-2005 mapping) encodes them as below: only 𬎆 takes four bytes.
RARE = {"䶮": b"\xfe\x9f", "𬎆": b"\x99\x31\xde\x30", "龑": b"\xfd\x8c", "·": b"\xa1\xa4"}


def test_rare_character_bytes() -> None:
    for char, raw in RARE.items():
        assert char.encode("gb18030") == raw
        assert raw.decode("gb18030") == char
    with pytest.raises(UnicodeEncodeError):
        "䶮".encode("gbk")
    with pytest.raises(UnicodeEncodeError):
        "𬎆".encode("gbk")


def golden_request() -> bytes:
    """A request file written out field by field from the spec tables (no helpers)."""
    header = (
        b"H"
        + b"FW01"
        + b"2026031500000001"
        + b"01"
        + b"43062100000000000001"
        + b" " * 12  # payer account, 32
        + b"NY0001"
        + b" " * 6  # subsidy code, 12
        + "耕地地力保护补贴".encode("gb18030")
        + b" " * 44  # 16 bytes + 44
        + b"2026H1  "  # period, 8
        + b"000000003"  # count
        + b"000000000000062352"  # total fen
        + b"20260315"
        + b" " * 22
    )
    d1 = (
        b"D"
        + b"000000001"
        + b"S20260315000000000000001"
        + b"6217001234567890001"
        + b" " * 13
        + b"\xcd\xf5"
        + RARE["䶮"]
        + b" " * 56  # 王䶮
        + b"430621198001010011"
        + b"000000000012345"
        + "第一季度".encode("gb18030")
        + b" " * 52
        + b" " * 37
    )
    d2 = (
        b"D"
        + b"000000002"
        + b"S20260315000000000000002"
        + b"6217001234567890002"
        + b" " * 13
        + "李".encode("gb18030")
        + RARE["𬎆"]
        + b" " * 54  # 2 + 4 bytes
        + b"43062119800101002X"
        + b"000000000050000"
        + b" " * 60
        + b" " * 37
    )
    d3 = (
        b"D"
        + b"000000003"
        + b"S20260315000000000000003"
        + b"6217001234567890003"
        + b" " * 13
        + "阿依古丽".encode("gb18030")
        + RARE["·"]
        + "买买提".encode("gb18030")
        + b" " * 44  # 16 bytes + 44
        + b"430621198001010038"
        + b"000000000000007"
        + RARE["龑"]
        + b" " * 58
        + b" " * 37
    )
    trailer = b"T" + b"000000003" + b"000000000000062352" + b"END" + b" " * 33
    records = [header, d1, d2, d3, trailer]
    assert [len(r) for r in records] == [192, 256, 256, 256, 64]
    return b"".join(r + b"\r\n" for r in records)


def test_parse_golden_request() -> None:
    parsed = ff.parse_request(
        golden_request(), expected_serial="2026031500000001", expected_file_no=1
    )
    h = parsed.header
    assert (h.batch_serial, h.file_no, h.payer_account, h.subsidy_code) == (
        "2026031500000001",
        1,
        "43062100000000000001",
        "NY0001",
    )
    assert (h.subsidy_name, h.period, h.item_count, h.total_amount_fen) == (
        "耕地地力保护补贴",
        "2026H1",
        3,
        62352,
    )
    assert h.creation_date == date(2026, 3, 15)
    names = [i.account_name for i in parsed.items]
    assert names == ["王䶮", "李𬎆", "阿依古丽·买买提"]
    assert [i.sequence for i in parsed.items] == [1, 2, 3]
    assert [i.amount_fen for i in parsed.items] == [12345, 50000, 7]
    assert [i.item_serial for i in parsed.items] == [
        "S20260315000000000000001",
        "S20260315000000000000002",
        "S20260315000000000000003",
    ]
    assert parsed.items[1].id_number == "43062119800101002X"
    assert [i.remark for i in parsed.items] == ["第一季度", "", "龑"]
    assert all(isinstance(i.amount_fen, int) for i in parsed.items)


def test_builder_matches_golden(helpers: Any) -> None:
    """The conftest builder (used by the other tests) agrees with the literal golden file."""
    items = [
        helpers.Item(
            "S20260315000000000000001",
            "6217001234567890001",
            "王䶮",
            "430621198001010011",
            12345,
            "第一季度",
        ),
        helpers.Item(
            "S20260315000000000000002", "6217001234567890002", "李𬎆", "43062119800101002X", 50000
        ),
        helpers.Item(
            "S20260315000000000000003",
            "6217001234567890003",
            "阿依古丽·买买提",
            "430621198001010038",
            7,
            "龑",
        ),
    ]
    built = helpers.build_request(items, period="2026H1")
    assert built == golden_request()


# --- cutting in bytes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("张三", 4, b"\xd5\xc5\xc8\xfd"),
        ("张三", 3, b"\xd5\xc5 "),  # 三 would be split: cut before it
        ("a𬎆", 4, b"a   "),  # the 4-byte char does not fit in 3
        ("a𬎆b", 5, b"a\x99\x31\xde\x30"),
        ("䶮龑", 3, b"\xfe\x9f "),
        ("", 2, b"  "),
        ("abc", 3, b"abc"),
    ],
)
def test_fit_text_cuts_at_whole_characters(text: str, width: int, expected: bytes) -> None:
    assert ff.fit_text(text, width, cut=True) == expected


def test_no_cut_field_refuses_long_values() -> None:
    with pytest.raises(FieldTooLongError):
        ff.fit_text("张三", 3, cut=False)
    with pytest.raises(FieldTooLongError):
        ff.fit_number(1000, 3)
    assert ff.fit_number(7, 5) == b"00007"
    with pytest.raises(ValueError, match="unsigned"):
        ff.fit_number(-1, 5)


_CHARS = st.sampled_from(["a", "Z", "9", " ", "·", "张", "䶮", "龑", "𬎆", "€", "😀"])


@given(text=st.lists(_CHARS, max_size=30).map("".join), width=st.integers(0, 40))
def test_fit_text_property(text: str, width: int) -> None:
    out = ff.fit_text(text, width, cut=True)
    assert len(out) == width
    # reference: the longest prefix of whole characters whose bytes fit, then spaces
    k = 0
    while k < len(text) and len(text[: k + 1].encode("gb18030")) <= width:
        k += 1
    kept = text[:k].encode("gb18030")
    assert out == kept + b" " * (width - len(kept))
    out.rstrip(b" ").decode("gb18030")  # never a split character


# --- result files ---------------------------------------------------------------------------

PROCESSED = datetime(2026, 3, 15, 14, 5, 9, tzinfo=timezone(timedelta(hours=8)))


def test_render_result_golden() -> None:
    items = [
        ff.ResultItem(
            1,
            "S20260315000000000000001",
            "6217001234567890001",
            12345,
            "S",
            "0000",
            "成功",
            "MB202603150000000001",
            PROCESSED,
        ),
        ff.ResultItem(
            2,
            "S20260315000000000000002",
            "6217001234567890002",
            50000,
            "F",
            "E102",
            "户名不符",
            "",
            PROCESSED,
        ),
    ]
    got = ff.render_result(
        batch_serial="2026031500000001", file_no=1, items=items, processing_date=date(2026, 3, 15)
    )
    header = (
        b"H"
        + b"FW01"
        + b"2026031500000001"
        + b"01"
        + b"A"
        + b"      "
        + b"000000002"
        + b"000000001"
        + b"000000000000012345"
        + b"000000001"
        + b"000000000000050000"
        + b"20260315"
        + b" " * 27
    )
    d1 = (
        b"D"
        + b"000000001"
        + b"S20260315000000000000001"
        + b"6217001234567890001"
        + b" " * 13
        + b"000000000012345"
        + b"S"
        + b"0000  "
        + "成功".encode("gb18030")
        + b" " * 56
        + b"MB202603150000000001"
        + b" " * 12
        + b"20260315140509"
        + b" " * 30
    )
    d2 = (
        b"D"
        + b"000000002"
        + b"S20260315000000000000002"
        + b"6217001234567890002"
        + b" " * 13
        + b"000000000050000"
        + b"F"
        + b"E102  "
        + b"\xbb\xa7\xc3\xfb\xb2\xbb\xb7\xfb"
        + b" " * 52
        + b" " * 32
        + b"20260315140509"
        + b" " * 30
    )
    trailer = b"T" + b"000000002" + b"000000000000062345" + b"END" + b" " * 33
    assert [len(r) for r in (header, d1, d2, trailer)] == [128, 224, 224, 64]
    assert got == header + b"\r\n" + d1 + b"\r\n" + d2 + b"\r\n" + trailer + b"\r\n"


def test_render_rejected_golden() -> None:
    got = ff.render_rejected_result(
        batch_serial="2026031500000001",
        file_no=2,
        reject_code="F002",
        processing_date=date(2026, 3, 15),
    )
    header = (
        b"H"
        + b"FW01"
        + b"2026031500000001"
        + b"02"
        + b"R"
        + b"F002  "
        + b"000000000" * 2
        + b"0" * 18
        + b"000000000"
        + b"0" * 18
        + b"20260315"
        + b" " * 27
    )
    trailer = b"T" + b"0" * 9 + b"0" * 18 + b"END" + b" " * 33
    assert got == header + b"\r\n" + trailer + b"\r\n"


def test_result_message_cut_never_splits() -> None:
    long_message = "账户" * 40  # 160 bytes
    item = ff.ResultItem(1, "S1", "6217", 1, "F", "E199", long_message, "", PROCESSED)
    got = ff.render_result(
        batch_serial="2026031500000001", file_no=1, items=[item], processing_date=date(2026, 3, 15)
    )
    detail = got.split(b"\r\n")[1]
    assert detail[88:148] == ("账户" * 15).encode("gb18030")


# --- rejections -----------------------------------------------------------------------------


def _records(data: bytes) -> list[bytes]:
    return data[:-2].split(b"\r\n")


def _join(records: list[bytes]) -> bytes:
    return b"".join(r + b"\r\n" for r in records)


def _patch(data: bytes, line: int, offset: int, new: bytes) -> bytes:
    records = _records(data)
    rec = records[line]
    records[line] = rec[:offset] + new + rec[offset + len(new) :]
    return _join(records)


G = golden_request()

BAD_FILES: dict[str, bytes] = {
    "header total off by one": _patch(G, 0, 144, b"000000000000062353"),
    "header count": _patch(G, 0, 135, b"000000002"),
    "trailer total": _patch(G, 4, 10, b"000000000000062351"),
    "trailer count": _patch(G, 4, 1, b"000000004"),
    "sequence gap": _patch(G, 2, 1, b"000000003"),
    "sequence starts at 0": _patch(
        _patch(_patch(G, 1, 1, b"000000000"), 2, 1, b"000000001"), 3, 1, b"000000002"
    ),
    "duplicate serial": _patch(G, 2, 10, b"S20260315000000000000003"),
    "short record": _join([r if i != 2 else r[:-1] for i, r in enumerate(_records(G))]),
    "long record": _join([r if i != 2 else r + b" " for i, r in enumerate(_records(G))]),
    "wrong record type": _patch(G, 2, 0, b"X"),
    "LF line ends": G.replace(b"\r\n", b"\n"),
    "no final CRLF": G[:-2],
    "space-padded amount": _patch(G, 1, 1 + 9 + 24 + 32 + 60 + 18, b"          12345"),
    "zero amount": _patch(
        _patch(_patch(G, 3, 144, b"000000000000000"), 0, 144, b"000000000000062345"),
        4,
        10,
        b"000000000000062345",
    ),
    "lower-case x in ID": _patch(G, 2, 1 + 9 + 24 + 32 + 60 + 17, b"x"),
    "reserved not spaces": _patch(G, 1, 219, b"Z"),
    "format version": _patch(G, 0, 1, b"FW02"),
    "end marker": _patch(G, 4, 28, b"EDN"),
    "split character at field edge": _patch(G, 1, 125, b"\xd5\xc5"),
    "BOM": b"\xef\xbb\xbf" + G,
    "empty": b"",
    "header and trailer only": _join(
        [
            _records(G)[0][:135] + b"000000000" + b"0" * 18 + _records(G)[0][162:],
            b"T" + b"0" * 27 + b"END" + b" " * 33,
        ]
    ),
    "trailer missing": _join(_records(G)[:-1]),
    "invalid creation date": _patch(G, 0, 192 - 30, b"20260231"),
    "blank account": _patch(G, 1, 34, b" " * 32),
    "right-aligned account": _patch(G, 1, 34, b" " * 13 + b"6217001234567890001"),
    "control character": _patch(G, 1, 34, b"\t"),
}


EXPECTED_REASON = {
    "header total off by one": "header total",
    "header count": "header item count",
    "trailer total": "trailer total",
    "trailer count": "trailer item count",
    "sequence gap": "sequence",
    "sequence starts at 0": "sequence",
    "duplicate serial": "serial repeats",
    "short record": "255 bytes",
    "long record": "257 bytes",
    "wrong record type": "details (D)",
    "LF line ends": "CRLF",
    "no final CRLF": "CRLF",
    "space-padded amount": "amount",
    "zero amount": "amount",
    "lower-case x in ID": "upper-case X",
    "reserved not spaces": "reserved",
    "format version": "FW01",
    "end marker": "END",
    "split character at field edge": "account_name",
    "BOM": "byte order mark",
    "empty": "empty",
    "header and trailer only": "at least one detail",
    "trailer missing": "trailer",
    "invalid creation date": "creation_date",
    "blank account": "blank",
    "right-aligned account": "left-aligned",
    "control character": "control character",
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_rejects_bad_files(case: str) -> None:
    with pytest.raises(FormatError) as info:
        ff.parse_request(BAD_FILES[case])
    assert info.value.code == "F002"
    assert EXPECTED_REASON[case] in str(info.value)


def test_split_character_case_really_splits() -> None:
    """The 'split character' case puts 张 (2 bytes) across the name/ID boundary."""
    rec = _records(BAD_FILES["split character at field edge"])[1]
    assert rec[125:127] == b"\xd5\xc5"
    assert len(rec) == 256


def test_rejects_header_that_disagrees_with_file_name() -> None:
    with pytest.raises(FormatError, match="file name"):
        ff.parse_request(G, expected_serial="2026031500000002", expected_file_no=1)
    with pytest.raises(FormatError, match="file name"):
        ff.parse_request(G, expected_serial="2026031500000001", expected_file_no=2)


def test_file_names() -> None:
    assert ff.parse_request_name("PAY_2026031500000001_01.txt") == ("2026031500000001", 1)
    for bad in [
        "PAY_2026031500000001_00.txt",
        "PAY_2026031500000001_1.txt",
        "PAY_202603150000000a_01.txt",
        ".PAY_2026031500000001_01.txt.part",
        "PAY_2026031500000001_01.txt.sig",
        "RET_2026031500000001_01.txt",
    ]:
        assert ff.parse_request_name(bad) is None
    assert ff.result_name("2026031500000001", 3) == "RET_2026031500000001_03.txt"
    assert ff.temp_name("RET_X.txt") == ".RET_X.txt.part"


# --- signature files ------------------------------------------------------------------------

SHA = "ab" * 32
GOOD_SIG = f"alg=RSA-PSS-SHA256\nkey-id=gw-1\nsha256={SHA}\nsig=AAEC\n".encode()


def test_signature_file_round_trip() -> None:
    sig = ff.parse_signature_file(GOOD_SIG)
    assert (sig.alg, sig.key_id, sig.sha256_hex, sig.signature) == (
        "RSA-PSS-SHA256",
        "gw-1",
        SHA,
        b"\x00\x01\x02",
    )
    assert ff.render_signature_file(sig) == GOOD_SIG


@pytest.mark.parametrize(
    "bad",
    [
        GOOD_SIG.replace(b"\n", b"\r\n"),
        GOOD_SIG[:-1],
        GOOD_SIG.replace(b"alg=RSA-PSS-SHA256", b"alg=RSA-SHA256"),
        b"key-id=gw-1\nalg=RSA-PSS-SHA256\n" + GOOD_SIG.split(b"\n", 2)[2],
        GOOD_SIG.replace(SHA.encode(), SHA.upper().encode()),
        GOOD_SIG.replace(b"sig=AAEC", b"sig=AA*C"),
        GOOD_SIG.replace(b"sig=AAEC", b"sig="),
        GOOD_SIG + b"extra=1\n",
        b"",
    ],
)
def test_signature_file_strict(bad: bytes) -> None:
    with pytest.raises(SignatureError) as info:
        ff.parse_signature_file(bad)
    assert info.value.code == "F001"
