"""The mock bank's account movements (``GET /openapi/v1/accounts/{account}/movements``,
``docs/formats/openapi-v1.md``) against a plain httpx client: signed like every answer,
a debit per credited item and a credit per return, paged with a cursor, strict about its
query, and the account faults (a missing or double debit, a return shown on the account
only)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx

from mock_bank.server import MockBank
from tests.mock_bank import test_mock_bank_api as base
from tests.mock_bank.test_mock_bank_api import (
    FAULT,
    ITEMS,
    SERIAL,
    Gateway,
    Setup,
    completed,
    disbursement,
)
from tests.waits import wait_until

# the open API tests' fixtures: a throwaway PKI, the bank's setup, started banks
pki = base.pki
setup = base.setup
run_bank = base.run_bank

ACCOUNT = "43001700062050500001"
ENTRY_KEYS = {
    "entry_id",
    "booked_at",
    "direction",
    "amount_fen",
    "bank_ref",
    "batch_serial",
    "file_no",
    "item_serial",
    "reason_code",
}


def today() -> str:
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date().isoformat()


def movements(gw: Gateway, query: str, account: str = ACCOUNT) -> httpx.Response:
    # the signature covers the path with its query exactly as sent (Gateway.send checks it)
    return gw.send("GET", f"/openapi/v1/accounts/{account}/movements?{query}")


def all_entries(gw: Gateway, day: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    query = f"date={day}"
    while True:
        page = movements(gw, query)
        assert page.status_code == 200, page.text
        doc = page.json()
        out += doc["entries"]
        if not doc["has_more"]:
            return out
        query = f"date={day}&cursor={doc['next_cursor']}"


def test_a_debit_per_credited_item_paged_with_a_cursor(setup: Setup, run_bank: Any) -> None:
    bank = run_bank(setup.config(api_extra="movements_page_size = 1\n"))
    gw = setup.gateway(bank)
    empty = movements(gw, f"date={today()}").json()
    assert empty == {
        "account": ACCOUNT,
        "date": today(),
        "entries": [],
        "next_cursor": "",
        "has_more": False,
    }
    assert gw.submit(disbursement()).status_code == 202
    done = {i["serial"]: i for i in completed(gw)["items"]}
    first = movements(gw, f"date={today()}").json()
    assert first["has_more"] is True and len(first["entries"]) == 1
    entries = all_entries(gw, today())
    paid = [s for s, *_ in ITEMS if done[s]["status"] == "paid"]
    assert [e["item_serial"] for e in entries] == paid  # the closed account books nothing
    for e in entries:
        assert set(e) == ENTRY_KEYS
        assert e["direction"] == "debit" and e["reason_code"] == ""
        assert (e["batch_serial"], e["file_no"]) == (SERIAL, 1)
        assert e["amount_fen"] == done[e["item_serial"]]["amount_fen"]
        assert e["bank_ref"] == done[e["item_serial"]]["bank_ref"]
        assert re.fullmatch(r"MV\d{8}\d{8}", e["entry_id"])
        assert e["booked_at"].startswith(today()) and e["booked_at"].endswith("+08:00")
    assert len({e["entry_id"] for e in entries}) == len(entries)
    # read to the end: the last cursor gives nothing more, and is given back
    last = movements(gw, f"date={today()}&cursor={first['next_cursor']}").json()
    tail = movements(gw, f"date={today()}&cursor={last['next_cursor']}").json()
    assert tail["entries"] == [] and tail["has_more"] is False
    assert tail["next_cursor"] == last["next_cursor"]
    # another day has nothing
    assert movements(gw, "date=2001-01-01").json()["entries"] == []


def test_the_query_is_strict(setup: Setup, run_bank: Any) -> None:
    bank = run_bank(setup.config())
    gw = setup.gateway(bank)
    for query in (
        "",
        "date=2026-13-01",
        "date=20261128",
        f"date={today()}&date={today()}",
        f"date={today()}&cursor=nope",
        f"date={today()}&page=2",
    ):
        answer = movements(gw, query)
        assert (answer.status_code, answer.json()["code"]) == (400, "INVALID_REQUEST"), query
    unknown = movements(gw, f"date={today()}", account="43001700062050509999")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "ACCOUNT_UNKNOWN")
    post = gw.send("POST", f"/openapi/v1/accounts/{ACCOUNT}/movements?date={today()}")
    assert post.status_code == 405
    # unsigned: refused like every request
    with httpx.Client(verify=gw.context, trust_env=False) as client:
        bare = client.get(f"{gw.base}/openapi/v1/accounts/{ACCOUNT}/movements?date={today()}")
    assert bare.status_code == 401


def _faulty(setup: Setup, run_bank: Any, kind: str) -> tuple[MockBank, Gateway]:
    bank = run_bank(setup.config(faults=FAULT.format(kind=kind)))
    gw = setup.gateway(bank)
    assert gw.submit(disbursement()).status_code == 202
    completed(gw)
    return bank, gw


def test_fault_movement_missing_debit(setup: Setup, run_bank: Any) -> None:
    bank, gw = _faulty(setup, run_bank, "movement_missing_debit")
    paid = [i for i in gw.inquire().json()["items"] if i["status"] == "paid"]
    entries = all_entries(gw, today())
    assert len(paid) == 2 and len(entries) == 1  # reported paid, not debited
    assert bank.ledger.summary()["credits"] == 2


def test_fault_movement_double_debit(setup: Setup, run_bank: Any) -> None:
    _bank, gw = _faulty(setup, run_bank, "movement_double_debit")
    entries = all_entries(gw, today())
    serials = [e["item_serial"] for e in entries]
    assert len(entries) == 3 and serials[0] == serials[1]
    assert entries[0]["entry_id"] != entries[1]["entry_id"]


def test_returns_are_credits_announced_or_silent(setup: Setup, run_bank: Any) -> None:
    for kind, status in (("bounce_after_paid", "returned"), ("silent_return", "paid")):
        setup.tmp = setup.tmp / kind
        setup.tmp.mkdir()
        bank, gw = _faulty(setup, run_bank, kind)

        def credited(gw: Gateway = gw) -> list[dict[str, Any]]:
            return [e for e in all_entries(gw, today()) if e["direction"] == "credit"]

        [credit] = wait_until(credited, what=f"the {kind} credit")
        assert credit["reason_code"] == "R001" and credit["batch_serial"] == SERIAL
        item = {i["serial"]: i for i in gw.inquire().json()["items"]}[credit["item_serial"]]
        assert item["status"] == status and item["amount_fen"] == credit["amount_fen"]
        assert bank.ledger.summary()["returned"] == 1
        if kind == "silent_return":
            assert [e.event for e in bank.api.bank.store.events()] == ["disbursement.completed"]
