"""The operators' dashboard (运营看板): a sub-application of the gateway, mounted under
``/dashboard``. Login, logout, password change, language, error pages and security headers
live here; each business area's pages live in ``gateway.dashboard.views``."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import FormData

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
    LANG_COOKIE,
    Forbidden,
    FormRejected,
    LoginRequired,
    NotFound,
    PasswordChangeRequired,
    Viewer,
    client_ip,
    cookie_name,
    current_viewer,
    form_text,
    password_form,
    password_viewer,
    redirect,
    render,
    unit_of_work,
)
from gateway.kit.logging import get_logger
from gateway.rework.errors import ReworkError

log = get_logger(__name__)

LOGIN_CSRF_COOKIE = "gw_login_csrf"

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


def _safe_next(value: str | None) -> str:
    """Only a path inside the dashboard (no scheme, no host, no ``//``)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def create_dashboard(ctx: Context) -> FastAPI:
    app = FastAPI(title="运营看板", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    for router in ROUTERS:
        app.include_router(router)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        if ctx.settings.dashboard_secure_cookies:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, _exc: LoginRequired) -> Response:
        path = request.url.path.removeprefix(request.scope.get("root_path", ""))
        nxt = path + ("?" + request.url.query if request.url.query else "")
        response = redirect(request, "/login", next=nxt if request.method == "GET" else None)
        response.delete_cookie(cookie_name(ctx), path="/")
        return response

    @app.exception_handler(PasswordChangeRequired)
    async def to_password(request: Request, _exc: PasswordChangeRequired) -> Response:
        return redirect(request, "/password")

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        viewer = getattr(request.state, "viewer", None)
        return render(
            request, "error.html", viewer, status_code=403, code="forbidden", zh=exc.zh, en=exc.en
        )

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        viewer = getattr(request.state, "viewer", None)
        return render(
            request, "error.html", viewer, status_code=404, code="not_found", zh=exc.zh, en=exc.en
        )

    @app.exception_handler(FormRejected)
    async def rejected(request: Request, exc: FormRejected) -> Response:
        viewer = getattr(request.state, "viewer", None)
        return render(
            request, "error.html", viewer, status_code=400, code=exc.code, zh=exc.zh, en=exc.en,
            back=exc.back,
        )  # fmt: skip

    @app.exception_handler(ReworkError)
    async def rework_rejected(request: Request, exc: ReworkError) -> Response:
        viewer = getattr(request.state, "viewer", None)
        return render(
            request, "error.html", viewer, status_code=400, code=exc.code,
            zh=exc.message_zh, en=exc.message_en,
        )  # fmt: skip

    @app.exception_handler(AccountError)
    async def account_rejected(request: Request, exc: AccountError) -> Response:
        viewer = getattr(request.state, "viewer", None)
        return render(
            request, "error.html", viewer, status_code=400, code=exc.code, zh=exc.zh, en=exc.en
        )

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, viewer: Viewer = Depends(current_viewer)) -> Response:  # noqa: B008
        if viewer.role is Role.ADMIN:
            return redirect(request, "/accounts")
        return redirect(request, "/overview")

    @app.get("/lang/{code}")
    def set_language(request: Request, code: str, next: str = "/") -> Response:
        response = redirect(request, _safe_next(next))
        if code in {"zh", "en"}:
            response.set_cookie(
                LANG_COOKIE, code, max_age=365 * 86400, samesite="lax",
                secure=ctx.settings.dashboard_secure_cookies, path="/",
            )  # fmt: skip
        return response

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/", error: str | None = None) -> Response:
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
        response = render(
            request, "login.html", None, next=_safe_next(next), error=error, login_csrf=token
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
            secure=ctx.settings.dashboard_secure_cookies, path="/",
        )  # fmt: skip
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        form: FormData = await request.form()
        nxt = _safe_next(form_text(form, "next"))
        presented = form.get("csrf_token")
        if not csrf_matches(
            request.cookies.get(LOGIN_CSRF_COOKIE, ""),
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
        response.set_cookie(
            cookie_name(ctx), token, httponly=True, samesite="strict",
            secure=ctx.settings.dashboard_secure_cookies, path="/",
        )  # fmt: skip
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
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
        response.delete_cookie(cookie_name(ctx), path="/")
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

    return app
