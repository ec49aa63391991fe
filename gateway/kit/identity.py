"""Identity and account number rules: GB 11643 ID numbers, Luhn card numbers, names, and the
characters any text we pass to a bank may hold.

Two levels of ID number checks:

- :func:`id_number_problem` is the *format* (18 characters, a real calendar date, the MOD
  11-2 check digit). Look-ups (a person's payment history) use it, so that records accepted
  under older rules can still be found.
- :func:`id_number_intake_problem` adds what intake refuses on top: a birth date in the
  future (China's today) or before :data:`MIN_BIRTH`, and an address code whose province
  part (digits 1–2) is no province of GB/T 2260. :func:`region_known` tells whether the
  six-digit address code is one GB/T 2260 has ever had (python-stdnum's ``cn/loc`` table);
  an unknown one is only a warning, because codes are added and withdrawn over the years.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata

from stdnum import numdb

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_ID_SHAPE = re.compile(r"^[0-9]{17}[0-9X]$")

#: The earliest birth date intake accepts in an ID number (nobody older is alive to be paid).
MIN_BIRTH = dt.date(1900, 1, 1)
#: A name may have at most this many characters (code points) at intake; bank formats add
#: their own limits (``fw-gb18030-v1``: 60 GB18030 bytes).
NAME_MAX_CHARS = 40

# Surrogates (U+D800–DFFF: not Unicode scalar values, no encoding can carry them) and the 66
# noncharacters (U+FDD0–FDEF and the last two code points of every plane).
_INVALID = re.compile(
    "[\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
    + "".join(chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(1, 17))
    + "]"
)
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def has_invalid_character(value: str) -> bool:
    """True when ``value`` holds a lone surrogate or a noncharacter (any plane)."""
    return _INVALID.search(value) is not None


def text_problem(value: str) -> str | None:
    """Why ``value`` may not be carried as free text (remark, subsidy name, payer name), or
    None: ``text_invalid_character`` (lone surrogate, noncharacter),
    ``text_control_character`` (controls, format characters, line/paragraph separators),
    ``text_private_use`` (private-use code points: not a standard character)."""
    if has_invalid_character(value):
        return "text_invalid_character"
    for ch in value:
        cat = unicodedata.category(ch)
        if cat in _CONTROL_CATEGORIES:
            return "text_control_character"
        if cat == "Co":
            return "text_private_use"
    return None


def normalize_text(value: str) -> str:
    """NFC-normalise and strip free text (a string with a lone surrogate is only stripped:
    it is refused anyway)."""
    if has_invalid_character(value):
        return value.strip()
    return unicodedata.normalize("NFC", value).strip()


def id_check_char(first17: str) -> str:
    """GB 11643 MOD 11-2 check character for the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def normalize_id_number(value: str) -> str:
    """Upper-case the check character (``x`` → ``X``) and strip surrounding blanks."""
    return value.strip().upper()


def birth_date_of(value: str) -> dt.date | None:
    """The birth date (characters 7–14) of a well-formed ID number, None if it is no date."""
    try:
        return dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return None


def id_number_problem(value: str) -> str | None:
    """Why ``value`` (already normalised) is not a well-formed 18-character ID number, or
    None (length, characters, a real date, the check digit)."""
    if len(value) != 18:
        return "id_number_length"
    if not _ID_SHAPE.match(value):
        return "id_number_characters"
    if birth_date_of(value) is None:
        return "id_number_birth_date"
    if id_check_char(value[:17]) != value[17]:
        return "id_number_check_digit"
    return None


@functools.cache
def _divisions() -> numdb.NumDB:
    return numdb.get("cn/loc")


@functools.lru_cache(maxsize=8192)  # a county's batch holds a handful of codes
def _division(code6: str) -> dict[str, str]:
    return {k: v for _, props in _divisions().info(code6) for k, v in props.items()}


def province_known(code: str) -> bool:
    """Whether the first two digits of ``code`` are a province of GB/T 2260 (including 71
    Taiwan, 81 Hong Kong, 82 Macao)."""
    return len(code) >= 2 and code[:2].isdigit() and "province" in _division(code[:2] + "0000")


def region_known(code: str) -> bool:
    """Whether the first six digits of ``code`` are an address code GB/T 2260 has had at any
    time (python-stdnum's table; its year ranges are not applied: a number keeps the code of
    the county that issued it, whenever the holder was born)."""
    code6 = code[:6]
    return len(code6) == 6 and code6.isdigit() and "county" in _division(code6)


def id_number_intake_problem(value: str, today: dt.date) -> str | None:
    """:func:`id_number_problem`, and the birth date between :data:`MIN_BIRTH` and ``today``
    and a known province in the address code."""
    problem = id_number_problem(value)
    if problem is not None:
        return problem
    birth = birth_date_of(value)
    assert birth is not None  # noqa: S101 (id_number_problem checked it)
    if birth > today:
        return "id_number_birth_in_future"
    if birth < MIN_BIRTH:
        return "id_number_birth_too_early"
    if not province_known(value):
        return "id_number_region"
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
    text = normalize_text(value)
    return text.replace("\u2022", "\u00b7").replace("\u30fb", "\u00b7").replace("．", "\u00b7")


def name_problem(value: str) -> str | None:
    """Why ``value`` (already normalised) is not an acceptable name, or None.

    Rare characters (生僻字) outside GBK are allowed, astral ones included; lone surrogates
    and noncharacters (``text_invalid_character``), control and format characters and
    private-use code points are not, nor more than :data:`NAME_MAX_CHARS` characters."""
    if not value:
        return "name_empty"
    if has_invalid_character(value):
        return "text_invalid_character"
    for ch in value:
        cat = unicodedata.category(ch)
        if cat in _CONTROL_CATEGORIES:
            return "name_control_character"
        if cat == "Co":
            return "name_private_use"
    if len(value) > NAME_MAX_CHARS:
        return "name_too_long"
    return None


_PHONE = re.compile(r"^1[3-9][0-9]{9}$")


def phone_problem(value: str) -> str | None:
    """Mainland mobile numbers: 11 digits starting 13–19."""
    return None if _PHONE.match(value) else "phone_malformed"
