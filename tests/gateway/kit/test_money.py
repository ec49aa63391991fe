from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.kit.money import AmountError, fen_from_int, fen_from_yuan, format_yuan


@pytest.mark.parametrize(
    ("value", "fen"), [("12.50", 1250), ("12.5", 1250), ("0.01", 1), ("100", 10000)]
)
def test_yuan_strings(value: str, fen: int) -> None:
    assert fen_from_yuan(value) == fen


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("1.234", "amount_too_many_decimals"),
        ("1e3", "amount_malformed"),
        ("0", "amount_not_positive"),
        ("0.00", "amount_not_positive"),
        ("-5", "amount_not_positive"),
        ("01.00", "amount_malformed"),
        ("1,000.00", "amount_malformed"),
        (12.5, "amount_wrong_type"),
        ("", "amount_malformed"),
    ],
)
def test_yuan_rejects(value: object, code: str) -> None:
    with pytest.raises(AmountError) as exc:
        fen_from_yuan(value)
    assert exc.value.code == code


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (12.5, "amount_not_integer_fen"),
        (12.0, "amount_not_integer_fen"),
        (Decimal("1E+3"), "amount_not_integer_fen"),
        (True, "amount_wrong_type"),
        ("100", "amount_wrong_type"),
        (0, "amount_not_positive"),
        (-1, "amount_not_positive"),
        (10**16, "amount_too_large"),
    ],
)
def test_fen_rejects(value: object, code: str) -> None:
    with pytest.raises(AmountError) as exc:
        fen_from_int(value)
    assert exc.value.code == code


@given(st.integers(min_value=1, max_value=10**15 - 1))
def test_format_parse_round_trip(fen: int) -> None:
    assert fen_from_yuan(format_yuan(fen)) == fen
    assert fen_from_int(fen) == fen
