"""The processor on local directories (no SFTP): signatures, decisions, ledger, dedupe,
delays and results, checked with hand-built request files and by-offset result parsing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from mock_bank.accounts import Account, AccountRegistry
from mock_bank.ledger import Ledger
from mock_bank.processor import SHANGHAI, Processor
from mock_bank.rules import Rule

NOW = datetime(2026, 3, 15, 14, 5, 9, tzinfo=SHANGHAI)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Bank:
    """A processor over tmp directories, with helpers to drop and read files."""

    def __init__(self, root: Path, keys: Any, helpers: Any, **kwargs: Any) -> None:
        self.root = root
        self.h = helpers
        self.keys = keys
        self.inbox = root / "sftp" / "inbox"
        self.outbox = root / "sftp" / "outbox"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.outbox.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger(root / "ledger.sqlite3")
        self.clock = FakeMonotonic()
        self.kwargs = kwargs
        self.processor = self.new_processor()

    def new_processor(self) -> Processor:
        return Processor(
            ledger=self.ledger,
            inbox=self.inbox,
            outbox=self.outbox,
            bank_key=self.keys.bank,
            bank_key_id="mockbank-test",
            gateway_public_key=self.keys.gateway.public_key(),
            clock=lambda: NOW,
            monotonic=self.clock,
            **self.kwargs,
        )

    def drop(self, data: bytes, name: str | None = None, sig: bytes | None = None) -> str:
        name = name or self.h.request_name()
        sig_bytes = sig if sig is not None else self.h.sign_detached(data, self.keys.gateway)
        (self.inbox / f"{name}.sig").write_bytes(sig_bytes)
        (self.inbox / name).write_bytes(data)
        return name

    def result(self, name: str) -> dict[str, Any]:
        ret = name.replace("PAY_", "RET_")
        data = (self.outbox / ret).read_bytes()
        sig = (self.outbox / f"{ret}.sig").read_bytes()
        assert self.h.check_detached(data, sig, self.keys.bank.public_key()) == "mockbank-test"
        parsed: dict[str, Any] = self.h.parse_result(data)
        return parsed


@pytest.fixture
def make_bank(tmp_path: Path, keys: Any, helpers: Any) -> Callable[..., Bank]:
    def make(**kwargs: Any) -> Bank:
        kwargs.setdefault("result_delay_seconds", 0.0)
        return Bank(tmp_path / "bank", keys, helpers, **kwargs)

    return make


def test_accepted_file_with_registry(make_bank: Callable[..., Bank], helpers: Any) -> None:
    item = helpers.Item
    registry = AccountRegistry(
        [
            Account("6217000000000001", "王䶮", "430621198001010011", "active"),
            Account("6217000000000002", "李𬎆", "43062119800101002X", "frozen"),
            Account("6217000000000003", "阿依古丽·买买提", "430621198001010038", "active"),
            Account("6217000000000005", "赵六", "430621198001010054", "closed"),
            Account("6217000000000006", "钱七", "430621198001010062", "active"),
        ]
    )
    items = [
        item("S0000000000000000000001", "6217000000000001", "王䶮", "430621198001010011", 12345),
        item("S0000000000000000000002", "6217000000000002", "李𬎆", "43062119800101002X", 500),
        item(
            "S0000000000000000000003",
            "6217000000000003",
            "阿依古丽·买买提",
            "430621198001010038",
            7,
        ),
        item("S0000000000000000000004", "6217000000000004", "孙八", "430621198001010046", 9),
        item("S0000000000000000000005", "6217000000000005", "赵六", "430621198001010054", 11),
        item("S0000000000000000000006", "6217000000000006", "钱柒", "430621198001010062", 13),
        item("S0000000000000000000007", "6217000000000006", "钱七", "430621198001010070", 17),
    ]
    bank = make_bank(registry=registry)
    name = bank.drop(helpers.build_request(items))
    assert bank.processor.tick() == [name]

    result = bank.result(name)
    assert (result["status"], result["reject_code"], result["serial"]) == ("A", "", helpers.SERIAL)
    codes = [(i["seq"], i["status"], i["code"], i["message"]) for i in result["items"]]
    assert codes == [
        (1, "S", "0000", "成功"),
        (2, "F", "E103", "账户冻结"),
        (3, "S", "0000", "成功"),
        (4, "F", "E101", "账户不存在"),
        (5, "F", "E104", "账户已销户"),
        (6, "F", "E102", "户名不符"),
        (7, "F", "E105", "证件号码不符"),
    ]
    assert (result["paid_count"], result["paid_amount"]) == (2, 12352)
    assert (result["failed_count"], result["failed_amount"]) == (5, 550)
    assert result["item_count"] == result["trailer_count"] == 7
    assert result["trailer_total"] == 12352 + 550
    assert result["date"] == "20260315"
    assert all(i["processed_at"] == "20260315140509" for i in result["items"])
    paid_refs = [i["bank_ref"] for i in result["items"] if i["status"] == "S"]
    assert all(ref.startswith("MB20260315") for ref in paid_refs) and len(set(paid_refs)) == 2
    assert all(i["bank_ref"] == "" for i in result["items"] if i["status"] == "F")

    credits = bank.ledger.credits()
    assert [(c.item_serial, c.amount_fen, c.subsidy_code, c.period) for c in credits] == [
        ("S0000000000000000000001", 12345, "NY0001", "2026"),
        ("S0000000000000000000003", 7, "NY0001", "2026"),
    ]
    assert [c.bank_ref for c in credits] == paid_refs
    assert bank.ledger.summary() == {
        "credits": 2,
        "double_credits": 0,
        "amount_credited_fen": 12352,
        "files_processed": 1,
        "files_rejected": 0,
        "returned": 0,
    }
    assert not [p for p in bank.outbox.iterdir() if p.name.startswith(".")]


def test_rules_force_outcomes_without_accounts(
    make_bank: Callable[..., Bank], helpers: Any, sample_items: Any
) -> None:
    bank = make_bank(rules=(Rule("0002", "E103"), Rule("0003", "E199", amount_fen=7)))
    name = bank.drop(helpers.build_request(sample_items))
    bank.processor.tick()
    assert [i["code"] for i in bank.result(name)["items"]] == ["0000", "E103", "E199"]


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("bad signature", "F001"),
        ("sha mismatch", "F001"),
        ("garbage sig", "F001"),
        ("bad totals", "F002"),
        ("header serial differs from name", "F002"),
    ],
)
def test_rejected_files(
    make_bank: Callable[..., Bank], helpers: Any, keys: Any, sample_items: Any, case: str, code: str
) -> None:
    bank = make_bank()
    data = helpers.build_request(sample_items)
    sig = None
    if case == "bad signature":
        sig = helpers.sign_detached(data, keys.bank)
    elif case == "sha mismatch":
        sig = helpers.sign_detached(data + b"x", keys.gateway)
    elif case == "garbage sig":
        sig = b"hello\n"
    elif case == "bad totals":
        records = data[:-2].split(b"\r\n")
        records[-1] = records[-1][:10] + b"000000000000000001" + records[-1][28:]
        data = b"".join(r + b"\r\n" for r in records)
    name = helpers.request_name()
    if case == "header serial differs from name":
        name = helpers.request_name(serial="2026031500000009")
    bank.drop(data, name=name, sig=sig)
    assert bank.processor.tick() == [name]
    result = bank.result(name)
    assert (result["status"], result["reject_code"], result["items"]) == ("R", code, [])
    assert (result["item_count"], result["trailer_count"], result["trailer_total"]) == (0, 0, 0)
    assert result["serial"] == name[4:20]
    summary = bank.ledger.summary()
    assert (summary["credits"], summary["files_processed"], summary["files_rejected"]) == (0, 1, 1)


def test_takes_only_complete_final_named_files(
    make_bank: Callable[..., Bank], helpers: Any, sample_items: Any, keys: Any
) -> None:
    bank = make_bank()
    data = helpers.build_request(sample_items)
    name = helpers.request_name()
    (bank.inbox / name).write_bytes(data)  # no .sig yet
    (bank.inbox / f".{name}.part").write_bytes(data)
    (bank.inbox / "PAY_bad_name.txt").write_bytes(data)
    (bank.inbox / "PAY_bad_name.txt.sig").write_bytes(b"")
    assert bank.processor.tick() == []
    (bank.inbox / f"{name}.sig").write_bytes(helpers.sign_detached(data, keys.gateway))
    assert bank.processor.tick() == [name]
    # the same name again (even with new content) is not processed again
    (bank.inbox / name).write_bytes(data.replace(b"NY0001", b"NY0002"))
    assert bank.processor.tick() == []
    assert bank.new_processor().tick() == []  # nor after a restart
    assert bank.ledger.summary()["files_processed"] == 1
    assert (bank.inbox / name).exists()  # processed files stay in /inbox


def test_dedupe_by_serial(make_bank: Callable[..., Bank], helpers: Any, sample_items: Any) -> None:
    bank = make_bank(dedupe_by_serial=True)
    first = bank.drop(helpers.build_request(sample_items))
    second = bank.drop(
        helpers.build_request(sample_items, file_no=2), name=helpers.request_name(file_no=2)
    )
    assert bank.processor.tick() == [first, second]
    one, two = bank.result(first), bank.result(second)
    assert [i["bank_ref"] for i in one["items"]] == [i["bank_ref"] for i in two["items"]]
    assert all(i["status"] == "S" for i in two["items"])
    assert bank.ledger.summary()["credits"] == 3
    assert bank.ledger.summary()["double_credits"] == 0
    assert [r.repeated for r in bank.ledger.item_results(second)] == [True] * 3


def test_no_dedupe_pays_again(
    make_bank: Callable[..., Bank], helpers: Any, sample_items: Any
) -> None:
    bank = make_bank(dedupe_by_serial=False)
    bank.drop(helpers.build_request(sample_items))
    bank.drop(helpers.build_request(sample_items, file_no=2), name=helpers.request_name(file_no=2))
    bank.processor.tick()
    summary = bank.ledger.summary()
    assert (summary["credits"], summary["double_credits"]) == (6, 3)
    assert summary["amount_credited_fen"] == 2 * sum(i.amount for i in sample_items)


def test_dedupe_does_not_repeat_failures(
    make_bank: Callable[..., Bank], helpers: Any, sample_items: Any
) -> None:
    """A failed serial is decided again when it comes again (e.g. after a correction)."""
    bank = make_bank(rules=(Rule("0002", "E103", amount_fen=50000),))
    bank.drop(helpers.build_request(sample_items))
    bank.processor.tick()
    items = list(sample_items)
    items[1].amount = 50001  # the rule no longer matches
    second = bank.drop(
        helpers.build_request(items, file_no=2), name=helpers.request_name(file_no=2)
    )
    bank.processor.tick()
    assert [i["code"] for i in bank.result(second)["items"]] == ["0000"] * 3
    assert bank.ledger.summary()["credits"] == 3


def test_delay_does_not_block_other_files(
    make_bank: Callable[..., Bank], helpers: Any, sample_items: Any
) -> None:
    bank = make_bank(result_delay_seconds=10.0)
    first = bank.drop(helpers.build_request(sample_items))
    assert bank.processor.tick() == [first]
    assert list(bank.outbox.iterdir()) == []
    bank.clock.now += 4
    second = bank.drop(
        helpers.build_request(sample_items, serial="2026031500000002"),
        name=helpers.request_name(serial="2026031500000002"),
    )
    assert bank.processor.tick() == [second]  # taken at once, while the first one waits
    bank.clock.now += 6
    bank.processor.tick()
    assert sorted(p.name for p in bank.outbox.iterdir()) == [
        "ACT_2026031500000001_01.txt",  # the account movements go with the result
        "ACT_2026031500000001_01.txt.sig",
        "RET_2026031500000001_01.txt",
        "RET_2026031500000001_01.txt.sig",
    ]
    bank.clock.now += 4
    bank.processor.tick()
    assert len(list(bank.outbox.iterdir())) == 8
    assert bank.processor.pending_count == 0


def test_results_decided_before_a_stop_are_written_after_restart(
    make_bank: Callable[..., Bank], helpers: Any, sample_items: Any
) -> None:
    bank = make_bank(result_delay_seconds=60.0)
    name = bank.drop(helpers.build_request(sample_items))
    bank.processor.tick()
    assert list(bank.outbox.iterdir()) == []
    restarted = bank.new_processor()  # same ledger, fresh process state
    restarted.tick()
    assert bank.result(name)["paid_count"] == 3
    assert bank.ledger.pending_results() == []
    assert bank.ledger.summary()["credits"] == 3  # decided once, not again


def test_background_loop(make_bank: Callable[..., Bank], helpers: Any, sample_items: Any) -> None:
    bank = make_bank(poll_interval_seconds=0.02)
    bank.processor.start()
    try:
        name = bank.drop(helpers.build_request(sample_items))
        helpers.wait_for((bank.outbox / name.replace("PAY_", "RET_")).exists)
    finally:
        bank.processor.stop()
    assert bank.result(name)["paid_count"] == 3
