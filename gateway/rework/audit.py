"""The audit log (审计日志): every personal-data query and important operation of this
area leaves a row, written in the same transaction as what it records."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from gateway.kit.clock import utcnow
from gateway.kit.operators import name_problem, same_actor
from gateway.rework.errors import OperatorRequiredError, ReasonRequiredError
from gateway.rework.models import AuditRecord

OPERATOR_MAX = 64


def operator_name(value: str | None) -> str:
    """The name of who acts (the dashboard and the command line pass the login name of an
    authenticated account): no blanks, no control or invisible (format) characters, at
    most 64 characters; refuses anything else."""
    name = (value or "").strip()
    if (
        not name
        or len(name) > OPERATOR_MAX
        or any(c.isspace() for c in name)
        or name_problem(name) is not None
    ):
        raise OperatorRequiredError(
            "必须填写操作员（实名账户，不含空格、控制字符或不可见字符，不超过64个字符）",
            "an operator name is required (an account's login name: no blanks, control or "
            "invisible characters, at most 64 characters)",
        )
    return name


def same_operator(a: str, b: str) -> bool:
    """Maker-checker comparison: width, case, invisible characters and surrounding blanks
    do not make another person (``gateway.kit.operators.actor_key``)."""
    return same_actor(a, b)


def stated_reason(value: str | None, what_zh: str, what_en: str) -> str:
    reason = (value or "").strip()
    if not reason:
        raise ReasonRequiredError(f"{what_zh}必须说明理由", f"{what_en} requires a reason")
    return reason


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | int | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditRecord:
    row = AuditRecord(
        at=utcnow(),
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        reason=reason,
        detail=detail,
    )
    session.add(row)
    return row
