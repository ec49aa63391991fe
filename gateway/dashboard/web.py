"""What every dashboard page shares: templates, the logged-in viewer, permission checks,
region scoping, CSRF-checked forms, pagination, formatting and audit of what is shown.

Pages are server-rendered (Jinja2, autoescaped). Every text is written in both languages
where it is used: ``tr("批次", "Batches")`` picks the viewer's language (Simplified Chinese
unless they chose English).
"""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote, unquote, urlencode, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import iter_route_contexts
from fastapi.templating import Jinja2Templates
from sqlalchemy import ColumnElement, Select, false, or_
from sqlalchemy.orm import InstrumentedAttribute, Session
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import FormData
from starlette.routing import Route

from gateway.context import Context
from gateway.dashboard.accounts import USERNAME, Principal, Role, password_expired
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


# --- path parameters --------------------------------------------------------------------
#
# Every path parameter of every dashboard route names one of these converters
# (``/batches/{batch_id:id}``); ``check_path_parameters`` refuses to build the dashboard
# otherwise. A value the converter does not match matches no route: it answers the one 404
# page, like a record that does not exist, before any handler or query runs.

MAX_ID = 10**18 - 1  # ids in URLs: far beyond any table, well inside a signed 64-bit integer


class RecordIdConvertor(Convertor[int]):
    """A record id: 1 to ``MAX_ID`` in canonical decimal (no sign, no leading zero)."""

    regex = "[1-9][0-9]{0,17}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 0 < int(value) <= MAX_ID:
            raise ValueError("record id out of range")
        return str(int(value))


class LoginNameConvertor(Convertor[str]):
    """An account's login name, as accounts are stored (``accounts.USERNAME``)."""

    regex = USERNAME.pattern.removeprefix("^").removesuffix("$")

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class WordConvertor(Convertor[str]):
    """A fixed word of the dashboard's own (an action, a language code)."""

    regex = "[a-z][a-z_-]{0,31}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


PATH_CONVERTORS: dict[str, Convertor[Any]] = {
    "id": RecordIdConvertor(),
    "login_name": LoginNameConvertor(),
    "word": WordConvertor(),
}
for _name, _convertor in PATH_CONVERTORS.items():
    register_url_convertor(_name, _convertor)


def check_path_parameters(app: Starlette) -> None:
    """Refuse to build a dashboard with a route whose path parameter is not bounded by one
    of ``PATH_CONVERTORS`` (a bare ``{item_id}`` or ``{item_id:int}`` would take any
    number, and a number beyond BIGINT fails in the database)."""
    ours = tuple(type(c) for c in PATH_CONVERTORS.values())
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, Route):  # a mount (the static files)
            continue
        convertors: dict[str, Convertor[Any]] = route.param_convertors
        for name, convertor in convertors.items():
            if not isinstance(convertor, ours):
                raise RuntimeError(
                    f"dashboard route {route.path}: path parameter {name!r} needs a bounded "
                    f"converter ({', '.join(PATH_CONVERTORS)}), e.g. {{{name}:id}}"
                )


# --- cookies ----------------------------------------------------------------------------

CookieKind = Literal["session", "login_csrf", "lang"]
LOGIN_CSRF_COOKIE = "gw_login_csrf"


@dataclass(frozen=True, slots=True)
class CookieSpec:
    httponly: bool
    samesite: Literal["strict", "lax"]


# the attributes each cookie is set with; its deletion carries the same (a browser ignores
# a deletion of a Secure or __Host- cookie that is not itself Secure, path /)
COOKIES: dict[CookieKind, CookieSpec] = {
    "session": CookieSpec(httponly=True, samesite="strict"),
    "login_csrf": CookieSpec(httponly=True, samesite="strict"),
    "lang": CookieSpec(httponly=False, samesite="lax"),
}


def cookie_name(ctx: Context, kind: CookieKind = "session") -> str:
    """``__Host-`` cookies are Secure, host-only and path ``/`` by the browser's own rules."""
    if kind == "login_csrf":
        return LOGIN_CSRF_COOKIE
    if kind == "lang":
        return LANG_COOKIE
    return "__Host-gw_session" if ctx.settings.dashboard_secure_cookies else "gw_session"


def set_cookie(
    response: Response, ctx: Context, kind: CookieKind, value: str, *, max_age: int | None = None
) -> None:
    spec = COOKIES[kind]
    response.set_cookie(
        cookie_name(ctx, kind), value, max_age=max_age, path="/", httponly=spec.httponly,
        samesite=spec.samesite, secure=ctx.settings.dashboard_secure_cookies,
    )  # fmt: skip


def clear_cookie(response: Response, ctx: Context, kind: CookieKind) -> None:
    """Delete a cookie with the attributes it was set with."""
    spec = COOKIES[kind]
    response.delete_cookie(
        cookie_name(ctx, kind), path="/", httponly=spec.httponly, samesite=spec.samesite,
        secure=ctx.settings.dashboard_secure_cookies,
    )  # fmt: skip


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
    """The one 404 page: a record that does not exist, one outside the viewer's regions and
    an address no route has all answer alike (status, body, headers), so that nobody learns
    which ids exist."""

    zh = "未找到：记录不存在，或您无权查看"
    en = "not found: no such record, or not yours to see"


class FormRejected(Exception):  # noqa: N818 - rendered as a 400 page with the reason
    """A refused action: says why, in Chinese and English, with a machine-readable code
    and, where one field is at fault, its name."""

    def __init__(
        self, code: str, zh: str, en: str, *, back: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(en)
        self.code = code
        self.zh = zh
        self.en = en
        self.back = back
        self.field = field


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


# what no text typed into the dashboard holds: control characters (but tab and line breaks
# in a note) and lone surrogates. PostgreSQL refuses NUL in text and in JSON.
_TEXT_ALLOWED_CONTROLS = frozenset("\t\n\r")


def text_problem(value: str) -> bool:
    return any(
        unicodedata.category(c) in {"Cc", "Cs"} and c not in _TEXT_ALLOWED_CONTROLS for c in value
    )


def form_text(form: FormData, name: str, *, max_len: int = 500) -> str:
    """A text field, trimmed and cut at ``max_len``; one holding a control character is
    refused (``bad_characters``, with the field named)."""
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    if text_problem(value):
        raise FormRejected(
            "bad_characters",
            f"字段 {name} 含有不允许的控制字符",
            f"field {name} holds a control character",
            field=name,
        )
    return value.strip()[:max_len]


def record_id(value: object) -> int | None:
    """A record id typed or posted as text: canonical ASCII decimal within ``MAX_ID``."""
    if (
        isinstance(value, str)
        and value.isascii()
        and value.isdigit()
        and len(value) <= 18
        and value[0] != "0"
    ):
        return int(value)
    return None


def form_ints(form: FormData, name: str) -> list[int]:
    """The record ids posted under ``name`` (anything else is left out)."""
    return [i for i in (record_id(v) for v in form.getlist(name)) if i is not None]


# --- where to go after login or a language switch ----------------------------------------

NEXT_MAX = 1000
_NEXT_REFUSED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def safe_next(value: object) -> str:
    """A path inside the dashboard to go back to, or ``/``: never a scheme, a host, ``//``,
    a backslash, a dot segment, a control or invisible character (a CR/LF would break the
    Location header), nor more than ``NEXT_MAX`` characters."""
    if not isinstance(value, str) or not value or len(value) > NEXT_MAX:
        return "/"
    if "\\" in value or any(unicodedata.category(c) in _NEXT_REFUSED for c in value):
        return "/"
    if not value.startswith("/") or value.startswith("//"):
        return "/"
    try:
        parts = urlsplit(value)
    except ValueError:
        return "/"
    if parts.scheme or parts.netloc:
        return "/"
    decoded = unquote(parts.path)
    if "\\" in decoded or any(seg in {".", ".."} for seg in decoded.split("/")):
        return "/"
    return value


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


MAX_PAGE = 100_000


def page_number(request: Request) -> int:
    """``?page=``: 1 to ``MAX_PAGE`` (ASCII digits; anything else is page 1)."""
    raw = request.query_params.get("page", "1")
    if raw.isascii() and raw.isdigit() and len(raw) <= 6:
        return max(1, min(int(raw), MAX_PAGE))
    return 1


def filters_of(request: Request, names: Sequence[str]) -> dict[str, str]:
    """The page's filter values from the query string (trimmed, short); a value holding a
    control character filters nothing."""
    out: dict[str, str] = {}
    for name in names:
        value = request.query_params.get(name, "").strip()[:64]
        if value and not text_problem(value):
            out[name] = value
    return out


# days a filter or a period may name: their midnights and the day after stay representable
# in both China time and UTC
FIRST_DAY = dt.date(1900, 1, 1)
LAST_DAY = dt.date(9998, 12, 31)


def parse_day(value: str | None) -> dt.date | None:
    """An ISO date from ``FIRST_DAY`` to ``LAST_DAY``, or None."""
    if not value or len(value) > 32 or not value.isascii():
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None


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


# the scope key where the dashboard notes its mount point (a mount inside it, the static
# files, extends ``root_path``)
ROOT_KEY = "gateway.dashboard_root"


def dashboard_root(request: Request) -> str:
    return str(request.scope.get(ROOT_KEY, request.scope.get("root_path", ""))).rstrip("/")


def url_for_path(request: Request, path: str) -> str:
    """A dashboard path under the mount point (``/dashboard`` by default)."""
    return dashboard_root(request) + path


def path_in_dashboard(request: Request) -> str:
    """The request's path inside the dashboard (``/batches/1``)."""
    return request.url.path.removeprefix(dashboard_root(request)) or "/"


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
            "here": path_in_dashboard(request),
            "query_with": lambda **kw: query_with(request, **kw),
            "Role": Role,
            "done_message": tr(*done) if done else None,
            **context,
        },
        status_code=status_code,
        headers=NO_STORE,
    )


# what stays as it is in a Location: the reserved and unreserved characters, and escapes
_LOCATION_SAFE = "/?&=%:@!$'()*+,;~#[]"


def redirect(request: Request, path: str, **params: Any) -> Response:
    """A 303 to a dashboard path; anything in ``path`` a header may not carry (a CR/LF,
    non-ASCII) is percent-encoded."""
    target = quote(url_for_path(request, path), safe=_LOCATION_SAFE)
    clean = {k: v for k, v in params.items() if v is not None}
    if clean:
        target += "?" + urlencode(clean)
    return Response(status_code=303, headers={"Location": target, **NO_STORE})


@contextmanager
def unit_of_work(request: Request) -> Iterator[Session]:
    """One transaction per request step (the boundary commits)."""
    with session_scope(ctx_of(request).sessions) as s:
        yield s
