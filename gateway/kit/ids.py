"""Identifiers the bank sees: batch serials and item serials, minted once and never again."""

from __future__ import annotations

import datetime as dt
import secrets

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


def new_batch_serial(today: dt.date) -> str:
    """16 characters ``[0-9A-Z]``: ``YYMMDD`` + 10 random base32 characters (50 bits)."""
    return today.strftime("%y%m%d") + "".join(secrets.choice(_ALPHABET) for _ in range(10))


def item_serial(batch_serial: str, seq: int) -> str:
    """24 characters: the batch serial and the item's sequence number."""
    return f"{batch_serial}{seq:08d}"
