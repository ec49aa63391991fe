"""Money is an integer number of fen (分). Never a float.

Upstream may send an amount as a JSON integer of fen, or as a decimal string of yuan with at
most two decimals (``"12.50"``). Everything else is refused with a reason code.

Bounds (``docs/intake.md``):

- one amount: 1 … ``MAX_FEN`` = 999,999,999,999,999 fen, the 15 digits of the narrowest
  amount field of any bank format we speak (``fw-gb18030-v1``'s detail record);
- a total (a batch's, and so every file's): at most ``MAX_TOTAL_FEN`` =
  999,999,999,999,999,999 fen, the 18 digits of ``fw-gb18030-v1``'s header and trailer and
  of ISO 20022's ``CtrlSum``. It is below the largest BIGINT (2^63 − 1 ≈ 9.2·10^18), so any
  total the gateway stores fits its column.
"""

from __future__ import annotations

import re
from decimal import Decimal

_YUAN = re.compile(r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,2})?$")
MAX_FEN = 10**15 - 1  # fits the narrowest amount field of any bank format we speak
MAX_TOTAL_FEN = 10**18 - 1  # fits every format's total field and a BIGINT column
BIGINT_MAX = 2**63 - 1


class AmountError(ValueError):
    """An amount that cannot be accepted; ``code`` is machine-readable, ``limit`` the bound
    that was exceeded (for ``amount_too_large``)."""

    def __init__(self, code: str, limit: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.limit = limit


def fen_from_int(value: object, *, maximum: int = MAX_FEN) -> int:
    """An amount given as integer fen (JSON integer), 1 … ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float | Decimal):
            raise AmountError("amount_not_integer_fen")
        raise AmountError("amount_wrong_type")
    if value <= 0:
        raise AmountError("amount_not_positive")
    if value > maximum:
        raise AmountError("amount_too_large", maximum)
    return value


def fen_from_yuan(value: object, *, maximum: int = MAX_FEN) -> int:
    """An amount given as a yuan decimal string with at most two decimals, 1 … ``maximum``
    fen."""
    if not isinstance(value, str):
        raise AmountError("amount_wrong_type")
    text = value.strip()
    if text.startswith("-"):
        raise AmountError("amount_not_positive")
    match = _YUAN.match(text)
    if match is None:
        if re.match(r"^[0-9]+\.[0-9]{3,}$", text):
            raise AmountError("amount_too_many_decimals")
        if re.match(r"^[1-9][0-9]{16,}(\.[0-9]{1,2})?$", text):
            raise AmountError("amount_too_large", maximum)
        raise AmountError("amount_malformed")
    whole = int(match.group(1))
    frac = (match.group(2) or ".")[1:].ljust(2, "0")
    fen = whole * 100 + int(frac)
    if fen <= 0:
        raise AmountError("amount_not_positive")
    if fen > maximum:
        raise AmountError("amount_too_large", maximum)
    return fen


def format_yuan(fen: int) -> str:
    """``123456`` → ``"1234.56"`` (for people; never parsed back)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"
