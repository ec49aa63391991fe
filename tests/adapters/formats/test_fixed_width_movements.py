"""The account movements file of ``fw-gb18030-v1`` (``ACT_…txt``, the payer account's
debits and 退票 credits) against docs/formats/fw-gb18030-v1.md.

Golden files are built here from the spec's field tables with literal bytes, never with the
renderer, so a layout regression in the adapter shows up as a diff."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.formats.fixed_width import FixedWidthGb18030Format, Movement
from gateway.ports import AccountEntry, AccountNotice, AccountNoticeFormat, FormatError

FMT = FixedWidthGb18030Format()
SERIAL = "2026A00000000001"
PAYER = b"43060000000000000001"
CRLF = b"\r\n"
DAY = dt.date(2026, 3, 15)
DKKK = bytes.fromhex("b4fab7a2bfdbbfee")  # 代发扣款
TUIPIAO = bytes.fromhex("cdcbc6b1")  # 退票


def x(raw: bytes, width: int) -> bytes:
    assert len(raw) <= width
    return raw + b" " * (width - len(raw))


def n(value: int, width: int) -> bytes:
    text = str(value).zfill(width).encode("ascii")
    assert len(text) == width
    return text


def header(
    *,
    notice: bytes = b"ACT" + SERIAL.encode() + b"01",
    serial: bytes = SERIAL.encode(),
    file_no: bytes = b"01",
    payer: bytes = PAYER,
    count: int,
    debits: tuple[int, int] = (0, 0),
    credits: tuple[int, int] = (0, 0),
    created: bytes = b"20260315093000",
    version: bytes = b"FW01",
    reserved: bytes = b" " * 28,
) -> bytes:
    return b"".join(
        [
            b"H",
            version,
            x(notice, 32),
            x(serial, 16),
            file_no,
            x(payer, 32),
            n(count, 9),
            n(debits[0], 9),
            n(debits[1], 18),
            n(credits[0], 9),
            n(credits[1], 18),
            created,
            reserved,
        ]
    )


def detail(
    seq: int,
    direction: bytes,
    amount: int,
    ref: bytes,
    serial: bytes,
    code: bytes,
    text: bytes = b"",
    *,
    date: bytes = b"20260315",
    reserved: bytes = b" " * 38,
) -> bytes:
    return b"".join(
        [
            b"D",
            n(seq, 9),
            direction,
            n(amount, 15),
            date,
            x(ref, 32),
            x(serial, 24),
            code,
            x(text, 60),
            reserved,
        ]
    )


def trailer(count: int, total: int) -> bytes:
    return b"T" + n(count, 9) + n(total, 18) + b"END" + b" " * 33


def file_of(*records: bytes) -> bytes:
    return b"".join(r + CRLF for r in records)


S1, S2, S3 = (f"{SERIAL}0000000{i}".encode() for i in (1, 2, 3))
D1 = detail(1, b"D", 35001, b"MB202603150000000007", S1, b"0000", DKKK)
D2 = detail(2, b"D", 50, b"MB202603150000000007", S2, b"0000", DKKK)
GOLDEN = file_of(header(count=2, debits=(2, 35051)), D1, D2, trailer(2, 35051))
RETURN = file_of(
    header(notice=b"ACT" + SERIAL.encode() + b"01R1", count=1, credits=(1, 50)),
    detail(1, b"C", 50, b"MB202603150000000009", S2, b"R001", TUIPIAO),
    trailer(1, 50),
)


def test_the_format_sends_account_notices() -> None:
    assert isinstance(FMT, AccountNoticeFormat)


def test_file_names() -> None:
    assert FMT.account_notice_file_name(SERIAL, 1) == f"ACT_{SERIAL}_01.txt"
    assert FMT.account_notice_file_name(SERIAL, 12, 3) == f"ACT_{SERIAL}_12_R3.txt"
    for good in (f"ACT_{SERIAL}_01.txt", f"ACT_{SERIAL}_99_R1.txt", f"ACT_{SERIAL}_02_R999999.txt"):
        assert FMT.is_account_notice_name(good), good
        assert not FMT.is_result_file_name(good), good
    assert FMT.parse_account_notice_file_name(f"ACT_{SERIAL}_07_R2.txt") == (SERIAL, 7)
    for bad in (
        f"ACT_{SERIAL}_00.txt",
        f"ACT_{SERIAL}_01_R0.txt",
        f"ACT_{SERIAL}_01_R01.txt",
        f"ACT_{SERIAL}_01_R1234567.txt",
        f"ACT_{SERIAL}_01.txt.sig",
        f".ACT_{SERIAL}_01.txt.part",
        f"act_{SERIAL}_01.txt",
        f"RET_{SERIAL}_01.txt",
        f"ACT_{SERIAL.lower()}_01.txt",
    ):
        assert not FMT.is_account_notice_name(bad), bad
    assert not FMT.is_result_file_name(f"ACT_{SERIAL}_01.txt")


def test_parse_golden_debits() -> None:
    assert [len(r) for r in GOLDEN.split(CRLF)[:-1]] == [192, 192, 192, 64]
    notice = FMT.parse_account_notice(GOLDEN)
    assert notice == AccountNotice(
        message_id=f"ACT{SERIAL}01",
        entries=(
            AccountEntry(
                account=PAYER.decode(),
                amount_fen=35051,
                direction="debit",
                booked_on=DAY,
                bank_ref="MB202603150000000007",
                batch_serial=SERIAL,
                file_no=1,
                details=((S1.decode(), 35001), (S2.decode(), 50)),
            ),
        ),
    )


def test_parse_golden_return() -> None:
    [entry] = FMT.parse_account_notice(RETURN).entries
    assert (entry.direction, entry.amount_fen, entry.details) == (
        "credit",
        50,
        ((S2.decode(), 50),),
    )
    assert entry.reason_code == "R001" and entry.batch_serial == SERIAL


def test_render_matches_golden_bytes() -> None:
    debit = {"booked_on": DAY, "bank_ref": "MB202603150000000007", "reason_code": "0000"}
    rendered = FMT.render_account_notice(
        notice_id=f"ACT{SERIAL}01",
        batch_serial=SERIAL,
        file_no=1,
        payer_account=PAYER.decode(),
        created_at=dt.datetime(2026, 3, 15, 1, 30, tzinfo=dt.UTC),  # 09:30 in Shanghai
        movements=[
            Movement("debit", 35001, serial=S1.decode(), description="代发扣款", **debit),  # type: ignore[arg-type]
            Movement("debit", 50, serial=S2.decode(), description="代发扣款", **debit),  # type: ignore[arg-type]
        ],
    )
    assert rendered == GOLDEN


def test_nothing_booked_is_a_file_without_details() -> None:
    empty = file_of(header(count=0), trailer(0, 0))
    assert FMT.parse_account_notice(empty) == AccountNotice(message_id=f"ACT{SERIAL}01")


def test_bookings_are_grouped_by_bank_reference() -> None:
    """One entry per reference, in the order first seen; the other movements of the spec:
    a fee (D999, no item), a second booking of an item already debited, a correction."""
    data = file_of(
        header(count=5, debits=(4, 35001 + 50 + 7 + 35001), credits=(1, 3)),
        D1,
        detail(2, b"D", 7, b"FEE1", b"", b"D999", "手续费".encode("gb18030")),
        detail(3, b"D", 50, b"MB202603150000000007", S2, b"0000"),
        detail(4, b"D", 35001, b"MB202603150000000008", S1, b"0000"),
        detail(5, b"C", 3, b"ADJ1", b"", b"C999"),
        trailer(5, 35001 + 50 + 7 + 35001 + 3),
    )
    entries = FMT.parse_account_notice(data).entries
    assert [(e.bank_ref, e.direction, e.amount_fen, e.details) for e in entries] == [
        ("MB202603150000000007", "debit", 35051, ((S1.decode(), 35001), (S2.decode(), 50))),
        ("FEE1", "debit", 7, ()),
        ("MB202603150000000008", "debit", 35001, ((S1.decode(), 35001),)),
        ("ADJ1", "credit", 3, ()),
    ]
    assert [e.reason_code for e in entries] == ["", "", "", "C999"]


H2 = header(count=2, debits=(2, 35051))
T2 = trailer(2, 35051)
REJECT_CASES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "file is empty"),
    ("no final CRLF", GOLDEN[:-2], "does not end with CRLF"),
    ("BOM", b"\xef\xbb\xbf" + GOLDEN, "byte order mark"),
    ("only a header", file_of(H2), "fewer than two records"),
    ("short header", file_of(H2[:-1], D1, D2, T2), "line 1: movements header record is 191"),
    ("long detail", file_of(H2, D1 + b" ", D2, T2), "line 2: movements detail record is 193"),
    ("header type", file_of(b"X" + H2[1:], D1, D2, T2), "record type 'X'"),
    ("detail type", file_of(H2, b"T" + D1[1:], D2, T2), "line 2: record type 'T'"),
    ("trailer type", file_of(H2, D1, D2, D2), "line 4: record type 'D'"),
    ("version", file_of(header(count=2, debits=(2, 35051), version=b"FW02"), D1, D2, T2), "FW01"),
    (
        "header reserved",
        file_of(header(count=2, debits=(2, 35051), reserved=b"x" * 28), D1, D2, T2),
        "line 1: reserved",
    ),
    ("notice id", file_of(header(notice=b"act-1", count=0), trailer(0, 0)), "notice_id"),
    ("blank notice id", file_of(header(notice=b"", count=0), trailer(0, 0)), "notice_id"),
    ("batch serial", file_of(header(serial=b"short", count=0), trailer(0, 0)), "batch_serial"),
    ("file no 00", file_of(header(file_no=b"00", count=0), trailer(0, 0)), "file_no must be"),
    ("file no digits", file_of(header(file_no=b"1 ", count=0), trailer(0, 0)), "file_no must"),
    ("blank payer", file_of(header(payer=b"", count=0), trailer(0, 0)), "payer_account is empty"),
    (
        "created at",
        file_of(header(count=0, created=b"20260230093000"), trailer(0, 0)),
        "created_at '20260230093000' is not a valid timestamp",
    ),
    ("record count", file_of(header(count=3, debits=(2, 35051)), D1, D2, T2), "record_count"),
    ("debit count", file_of(header(count=2, debits=(1, 35051)), D1, D2, T2), "debit_count"),
    ("debit amount", file_of(header(count=2, debits=(2, 35050)), D1, D2, T2), "debit_fen"),
    (
        "credit totals",
        file_of(header(count=2, debits=(2, 35051), credits=(1, 1)), D1, D2, T2),
        "credit_count",
    ),
    ("trailer count", file_of(H2, D1, D2, trailer(3, 35051)), "trailer item_count is 3"),
    ("trailer total", file_of(H2, D1, D2, trailer(2, 1)), "trailer total_fen is 1"),
    ("no END", file_of(H2, D1, D2, T2[:28] + b"EDN" + T2[31:]), "end_marker"),
    (
        "sequence",
        file_of(H2, D1, detail(3, b"D", 50, b"MB202603150000000007", S2, b"0000"), T2),
        "line 3: sequence 3, expected 2",
    ),
    (
        "direction",
        file_of(H2, D1, detail(2, b"X", 50, b"R", S2, b"0000"), T2),
        "direction 'X', expected 'D' or 'C'",
    ),
    (
        "zero amount",
        file_of(
            header(count=2, debits=(2, 35001)),
            D1,
            detail(2, b"D", 0, b"R", S2, b"0000"),
            trailer(2, 35001),
        ),
        "line 3: amount_fen must be > 0",
    ),
    (
        "booking date",
        file_of(H2, D1, detail(2, b"D", 50, b"R", S2, b"0000", date=b"20261301"), T2),
        "booked_on '20261301' is not a valid date",
    ),
    ("blank ref", file_of(H2, D1, detail(2, b"D", 50, b"", S2, b"0000"), T2), "bank_ref is empty"),
    (
        "detail reserved",
        file_of(H2, D1, detail(2, b"D", 50, b"R", S2, b"0000", reserved=b"." * 38), T2),
        "line 3: reserved",
    ),
    ("unknown code", file_of(H2, D1, detail(2, b"D", 50, b"R", S2, b"E101"), T2), "'E101'"),
    ("return as debit", file_of(H2, D1, detail(2, b"D", 50, b"R", S2, b"R001"), T2), "'R001'"),
    (
        "payment as credit",
        file_of(
            header(count=2, debits=(1, 35001), credits=(1, 50)),
            D1,
            detail(2, b"C", 50, b"R", S2, b"0000"),
            T2,
        ),
        "'0000' is not a credit code",
    ),
    (
        "R000",
        file_of(
            header(count=1, credits=(1, 50)),
            detail(1, b"C", 50, b"R", S2, b"R000"),
            trailer(1, 50),
        ),
        "'R000'",
    ),
    ("payment of no item", file_of(H2, D1, detail(2, b"D", 50, b"R", b"", b"0000"), T2), "needs"),
    ("fee naming an item", file_of(H2, D1, detail(2, b"D", 50, b"R", S2, b"D999"), T2), "no item"),
    (
        "serial twice in a booking",
        file_of(H2, D1, detail(2, b"D", 50, b"MB202603150000000007", S1, b"0000"), T2),
        "repeats in booking",
    ),
    (
        "one reference, two dates",
        file_of(
            H2, D1, detail(2, b"D", 50, b"MB202603150000000007", S2, b"0000", date=b"20260316"), T2
        ),
        "another direction, booking date or reason code",
    ),
    (
        "one reference, two directions",
        file_of(
            header(count=2, debits=(1, 35001), credits=(1, 50)),
            D1,
            detail(2, b"C", 50, b"MB202603150000000007", S2, b"R001"),
            T2,
        ),
        "another direction",
    ),
    (
        "bad GB18030",
        file_of(H2, D1, detail(2, b"D", 50, b"R", S2, b"0000", b"\x81\x20"), T2),
        "line 3: description is not valid GB18030",
    ),
    (
        "split character",
        file_of(H2, D1, detail(2, b"D", 50, b"R", S2, b"0000", DKKK[:-1]), T2),
        "description is not valid GB18030",
    ),
    (
        "control character",
        file_of(H2, D1, detail(2, b"D", 50, b"R", b"S\t2", b"0000"), T2),
        "serial contains a control character",
    ),
    ("bare LF", GOLDEN.replace(CRLF, b"\n", 1), "record is"),
]


@pytest.mark.parametrize(
    ("data", "message"), [c[1:] for c in REJECT_CASES], ids=[c[0] for c in REJECT_CASES]
)
def test_parse_rejects(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        FMT.parse_account_notice(data)


def test_errors_never_show_the_payer_account() -> None:
    bad = file_of(header(count=1, debits=(1, 1)), D1, trailer(1, 35001))
    with pytest.raises(FormatError) as caught:
        FMT.parse_account_notice(bad)
    assert PAYER.decode() not in str(caught.value)


# --- properties ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1200))
def test_any_bytes_parse_or_raise_format_error(data: bytes) -> None:
    try:
        notice = FMT.parse_account_notice(data)
    except FormatError:
        return
    assert isinstance(notice, AccountNotice)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=len(GOLDEN) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=6,
    )
)
def test_corrupted_files_parse_or_raise_format_error(flips: list[tuple[int, int]]) -> None:
    """Near misses of a valid file (bytes changed in place) reach every check."""
    data = bytearray(GOLDEN)
    for at, value in flips:
        data[at] = value
    try:
        notice = FMT.parse_account_notice(bytes(data))
    except FormatError:
        return
    # what still parses still ties out: every entry covers its itemised details
    assert all(e.amount_fen >= sum(fen for _, fen in e.details) for e in notice.entries)


@st.composite
def movements(draw: st.DrawFn) -> list[Movement]:
    out: list[Movement] = []
    refs = ["MB1", "MB2", "FEE", "ADJ"]
    used: set[tuple[str, str]] = set()
    for _ in range(draw(st.integers(min_value=0, max_value=12))):
        ref = draw(st.sampled_from(refs))
        direction, code = {
            "MB1": ("debit", "0000"),
            "MB2": ("credit", "R002"),
            "FEE": ("debit", "D999"),
            "ADJ": ("credit", "C999"),
        }[ref]
        serial = (
            "" if ref in {"FEE", "ADJ"} else draw(st.from_regex(r"[0-9A-Z]{1,24}", fullmatch=True))
        )
        if serial and (ref, serial) in used:
            continue
        used.add((ref, serial))
        out.append(
            Movement(
                direction,  # type: ignore[arg-type]
                draw(st.integers(min_value=1, max_value=10**13)),
                DAY,
                ref,
                serial,
                code,
                draw(
                    st.text(
                        st.characters(codec="gb18030", exclude_categories=("Cc", "Cs")), max_size=40
                    )
                ),
            )
        )
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(movements())
def test_round_trip_conserves_every_fen(moves: list[Movement]) -> None:
    data = FMT.render_account_notice(
        notice_id="N1",
        batch_serial=SERIAL,
        file_no=3,
        payer_account=PAYER.decode(),
        created_at=dt.datetime(2026, 3, 15, 9, 30),
        movements=moves,
    )
    notice = FMT.parse_account_notice(data)
    for direction in ("debit", "credit"):
        assert sum(e.amount_fen for e in notice.entries if e.direction == direction) == sum(
            m.amount_fen for m in moves if m.direction == direction
        )
    itemised = sorted((s, f) for e in notice.entries for s, f in e.details)
    assert itemised == sorted((m.serial, m.amount_fen) for m in moves if m.serial)
    assert all(e.batch_serial == SERIAL and e.file_no == 3 for e in notice.entries)
