"""Each validation rule, on pure data (no database)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.batches.errors import MESSAGES
from gateway.batches.validation import validate_header, validate_item

PROFILES = {"hnrcu": object()}


def header(**over: Any) -> dict[str, Any]:
    h: dict[str, Any] = {
        "batch_no": "B-1",
        "region_code": "430621101",
        "subsidy_code": "GDBH",
        "subsidy_name": "耕地地力保护补贴",
        "period": "2026",
        "fiscal_year": 2026,
        "payer_account": "43001700062050500001",
        "payer_name": "岳阳县财政局",
        "bank_profile": "hnrcu",
        "item_count": 1,
        "total_amount_fen": 100,
    }
    h.update(over)
    return {k: v for k, v in h.items() if v is not None}


def item(**over: Any) -> dict[str, Any]:
    it: dict[str, Any] = {
        "seq": 1,
        "name": "张三",
        "id_number": "11010519491231002X",
        "account_no": "4111111111111111",
        "amount_fen": 100,
    }
    it.update(over)
    return {k: v for k, v in it.items() if v is not None}


def codes(problems: list[Any]) -> set[tuple[str, str]]:
    return {(p.field, p.code) for p in problems}


def test_valid_header_and_item() -> None:
    h, p = validate_header(header(), PROFILES)
    assert p == [] and h is not None and h.total_fen == 100
    it, p = validate_item(item(), accounts_are_cards=True)
    assert p == [] and it is not None


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"batch_no": None}, ("batch_no", "required")),
        ({"region_code": "43"}, ("region_code", "code_malformed")),
        ({"period": "26"}, ("period", "period_malformed")),
        ({"fiscal_year": "2026"}, ("fiscal_year", "wrong_type")),
        ({"bank_profile": "nobank"}, ("bank_profile", "unknown_bank_profile")),
        ({"total_amount_fen": 1.5}, ("total_amount_fen", "amount_not_integer_fen")),
        ({"total_amount_yuan": "1.00"}, ("total_amount", "amount_both_given")),
        ({"item_count": -1}, ("item_count", "wrong_type")),
        ({"payer_account": "12-34"}, ("payer_account", "account_characters")),
    ],
)
def test_header_rules(over: dict[str, Any], expected: tuple[str, str]) -> None:
    h, p = validate_header(header(**over), PROFILES)
    assert h is None
    assert expected in codes(p)


def test_all_header_problems_reported_at_once() -> None:
    _, p = validate_header(header(region_code="x", period="x", bank_profile="x"), PROFILES)
    assert len(p) == 3


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"seq": 0}, ("seq", "seq_invalid")),
        ({"seq": True}, ("seq", "seq_invalid")),
        ({"name": ""}, ("name", "name_empty")),
        ({"name": "张\x07三"}, ("name", "name_control_character")),
        ({"id_number": "110105194912310021"}, ("id_number", "id_number_check_digit")),
        ({"id_number": "1101051949123100"}, ("id_number", "id_number_length")),
        ({"account_no": "4111111111111112"}, ("account_no", "account_check_digit")),
        ({"account_no": "41111"}, ("account_no", "account_length")),
        ({"amount_fen": 10.5}, ("amount_fen", "amount_not_integer_fen")),
        ({"amount_fen": 0}, ("amount_fen", "amount_not_positive")),
        ({"amount_fen": -3}, ("amount_fen", "amount_not_positive")),
        ({"amount_fen": None, "amount_yuan": "1.001"}, ("amount_yuan", "amount_too_many_decimals")),
        ({"amount_fen": None, "amount_yuan": "1e2"}, ("amount_yuan", "amount_malformed")),
        ({"amount_fen": None}, ("amount_fen", "required")),
        ({"phone": "123"}, ("phone", "phone_malformed")),
        ({"reissue_of": {"batch_no": "B-0"}}, ("reissue_of", "wrong_type")),
    ],
)
def test_item_rules(over: dict[str, Any], expected: tuple[str, str]) -> None:
    it, p = validate_item(item(**over), accounts_are_cards=True)
    assert it is None
    assert expected in codes(p)
    assert all(x.seq in (None, 1) for x in p)


def test_luhn_only_for_card_banks() -> None:
    _, p = validate_item(item(account_no="4111111111111112"), accounts_are_cards=False)
    assert p == []


def test_lower_case_x_normalised() -> None:
    it, _ = validate_item(item(id_number="11010519491231002x"), accounts_are_cards=True)
    assert it is not None and it.id_number == "11010519491231002X"


def test_yuan_amount() -> None:
    it, _ = validate_item(item(amount_fen=None, amount_yuan="350.05"), accounts_are_cards=True)
    assert it is not None and it.amount_fen == 35005


def test_every_item_problem_reported_at_once() -> None:
    _, p = validate_item(
        item(name="", id_number="1", account_no="x", amount_fen=1.5, phone="1"),
        accounts_are_cards=True,
    )
    assert {x.field for x in p} == {"name", "id_number", "account_no", "amount_fen", "phone"}


def test_messages_are_bilingual_and_machine_readable() -> None:
    _, p = validate_item(item(id_number="110105194912310021"), accounts_are_cards=True)
    d = p[0].as_dict()
    assert d == {
        "seq": 1,
        "field": "id_number",
        "code": "id_number_check_digit",
        "message_zh": "身份证号码校验位错误",
        "message_en": "ID number check digit is wrong",
    }
    for zh, en in MESSAGES.values():
        assert zh and en and zh != en
