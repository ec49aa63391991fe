"""Money is an integer number of fen (分). Never a float.

Upstream may send an amount as a JSON integer of fen, or as a decimal string of yuan with at
most two decimals (``"12.50"``). Everything else is refused with a reason code.
"""

from __future__ import annotations

import re
from decimal import Decimal

_YUAN = re.compile(r"^(0|[1-9][0-9]{0,13})(\.[0-9]{1,2})?$")
MAX_FEN = 10**15 - 1  # fits the widest amount field of any bank format we speak


class AmountError(ValueError):
    """An amount that cannot be accepted; ``code`` is machine-readable."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def fen_from_int(value: object) -> int:
    """An amount given as integer fen (JSON integer)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float | Decimal):
            raise AmountError("amount_not_integer_fen")
        raise AmountError("amount_wrong_type")
    if value <= 0:
        raise AmountError("amount_not_positive")
    if value > MAX_FEN:
        raise AmountError("amount_too_large")
    return value


def fen_from_yuan(value: object) -> int:
    """An amount given as a yuan decimal string with at most two decimals."""
    if not isinstance(value, str):
        raise AmountError("amount_wrong_type")
    text = value.strip()
    if text.startswith("-"):
        raise AmountError("amount_not_positive")
    match = _YUAN.match(text)
    if match is None:
        if re.match(r"^[0-9]+\.[0-9]{3,}$", text):
            raise AmountError("amount_too_many_decimals")
        raise AmountError("amount_malformed")
    whole = int(match.group(1))
    frac = (match.group(2) or ".")[1:].ljust(2, "0")
    fen = whole * 100 + int(frac)
    if fen <= 0:
        raise AmountError("amount_not_positive")
    if fen > MAX_FEN:
        raise AmountError("amount_too_large")
    return fen


def format_yuan(fen: int) -> str:
    """``123456`` → ``"1234.56"`` (for people; never parsed back)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"
