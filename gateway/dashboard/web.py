"""What every dashboard page shares: templates, the logged-in viewer, permission checks,
region scoping, CSRF-checked forms, pagination, formatting and audit of what is shown.

Pages are server-rendered (Jinja2, autoescaped). Every text is written in both languages
where it is used: ``tr("批次", "Batches")`` picks the viewer's language (Simplified Chinese
unless they chose English).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import ColumnElement, Select, false, or_
from sqlalchemy.orm import InstrumentedAttribute, Session
from starlette.datastructures import FormData

from gateway.context import Context
from gateway.dashboard.accounts import Principal, Role, password_expired
from gateway.dashboard.models import OperatorAccount
from gateway.dashboard.sessions import LiveSession, csrf_matches, resume_session
from gateway.kit.clock import CHINA
from gateway.kit.db import session_scope
from gateway.payments.states import BatchState, ItemState
from gateway.rework.audit import record

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
LANG_COOKIE = "gw_lang"
PAGE_SIZE = 50
# what a page says after a redirect with ``?done=<code>``; each view module adds its own
DONE_MESSAGES: dict[str, tuple[str, str]] = {
    "password_changed": ("密码已修改", "Password changed"),
}
# pages show personal data (masked) and payment data: never cached by the browser or a proxy
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def cookie_name(ctx: Context) -> str:
    """``__Host-`` cookies are Secure, host-only and path ``/`` by the browser's own rules."""
    return "__Host-gw_session" if ctx.settings.dashboard_secure_cookies else "gw_session"


class LoginRequired(Exception):  # noqa: N818 - a control-flow signal, not an error
    """No live session: the handler redirects to the login page."""


class PasswordChangeRequired(Exception):  # noqa: N818 - a control-flow signal
    """The password is expired or was reset: only the change-password page is open."""


class Forbidden(Exception):  # noqa: N818 - rendered as the 403 page
    def __init__(self, zh: str = "您无权执行此操作", en: str = "you may not do this") -> None:
        super().__init__(en)
        self.zh = zh
        self.en = en


class NotFound(Exception):  # noqa: N818 - rendered as the 404 page
    def __init__(self, zh: str = "未找到", en: str = "not found") -> None:
        super().__init__(en)
        self.zh = zh
        self.en = en


class FormRejected(Exception):  # noqa: N818 - rendered as a 400 page with the reason
    """A refused action: says why, in Chinese and English, with a machine-readable code."""

    def __init__(self, code: str, zh: str, en: str, *, back: str | None = None) -> None:
        super().__init__(en)
        self.code = code
        self.zh = zh
        self.en = en
        self.back = back


def ctx_of(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def language_of(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "zh")
    return lang if lang in {"zh", "en"} else "zh"


@dataclass(frozen=True)
class Viewer:
    """The logged-in person looking at a page."""

    principal: Principal
    csrf_token: str
    session_id: int
    lang: str

    @property
    def role(self) -> Role:
        return self.principal.role

    @property
    def actor(self) -> str:
        return self.principal.actor

    def tr(self, zh: str, en: str) -> str:
        return en if self.lang == "en" else zh


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _live(request: Request, ctx: Context) -> LiveSession:
    token = request.cookies.get(cookie_name(ctx))
    with session_scope(ctx.sessions) as s:
        live = resume_session(s, ctx.settings, token)
        if live is None:
            raise LoginRequired
        account = s.get(OperatorAccount, live.principal.account_id)
        if account is not None and password_expired(ctx.settings, account):
            raise PasswordChangeRequired
    return live


def current_viewer(request: Request) -> Viewer:
    """Dependency of every page behind the login."""
    ctx = ctx_of(request)
    live = _live(request, ctx)
    viewer = Viewer(live.principal, live.csrf_token, live.session_id, language_of(request))
    request.state.viewer = viewer
    return viewer


def password_viewer(request: Request) -> Viewer:
    """Dependency of the change-password page: a live session, even with an expired
    password."""
    ctx = ctx_of(request)
    token = request.cookies.get(cookie_name(ctx))
    with session_scope(ctx.sessions) as s:
        live = resume_session(s, ctx.settings, token)
    if live is None:
        raise LoginRequired
    viewer = Viewer(live.principal, live.csrf_token, live.session_id, language_of(request))
    request.state.viewer = viewer
    return viewer


# --- permissions ------------------------------------------------------------------------


def payments_viewer(viewer: Viewer = Depends(current_viewer)) -> Viewer:  # noqa: B008
    """Pages with payment data: everyone but the account administrator."""
    if not viewer.role.sees_payments():
        raise Forbidden("系统管理员不能查看支付数据", "administrators do not see payment data")
    return viewer


def acting_viewer(viewer: Viewer = Depends(current_viewer)) -> Viewer:  # noqa: B008
    """Payment actions: operators and supervisors (never auditors or administrators)."""
    if not viewer.role.acts_on_payments():
        raise Forbidden("您的角色只能查看，不能操作", "your role is read-only")
    return viewer


def supervisor_viewer(viewer: Viewer = Depends(current_viewer)) -> Viewer:  # noqa: B008
    """The second person of a maker-checker action."""
    if not viewer.role.approves():
        raise Forbidden("只有复核员可以执行此操作", "only a supervisor may do this")
    return viewer


def admin_viewer(viewer: Viewer = Depends(current_viewer)) -> Viewer:  # noqa: B008
    if not viewer.role.manages_accounts():
        raise Forbidden("只有系统管理员可以管理账户", "only an administrator manages accounts")
    return viewer


def region_clause(viewer: Viewer, column: InstrumentedAttribute[str]) -> ColumnElement[bool] | None:
    """A WHERE clause keeping rows of the viewer's regions; None when they see every region."""
    scope = viewer.principal.region_filter()
    if scope is None:
        return None
    if not scope:
        return false()
    return or_(*(column.startswith(prefix, autoescape=True) for prefix in scope))


SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


def scoped(stmt: SelectT, viewer: Viewer, column: InstrumentedAttribute[str]) -> SelectT:
    clause = region_clause(viewer, column)
    return stmt if clause is None else stmt.where(clause)


def check_region(viewer: Viewer, region_code: str) -> None:
    """Out-of-scope records answer like missing ones (no hint that they exist)."""
    if not viewer.principal.may_see_region(region_code):
        raise NotFound


def verify_form(request: Request, viewer: Viewer, form: FormData) -> None:
    """The session's CSRF token must come back, and the request must come from the
    dashboard's own origin when the browser says where it comes from."""
    token = form.get("csrf_token")
    if not csrf_matches(viewer.csrf_token, token if isinstance(token, str) else None):
        raise Forbidden("表单已失效（CSRF校验失败），请刷新页面后重试", "CSRF check failed")
    origin = request.headers.get("origin")
    if origin and origin != "null":
        expected = f"{request.url.scheme}://{request.url.netloc}"
        if origin != expected:
            raise Forbidden("跨站请求被拒绝", "cross-site request refused")


async def checked_form(request: Request, viewer: Viewer = Depends(current_viewer)) -> FormData:  # noqa: B008
    """Every form post of a logged-in user, CSRF- and origin-checked."""
    form = await request.form()
    verify_form(request, viewer, form)
    return form


async def password_form(request: Request, viewer: Viewer = Depends(password_viewer)) -> FormData:  # noqa: B008
    """Form posts that stay open while the password is expired (change it, log out)."""
    form = await request.form()
    verify_form(request, viewer, form)
    return form


def form_text(form: FormData, name: str, *, max_len: int = 500) -> str:
    value = form.get(name)
    return value.strip()[:max_len] if isinstance(value, str) else ""


def form_ints(form: FormData, name: str) -> list[int]:
    out: list[int] = []
    for v in form.getlist(name):
        if isinstance(v, str) and v.isdigit() and len(v) < 19:
            out.append(int(v))
    return out


# --- audit ------------------------------------------------------------------------------


def audit(
    session: Session,
    viewer: Viewer,
    action: str,
    *,
    target_type: str,
    target_id: str | int | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Every page that shows payment data, and every action, leaves an audit row."""
    record(
        session,
        actor=viewer.actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        reason=reason,
        detail={"session": viewer.session_id, **(detail or {})},
    )


# --- pagination and filters -------------------------------------------------------------


@dataclass
class Page:
    number: int
    size: int
    total: int
    rows: Sequence[Any] = field(default_factory=list)

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def has_prev(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


def page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return max(1, min(int(raw), 100_000)) if raw.isdigit() else 1


def filters_of(request: Request, names: Sequence[str]) -> dict[str, str]:
    """The page's filter values from the query string (trimmed, short)."""
    out: dict[str, str] = {}
    for name in names:
        value = request.query_params.get(name, "").strip()[:64]
        if value:
            out[name] = value
    return out


def parse_day(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def china_day_start_utc(day: dt.date) -> dt.datetime:
    """Midnight of a China day, as the naive UTC the database stores."""
    return dt.datetime.combine(day, dt.time(), tzinfo=CHINA).astimezone(dt.UTC).replace(tzinfo=None)


# --- formatting (template globals) ------------------------------------------------------


def yuan(fen: int | None) -> str:
    """Integer fen → ``1,234.56`` (string arithmetic on integers; never a float)."""
    if fen is None:
        return "-"
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def local_time(value: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(CHINA).strftime(fmt)


_ITEM_EN = {s: s.value.replace("_", " ") for s in ItemState}
_BATCH_EN = {s: s.value for s in BatchState}


def item_state_label(state: str, lang: str) -> str:
    try:
        s = ItemState(state)
    except ValueError:
        return state
    return _ITEM_EN[s] if lang == "en" else s.label_zh


def batch_state_label(state: str, lang: str) -> str:
    try:
        s = BatchState(state)
    except ValueError:
        return state
    return _BATCH_EN[s] if lang == "en" else s.label_zh


def query_with(request: Request, **changes: Any) -> str:
    """The current query string with some parameters replaced (None removes one)."""
    params = dict(request.query_params)
    for k, v in changes.items():
        if v is None or v == "":
            params.pop(k, None)
        else:
            params[k] = str(v)
    return "?" + urlencode(params) if params else "?"


def url_for_path(request: Request, path: str) -> str:
    """A dashboard path under the mount point (``/dashboard`` by default)."""
    return str(request.scope.get("root_path", "")).rstrip("/") + path


def render(
    request: Request,
    template: str,
    viewer: Viewer | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    lang = viewer.lang if viewer else language_of(request)

    def tr(zh: str, en: str) -> str:
        return en if lang == "en" else zh

    done = DONE_MESSAGES.get(request.query_params.get("done", ""))
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "viewer": viewer,
            "lang": lang,
            "tr": tr,
            "yuan": yuan,
            "local_time": local_time,
            "item_state": lambda s: item_state_label(s, lang),
            "batch_state": lambda s: batch_state_label(s, lang),
            "url": lambda p: url_for_path(request, p),
            "query_with": lambda **kw: query_with(request, **kw),
            "Role": Role,
            "done_message": tr(*done) if done else None,
            **context,
        },
        status_code=status_code,
        headers=NO_STORE,
    )


def redirect(request: Request, path: str, **params: Any) -> Response:
    target = url_for_path(request, path)
    clean = {k: v for k, v in params.items() if v is not None}
    if clean:
        target += "?" + urlencode(clean)
    return Response(status_code=303, headers={"Location": target, **NO_STORE})


@contextmanager
def unit_of_work(request: Request) -> Iterator[Session]:
    """One transaction per request step (the boundary commits)."""
    with session_scope(ctx_of(request).sessions) as s:
        yield s
