"""Our reason codes for failed payments, each with a Chinese description and the action the
township finance station should take. Bank profiles map their own codes onto these."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    zh: str
    en: str
    action_zh: str


REASONS: dict[str, Reason] = {
    r.code: r
    for r in (
        Reason(
            "account_not_found",
            "账户不存在",
            "account does not exist",
            "核对一卡通账号是否抄录错误，向代发银行确认后更正账号",
        ),
        Reason(
            "name_mismatch",
            "户名不符",
            "account name does not match",
            "对照身份证核对姓名（含生僻字），并与银行开户信息核对后更正",
        ),
        Reason(
            "account_frozen",
            "账户冻结",
            "account frozen",
            "通知本人到代发银行办理解冻，或采集新的一卡通账户",
        ),
        Reason(
            "account_closed",
            "账户已销户",
            "account closed",
            "采集本人新的一卡通账户后重新发放",
        ),
        Reason(
            "id_mismatch",
            "证件号码不符",
            "ID number does not match the account holder",
            "核对身份证号码与银行开户证件是否一致",
        ),
        Reason(
            "file_rejected",
            "银行拒收整个文件",
            "the bank rejected the whole file",
            "联系系统管理员核查文件签名或格式，修正后整批重发",
        ),
        Reason(
            "bounced",
            "退票（已入账后被退回）",
            "returned after payment",
            "核实账户状态（如销户、冻结）后，采集新账户并重新发放",
        ),
        Reason(
            "bank_other",
            "银行其他错误",
            "other bank failure",
            "联系代发银行查明原因",
        ),
        # the gateway could not make the bank file: nothing was sent, nothing paid
        Reason(
            "request_unrenderable",
            "批次数据无法写入银行文件（未发送银行，未付款）",
            "the batch's data cannot be written in the bank's file format "
            "(nothing was sent to the bank, nothing paid)",
            "按待处理事项所列字段更正批次数据（如补贴项目名称中的控制字符）后重新发放",
        ),
        Reason(
            "dispatch_config_error",
            "银行配置错误，未能生成或签名银行文件（未发送银行，未付款）",
            "bank configuration error: the bank file could not be made or signed "
            "(nothing was sent to the bank, nothing paid)",
            "联系系统管理员按待处理事项修正银行配置（如签名密钥）后重新发放",
        ),
        Reason(
            "unmapped_bank_code",
            "未识别的银行返回码",
            "bank code not mapped",
            "联系系统管理员补充银行返回码对照",
        ),
    )
}


def reason(code: str | None) -> Reason:
    return REASONS.get(code or "", REASONS["unmapped_bank_code"])
