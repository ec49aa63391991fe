"""The gateway's parser of the account-movements answer (``openapi-v1``, issue 12): a valid
page gives its entries; anything else — any bytes, any JSON, a valid page with one value
broken — gives a clean ``FormatError``, never another exception."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.api.documents import MAX_MOVEMENTS_PER_PAGE, parse_movements
from gateway.ports import FormatError, MovementsPage

ACCOUNT = "43001700062050500001"
DAY = dt.date(2026, 11, 28)
SERIAL = "26112896XZZYYPH7"


def entry(n: int, **over: Any) -> dict[str, Any]:
    e: dict[str, Any] = {
        "entry_id": f"MV20261128{n:08d}",
        "booked_at": "2026-11-28T10:00:00+08:00",
        "direction": "debit",
        "amount_fen": 35000 + n,
        "bank_ref": f"MB20261128{n:010d}",
        "batch_serial": SERIAL,
        "file_no": 1,
        "item_serial": f"{SERIAL}{n:08d}",
        "reason_code": "",
    }
    e.update(over)
    return e


def page(entries: list[dict[str, Any]] | None = None, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "account": ACCOUNT,
        "date": DAY.isoformat(),
        "entries": [entry(1), entry(2)] if entries is None else entries,
        "next_cursor": "M00000000000000000002",
        "has_more": False,
    }
    doc.update(over)
    return doc


def parse(doc: Any) -> MovementsPage:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc, ensure_ascii=False).encode()
    return parse_movements(raw, ACCOUNT, DAY)


def test_a_valid_page() -> None:
    ret = entry(3, direction="credit", reason_code="R001", booked_at="2026-11-28T02:00:00+00:00")
    bare = entry(4, batch_serial=None, file_no=None, item_serial=None)
    got = parse(page([entry(1), ret, bare]))
    assert got.next_cursor == "M00000000000000000002" and not got.has_more
    one, back, other = got.entries
    assert (one.direction, one.amount_fen, one.entry_id) == ("debit", 35001, "MV2026112800000001")
    assert one.details == ((f"{SERIAL}00000001", 35001),) and one.batch_serial == SERIAL
    assert one.booked_on == DAY and one.account == ACCOUNT and one.file_no == 1
    assert (back.direction, back.reason_code) == ("credit", "R001")
    assert other.details == () and other.batch_serial is None
    empty = parse(page([], next_cursor=""))
    assert empty.entries == () and empty.next_cursor == ""


@pytest.mark.parametrize(
    "doc",
    [
        page(account="43001700062050500002"),
        page(date="2026-11-29"),
        page(has_more=1),
        page(has_more=True, entries=[]),
        page(next_cursor=""),
        page(next_cursor="a b"),
        page(extra=1),
        page([entry(1), entry(1)]),  # an entry id twice
        page([entry(1, booked_at="2026-11-28T23:30:00+00:00")]),  # 29th in Shanghai
        page([entry(1, booked_at="9999-12-31T23:59:59-23:59")]),  # beyond any date
        page([entry(1, booked_at="0001-01-01T00:00:00+23:59")]),
        page([entry(1, booked_at="2026-11-28T10:00:00+25:00")]),
        page([entry(1, direction="DBIT")]),
        page([entry(1, amount_fen=0)]),
        page([entry(1, amount_fen=1.0)]),
        page([entry(1, amount_fen=True)]),
        page([entry(1, item_serial="26112896XZZYYPH800000001")]),  # another batch's item
        page([entry(1, batch_serial=None)]),  # an item without its batch
        page([entry(1, item_serial=None, batch_serial=None)]),  # a file number alone
        page([entry(1, file_no=100)]),
        page([entry(1, reason_code="R001")]),  # a debit with a return code
        page([entry(1, entry_id="")]),
        page([{k: v for k, v in entry(1).items() if k != "bank_ref"}]),
        page([entry(1, note="x")]),
        page([entry(n) for n in range(1, MAX_MOVEMENTS_PER_PAGE + 2)]),
        [page()],
        b'{"account": "1", "account": "1"}',
        b"\xff",
    ],
)
def test_a_broken_page_is_refused_whole(doc: Any) -> None:
    with pytest.raises(FormatError):
        parse(doc)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)


def _check(raw: bytes) -> None:
    try:
        got = parse_movements(raw, ACCOUNT, DAY)
    except FormatError:
        return
    assert isinstance(got, MovementsPage)
    assert len(got.entries) <= MAX_MOVEMENTS_PER_PAGE
    assert all(e.amount_fen >= 1 and e.booked_on == DAY for e in got.entries)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=2048))
def test_any_bytes_give_entries_or_a_format_error(raw: bytes) -> None:
    _check(raw)


@settings(max_examples=300, deadline=None)
@given(value=_json)
def test_any_json_gives_entries_or_a_format_error(value: Any) -> None:
    _check(json.dumps(value).encode())


_FIELDS = [*sorted(entry(1)), "account", "date", "next_cursor", "has_more"]


@settings(max_examples=400, deadline=None)
@given(field=st.sampled_from(_FIELDS), value=_json | st.text(max_size=70))
def test_a_valid_page_with_any_value_changed(field: str, value: Any) -> None:
    doc = page()
    if field in doc:
        doc[field] = value
    else:
        doc["entries"][0][field] = value
    _check(json.dumps(doc, ensure_ascii=False).encode())
