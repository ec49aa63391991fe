"""Accounts, rules and the order in which an item's outcome is decided."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mock_bank.accounts import Account, AccountRegistry, AccountsFileError, load_accounts
from mock_bank.rules import Rule, decide

REG = AccountRegistry(
    [
        Account("6217000000000001", "张三", "430621198001010011", "active"),
        Account("6217000000000002", "李四", "430621198001010022", "frozen"),
        Account("6217000000000003", "王五", "430621198001010033", "closed"),
        Account("6217000000000004", "阿依古丽·买买提", "43062119800101004X", "active"),
    ]
)


def outcome(
    account: str,
    name: str,
    id_number: str,
    amount: int = 100,
    registry: AccountRegistry | None = REG,
    rules: tuple[Rule, ...] = (),
) -> str:
    return decide(
        account_no=account,
        name=name,
        id_number=id_number,
        amount_fen=amount,
        registry=registry,
        rules=rules,
    ).code


def test_registry_order() -> None:
    assert outcome("6217000000000001", "张三", "430621198001010011") == "0000"
    assert outcome("6217000000000099", "张三", "430621198001010011") == "E101"
    # closed is checked before frozen, both before name and ID
    assert outcome("6217000000000003", "错名", "000000000000000000") == "E104"
    assert outcome("6217000000000002", "错名", "000000000000000000") == "E103"
    # name before ID number
    assert outcome("6217000000000001", "张叁", "000000000000000000") == "E102"
    assert outcome("6217000000000001", "张三", "430621198001010012") == "E105"
    assert outcome("6217000000000004", " 阿依古丽·买买提 ", "43062119800101004X") == "0000"
    assert outcome("6217000000000004", "阿依古丽买买提", "43062119800101004X") == "E102"
    assert outcome("6217000000000004", "阿依古丽·买买提", "43062119800101004x") == "E105"


def test_messages_are_chinese() -> None:
    result = decide(
        account_no="6217000000000002", name="李四", id_number="x", amount_fen=1, registry=REG
    )
    assert (result.code, result.message, result.paid) == ("E103", "账户冻结", False)


def test_without_registry_everyone_is_paid_unless_a_rule_says_otherwise() -> None:
    rules = (Rule("0102", "E102"), Rule("99", "E199", amount_fen=4242))
    assert outcome("anything", "x", "y", registry=None) == "0000"
    assert outcome("62170102", "x", "y", registry=None, rules=rules) == "E102"
    assert outcome("621799", "x", "y", amount=4242, registry=None, rules=rules) == "E199"
    assert outcome("621799", "x", "y", amount=4243, registry=None, rules=rules) == "0000"


def test_rules_come_first() -> None:
    rules = (Rule("0001", "E103"), Rule("0001", "E104"))
    assert outcome("6217000000000001", "张三", "430621198001010011", rules=rules) == "E103"
    assert outcome("6217000000000099", "张三", "x", rules=(Rule("0099", "0000"),)) == "0000"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"account_suffix": "", "code": "E101"},
        {"account_suffix": "1", "code": "F001"},
        {"account_suffix": "1", "code": "E101", "amount_fen": 0},
        {"account_suffix": "1", "code": "E101", "amount_fen": 1.5},
    ],
)
def test_bad_rules(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Rule(**kwargs)  # type: ignore[arg-type]


def test_load_accounts(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(
        json.dumps([{"account_no": "1", "name": "张三", "id_number": "2", "status": "frozen"}]),
        encoding="utf-8",
    )
    registry = load_accounts(path)
    account = registry.get(" 1 ")
    assert account is not None and account.status == "frozen" and len(registry) == 1
    for bad in [
        '{"a": 1}',
        '[{"account_no": "1", "name": "x", "id_number": "2", "status": "gone"}]',
        '[{"account_no": "1", "name": "x"}]',
        '[{"account_no": "1", "name": "x", "id_number": "2"},'
        ' {"account_no": "1", "name": "y", "id_number": "3"}]',
        "not json",
    ]:
        path.write_text(bad, encoding="utf-8")
        with pytest.raises(AccountsFileError):
            load_accounts(path)
