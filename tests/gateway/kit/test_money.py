from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.kit.money import (
    BIGINT_MAX,
    MAX_FEN,
    MAX_TOTAL_FEN,
    AmountError,
    fen_from_int,
    fen_from_yuan,
    format_yuan,
)


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


# --- issue 11: every bound stated -----------------------------------------------------------


def test_bounds_fit_every_format_and_bigint() -> None:
    assert MAX_FEN == 10**15 - 1  # fw-gb18030-v1: 15 digits per amount
    assert MAX_TOTAL_FEN == 10**18 - 1  # fw header/trailer 18 digits, ISO CtrlSum
    assert MAX_TOTAL_FEN < BIGINT_MAX
    assert 1_000_000 * MAX_FEN > MAX_TOTAL_FEN  # so totals need their own check


@pytest.mark.parametrize("value", [2**63, 10**40, MAX_FEN + 1])
def test_too_large_says_the_limit(value: int) -> None:
    with pytest.raises(AmountError) as exc:
        fen_from_int(value)
    assert (exc.value.code, exc.value.limit) == ("amount_too_large", MAX_FEN)


def test_totals_have_their_own_maximum() -> None:
    assert fen_from_int(MAX_TOTAL_FEN, maximum=MAX_TOTAL_FEN) == MAX_TOTAL_FEN
    assert fen_from_yuan("9999999999999999.99", maximum=MAX_TOTAL_FEN) == MAX_TOTAL_FEN
    for big in ("10000000000000000.00", "99999999999999999999"):
        with pytest.raises(AmountError) as exc:
            fen_from_yuan(big, maximum=MAX_TOTAL_FEN)
        assert (exc.value.code, exc.value.limit) == ("amount_too_large", MAX_TOTAL_FEN)
