"""Identity and account number rules: GB 11643 ID numbers, Luhn card numbers, names."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_ID_SHAPE = re.compile(r"^[0-9]{17}[0-9X]$")


def id_check_char(first17: str) -> str:
    """GB 11643 MOD 11-2 check character for the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def normalize_id_number(value: str) -> str:
    """Upper-case the check character (``x`` → ``X``) and strip surrounding blanks."""
    return value.strip().upper()


def id_number_problem(value: str) -> str | None:
    """Why ``value`` (already normalised) is not a valid 18-character ID number, or None."""
    if len(value) != 18:
        return "id_number_length"
    if not _ID_SHAPE.match(value):
        return "id_number_characters"
    try:
        dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "id_number_birth_date"
    if id_check_char(value[:17]) != value[17]:
        return "id_number_check_digit"
    return None


def luhn_valid(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_check_digit(partial: str) -> str:
    for d in "0123456789":
        if luhn_valid(partial + d):
            return d
    raise AssertionError("unreachable")


def account_problem(value: str, *, cards: bool) -> str | None:
    """Why ``value`` is not a plausible account number, or None.

    Bank account and card numbers in China are 8–32 digits (cards 16–19); where the bank
    profile says its accounts are cards the Luhn check digit is verified too."""
    if not value.isascii() or not value.isdigit():
        return "account_characters"
    if cards:
        if not 16 <= len(value) <= 19:
            return "account_length"
        if not luhn_valid(value):
            return "account_check_digit"
    elif not 8 <= len(value) <= 32:
        return "account_length"
    return None


def normalize_name(value: str) -> str:
    """NFC-normalise and strip a name; the middle dot variants are unified to U+00B7."""
    text = unicodedata.normalize("NFC", value).strip()
    return text.replace("\u2022", "\u00b7").replace("\u30fb", "\u00b7").replace("．", "\u00b7")


def name_problem(value: str) -> str | None:
    """Why ``value`` (already normalised) is not an acceptable name, or None.

    Rare characters (生僻字) outside GBK are allowed; control characters, lone surrogates
    and private-use code points are not."""
    if not value:
        return "name_empty"
    for ch in value:
        cat = unicodedata.category(ch)
        if cat in {"Cc", "Cf", "Cs", "Zl", "Zp"}:
            return "name_control_character"
        if cat == "Co":
            return "name_private_use"
    if len(value) > 40:
        return "name_too_long"
    return None


_PHONE = re.compile(r"^1[3-9][0-9]{9}$")


def phone_problem(value: str) -> str | None:
    """Mainland mobile numbers: 11 digits starting 13–19."""
    return None if _PHONE.match(value) else "phone_malformed"
