from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.kit.identity import (
    account_problem,
    id_check_char,
    id_number_problem,
    luhn_check_digit,
    luhn_valid,
    name_problem,
    normalize_id_number,
    normalize_name,
    phone_problem,
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
