"""The fixed-width bank's account movements files (``ACT_…txt``): written for every accepted
request file before its result, one debit booking for the items it credited, a credit file
for each 退票, the movement faults — checked on local directories with by-offset parsing
(``helpers.parse_movements``), independently of ``mock_bank.fileformat``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mock_bank import outbound
from mock_bank.faults import FaultRule, FaultSchedule
from mock_bank.processor import Processor
from mock_bank.rules import Rule
from tests.mock_bank.test_mock_bank_processor import NOW, Bank

SERIAL = "2026031500000001"


@pytest.fixture
def make_bank(tmp_path: Path, keys: Any, helpers: Any) -> Callable[..., Bank]:
    def make(**kwargs: Any) -> Bank:
        kwargs.setdefault("result_delay_seconds", 0.0)
        return Bank(tmp_path / "bank", keys, helpers, **kwargs)

    return make


def movements(bank: Bank, name: str) -> dict[str, Any]:
    data = (bank.outbox / name).read_bytes()
    sig = (bank.outbox / f"{name}.sig").read_bytes()
    assert bank.h.check_detached(data, sig, bank.keys.bank.public_key()) == "mockbank-test"
    parsed: dict[str, Any] = bank.h.parse_movements(data)
    return parsed


def test_accepted_file_books_one_debit_for_its_credits(
    make_bank: Callable[..., Bank], helpers: Any, sample_items: Any
) -> None:
    # the second item fails (a rule): only the two credits are debited
    bank = make_bank(rules=[Rule(account_suffix="0002", code="E103")])
    written: list[str] = []
    publish = bank.processor._publish

    def spy(name: str, data: bytes) -> None:
        written.append(name)
        publish(name, data)

    bank.processor._publish = spy  # type: ignore[method-assign]
    name = bank.drop(helpers.build_request(sample_items))
    assert bank.processor.tick() == [name]
    act, ret = f"ACT_{SERIAL}_01.txt", f"RET_{SERIAL}_01.txt"
    # signature first, and the movements before the result
    assert written == [f"{act}.sig", act, f"{ret}.sig", ret]
    booked = movements(bank, act)
    assert booked["notice_id"] == f"ACT{SERIAL}01"
    assert (booked["serial"], booked["file_no"]) == (SERIAL, 1)
    assert booked["payer_account"] == "43062100000000000001"  # the request header's
    assert booked["created_at"] == "20260315140509"
    assert (booked["record_count"], booked["debit_count"], booked["debit_amount"]) == (
        2,
        2,
        12345 + 7,
    )
    assert (booked["credit_count"], booked["credit_amount"]) == (0, 0)
    assert (booked["trailer_count"], booked["trailer_total"]) == (2, 12345 + 7)
    entries = booked["entries"]
    assert [(e["seq"], e["direction"], e["serial"], e["amount"], e["code"]) for e in entries] == [
        (1, "D", sample_items[0].serial, 12345, "0000"),
        (2, "D", sample_items[2].serial, 7, "0000"),
    ]
    assert {e["description"] for e in entries} == {"代发扣款"}
    assert {e["date"] for e in entries} == {"20260315"}
    # one booking: a reference of its own, not an item's credit reference
    [ref] = {e["bank_ref"] for e in entries}
    paid_refs = {i["bank_ref"] for i in bank.result(name)["items"] if i["status"] == "S"}
    assert ref.startswith("MB20260315") and ref not in paid_refs


def test_nothing_credited_books_nothing_and_a_rejected_file_has_no_movements(
    make_bank: Callable[..., Bank], helpers: Any, sample_items: Any
) -> None:
    bank = make_bank()
    first = bank.drop(helpers.build_request(sample_items))
    # the same items again: the bank repeats its earlier answer and moves no money
    again = bank.drop(
        helpers.build_request(sample_items, file_no=2), helpers.request_name(file_no=2)
    )
    bad = bank.drop(b"not a request file\r\n", helpers.request_name(file_no=3))
    assert bank.processor.tick() == [first, again, bad]
    assert [i["status"] for i in bank.result(again)["items"]] == ["S"] * 3
    repeat = movements(bank, f"ACT_{SERIAL}_02.txt")
    assert (repeat["record_count"], repeat["entries"], repeat["trailer_total"]) == (0, [], 0)
    assert bank.result(bad)["status"] == "R"
    assert not (bank.outbox / f"ACT_{SERIAL}_03.txt").exists()


def test_movements_decided_before_a_stop_are_written_after_restart(
    make_bank: Callable[..., Bank], helpers: Any, sample_items: Any
) -> None:
    bank = make_bank(result_delay_seconds=60.0)
    bank.drop(helpers.build_request(sample_items))
    bank.processor.tick()
    assert list(bank.outbox.iterdir()) == []
    restarted: Processor = bank.new_processor()
    restarted.tick()
    assert movements(bank, f"ACT_{SERIAL}_01.txt")["debit_count"] == 3
    assert outbound.outbound_files(bank.ledger)[0][1] is not None  # marked written


def test_return_books_a_credit_naming_the_item(
    make_bank: Callable[..., Bank], helpers: Any, sample_items: Any
) -> None:
    faults = FaultSchedule(1, [FaultRule("bounce_after_paid", nth=(3,))], bounce_after_seconds=5)
    bank = make_bank(faults=faults)
    name = bank.drop(helpers.build_request(sample_items))
    bank.processor.tick()
    returned = f"ACT_{SERIAL}_01_R1.txt"
    assert not (bank.outbox / returned).exists()  # not before its delay
    bank.clock.now += 5
    bank.processor.tick()
    back = movements(bank, returned)
    assert back["notice_id"] == f"ACT{SERIAL}01R1"
    assert (back["debit_count"], back["credit_count"], back["credit_amount"]) == (0, 1, 7)
    [entry] = back["entries"]
    assert (entry["direction"], entry["serial"], entry["amount"], entry["code"]) == (
        "C",
        sample_items[2].serial,
        7,
        "R001",
    )
    assert entry["description"] == "退票" and entry["date"] == NOW.strftime("%Y%m%d")
    # the original debit stays as it was; the result file still says paid
    assert movements(bank, f"ACT_{SERIAL}_01.txt")["debit_amount"] == 12345 + 50000 + 7
    assert [i["status"] for i in bank.result(name)["items"]] == ["S"] * 3
    [(notice, _)] = [
        (r.notice_name, r.reversal_id) for r in outbound.all_returns(bank.ledger) if r.reversal_id
    ]
    assert notice == returned


def test_movement_faults_miss_or_double_a_debit(
    make_bank: Callable[..., Bank], helpers: Any, sample_items: Any
) -> None:
    faults = FaultSchedule(
        1,
        [
            FaultRule("movement_missing_debit", nth=(1,)),
            FaultRule("movement_double_debit", nth=(2,)),
        ],
    )
    bank = make_bank(faults=faults)
    name = bank.drop(helpers.build_request(sample_items))
    bank.processor.tick()
    assert [i["status"] for i in bank.result(name)["items"]] == ["S"] * 3  # all paid
    booked = movements(bank, f"ACT_{SERIAL}_01.txt")
    # the first item's debit is missing; the third (2nd reach of the double hook) is
    # booked twice, the second time under a reference of its own
    assert [(e["serial"], e["amount"]) for e in booked["entries"]] == [
        (sample_items[1].serial, 50000),
        (sample_items[2].serial, 7),
        (sample_items[2].serial, 7),
    ]
    refs = [e["bank_ref"] for e in booked["entries"]]
    assert refs[0] == refs[1] != refs[2]
    assert (booked["debit_count"], booked["debit_amount"]) == (3, 50014)
    assert bank.ledger.summary()["credits"] == 3
