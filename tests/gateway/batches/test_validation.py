"""Each validation rule, on pure data (no database)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from gateway.batches.errors import MESSAGES, Problem
from gateway.batches.validation import (
    HEADER_FIELDS,
    ITEM_FIELDS,
    TOP_LEVEL_FIELDS,
    AgeCheck,
    validate_header,
    validate_item,
)
from gateway.kit.identity import id_check_char
from gateway.kit.money import MAX_TOTAL_FEN
from gateway.selfcheck.config import AgeRule

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


# --- issue 11: unknown fields, invalid characters, stated limits, ID plausibility ----------

TODAY = dt.date(2026, 6, 1)


def test_unknown_fields_are_named() -> None:
    _, p = validate_header(header(phone_no="1", reissue_off=2), PROFILES)
    assert {("phone_no", "unknown_field"), ("reissue_off", "unknown_field")} <= codes(p)
    _, p = validate_item(item(reissue_off={"batch_no": "B-0", "seq": 1}), accounts_are_cards=True)
    assert codes(p) == {("reissue_off", "unknown_field")}
    assert p[0].seq == 1
    _, p = validate_item(
        item(reissue_of={"batch_no": "B-0", "seq": 1, "x": 1}), accounts_are_cards=True
    )
    assert codes(p) == {("reissue_of.x", "unknown_field")}


def test_the_field_lists_are_the_validated_fields() -> None:
    assert set(header()) | {"total_amount_yuan"} == HEADER_FIELDS
    assert set(item()) | {"amount_yuan", "phone", "remark", "reissue_of"} == ITEM_FIELDS
    assert {"header", "items"} == TOP_LEVEL_FIELDS


@pytest.mark.parametrize("key", ["name", "id_number", "account_no", "phone", "remark"])
def test_lone_surrogate_in_any_item_text(key: str) -> None:
    _, p = validate_item(item(**{key: "张\ud800三"}), accounts_are_cards=True)
    assert (key, "text_invalid_character") in codes(p)


@pytest.mark.parametrize(
    "key",
    ["batch_no", "region_code", "subsidy_code", "subsidy_name", "period", "payer_account",
     "payer_name", "bank_profile"],
)  # fmt: skip
def test_lone_surrogate_in_any_header_text(key: str) -> None:
    _, p = validate_header(header(**{key: "\udc00"}), PROFILES)
    assert (key, "text_invalid_character") in codes(p)


def test_surrogate_pair_character_is_fine() -> None:
    it, p = validate_item(item(name="张\U00020000"), accounts_are_cards=True)
    assert p == [] and it is not None and it.name == "张\U00020000"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("耕地\t地力\r\n保护补贴", "text_control_character"),
        ("耕地\u200b补贴", "text_control_character"),
        ("耕地\u2028补贴", "text_control_character"),
        ("耕地\ue000补贴", "text_private_use"),
        ("耕地\ufdd0补贴", "text_invalid_character"),
    ],
)
def test_header_free_text_rules(value: str, code: str) -> None:
    for key in ("subsidy_name", "payer_name"):
        _, p = validate_header(header(**{key: value}), PROFILES)
        assert (key, code) in codes(p)


def test_header_free_text_is_nfc_and_trimmed() -> None:
    h, _ = validate_header(header(payer_name=" 岳阳县财政局Cafe\u0301 "), PROFILES)
    assert h is not None and h.payer_name == "岳阳县财政局Caf\u00e9"


def test_limits_are_machine_readable() -> None:
    _, p = validate_item(item(name="张" * 41, remark="备" * 201), accounts_are_cards=True)
    by_field = {x.field: x for x in p}
    assert (by_field["name"].limit, by_field["name"].unit) == (40, "characters")
    assert (by_field["remark"].limit, by_field["remark"].unit) == (200, "characters")
    d = by_field["name"].as_dict()
    assert d["limit"] == 40 and d["unit"] == "characters"
    assert d["message_zh"] == "姓名超过40个字符（受理上限）"
    assert d["message_en"] == "name exceeds 40 characters (intake limit)"
    _, p = validate_header(header(subsidy_name="补" * 101), PROFILES)
    assert [(x.field, x.code, x.limit) for x in p] == [("subsidy_name", "too_long", 100)]


def test_remark_limit_counts_the_trimmed_text() -> None:
    it, p = validate_item(item(remark="备" * 200 + "  "), accounts_are_cards=True)
    assert p == [] and it is not None and it.remark == "备" * 200


def test_blank_phone_is_no_phone() -> None:
    it, p = validate_item(item(phone="  "), accounts_are_cards=True)
    assert p == [] and it is not None and it.phone is None


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"amount_fen": 2**63}, ("amount_fen", "amount_too_large")),
        ({"amount_fen": 10**15}, ("amount_fen", "amount_too_large")),
        ({"amount_fen": None, "amount_yuan": "10000000000000.00"},
         ("amount_yuan", "amount_too_large")),
        ({"seq": 10**8}, ("seq", "seq_invalid")),
        ({"reissue_of": {"batch_no": "B-0", "seq": 2**63}}, ("reissue_of", "wrong_type")),
    ],
)  # fmt: skip
def test_bounds(over: dict[str, Any], expected: tuple[str, str]) -> None:
    _, p = validate_item(item(**over), accounts_are_cards=True)
    assert expected in codes(p)


def test_header_total_bound_is_the_total_fields() -> None:
    h, p = validate_header(header(total_amount_fen=MAX_TOTAL_FEN), PROFILES)
    assert p == [] and h is not None
    _, p = validate_header(header(total_amount_fen=MAX_TOTAL_FEN + 1), PROFILES)
    assert [(x.code, x.limit, x.unit) for x in p] == [("amount_too_large", MAX_TOTAL_FEN, "fen")]


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


@pytest.mark.parametrize(
    ("id_number", "code"),
    [
        (_id("00000019800101001"), "id_number_region"),
        (_id("99999919800101001"), "id_number_region"),
        (_id("43062118500101001"), "id_number_birth_too_early"),
        (_id("43062120260602001"), "id_number_birth_in_future"),
    ],
)
def test_implausible_id_numbers(id_number: str, code: str) -> None:
    _, p = validate_item(item(id_number=id_number), accounts_are_cards=True, today=TODAY)
    assert codes(p) == {("id_number", code)}


def test_born_today_and_in_1900_are_fine() -> None:
    for first17 in ("43062120260601001", "43062119000101001"):
        it, p = validate_item(item(id_number=_id(first17)), accounts_are_cards=True, today=TODAY)
        assert p == [] and it is not None


def test_unknown_region_warns() -> None:
    warnings: list[Any] = []
    it, p = validate_item(
        item(id_number=_id("43069919800101001")),
        accounts_are_cards=True,
        today=TODAY,
        warnings=warnings,
    )
    assert it is not None and p == []
    assert [(w.field, w.code, w.seq) for w in warnings] == [
        ("id_number", "id_number_region_unknown", 1)
    ]


def test_age_rule_warns() -> None:
    rule = AgeRule(label="高龄津贴", name_keywords=("高龄",), min_age=80)
    ages = AgeCheck([rule], dt.date(2026, 12, 31))
    warnings: list[Any] = []
    young = item(id_number=_id("43062119900505001"))
    it, p = validate_item(young, accounts_are_cards=True, today=TODAY, ages=ages, warnings=warnings)
    assert it is not None and p == []
    assert [(w.code, w.detail) for w in warnings] == [
        ("id_number_age_rule", "高龄津贴: min_age 80")
    ]
    warnings.clear()
    aged_80 = item(id_number=_id("43062119461231001"))  # 80 on the period's last day
    validate_item(aged_80, accounts_are_cards=True, today=TODAY, ages=ages, warnings=warnings)
    assert warnings == []


def test_every_message_names_its_limit_in_both_languages() -> None:
    for code in ("too_long", "name_too_long", "remark_too_long"):
        p = Problem("name", code, 1, limit=60, unit="gb18030_bytes", source="format")
        assert "60个GB18030字节" in p.message_zh and "60 GB18030 bytes" in p.message_en
        assert "银行格式上限" in p.message_zh and "bank format limit" in p.message_en
