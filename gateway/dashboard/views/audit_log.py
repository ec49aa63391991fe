"""The audit log viewer (审计日志): who looked at or did what, when and why.

Auditors and supervisors read every row; the account administrator reads only the rows
about accounts (logins, logouts, ``account.*``); operators do not open it. Filters by actor,
action (prefix), target and China days run on the indexes ``ix_audit_log_actor_at``,
``ix_audit_log_action_at``, ``ix_audit_log_target`` and ``ix_audit_log_at``, newest first.
Reading the log is itself written to it (``view.audit``)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from gateway.dashboard.accounts import Role
from gateway.dashboard.web import (
    PAGE_SIZE,
    Forbidden,
    Page,
    Viewer,
    audit,
    china_day_start_utc,
    current_viewer,
    filters_of,
    page_number,
    parse_day,
    render,
    unit_of_work,
)
from gateway.rework.models import AuditRecord

router = APIRouter()

# a count beyond this is shown as "more than": counting ten years of rows is not worth it
COUNT_CAP = 10_000
DETAIL_SHOWN = 240  # characters of a detail shown in the table; the rest folds out

# action (or action prefix ending in ".") → (中文, English)
ACTION_LABELS: dict[str, tuple[str, str]] = {
    "login.ok": ("登录成功", "login"),
    "login.failed": ("登录失败", "login failed"),
    "login.locked": ("登录失败，账户锁定", "login failed, account locked"),
    "login.refused": ("拒绝登录", "login refused"),
    "logout": ("退出登录", "logout"),
    "account.create": ("创建账户", "account created"),
    "account.update": ("修改账户", "account changed"),
    "account.supervisor": ("变更上级复核员", "supervisor changed"),
    "account.password_changed": ("修改密码", "password changed"),
    "account.password_reset": ("重置密码", "password reset"),
    "account.unlock": ("解锁账户", "account unlocked"),
    "account.disable": ("停用账户", "account disabled"),
    "account.enable": ("启用账户", "account enabled"),
    "pii.unmask": ("查看明文个人信息", "personal data unmasked"),
    "selfcheck.run": ("运行自查", "self-check run"),
    "selfcheck.export": ("导出自查报告", "self-check exported"),
    "view.": ("查看页面", "page viewed"),
    "refund.": ("退回国库", "treasury refund"),
    "correction_list.": ("更正清单", "correction list"),
}


def action_label(action: str, lang: str) -> str:
    label = ACTION_LABELS.get(action)
    if label is None:
        prefix = action.split(".", 1)[0] + "."
        label = ACTION_LABELS.get(prefix)
    if label is None:
        return ""
    return label[1] if lang == "en" else label[0]


def capped_count(session: Session, stmt: Select[*tuple[Any, ...]], cap: int = COUNT_CAP) -> int:
    """How many rows ``stmt`` selects, counting no further than ``cap`` (a list shows
    "more than" beyond it and asks for a narrower filter)."""
    limited = stmt.order_by(None).limit(cap).subquery()
    return int(session.scalar(select(func.count()).select_from(limited)) or 0)


def account_rows() -> ColumnElement[bool]:
    """The rows an account administrator may read: logins, logouts and account changes."""
    return or_(
        AuditRecord.action.startswith("login."),
        AuditRecord.action.startswith("logout"),
        AuditRecord.action.startswith("account."),
    )


def audit_log_viewer(viewer: Viewer = Depends(current_viewer)) -> Viewer:  # noqa: B008
    if viewer.role not in {Role.AUDITOR, Role.SUPERVISOR, Role.ADMIN}:
        raise Forbidden(
            "只有审计员、复核员和系统管理员可以查看审计日志",
            "only auditors, supervisors and administrators read the audit log",
        )
    return viewer


def compact_detail(detail: dict[str, Any] | None) -> str:
    """``{"a": 1, "b": {"c": [2]}}`` → ``a=1 b={"c":[2]}`` (for a table cell)."""
    if not detail:
        return ""
    parts = []
    for key, value in detail.items():
        text = (
            value
            if isinstance(value, str)
            else json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        )
        parts.append(f"{key}={text}")
    return " ".join(parts)


def target_link(viewer: Viewer, target_type: str, target_id: str | None) -> str | None:
    """The dashboard page of an audited record, where the viewer may open one."""
    if not target_id:
        return None
    if target_type == "account":
        return f"/accounts/{target_id}" if viewer.role is Role.ADMIN else None
    if not viewer.role.sees_payments() or not target_id.isdigit():
        return None
    pages = {
        "item": "/items/",
        "batch": "/batches/",
        "selfcheck_report": "/selfcheck/",
    }
    return pages[target_type] + target_id if target_type in pages else None


def _filtered(viewer: Viewer, f: dict[str, str]) -> Select[Any]:
    stmt = select(AuditRecord)
    if viewer.role is Role.ADMIN:
        stmt = stmt.where(account_rows())
    if f.get("actor"):
        stmt = stmt.where(AuditRecord.actor == f["actor"])
    if f.get("action"):
        stmt = stmt.where(AuditRecord.action.startswith(f["action"], autoescape=True))
    if f.get("target_type"):
        stmt = stmt.where(AuditRecord.target_type == f["target_type"])
    if f.get("target_id"):
        stmt = stmt.where(AuditRecord.target_id == f["target_id"])
    since = parse_day(f.get("from"))
    if since is not None:
        stmt = stmt.where(AuditRecord.at >= china_day_start_utc(since))
    until = parse_day(f.get("to"))
    if until is not None:
        stmt = stmt.where(AuditRecord.at < china_day_start_utc(until + dt.timedelta(days=1)))
    return stmt


@router.get("/audit", response_class=HTMLResponse)
def audit_log(
    request: Request,
    viewer: Viewer = Depends(audit_log_viewer),  # noqa: B008
) -> Response:
    f = filters_of(request, ["actor", "action", "target_type", "target_id", "from", "to"])
    number = page_number(request)
    with unit_of_work(request) as s:
        stmt = _filtered(viewer, f)
        total = capped_count(s, stmt)
        page = Page(number=number, size=PAGE_SIZE, total=total)
        page.rows = list(
            s.scalars(
                stmt.order_by(AuditRecord.at.desc(), AuditRecord.id.desc())
                .offset(page.offset)
                .limit(page.size)
            )
        )
        audit(
            s, viewer, "view.audit", target_type="audit_log",
            detail={"filters": f, "page": page.number, "rows": len(page.rows)},
        )  # fmt: skip
    return render(
        request,
        "audit_list.html",
        viewer,
        active="audit",
        page=page,
        f=f,
        capped=total >= COUNT_CAP,
        cap=COUNT_CAP,
        detail_shown=DETAIL_SHOWN,
        accounts_only=viewer.role is Role.ADMIN,
        action_label=lambda a: action_label(a, viewer.lang),
        compact_detail=compact_detail,
        target_link=lambda t, i: target_link(viewer, t, i),
    )
