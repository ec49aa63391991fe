"""Validation problems: machine-readable code, field, and a message in Chinese and English.

A problem that breaks a limit also says which limit, machine-readably: ``limit`` (a number)
and ``unit`` (one of :data:`UNITS`), and its messages state it in both languages, with the
source of the limit (the bank format's, or intake's own). Warnings use the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass

# code → (Chinese, English)
MESSAGES: dict[str, tuple[str, str]] = {
    "required": ("必填项缺失", "required field is missing"),
    "wrong_type": ("字段类型错误", "field has the wrong type"),
    "unknown_field": (
        "未定义的字段，请检查字段名拼写",
        "unknown field; check the field name's spelling",
    ),
    "malformed_json": ("请求不是合法的JSON", "request body is not valid JSON"),
    "too_long": ("字段超过允许长度", "field is longer than allowed"),
    "not_encodable": (
        "含有银行文件无法表示的字符",
        "contains characters the bank file cannot carry",
    ),
    "invalid": ("银行格式不接受该值", "the bank format does not accept this value"),
    "empty": ("银行格式要求该字段非空", "the bank format needs this field to be non-empty"),
    "out_of_range": ("数值超出银行格式允许的范围", "value is out of the bank format's range"),
    "text_invalid_character": (
        "含有无效字符（单独的代理码位或非字符），请检查数据的编码",
        "contains an invalid character (a lone surrogate or a noncharacter); "
        "check the data's encoding",
    ),
    "text_control_character": (
        "含有控制字符或格式字符（如换行、制表符、零宽字符）",
        "contains control or format characters (line breaks, tabs, zero-width characters)",
    ),
    "text_private_use": (
        "含有私有区字符，请使用标准字符",
        "contains private-use characters; use the standard code point",
    ),
    "code_malformed": ("代码格式错误", "code has the wrong format"),
    "region_code_province": (
        "区划代码前两位不是有效的省级行政区划代码（GB/T 2260）",
        "the first two digits of the region code are no province code (GB/T 2260)",
    ),
    "region_code_unknown": (
        "区划代码前六位不在行政区划代码表（GB/T 2260）中，请核实",
        "the region code's first six digits are not in the GB/T 2260 table; please verify",
    ),
    "period_malformed": (
        "期间格式错误（应为年份、半年、季度或月份，如2026、2026H1、2026Q2、202603）",
        "period is malformed (year, half, quarter or month, e.g. 2026, 2026H1, 2026Q2, 202603)",
    ),
    "fiscal_year_invalid": ("预算年度不合理", "fiscal year is implausible"),
    "unknown_bank_profile": ("未配置的代发银行", "unknown paying bank profile"),
    "amount_not_integer_fen": (
        "金额必须是以分为单位的整数，或以元为单位、最多两位小数的字符串",
        "amount must be integer fen, or a yuan string with at most two decimals",
    ),
    "amount_wrong_type": ("金额类型错误", "amount has the wrong type"),
    "amount_malformed": ("金额格式错误", "amount is malformed"),
    "amount_too_many_decimals": ("金额最多两位小数", "amount has more than two decimals"),
    "amount_not_positive": ("金额必须大于零", "amount must be greater than zero"),
    "amount_too_large": ("金额过大", "amount is too large"),
    "amount_both_given": (
        "amount_fen 与 amount_yuan 只能填写一个",
        "give either amount_fen or amount_yuan, not both",
    ),
    "count_mismatch": ("明细笔数与批次头不符", "item count does not match the header"),
    "total_mismatch": ("明细金额合计与批次头不符", "sum of item amounts does not match the header"),
    "total_too_large": ("明细金额合计过大", "sum of item amounts is too large"),
    "no_items": ("批次没有明细", "batch has no items"),
    "too_many_items": ("批次明细笔数过多", "batch has more items than allowed"),
    "seq_invalid": (
        "序号必须是1至99999999之间的整数",
        "sequence number must be an integer from 1 to 99999999",
    ),
    "seq_duplicate": ("序号在批次内重复", "sequence number repeats within the batch"),
    "id_number_length": ("身份证号码应为18位", "ID number must have 18 characters"),
    "id_number_characters": (
        "身份证号码只能是数字，最后一位可以是X",
        "ID number must be digits, the last one may be X",
    ),
    "id_number_birth_date": (
        "身份证号码中的出生日期无效",
        "birth date in the ID number is invalid",
    ),
    "id_number_birth_in_future": (
        "身份证号码中的出生日期晚于今天",
        "birth date in the ID number is later than today",
    ),
    "id_number_birth_too_early": (
        "身份证号码中的出生日期早于1900年1月1日",
        "birth date in the ID number is before 1 January 1900",
    ),
    "id_number_region": (
        "身份证号码前两位不是有效的省级行政区划代码（GB/T 2260）",
        "the first two digits of the ID number are no province code (GB/T 2260)",
    ),
    "id_number_region_unknown": (
        "身份证号码前六位（地址码）不在行政区划代码表（GB/T 2260）中，请核实",
        "the ID number's address code (first six digits) is not in the GB/T 2260 table; "
        "please verify",
    ),
    "id_number_age_rule": (
        "按身份证号码推算的年龄不符合该补贴的年龄条件，请核实",
        "the age from the ID number does not meet the subsidy's age rule; please verify",
    ),
    "id_number_check_digit": ("身份证号码校验位错误", "ID number check digit is wrong"),
    "account_characters": ("账号只能包含数字", "account number must contain digits only"),
    "account_length": ("账号长度不合理", "account number length is implausible"),
    "account_check_digit": ("银行卡号校验位错误", "card number check digit is wrong (Luhn)"),
    "name_empty": ("姓名为空", "name is empty"),
    "name_control_character": ("姓名含有控制字符", "name contains control characters"),
    "name_private_use": (
        "姓名含有私有区字符，请使用标准字符",
        "name contains private-use characters; use the standard code point",
    ),
    "name_too_long": ("姓名过长", "name is too long"),
    "phone_malformed": ("手机号码格式错误", "mobile phone number is malformed"),
    "remark_too_long": ("备注过长", "remark is too long"),
    "duplicate_person_in_batch": (
        "同一人在本批次中重复出现",
        "the same person appears twice in this batch",
    ),
    "already_paid_elsewhere": (
        "此人本补贴项目本期间已在其他批次中受理，如为失败重发请注明原明细",
        "this person already has this subsidy item and period in another batch; "
        "mark the item as a re-issue of the failed one if that is what it is",
    ),
    "reissue_target_missing": ("重发所指的原明细不存在", "the item to re-issue does not exist"),
    "reissue_target_not_failed": (
        "原明细不是最终失败状态，不能重发",
        "the item to re-issue has not finally failed",
    ),
    "reissue_target_already_reissued": ("原明细已重发过", "the item has already been re-issued"),
    "reissue_person_differs": (
        "重发明细与原明细不是同一人或不是同一补贴项目期间",
        "the re-issue is not for the same person, subsidy item and period as the original",
    ),
    "reissue_duplicate_target": (
        "本批次中多条明细重发同一原明细",
        "several items in this batch re-issue the same original item",
    ),
}

#: Fields as people call them, for messages that state a limit.
FIELD_NAMES: dict[str, tuple[str, str]] = {
    "batch_no": ("批次号", "batch number"),
    "region_code": ("区划代码", "region code"),
    "subsidy_code": ("补贴项目代码", "subsidy code"),
    "subsidy_name": ("补贴项目名称", "subsidy name"),
    "period": ("期间", "period"),
    "payer_account": ("付款账号", "payer account"),
    "payer_name": ("付款户名", "payer name"),
    "bank_profile": ("代发银行", "bank profile"),
    "item_count": ("明细笔数", "item count"),
    "total_amount_fen": ("总金额", "total amount"),
    "total_amount_yuan": ("总金额", "total amount"),
    "total_amount": ("总金额", "total amount"),
    "seq": ("序号", "sequence number"),
    "serial": ("明细流水号", "item serial"),
    "name": ("姓名", "name"),
    "id_number": ("身份证号码", "ID number"),
    "account_no": ("账号", "account number"),
    "amount_fen": ("金额", "amount"),
    "amount_yuan": ("金额", "amount"),
    "phone": ("手机号码", "mobile phone number"),
    "remark": ("备注", "remark"),
}

#: unit → (Chinese, English) of a limit.
UNITS: dict[str, tuple[str, str]] = {
    "characters": ("个字符", "characters"),
    "gb18030_bytes": ("个GB18030字节", "GB18030 bytes"),
    "fen": ("分", "fen"),
    "items": ("笔", "items"),
    "digits": ("位数字", "digits"),
}

# codes whose limit is a maximum length
_LENGTH_CODES = frozenset({"too_long", "name_too_long", "remark_too_long"})
_SOURCES = {"format": ("银行格式上限", "bank format limit"), "intake": ("受理上限", "intake limit")}

FIELD_MAX = 64  # batch_errors.field


def safe_label(value: str, limit: int = 48) -> str:
    """``value`` (a key or other text from the request) made safe to store and to show: at
    most ``limit`` characters, controls and invalid code points escaped."""
    out = []
    for ch in value[: limit + 1]:
        cp = ord(ch)
        if 0xD800 <= cp <= 0xDFFF or cp < 0x20 or 0x7F <= cp < 0xA0 or not ch.isprintable():
            out.append(f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}")
        else:
            out.append(ch)
    text = "".join(out)
    return text[:limit] + "…" if len(value) > limit or len(text) > limit else text


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a batch or an item is refused (or, as a warning, worth a look).

    ``limit``/``unit`` name the limit a value exceeded; ``source`` is ``"format"`` when the
    bank format sets it and ``"intake"`` (the default) when intake does."""

    field: str
    code: str
    seq: int | None = None
    detail: str | None = None
    limit: int | None = None
    unit: str | None = None
    source: str = "intake"

    def _base(self) -> tuple[str, str]:
        zh, en = MESSAGES.get(self.code, ("未知错误", "unknown error"))
        if self.limit is None:
            return zh, en
        src_zh, src_en = _SOURCES.get(self.source, _SOURCES["intake"])
        unit_zh, unit_en = UNITS.get(self.unit or "", ("", self.unit or ""))
        if self.code in _LENGTH_CODES and self.unit:
            f_zh, f_en = FIELD_NAMES.get(self.field, (self.field, self.field))
            zh = f"{f_zh}超过{self.limit}{unit_zh}"
            en = f"{f_en} exceeds {self.limit} {unit_en}"
        else:
            zh = f"{zh}（上限{self.limit}{unit_zh}"
            en = f"{en} (at most {self.limit} {unit_en}".rstrip()
            zh += f"，{src_zh}" if self.source == "format" else ""
            en += f", {src_en}" if self.source == "format" else ""
            return zh + (f"：{self.detail}）" if self.detail else "）"), en + (
                f": {self.detail})" if self.detail else ")"
            )
        zh += f"（{src_zh}" + (f"：{self.detail}" if self.detail else "") + "）"
        en += f" ({src_en}" + (f": {self.detail}" if self.detail else "") + ")"
        return zh, en

    @property
    def message_zh(self) -> str:
        zh = self._base()[0]
        if self.limit is None and self.detail:
            return f"{zh}（{self.detail}）"
        return zh

    @property
    def message_en(self) -> str:
        en = self._base()[1]
        if self.limit is None and self.detail:
            return f"{en} ({self.detail})"
        return en

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "seq": self.seq,
            "field": self.field,
            "code": self.code,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
        }
        if self.limit is not None:
            out["limit"] = self.limit
            out["unit"] = self.unit
        return out
