"""The operators' dashboard (运营看板): a sub-application of the gateway, mounted under
``/dashboard``. Login, logout, password change, language, error pages and security headers
live here; each business area's pages live in ``gateway.dashboard.views``."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import FormData, Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.context import Context
from gateway.dashboard.accounts import (
    AccountError,
    LoginResult,
    Role,
    authenticate,
    change_password,
    find_account,
    password_expired,
)
from gateway.dashboard.sessions import csrf_matches, end_session, end_sessions_of, start_session
from gateway.dashboard.views import ROUTERS
from gateway.dashboard.web import (
    NO_STORE,
    ROOT_KEY,
    Forbidden,
    FormRejected,
    LoginRequired,
    NotFound,
    PasswordChangeRequired,
    Viewer,
    check_path_parameters,
    clear_cookie,
    client_ip,
    cookie_name,
    current_viewer,
    form_text,
    password_form,
    password_viewer,
    path_in_dashboard,
    redirect,
    render,
    safe_next,
    set_cookie,
    unit_of_work,
)
from gateway.kit.logging import get_logger
from gateway.rework.errors import ReworkError

log = get_logger(__name__)

# No inline script or style: what the pages need comes from /static (CSP 'self').
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# the largest form a page posts is well under this (a notes field, 50 checked items)
MAX_BODY_BYTES = 1024 * 1024
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)

# status → (code, 中文, English) of the error pages other than those raised by the views
_HTTP_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("bad_request", "请求格式无效", "the request is malformed"),
    405: ("method_not_allowed", "不支持此请求方式", "method not allowed"),
    413: (
        "too_large",
        f"提交的内容过大（上限 {MAX_BODY_BYTES // 1024} KiB）",
        f"the request body is too large (at most {MAX_BODY_BYTES // 1024} KiB)",
    ),
}
_INTERNAL = (
    "internal_error",
    "系统内部错误，操作可能未完成。请先查看记录的当前状态，再决定是否重做。",
    "internal error: the action may not have been done. Look at the record's state before "
    "doing it again.",
)


def error_page(
    request: Request,
    viewer: Viewer | None,
    status_code: int,
    code: str,
    zh: str,
    en: str,
    *,
    back: str | None = None,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    response = render(
        request, "error.html", viewer, status_code=status_code, code=code, zh=zh, en=en,
        back=back, field=field,
    )  # fmt: skip
    for k, v in (headers or {}).items():
        response.headers.setdefault(k, v)
    return response


def not_found_page(request: Request, viewer: Viewer | None) -> Response:
    return error_page(request, viewer, 404, "not_found", NotFound.zh, NotFound.en)


def _viewer_of(request: Request) -> Viewer | None:
    """The logged-in viewer of a request no page handled (an unknown address), so that its
    404 looks like a page's own; None when nobody is logged in."""
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    if viewer is not None:
        return viewer
    try:
        return current_viewer(request)
    except (LoginRequired, PasswordChangeRequired):
        return None


class BodyTooLargeError(Exception):
    """A request body past ``MAX_BODY_BYTES`` (raised while it is read)."""


class DashboardGuard:
    """Around every dashboard request (pure ASGI, between the framework's own error
    middleware and the exception handlers):

    - every response, error pages included, carries the security headers and, unless it is
      a static file, ``no-store``;
    - a body over ``MAX_BODY_BYTES`` is refused (413): a declared one before anything
      reads it, an undeclared (chunked) one as soon as the reading passes the limit;
    - an exception no handler took becomes the 500 page, logged, never a dropped
      connection or a page without the headers."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.headers = dict(SECURITY_HEADERS)
        if hsts:
            self.headers["Strict-Transport-Security"] = "max-age=31536000"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        root = str(scope.get("root_path", ""))
        scope[ROOT_KEY] = root
        is_static = str(scope.get("path", "")).removeprefix(root).startswith("/static/")

        async def send_guarded(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for k, v in self.headers.items():
                    headers.setdefault(k, v)
                if not (is_static and int(message["status"]) < 400):
                    for k, v in NO_STORE.items():
                        headers.setdefault(k, v)
            await send(message)

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise BodyTooLargeError
            return message

        declared = Headers(scope=scope).get("content-length", "")
        too_large = declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES
        try:
            if too_large:
                raise BodyTooLargeError
            await self.app(scope, receive_limited, send_guarded)
        except BodyTooLargeError:
            if started:
                raise
            code, zh, en = _HTTP_ERRORS[413]
            response = error_page(Request(scope), None, 413, code, zh, en)
            await response(scope, receive, send_guarded)
        except Exception as exc:
            log.error("dashboard.unexpected_error", path=scope.get("path"), exc_info=exc)
            if started:
                raise
            code, zh, en = _INTERNAL
            response = error_page(Request(scope, receive), None, 500, code, zh, en)
            await response(scope, receive, send_guarded)


def create_dashboard(ctx: Context) -> FastAPI:
    app = FastAPI(title="运营看板", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(DashboardGuard, hsts=ctx.settings.dashboard_secure_cookies)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, _exc: LoginRequired) -> Response:
        nxt = path_in_dashboard(request) + ("?" + request.url.query if request.url.query else "")
        response = redirect(
            request, "/login", next=safe_next(nxt) if request.method == "GET" else None
        )
        clear_cookie(response, ctx, "session")
        return response

    @app.exception_handler(PasswordChangeRequired)
    async def to_password(request: Request, _exc: PasswordChangeRequired) -> Response:
        return redirect(request, "/password")

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        viewer = getattr(request.state, "viewer", None)
        return error_page(request, viewer, 403, "forbidden", exc.zh, exc.en)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, _exc: NotFound) -> Response:
        return not_found_page(request, getattr(request.state, "viewer", None))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """What the framework refuses itself: an address no route has (or a path parameter
        its converter does not match), a method a route does not take, a body too large or
        a form that does not parse."""
        if exc.status_code == 404:
            return not_found_page(request, _viewer_of(request))
        code, zh, en = _HTTP_ERRORS.get(
            exc.status_code,
            (f"http_{exc.status_code}", "请求未能完成", "the request was not completed"),
        )
        viewer = getattr(request.state, "viewer", None)
        return error_page(
            request, viewer, exc.status_code, code, zh, en, headers=dict(exc.headers or {})
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        loc = errors[0].get("loc", ()) if errors else ()
        field = str(loc[-1]) if loc else None
        code, zh, en = _HTTP_ERRORS[400]
        viewer = getattr(request.state, "viewer", None)
        return error_page(request, viewer, 400, code, zh, en, field=field)

    @app.exception_handler(FormRejected)
    async def rejected(request: Request, exc: FormRejected) -> Response:
        viewer = getattr(request.state, "viewer", None)
        return error_page(
            request, viewer, 400, exc.code, exc.zh, exc.en, back=exc.back, field=exc.field
        )

    @app.exception_handler(ReworkError)
    async def rework_rejected(request: Request, exc: ReworkError) -> Response:
        viewer = getattr(request.state, "viewer", None)
        return error_page(request, viewer, 400, exc.code, exc.message_zh, exc.message_en)

    @app.exception_handler(AccountError)
    async def account_rejected(request: Request, exc: AccountError) -> Response:
        viewer = getattr(request.state, "viewer", None)
        return error_page(request, viewer, 400, exc.code, exc.zh, exc.en)

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, viewer: Viewer = Depends(current_viewer)) -> Response:  # noqa: B008
        if viewer.role is Role.ADMIN:
            return redirect(request, "/accounts")
        return redirect(request, "/overview")

    @app.get("/lang/{code:word}")
    def set_language(request: Request, code: str, next: str = "/") -> Response:
        response = redirect(request, safe_next(next))
        if code in {"zh", "en"}:
            set_cookie(response, ctx, "lang", code, max_age=365 * 86400)
        return response

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/", error: str | None = None) -> Response:
        token = request.cookies.get(cookie_name(ctx, "login_csrf"), "")
        if not _TOKEN.fullmatch(token):
            token = secrets.token_urlsafe(32)
        response = render(
            request, "login.html", None, next=safe_next(next), error=error, login_csrf=token
        )
        set_cookie(response, ctx, "login_csrf", token)
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        form: FormData = await request.form()
        nxt = safe_next(form.get("next"))
        presented = form.get("csrf_token")
        if not csrf_matches(
            request.cookies.get(cookie_name(ctx, "login_csrf"), ""),
            presented if isinstance(presented, str) else None,
        ):
            return redirect(request, "/login", next=nxt, error="csrf")
        username = form_text(form, "username", max_len=64)
        password = form.get("password")
        password = password if isinstance(password, str) else ""
        ip = client_ip(request)
        with unit_of_work(request) as s:
            result, account = authenticate(s, ctx.settings, username, password, client_ip=ip)
            token = None
            expired = False
            if result is LoginResult.OK and account is not None:
                token = start_session(s, ctx.settings, account, client_ip=ip)
                expired = password_expired(ctx.settings, account)
        log.info("dashboard.login", result=result.value)
        if token is None:
            return redirect(request, "/login", next=nxt, error=result.value)
        response = redirect(request, "/password" if expired else nxt)
        set_cookie(response, ctx, "session", token)
        clear_cookie(response, ctx, "login_csrf")
        return response

    @app.post("/logout")
    def logout(
        request: Request,
        viewer: Viewer = Depends(password_viewer),  # noqa: B008
        _form: FormData = Depends(password_form),  # noqa: B008
    ) -> Response:
        with unit_of_work(request) as s:
            end_session(s, request.cookies.get(cookie_name(ctx)))
            from gateway.rework.audit import record  # noqa: PLC0415

            record(s, actor=viewer.actor, action="logout", target_type="account",
                   target_id=viewer.actor)  # fmt: skip
        response = redirect(request, "/login")
        clear_cookie(response, ctx, "session")
        return response

    @app.get("/password", response_class=HTMLResponse)
    def password_page(
        request: Request,
        viewer: Viewer = Depends(password_viewer),  # noqa: B008
        error: str | None = None,
    ) -> Response:
        with unit_of_work(request) as s:
            account = find_account(s, viewer.actor)
            expired = account is not None and password_expired(ctx.settings, account)
        return render(
            request, "password.html", viewer, expired=expired, error=error,
            min_length=ctx.settings.dashboard_password_min_length,
        )  # fmt: skip

    @app.post("/password")
    def password_change(
        request: Request,
        viewer: Viewer = Depends(password_viewer),  # noqa: B008
        form: FormData = Depends(password_form),  # noqa: B008
    ) -> Response:
        current = form.get("current")
        new = form.get("new")
        confirm = form.get("confirm")
        if not (isinstance(current, str) and isinstance(new, str) and isinstance(confirm, str)):
            raise FormRejected("missing_field", "请填写所有字段", "every field is required")
        if new != confirm:
            raise FormRejected(
                "password_mismatch", "两次输入的新密码不一致", "the new passwords differ",
                back="/password",
            )  # fmt: skip
        with unit_of_work(request) as s:
            account = find_account(s, viewer.actor)
            if account is None:
                raise LoginRequired
            change_password(s, ctx.settings, account, current, new)
            end_sessions_of(s, account.id, keep=viewer.session_id)
        return redirect(request, "/", done="password_changed")

    check_path_parameters(app)
    return app
