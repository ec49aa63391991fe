from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.kit.identity import (
    NAME_MAX_CHARS,
    account_problem,
    id_check_char,
    id_number_intake_problem,
    id_number_problem,
    luhn_check_digit,
    luhn_valid,
    name_problem,
    normalize_id_number,
    normalize_name,
    phone_problem,
    province_known,
    region_known,
    text_problem,
)


def test_published_id_example() -> None:
    # the worked example of GB 11643-1999, Annex A
    assert id_check_char("11010519491231002") == "X"
    assert id_number_problem("11010519491231002X") is None


def test_lower_case_x_is_normalised() -> None:
    assert normalize_id_number(" 11010519491231002x ") == "11010519491231002X"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("1101051949123100", "id_number_length"),
        ("11010519491231002Y", "id_number_characters"),
        ("110105194913310021", "id_number_birth_date"),
        ("110105194912310021", "id_number_check_digit"),
    ],
)
def test_bad_ids(value: str, code: str) -> None:
    assert id_number_problem(value) == code


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_any_body_gets_exactly_one_valid_check_char(body: str) -> None:
    valid = [c for c in "0123456789X" if id_check_char(body) == c]
    assert len(valid) == 1


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert luhn_check_digit("621799123456789012") in "0123456789"
    assert account_problem("4111111111111111", cards=True) is None
    assert account_problem("4111111111111112", cards=True) == "account_check_digit"
    assert account_problem("4111111111111112", cards=False) is None
    assert account_problem("12345", cards=False) == "account_length"
    assert account_problem("6217-0000", cards=False) == "account_characters"
    assert account_problem("６２１７０００００００", cards=False) == "account_characters"


@pytest.mark.parametrize("name", ["刘䶮", "王𬎆", "李龑", "阿依古丽·买买提", "张三"])
def test_rare_and_minority_names_accepted(name: str) -> None:
    assert name_problem(normalize_name(name)) is None


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("", "name_empty"),
        ("张\x00三", "name_control_character"),
        ("张\u200b三", "name_control_character"),
        ("张\ue000", "name_private_use"),
    ],
)
def test_bad_names(name: str, code: str) -> None:
    assert name_problem(normalize_name(name)) == code


def test_middle_dot_variants_unified() -> None:
    assert normalize_name("阿依古丽•买买提") == "阿依古丽·买买提"


def test_phone() -> None:
    assert phone_problem("13812345678") is None
    assert phone_problem("12812345678") == "phone_malformed"


# --- issue 11: characters no bank can carry, plausible ID numbers --------------------------


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("张\ud800三", "text_invalid_character"),
        ("\udc00", "text_invalid_character"),
        ("张\ufffe", "text_invalid_character"),
        ("张\U0010ffff", "text_invalid_character"),
        ("张\ufdd5", "text_invalid_character"),
        ("耕地\t补贴", "text_control_character"),
        ("耕地\r\n补贴", "text_control_character"),
        ("耕地\x85补贴", "text_control_character"),
        ("耕地\u00ad补贴", "text_control_character"),
        ("耕地\u2029补贴", "text_control_character"),
        ("耕地\ue000补贴", "text_private_use"),
        ("耕地地力保护补贴（2026年）", None),
        ("张\U00020000 𬎆·A", None),
    ],
)
def test_text_problem(value: str, code: str | None) -> None:
    assert text_problem(value) == code


def test_lone_surrogate_in_a_name() -> None:
    assert name_problem(normalize_name("张\ud800三")) == "text_invalid_character"
    assert name_problem(normalize_name("张\U00020000")) is None  # a pair in JSON: one char


@given(st.text(st.characters(exclude_categories=()), max_size=12))
def test_accepted_text_encodes_in_utf8_and_gb18030(value: str) -> None:
    if text_problem(value) is None:
        assert value.encode("utf-8").decode("utf-8") == value
        assert value.encode("gb18030").decode("gb18030") == value


def test_name_limit_is_characters() -> None:
    assert name_problem("𬎆" * NAME_MAX_CHARS) is None
    assert name_problem("𬎆" * (NAME_MAX_CHARS + 1)) == "name_too_long"


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


TODAY = dt.date(2026, 6, 1)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (_id("43062119800101001"), None),
        (_id("71000019800101001"), None),  # Taiwan, Hong Kong and Macao are provinces too
        (_id("81000019800101001"), None),
        (_id("43069919800101001"), None),  # an unknown county: a warning, not a refusal
        (_id("00000019800101001"), "id_number_region"),
        (_id("99999919800101001"), "id_number_region"),
        (_id("20062119800101001"), "id_number_region"),
        (_id("43062118500101001"), "id_number_birth_too_early"),
        (_id("43062118991231001"), "id_number_birth_too_early"),
        (_id("43062119000101001"), None),
        (_id("43062120260601001"), None),  # born today
        (_id("43062120260602001"), "id_number_birth_in_future"),
        ("110105194912310021", "id_number_check_digit"),
    ],
)
def test_id_number_intake_problem(value: str, code: str | None) -> None:
    assert id_number_intake_problem(value, TODAY) == code
    assert id_number_problem(value) == (code if code == "id_number_check_digit" else None)


def test_regions_against_gb_t_2260() -> None:
    assert region_known("430621") and region_known("430621101")  # 岳阳县, a township in it
    assert region_known("110103")  # 崇文区, merged in 2010: old numbers keep it
    assert not region_known("430699") and not region_known("000000")
    assert province_known("430699") and not province_known("000000")
