"""Pure validation of an upstream batch: header and items. No I/O.

Every problem is collected (never stop at the first); the service decides what to do.
Warnings (worth a look, not a refusal) are collected into a list the caller passes.

The fields a batch may have, their JSON types and limits are defined once, here:
:data:`TOP_LEVEL_FIELDS`, :data:`HEADER_SPEC`, :data:`ITEM_SPEC` and :data:`REISSUE_SPEC`
(``docs/intake.md`` describes them; the published request schema is built from them).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from gateway.batches.errors import Problem, safe_label
from gateway.kit.identity import (
    NAME_MAX_CHARS,
    account_problem,
    birth_date_of,
    has_invalid_character,
    id_number_intake_problem,
    name_problem,
    normalize_id_number,
    normalize_name,
    normalize_text,
    phone_problem,
    province_known,
    region_known,
    text_problem,
)
from gateway.kit.money import MAX_FEN, MAX_TOTAL_FEN, AmountError, fen_from_int, fen_from_yuan
from gateway.selfcheck.config import AgeRule, age_on

_CODE = re.compile(r"^[0-9A-Za-z_-]{1,12}$")
_REGION = re.compile(r"^[0-9]{6,12}$")
_BATCH_NO = re.compile(r"^[0-9A-Za-z_.-]{1,64}$")
_PERIOD = re.compile(r"^(20[0-9]{2})(H[12]|Q[1-4]|0[1-9]|1[0-2])?$")
_ACCOUNT_SHAPE = re.compile(r"^[0-9]{1,40}$")

MAX_ITEMS: Final = 1_000_000
SEQ_MAX: Final = 99_999_999
BATCH_NO_MAX: Final = 64
SUBSIDY_NAME_MAX: Final = 100
PAYER_NAME_MAX: Final = 100
REMARK_MAX: Final = 200
FISCAL_YEARS: Final = (2000, 2100)


# --- the fields of a batch -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of the request: its JSON type and limits (for docs and the schema)."""

    json_type: Literal["string", "integer", "object", "array"]
    required: bool
    description: str
    max_length: int | None = None  # characters (code points), after trimming
    pattern: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    one_of: str | None = None  # the name of the group of which exactly one must be given
    nullable: bool = False  # null (and, for text, blank) means "not given"


TOP_LEVEL_FIELDS: Final = frozenset({"header", "items"})

HEADER_SPEC: Final[Mapping[str, FieldSpec]] = {
    "batch_no": FieldSpec(
        "string",
        True,
        "upstream's batch number, the idempotency key's name part",
        BATCH_NO_MAX,
        _BATCH_NO.pattern,
    ),
    "region_code": FieldSpec(
        "string",
        True,
        "paying region, 6-12 digits (GB/T 2260 county code first)",
        12,
        _REGION.pattern,
    ),
    "subsidy_code": FieldSpec("string", True, "subsidy item code", 12, _CODE.pattern),
    "subsidy_name": FieldSpec(
        "string",
        True,
        "subsidy item name (free text; no control characters)",
        SUBSIDY_NAME_MAX,
    ),
    "period": FieldSpec(
        "string", True, "payment period: 2026, 2026H1, 2026Q2 or 202603", 8, _PERIOD.pattern
    ),
    "fiscal_year": FieldSpec(
        "integer", True, "budget year", minimum=FISCAL_YEARS[0], maximum=FISCAL_YEARS[1]
    ),
    "payer_account": FieldSpec(
        "string", True, "payer account number, digits", 32, r"^[0-9]{1,32}$"
    ),
    "payer_name": FieldSpec(
        "string",
        True,
        "payer account name (free text; no control characters)",
        PAYER_NAME_MAX,
    ),
    "bank_profile": FieldSpec("string", True, "the paying bank's profile name", 32),
    "item_count": FieldSpec("integer", True, "number of items", minimum=0, maximum=MAX_ITEMS),
    "total_amount_fen": FieldSpec(
        "integer",
        False,
        "sum of the item amounts in fen",
        minimum=1,
        maximum=MAX_TOTAL_FEN,
        one_of="total_amount",
    ),
    "total_amount_yuan": FieldSpec(
        "string",
        False,
        "sum of the item amounts in yuan, at most two decimals",
        pattern=r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,2})?$",
        one_of="total_amount",
    ),
}

ITEM_SPEC: Final[Mapping[str, FieldSpec]] = {
    "seq": FieldSpec(
        "integer", True, "sequence number, unique in the batch", minimum=1, maximum=SEQ_MAX
    ),
    "name": FieldSpec(
        "string", True, "beneficiary's name (NFC; rare characters allowed)", NAME_MAX_CHARS
    ),
    "id_number": FieldSpec(
        "string",
        True,
        "18-character resident ID number (GB 11643)",
        18,
        r"^[0-9]{17}[0-9Xx]$",
    ),
    "account_no": FieldSpec(
        "string", True, "account or card number, 8-32 digits", 32, r"^[0-9]{8,32}$"
    ),
    "amount_fen": FieldSpec(
        "integer", False, "amount in fen", minimum=1, maximum=MAX_FEN, one_of="amount"
    ),
    "amount_yuan": FieldSpec(
        "string",
        False,
        "amount in yuan, at most two decimals",
        pattern=r"^(0|[1-9][0-9]{0,12})(\.[0-9]{1,2})?$",
        one_of="amount",
    ),
    "phone": FieldSpec(
        "string",
        False,
        "mainland mobile number for the SMS notice",
        11,
        r"^1[3-9][0-9]{9}$",
        nullable=True,
    ),
    "remark": FieldSpec(
        "string", False, "remark (free text; no control characters)", REMARK_MAX, nullable=True
    ),
    "reissue_of": FieldSpec(
        "object", False, "the finally failed item this one re-issues", nullable=True
    ),
}

REISSUE_SPEC: Final[Mapping[str, FieldSpec]] = {
    "batch_no": FieldSpec(
        "string", True, "batch number of the original item", BATCH_NO_MAX, _BATCH_NO.pattern
    ),
    "seq": FieldSpec(
        "integer", True, "sequence number of the original item", minimum=1, maximum=SEQ_MAX
    ),
}

HEADER_FIELDS: Final = frozenset(HEADER_SPEC)
ITEM_FIELDS: Final = frozenset(ITEM_SPEC)
REISSUE_FIELDS: Final = frozenset(REISSUE_SPEC)


def unknown_fields(
    raw: Mapping[str, Any], allowed: frozenset[str], seq: int | None = None, prefix: str = ""
) -> list[Problem]:
    """One ``unknown_field`` problem per key of ``raw`` not in ``allowed`` (field = the key)."""
    out = []
    for key in raw:
        if key not in allowed:
            label = prefix + safe_label(str(key))
            out.append(Problem(label, "unknown_field", seq, detail=label))
    return out


# --- the data a valid batch yields ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeaderData:
    batch_no: str
    region_code: str
    subsidy_code: str
    subsidy_name: str
    period: str
    fiscal_year: int
    payer_account: str
    payer_name: str
    bank_profile: str
    item_count: int
    total_fen: int


@dataclass(frozen=True, slots=True)
class ReissueRef:
    batch_no: str
    seq: int


@dataclass(frozen=True, slots=True)
class ItemData:
    """A valid item, normalised, plaintext (lives only in memory)."""

    seq: int
    name: str
    id_number: str
    account_no: str
    amount_fen: int
    phone: str | None
    remark: str | None
    reissue_of: ReissueRef | None


@dataclass(frozen=True, slots=True)
class AgeCheck:
    """The subsidy's age rules that apply to a batch, and the day ages are counted on (the
    last day of its period, as the self-check does)."""

    rules: Sequence[AgeRule]
    on: dt.date


# --- helpers -------------------------------------------------------------------------------


def _amount(
    raw: Mapping[str, Any], prefix: str, field: str, seq: int | None, maximum: int
) -> tuple[int | None, list[Problem]]:
    fen_key, yuan_key = f"{prefix}_fen", f"{prefix}_yuan"
    has_fen, has_yuan = fen_key in raw, yuan_key in raw
    if has_fen and has_yuan:
        return None, [Problem(field, "amount_both_given", seq)]
    if not has_fen and not has_yuan:
        return None, [Problem(fen_key, "required", seq)]
    key = fen_key if has_fen else yuan_key
    try:
        if has_fen:
            return fen_from_int(raw[fen_key], maximum=maximum), []
        return fen_from_yuan(raw[yuan_key], maximum=maximum), []
    except AmountError as exc:
        if exc.limit is not None:
            return None, [Problem(key, exc.code, seq, limit=exc.limit, unit="fen")]
        return None, [Problem(key, exc.code, seq)]


def item_amount(raw: object) -> int | None:
    """The item's amount in fen when it is valid (whatever else is wrong), else None."""
    if not isinstance(raw, Mapping):
        return None
    amount, problems = _amount(raw, "amount", "amount", None, MAX_FEN)
    return None if problems else amount


def _text(
    raw: Mapping[str, Any],
    key: str,
    problems: list[Problem],
    seq: int | None = None,
    *,
    required: bool = True,
    max_len: int = 200,
    free_text: bool = False,
) -> str | None:
    """A string field, trimmed (free text also NFC-normalised), or None with its problem."""
    value = raw.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.append(Problem(key, "required", seq))
        return None
    if not isinstance(value, str):
        problems.append(Problem(key, "wrong_type", seq))
        return None
    if has_invalid_character(value):
        problems.append(Problem(key, "text_invalid_character", seq))
        return None
    value = normalize_text(value) if free_text else value.strip()
    if len(value) > max_len:
        problems.append(Problem(key, "too_long", seq, limit=max_len, unit="characters"))
        return None
    if free_text:
        problem = text_problem(value)
        if problem is not None:
            problems.append(Problem(key, problem, seq))
            return None
    return value


def _integer(raw: Mapping[str, Any], key: str, problems: list[Problem]) -> int | None:
    value = raw.get(key)
    if value is None:
        problems.append(Problem(key, "required"))
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(Problem(key, "wrong_type"))
        return None
    return value


# --- header --------------------------------------------------------------------------------


def validate_header(
    raw: object,
    known_profiles: Mapping[str, object],
    *,
    warnings: list[Problem] | None = None,
) -> tuple[HeaderData | None, list[Problem]]:
    if not isinstance(raw, Mapping):
        return None, [Problem("header", "required" if raw is None else "wrong_type")]
    p: list[Problem] = unknown_fields(raw, HEADER_FIELDS)
    batch_no = _text(raw, "batch_no", p, max_len=BATCH_NO_MAX)
    if batch_no is not None and not _BATCH_NO.match(batch_no):
        p.append(Problem("batch_no", "code_malformed"))
    region = _text(raw, "region_code", p, max_len=12)
    if region is not None:
        if not _REGION.match(region):
            p.append(Problem("region_code", "code_malformed", detail="6-12 digits"))
        elif not province_known(region):
            p.append(Problem("region_code", "region_code_province", detail=region[:2]))
        elif not region_known(region) and warnings is not None:
            warnings.append(Problem("region_code", "region_code_unknown", detail=region[:6]))
    subsidy_code = _text(raw, "subsidy_code", p, max_len=12)
    if subsidy_code is not None and not _CODE.match(subsidy_code):
        p.append(Problem("subsidy_code", "code_malformed"))
    subsidy_name = _text(raw, "subsidy_name", p, max_len=SUBSIDY_NAME_MAX, free_text=True)
    period = _text(raw, "period", p, max_len=8)
    if period is not None and not _PERIOD.match(period):
        p.append(Problem("period", "period_malformed"))
    fiscal_year = _integer(raw, "fiscal_year", p)
    if fiscal_year is not None and not FISCAL_YEARS[0] <= fiscal_year <= FISCAL_YEARS[1]:
        p.append(Problem("fiscal_year", "fiscal_year_invalid"))
    payer_account = _text(raw, "payer_account", p, max_len=32)
    if payer_account is not None and not _ACCOUNT_SHAPE.match(payer_account):
        p.append(Problem("payer_account", "account_characters"))
    payer_name = _text(raw, "payer_name", p, max_len=PAYER_NAME_MAX, free_text=True)
    profile = _text(raw, "bank_profile", p, max_len=32)
    if profile is not None and profile not in known_profiles:
        p.append(Problem("bank_profile", "unknown_bank_profile", detail=safe_label(profile)))
    count = _integer(raw, "item_count", p)
    if count is not None:
        if count < 0:
            p.append(Problem("item_count", "wrong_type"))
        elif count > MAX_ITEMS:
            p.append(Problem("item_count", "too_many_items", limit=MAX_ITEMS, unit="items"))
    total, tp = _amount(raw, "total_amount", "total_amount", None, MAX_TOTAL_FEN)
    p += tp
    if p:
        return None, p
    assert batch_no and region and subsidy_code and subsidy_name and period  # noqa: S101 (narrowing: p is empty)
    assert payer_account and payer_name and profile and total is not None  # noqa: S101
    assert fiscal_year is not None and count is not None  # noqa: S101
    return (
        HeaderData(
            batch_no=batch_no,
            region_code=region,
            subsidy_code=subsidy_code,
            subsidy_name=subsidy_name,
            period=period,
            fiscal_year=fiscal_year,
            payer_account=payer_account,
            payer_name=payer_name,
            bank_profile=profile,
            item_count=count,
            total_fen=total,
        ),
        [],
    )


def batch_no_of(raw: object) -> str | None:
    """The batch number, if the header has a usable one (for idempotency look-ups)."""
    if isinstance(raw, Mapping):
        value = raw.get("batch_no")
        if isinstance(value, str) and _BATCH_NO.match(value.strip()):
            return value.strip()
    return None


# --- items ---------------------------------------------------------------------------------


def _age_warning(id_number: str, seq: int, ages: AgeCheck) -> Problem | None:
    birth = birth_date_of(id_number)
    if birth is None:
        return None
    age = age_on(birth, ages.on)
    for rule in ages.rules:
        if (rule.min_age is not None and age < rule.min_age) or (
            rule.max_age is not None and age > rule.max_age
        ):
            bounds = ", ".join(
                f"{label} {value}"
                for label, value in (("min_age", rule.min_age), ("max_age", rule.max_age))
                if value is not None
            )
            # the rule, not the age: the answer and the database keep no birth date
            return Problem("id_number", "id_number_age_rule", seq, detail=f"{rule.label}: {bounds}")
    return None


def validate_item(
    raw: object,
    *,
    accounts_are_cards: bool,
    format_check: Callable[[ItemData], list[Problem]] | None = None,
    today: dt.date | None = None,
    ages: AgeCheck | None = None,
    warnings: list[Problem] | None = None,
) -> tuple[ItemData | None, list[Problem]]:
    """Validate one item. ``format_check`` adds the bank format's own limits; ``today``
    (China's) bounds birth dates; ``ages`` are the subsidy's age rules (warnings)."""
    if not isinstance(raw, Mapping):
        return None, [Problem("item", "wrong_type")]
    p: list[Problem] = []
    seq = raw.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq <= 0 or seq > SEQ_MAX:
        p.append(Problem("seq", "seq_invalid"))
        seq_ref: int | None = None
    else:
        seq_ref = seq
    p += unknown_fields(raw, ITEM_FIELDS, seq_ref)

    name_raw = raw.get("name")
    name: str | None = None
    if not isinstance(name_raw, str):
        p.append(Problem("name", "required" if name_raw is None else "wrong_type", seq_ref))
    else:
        name = normalize_name(name_raw)
        problem = name_problem(name)
        if problem == "name_too_long":
            p.append(Problem("name", problem, seq_ref, limit=NAME_MAX_CHARS, unit="characters"))
        elif problem:
            p.append(Problem("name", problem, seq_ref))

    id_raw = raw.get("id_number")
    id_number: str | None = None
    if not isinstance(id_raw, str):
        p.append(Problem("id_number", "required" if id_raw is None else "wrong_type", seq_ref))
    elif has_invalid_character(id_raw):
        p.append(Problem("id_number", "text_invalid_character", seq_ref))
    else:
        id_number = normalize_id_number(id_raw)
        problem = id_number_intake_problem(id_number, today or dt.date.max)
        if problem:
            p.append(Problem("id_number", problem, seq_ref))

    acct_raw = raw.get("account_no")
    account: str | None = None
    if not isinstance(acct_raw, str):
        p.append(Problem("account_no", "required" if acct_raw is None else "wrong_type", seq_ref))
    elif has_invalid_character(acct_raw):
        p.append(Problem("account_no", "text_invalid_character", seq_ref))
    else:
        account = acct_raw.strip()
        problem = account_problem(account, cards=accounts_are_cards)
        if problem:
            p.append(Problem("account_no", problem, seq_ref))

    amount, ap = _amount(raw, "amount", "amount", seq_ref, MAX_FEN)
    p += ap

    phone: str | None = None
    phone_raw = raw.get("phone")
    if phone_raw is not None:
        if not isinstance(phone_raw, str):
            p.append(Problem("phone", "wrong_type", seq_ref))
        elif has_invalid_character(phone_raw):
            p.append(Problem("phone", "text_invalid_character", seq_ref))
        else:
            phone = phone_raw.strip() or None  # blank: no phone, like null or absent
            problem = phone_problem(phone) if phone else None
            if problem:
                p.append(Problem("phone", problem, seq_ref))

    remark: str | None = None
    remark_raw = raw.get("remark")
    if remark_raw is not None and remark_raw != "":
        if not isinstance(remark_raw, str):
            p.append(Problem("remark", "wrong_type", seq_ref))
        elif has_invalid_character(remark_raw):
            p.append(Problem("remark", "text_invalid_character", seq_ref))
        else:
            remark = normalize_text(remark_raw)
            if len(remark) > REMARK_MAX:
                p.append(
                    Problem(
                        "remark", "remark_too_long", seq_ref, limit=REMARK_MAX, unit="characters"
                    )
                )
            else:
                problem = text_problem(remark)
                if problem is not None:
                    p.append(Problem("remark", problem, seq_ref))
            remark = remark or None

    reissue: ReissueRef | None = None
    reissue_raw = raw.get("reissue_of")
    if reissue_raw is not None:
        ref_seq = reissue_raw.get("seq") if isinstance(reissue_raw, Mapping) else None
        if (
            not isinstance(reissue_raw, Mapping)
            or batch_no_of(reissue_raw) is None
            or isinstance(ref_seq, bool)
            or not isinstance(ref_seq, int)
            or not 1 <= ref_seq <= SEQ_MAX
        ):
            p.append(Problem("reissue_of", "wrong_type", seq_ref))
        else:
            extra = unknown_fields(reissue_raw, REISSUE_FIELDS, seq_ref, prefix="reissue_of.")
            if extra:
                p += extra
            else:
                reissue = ReissueRef(str(batch_no_of(reissue_raw)), ref_seq)

    if p:
        return None, p
    assert seq_ref is not None and name and id_number and account and amount  # noqa: S101
    item = ItemData(
        seq=seq_ref,
        name=name,
        id_number=id_number,
        account_no=account,
        amount_fen=amount,
        phone=phone,
        remark=remark,
        reissue_of=reissue,
    )
    if format_check is not None:
        p += format_check(item)
        if p:
            return None, p
    if warnings is not None:
        if not region_known(id_number):
            warnings.append(Problem("id_number", "id_number_region_unknown", seq_ref))
        if ages is not None and ages.rules:
            age_warning = _age_warning(id_number, seq_ref, ages)
            if age_warning is not None:
                warnings.append(age_warning)
    return item, []
