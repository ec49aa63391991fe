"""Validation problems: machine-readable code, field, and a message in Chinese and English."""

from __future__ import annotations

from dataclasses import dataclass

# code → (Chinese, English)
MESSAGES: dict[str, tuple[str, str]] = {
    "required": ("必填项缺失", "required field is missing"),
    "wrong_type": ("字段类型错误", "field has the wrong type"),
    "malformed_json": ("请求不是合法的JSON", "request body is not valid JSON"),
    "too_long": ("字段超过允许长度", "field is longer than allowed"),
    "not_encodable": (
        "含有银行文件无法表示的字符",
        "contains characters the bank file cannot carry",
    ),
    "code_malformed": ("代码格式错误", "code has the wrong format"),
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
    "amount_too_large": ("金额超过上限", "amount exceeds the maximum"),
    "amount_both_given": (
        "amount_fen 与 amount_yuan 只能填写一个",
        "give either amount_fen or amount_yuan, not both",
    ),
    "count_mismatch": ("明细笔数与批次头不符", "item count does not match the header"),
    "total_mismatch": ("明细金额合计与批次头不符", "sum of item amounts does not match the header"),
    "no_items": ("批次没有明细", "batch has no items"),
    "too_many_items": ("批次明细笔数超过上限", "batch has more items than allowed"),
    "seq_invalid": ("序号必须是正整数", "sequence number must be a positive integer"),
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


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a batch or an item is refused."""

    field: str
    code: str
    seq: int | None = None
    detail: str | None = None

    @property
    def message_zh(self) -> str:
        zh = MESSAGES.get(self.code, ("未知错误", "unknown error"))[0]
        return f"{zh}（{self.detail}）" if self.detail else zh

    @property
    def message_en(self) -> str:
        en = MESSAGES.get(self.code, ("未知错误", "unknown error"))[1]
        return f"{en} ({self.detail})" if self.detail else en

    def as_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "field": self.field,
            "code": self.code,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
        }
