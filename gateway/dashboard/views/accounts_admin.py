"""Account administration (账户管理, administrators only) and the list of users who have not
logged in for too long (未登录用户, supervisors for their regions, administrators for all).

A new account and a reset password get a generated one-time password, shown once on the
result page and never stored in clear; the user must change it at first login. Disabling an
account or resetting its password ends its sessions. Every change is recorded in the audit
log by the account service (``account.*``)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from gateway.dashboard.accounts import (
    Role,
    create_account,
    find_account,
    inactive_users,
    reset_password,
    set_disabled,
    set_supervisor,
    unlock,
    update_account,
)
from gateway.dashboard.cli import generated_password
from gateway.dashboard.models import OperatorAccount
from gateway.dashboard.sessions import end_sessions_of
from gateway.dashboard.views.audit_log import action_label
from gateway.dashboard.web import (
    DONE_MESSAGES,
    PAGE_SIZE,
    Forbidden,
    FormRejected,
    NotFound,
    Page,
    Viewer,
    admin_viewer,
    audit,
    checked_form,
    ctx_of,
    current_viewer,
    form_text,
    page_number,
    redirect,
    render,
    unit_of_work,
)
from gateway.kit.clock import utcnow
from gateway.rework.models import AuditRecord

router = APIRouter()

DONE_MESSAGES.update(
    {
        "account_updated": ("账户已保存", "Account saved"),
        "account_unlocked": ("账户已解锁", "Account unlocked"),
        "account_disabled": (
            "账户已停用，其登录会话已全部结束",
            "Account disabled; its sessions ended",
        ),
        "account_enabled": ("账户已启用", "Account enabled"),
    }
)
_REGION_SEPARATORS = re.compile(r"[\s,，、;；]+")
HISTORY_ROWS = 20


def parse_regions(text: str) -> list[str]:
    """Region code prefixes typed with commas, spaces or Chinese separators."""
    return [r for r in _REGION_SEPARATORS.split(text) if r]


@dataclass(frozen=True, slots=True)
class AccountRow:
    account: OperatorAccount
    supervisor: str | None
    locked: bool
    password_age_days: int
    password_due: bool


def _row(
    account: OperatorAccount, supervisor: str | None, now: dt.datetime, max_age: int
) -> AccountRow:
    age = (now - account.password_changed_at).days
    return AccountRow(
        account=account,
        supervisor=supervisor,
        locked=account.locked_until is not None and account.locked_until > now,
        password_age_days=age,
        password_due=account.must_change_password or age > max_age,
    )


def _supervisors(session: Session) -> list[OperatorAccount]:
    return list(
        session.scalars(
            select(OperatorAccount)
            .where(
                OperatorAccount.role == Role.SUPERVISOR.value, OperatorAccount.disabled.is_(False)
            )
            .order_by(OperatorAccount.username)
        )
    )


def _account(session: Session, username: str) -> OperatorAccount:
    account = find_account(session, username)
    if account is None:
        raise NotFound
    return account


def _not_self(viewer: Viewer, account: OperatorAccount, zh: str, en: str) -> None:
    """An administrator does not lock themselves out (another administrator does it)."""
    if account.id == viewer.principal.account_id:
        raise FormRejected("own_account", zh, en, back=f"/accounts/{account.username}")


def _one_time_password_page(
    request: Request, viewer: Viewer, account: OperatorAccount, password: str, *, created: bool
) -> Response:
    return render(
        request,
        "accounts_password.html",
        viewer,
        active="accounts",
        account=account,
        role=Role(account.role),
        password=password,
        created=created,
    )


@router.get("/accounts", response_class=HTMLResponse)
def account_list(
    request: Request,
    viewer: Viewer = Depends(admin_viewer),  # noqa: B008
) -> Response:
    ctx = ctx_of(request)
    now = utcnow()
    with unit_of_work(request) as s:
        total = int(s.scalar(select(func.count()).select_from(OperatorAccount)) or 0)
        page = Page(number=page_number(request), size=PAGE_SIZE, total=total)
        accounts = list(
            s.scalars(
                select(OperatorAccount)
                .order_by(OperatorAccount.username)
                .offset(page.offset)
                .limit(page.size)
            )
        )
        sup_ids = {a.supervisor_id for a in accounts if a.supervisor_id}
        names = {
            i: name
            for i, name in s.execute(
                select(OperatorAccount.id, OperatorAccount.username).where(
                    OperatorAccount.id.in_(sup_ids)
                )
            )
        }
        max_age = ctx.settings.dashboard_password_max_age_days
        page.rows = [_row(a, names.get(a.supervisor_id or 0), now, max_age) for a in accounts]
        audit(s, viewer, "view.accounts", target_type="account", detail={"page": page.number})
    return render(request, "accounts_list.html", viewer, active="accounts", page=page)


@router.get("/accounts/new", response_class=HTMLResponse)
def account_new(
    request: Request,
    viewer: Viewer = Depends(admin_viewer),  # noqa: B008
) -> Response:
    with unit_of_work(request) as s:
        supervisors = _supervisors(s)
    return render(
        request, "accounts_edit.html", viewer, active="accounts", account=None,
        supervisors=supervisors, current_supervisor=None, history=[], row=None,
    )  # fmt: skip


def _fields(form: FormData) -> tuple[str, str, list[str], str | None]:
    role = form_text(form, "role", max_len=16)
    regions = parse_regions(form_text(form, "regions", max_len=500))
    if role in {Role.AUDITOR.value, Role.ADMIN.value}:
        regions = []  # they see every region (auditor) or none (administrator)
    supervisor = form_text(form, "supervisor", max_len=64) or None
    return form_text(form, "real_name", max_len=64), role, regions, supervisor


@router.post("/accounts/new", response_class=HTMLResponse)
def account_create(
    request: Request,
    viewer: Viewer = Depends(admin_viewer),  # noqa: B008
    form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    ctx = ctx_of(request)
    real_name, role, regions, supervisor = _fields(form)
    password = generated_password()
    with unit_of_work(request) as s:
        account = create_account(
            s, ctx.settings, username=form_text(form, "username", max_len=64), real_name=real_name,
            role=role, regions=regions, password=password, created_by=viewer.actor,
            supervisor=supervisor, must_change_password=True,
        )  # fmt: skip
        response = _one_time_password_page(request, viewer, account, password, created=True)
    return response


@router.get("/accounts/{username:login_name}", response_class=HTMLResponse)
def account_page(
    request: Request,
    username: str,
    viewer: Viewer = Depends(admin_viewer),  # noqa: B008
) -> Response:
    ctx = ctx_of(request)
    with unit_of_work(request) as s:
        account = _account(s, username)
        current = s.get(OperatorAccount, account.supervisor_id) if account.supervisor_id else None
        row = _row(
            account,
            current.username if current else None,
            utcnow(),
            ctx.settings.dashboard_password_max_age_days,
        )
        history = list(
            s.scalars(
                select(AuditRecord)
                .where(
                    AuditRecord.target_type == "account",
                    AuditRecord.target_id == account.username,
                )
                .order_by(AuditRecord.id.desc())
                .limit(HISTORY_ROWS)
            )
        )
        supervisors = [a for a in _supervisors(s) if a.id != account.id]
        response = render(
            request, "accounts_edit.html", viewer, active="accounts", account=account, row=row,
            supervisors=supervisors, current_supervisor=row.supervisor, history=history,
            is_self=account.id == viewer.principal.account_id,
            action_label=lambda a: action_label(a, viewer.lang),
        )  # fmt: skip
    return response


@router.post("/accounts/{username:login_name}")
def account_update(
    request: Request,
    username: str,
    viewer: Viewer = Depends(admin_viewer),  # noqa: B008
    form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    real_name, role, regions, supervisor = _fields(form)
    with unit_of_work(request) as s:
        account = _account(s, username)
        if role != account.role:
            _not_self(viewer, account, "不能修改本人账户的角色", "you cannot change your own role")
        update_account(s, account, real_name=real_name, role=role, regions=regions, by=viewer.actor)
        set_supervisor(s, account, supervisor, by=viewer.actor)
    return redirect(request, f"/accounts/{account.username}", done="account_updated")


@router.post("/accounts/{username:login_name}/reset-password", response_class=HTMLResponse)
def account_reset_password(
    request: Request,
    username: str,
    viewer: Viewer = Depends(admin_viewer),  # noqa: B008
    _form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    ctx = ctx_of(request)
    password = generated_password()
    with unit_of_work(request) as s:
        account = _account(s, username)
        _not_self(
            viewer,
            account,
            "请通过“修改密码”修改本人密码",
            "change your own password on the password page",
        )
        reset_password(s, ctx.settings, account, password, by=viewer.actor)
        end_sessions_of(s, account.id)
        response = _one_time_password_page(request, viewer, account, password, created=False)
    return response


def _unlock(session: Session, viewer: Viewer, account: OperatorAccount) -> None:
    unlock(session, account, by=viewer.actor)


def _disable(session: Session, viewer: Viewer, account: OperatorAccount) -> None:
    _not_self(viewer, account, "不能停用本人账户", "you cannot disable your own account")
    set_disabled(session, account, True, by=viewer.actor)
    end_sessions_of(session, account.id)


def _enable(session: Session, viewer: Viewer, account: OperatorAccount) -> None:
    set_disabled(session, account, False, by=viewer.actor)


# the buttons of an account's page that need nothing but the click: action → (do, done)
ACCOUNT_ACTIONS: dict[str, tuple[Callable[[Session, Viewer, OperatorAccount], None], str]] = {
    "unlock": (_unlock, "account_unlocked"),
    "disable": (_disable, "account_disabled"),
    "enable": (_enable, "account_enabled"),
}


@router.post("/accounts/{username:login_name}/{action:word}")
def account_action(
    request: Request,
    username: str,
    action: str,
    viewer: Viewer = Depends(admin_viewer),  # noqa: B008
    _form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    """Unlock, disable (ending the user's sessions) or enable an account."""
    if action not in ACCOUNT_ACTIONS:
        raise NotFound
    do, done = ACCOUNT_ACTIONS[action]
    with unit_of_work(request) as s:
        account = _account(s, username)
        do(s, viewer, account)
    return redirect(request, f"/accounts/{account.username}", done=done)


# --- users who have not logged in -----------------------------------------------------


def inactive_viewer(viewer: Viewer = Depends(current_viewer)) -> Viewer:  # noqa: B008
    if viewer.role not in {Role.SUPERVISOR, Role.ADMIN}:
        raise Forbidden(
            "只有复核员和系统管理员可以查看未登录用户",
            "only supervisors and administrators see inactive users",
        )
    return viewer


@router.get("/inactive", response_class=HTMLResponse)
def inactive(
    request: Request,
    viewer: Viewer = Depends(inactive_viewer),  # noqa: B008
) -> Response:
    ctx = ctx_of(request)
    regions = None if viewer.role is Role.ADMIN else viewer.principal.regions
    with unit_of_work(request) as s:
        users = inactive_users(s, ctx.settings, ctx.calendar, regions=regions)
        audit(s, viewer, "view.inactive", target_type="account", detail={"rows": len(users)})
    return render(
        request, "inactive.html", viewer, active="inactive", users=users,
        limit=ctx.settings.dashboard_inactive_working_days,
    )  # fmt: skip
