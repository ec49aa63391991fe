"""Pure validation of an upstream batch: header and items. No I/O.

Every problem is collected (never stop at the first); the service decides what to do."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.batches.errors import Problem
from gateway.kit.identity import (
    account_problem,
    id_number_problem,
    name_problem,
    normalize_id_number,
    normalize_name,
    phone_problem,
)
from gateway.kit.money import AmountError, fen_from_int, fen_from_yuan

_CODE = re.compile(r"^[0-9A-Za-z_-]{1,12}$")
_REGION = re.compile(r"^[0-9]{6,12}$")
_BATCH_NO = re.compile(r"^[0-9A-Za-z_.-]{1,64}$")
_PERIOD = re.compile(r"^(20[0-9]{2})(H[12]|Q[1-4]|0[1-9]|1[0-2])?$")
_ACCOUNT_SHAPE = re.compile(r"^[0-9]{1,40}$")
MAX_ITEMS = 1_000_000


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


def _amount(
    raw: Mapping[str, Any], prefix: str, field: str, seq: int | None
) -> tuple[int | None, list[Problem]]:
    fen_key, yuan_key = f"{prefix}_fen", f"{prefix}_yuan"
    has_fen, has_yuan = fen_key in raw, yuan_key in raw
    if has_fen and has_yuan:
        return None, [Problem(field, "amount_both_given", seq)]
    if not has_fen and not has_yuan:
        return None, [Problem(fen_key, "required", seq)]
    try:
        if has_fen:
            return fen_from_int(raw[fen_key]), []
        return fen_from_yuan(raw[yuan_key]), []
    except AmountError as exc:
        return None, [Problem(fen_key if has_fen else yuan_key, exc.code, seq)]


def _text(
    raw: Mapping[str, Any],
    key: str,
    problems: list[Problem],
    seq: int | None = None,
    *,
    required: bool = True,
    max_len: int = 200,
) -> str | None:
    value = raw.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.append(Problem(key, "required", seq))
        return None
    if not isinstance(value, str):
        problems.append(Problem(key, "wrong_type", seq))
        return None
    value = value.strip()
    if len(value) > max_len:
        problems.append(Problem(key, "too_long", seq, f"max {max_len}"))
        return None
    return value


def validate_header(
    raw: object, known_profiles: Mapping[str, object]
) -> tuple[HeaderData | None, list[Problem]]:
    if not isinstance(raw, Mapping):
        return None, [Problem("header", "required")]
    p: list[Problem] = []
    batch_no = _text(raw, "batch_no", p, max_len=64)
    if batch_no is not None and not _BATCH_NO.match(batch_no):
        p.append(Problem("batch_no", "code_malformed"))
    region = _text(raw, "region_code", p, max_len=12)
    if region is not None and not _REGION.match(region):
        p.append(Problem("region_code", "code_malformed", detail="6-12 digits"))
    subsidy_code = _text(raw, "subsidy_code", p, max_len=12)
    if subsidy_code is not None and not _CODE.match(subsidy_code):
        p.append(Problem("subsidy_code", "code_malformed"))
    subsidy_name = _text(raw, "subsidy_name", p, max_len=100)
    period = _text(raw, "period", p, max_len=8)
    if period is not None and not _PERIOD.match(period):
        p.append(Problem("period", "period_malformed"))
    fiscal_year = raw.get("fiscal_year")
    if fiscal_year is None:
        p.append(Problem("fiscal_year", "required"))
    elif isinstance(fiscal_year, bool) or not isinstance(fiscal_year, int):
        p.append(Problem("fiscal_year", "wrong_type"))
    elif not 2000 <= fiscal_year <= 2100:
        p.append(Problem("fiscal_year", "fiscal_year_invalid"))
    payer_account = _text(raw, "payer_account", p, max_len=32)
    if payer_account is not None and not _ACCOUNT_SHAPE.match(payer_account):
        p.append(Problem("payer_account", "account_characters"))
    payer_name = _text(raw, "payer_name", p, max_len=100)
    profile = _text(raw, "bank_profile", p, max_len=32)
    if profile is not None and profile not in known_profiles:
        p.append(Problem("bank_profile", "unknown_bank_profile", detail=profile))
    count = raw.get("item_count")
    if count is None:
        p.append(Problem("item_count", "required"))
    elif isinstance(count, bool) or not isinstance(count, int) or count < 0:
        p.append(Problem("item_count", "wrong_type"))
    elif count > MAX_ITEMS:
        p.append(Problem("item_count", "too_many_items", detail=f"max {MAX_ITEMS}"))
    total, tp = _amount(raw, "total_amount", "total_amount", None)
    p += tp
    if p:
        return None, p
    assert batch_no and region and subsidy_code and subsidy_name and period  # noqa: S101 (narrowing: p is empty)
    assert payer_account and payer_name and profile and total is not None  # noqa: S101
    return (
        HeaderData(
            batch_no=batch_no,
            region_code=region,
            subsidy_code=subsidy_code,
            subsidy_name=subsidy_name,
            period=period,
            fiscal_year=int(fiscal_year),  # type: ignore[arg-type]
            payer_account=payer_account,
            payer_name=payer_name,
            bank_profile=profile,
            item_count=int(count),  # type: ignore[arg-type]
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


def validate_item(
    raw: object,
    *,
    accounts_are_cards: bool,
    format_check: Callable[[ItemData], list[Problem]] | None = None,
) -> tuple[ItemData | None, list[Problem]]:
    """Validate one item. ``format_check`` adds the bank format's own limits."""
    if not isinstance(raw, Mapping):
        return None, [Problem("item", "wrong_type")]
    p: list[Problem] = []
    seq = raw.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq <= 0 or seq > 99_999_999:
        p.append(Problem("seq", "seq_invalid"))
        seq_ref: int | None = None
    else:
        seq_ref = seq

    name_raw = raw.get("name")
    name: str | None = None
    if not isinstance(name_raw, str):
        p.append(Problem("name", "required" if name_raw is None else "wrong_type", seq_ref))
    else:
        name = normalize_name(name_raw)
        problem = name_problem(name)
        if problem:
            p.append(Problem("name", problem, seq_ref))

    id_raw = raw.get("id_number")
    id_number: str | None = None
    if not isinstance(id_raw, str):
        p.append(Problem("id_number", "required" if id_raw is None else "wrong_type", seq_ref))
    else:
        id_number = normalize_id_number(id_raw)
        problem = id_number_problem(id_number)
        if problem:
            p.append(Problem("id_number", problem, seq_ref))

    acct_raw = raw.get("account_no")
    account: str | None = None
    if not isinstance(acct_raw, str):
        p.append(Problem("account_no", "required" if acct_raw is None else "wrong_type", seq_ref))
    else:
        account = acct_raw.strip()
        problem = account_problem(account, cards=accounts_are_cards)
        if problem:
            p.append(Problem("account_no", problem, seq_ref))

    amount, ap = _amount(raw, "amount", "amount", seq_ref)
    p += ap

    phone: str | None = None
    phone_raw = raw.get("phone")
    if phone_raw is not None and phone_raw != "":
        if not isinstance(phone_raw, str):
            p.append(Problem("phone", "wrong_type", seq_ref))
        else:
            phone = phone_raw.strip()
            problem = phone_problem(phone)
            if problem:
                p.append(Problem("phone", problem, seq_ref))

    remark: str | None = None
    remark_raw = raw.get("remark")
    if remark_raw is not None and remark_raw != "":
        if not isinstance(remark_raw, str):
            p.append(Problem("remark", "wrong_type", seq_ref))
        elif len(remark_raw) > 200:
            p.append(Problem("remark", "remark_too_long", seq_ref))
        else:
            remark = remark_raw.strip()
            if name_problem(remark) == "name_control_character":
                p.append(Problem("remark", "name_control_character", seq_ref))

    reissue: ReissueRef | None = None
    reissue_raw = raw.get("reissue_of")
    if reissue_raw is not None:
        if (
            not isinstance(reissue_raw, Mapping)
            or batch_no_of(reissue_raw) is None
            or isinstance(reissue_raw.get("seq"), bool)
            or not isinstance(reissue_raw.get("seq"), int)
        ):
            p.append(Problem("reissue_of", "wrong_type", seq_ref))
        else:
            reissue = ReissueRef(str(batch_no_of(reissue_raw)), int(reissue_raw["seq"]))

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
    return (None, p) if p else (item, [])
