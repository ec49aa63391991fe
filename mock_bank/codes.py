"""Bank result codes of the ``fw-gb18030-v1`` profile and their Chinese bank messages."""

from __future__ import annotations

from typing import Final

PAID: Final = "0000"
ACCOUNT_NOT_FOUND: Final = "E101"
NAME_MISMATCH: Final = "E102"
ACCOUNT_FROZEN: Final = "E103"
ACCOUNT_CLOSED: Final = "E104"
ID_NUMBER_MISMATCH: Final = "E105"
OTHER_FAILURE: Final = "E199"
FILE_BAD_SIGNATURE: Final = "F001"
FILE_BAD_FORMAT: Final = "F002"

#: Item-level codes (a detail record's ``bank result code``) and their bank messages.
#: The spec gives the Chinese text for the E-codes; ``成功`` for ``0000`` is our choice.
ITEM_MESSAGES: Final[dict[str, str]] = {
    PAID: "成功",
    ACCOUNT_NOT_FOUND: "账户不存在",
    NAME_MISMATCH: "户名不符",
    ACCOUNT_FROZEN: "账户冻结",
    ACCOUNT_CLOSED: "账户已销户",
    ID_NUMBER_MISMATCH: "证件号码不符",
    OTHER_FAILURE: "其他错误",
}

#: File-level reject codes (a result header's ``file reject code``), for logs only: a rejected
#: result file carries no message field.
FILE_MESSAGES: Final[dict[str, str]] = {
    FILE_BAD_SIGNATURE: "签名验证失败",
    FILE_BAD_FORMAT: "文件格式或控制总数错误",
}


def item_message(code: str) -> str:
    """The bank message for an item result code (``KeyError`` for an unknown code)."""
    return ITEM_MESSAGES[code]
