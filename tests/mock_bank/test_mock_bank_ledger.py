"""The bank's ledger, above all the double-credit count."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from mock_bank.ledger import Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.sqlite3")


def credit(
    ledger: Ledger,
    serial: str,
    account: str,
    code: str = "NY01",
    period: str = "2026",
    amount: int = 100,
) -> str:
    with ledger.begin() as txn:
        ref = txn.next_bank_ref(date(2026, 3, 15))
        txn.add_credit(
            item_serial=serial,
            account_no=account,
            amount_fen=amount,
            subsidy_code=code,
            period=period,
            batch_serial="B",
            file_name="F",
            bank_ref=ref,
            credited_at="2026-03-15T10:00:00+08:00",
        )
    return ref


def test_empty_summary(ledger: Ledger) -> None:
    assert ledger.summary() == {
        "credits": 0,
        "double_credits": 0,
        "amount_credited_fen": 0,
        "files_processed": 0,
        "files_rejected": 0,
        "returned": 0,
    }


def test_distinct_credits_are_not_double(ledger: Ledger) -> None:
    credit(ledger, "s1", "a1")
    credit(ledger, "s2", "a2")
    credit(ledger, "s3", "a1", period="2027")
    credit(ledger, "s4", "a1", code="NY02")
    summary = ledger.summary()
    assert (summary["credits"], summary["double_credits"]) == (4, 0)
    assert summary["amount_credited_fen"] == 400


@pytest.mark.parametrize(
    ("credits", "expected"),
    [
        ([("s1", "a1"), ("s1", "a2")], 1),  # same serial
        ([("s1", "a1"), ("s2", "a1")], 1),  # same payee and period
        ([("s1", "a1"), ("s1", "a1")], 1),  # both keys: counted once
        ([("s1", "a1"), ("s1", "a1"), ("s1", "a1")], 2),  # count - 1
        ([("s1", "a1"), ("s2", "a1"), ("s2", "a2")], 2),  # a chain: B by payee, C by serial
        ([("s1", "a1"), ("s2", "a2"), ("s1", "a2")], 1),  # C repeats both A's serial and B's
        # payee: one extra credit
    ],
)
def test_double_credits(ledger: Ledger, credits: list[tuple[str, str]], expected: int) -> None:
    for serial, account in credits:
        credit(ledger, serial, account)
    assert ledger.summary()["double_credits"] == expected


def test_bank_refs_are_unique_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    first = Ledger(path)
    refs = {credit(first, f"s{i}", f"a{i}") for i in range(3)}
    first.close()
    again = Ledger(path)
    refs.add(credit(again, "s9", "a9"))
    assert len(refs) == 4
    assert all(r.startswith("MB20260315") and len(r) == 20 for r in refs)
    assert [c.item_serial for c in again.credits()] == ["s0", "s1", "s2", "s9"]


def test_transaction_rolls_back(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError), ledger.begin() as txn:
        txn.add_credit(
            item_serial="s",
            account_no="a",
            amount_fen=1,
            subsidy_code="c",
            period="p",
            batch_serial="b",
            file_name="f",
            bank_ref="r",
            credited_at="t",
        )
        raise RuntimeError("boom")
    assert ledger.credits() == []
    with pytest.raises(ValueError), ledger.begin() as txn:
        txn.add_credit(
            item_serial="s",
            account_no="a",
            amount_fen=0,
            subsidy_code="c",
            period="p",
            batch_serial="b",
            file_name="f",
            bank_ref="r",
            credited_at="t",
        )


def test_files_counted(ledger: Ledger) -> None:
    for name, status in [("PAY_A_01.txt", "accepted"), ("PAY_A_02.txt", "rejected")]:
        with ledger.begin() as txn:
            txn.add_request_file(
                name=name,
                sha256="0" * 64,
                batch_serial="A",
                file_no=1,
                status=status,  # type: ignore[arg-type]
                processed_at="t",
                result_name="RET",
                result_bytes=b"r",
                result_sig=b"s",
            )
    summary = ledger.summary()
    assert (summary["files_processed"], summary["files_rejected"]) == (2, 1)
    assert ledger.processed_names() == {"PAY_A_01.txt", "PAY_A_02.txt"}
    assert len(ledger.pending_results()) == 2
    ledger.mark_result_written("PAY_A_01.txt", "t2")
    assert [p.request_name for p in ledger.pending_results()] == ["PAY_A_02.txt"]
