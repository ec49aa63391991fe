"""Logging in and staying logged in: lockout, password policy and expiry, CSRF, session
expiry, logout, cookies and security headers, and what each role may open."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from gateway.dashboard.models import DashboardSession, OperatorAccount
from gateway.kit.clock import utcnow
from gateway.rework.models import AuditRecord
from tests.gateway.dashboard.support import PASSWORD, DashClient, make_accounts


def _audit(ctx: Any, action: str, actor: str | None = None) -> list[AuditRecord]:
    with ctx.sessions() as s:
        stmt = select(AuditRecord).where(AuditRecord.action == action)
        if actor:
            stmt = stmt.where(AuditRecord.actor == actor)
        return list(s.scalars(stmt))


def test_login_sets_a_secure_host_only_cookie_and_records_it(ctx: Any) -> None:
    make_accounts(ctx)
    client = DashClient(ctx)
    response = client.login("op101")
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-gw_session=")
    lowered = cookie.lower()
    assert "httponly" in lowered
    assert "secure" in lowered
    assert "samesite=strict" in lowered
    assert "path=/" in lowered
    assert len(_audit(ctx, "login.ok", "op101")) == 1
    with ctx.sessions() as s:
        row = s.scalar(select(DashboardSession))
        assert row is not None
        # only the token's hash is stored
        token = cookie.split(";")[0].split("=", 1)[1]
        assert token not in (row.token_sha256, row.csrf_token)


def test_wrong_password_and_unknown_user_answer_alike(ctx: Any) -> None:
    make_accounts(ctx)
    client = DashClient(ctx)
    a = client.login("op101", "Wrong-Pass-2026!")
    b = client.login("nobody", "Wrong-Pass-2026!")
    assert a.status_code == b.status_code == 303
    assert a.headers["location"] == b.headers["location"]
    assert "error=bad_credentials" in a.headers["location"]
    assert "set-cookie" not in a.headers or "gw_session" not in a.headers["set-cookie"]
    assert _audit(ctx, "login.failed", "op101")
    assert _audit(ctx, "login.failed", "nobody")


def test_lockout_after_repeated_failures_refuses_even_the_right_password(ctx: Any) -> None:
    make_accounts(ctx)
    client = DashClient(ctx)
    for _ in range(ctx.settings.dashboard_lockout_failures - 1):
        assert "bad_credentials" in client.login("op101", "Wrong-Pass-2026!").headers["location"]
    locked = client.login("op101", "Wrong-Pass-2026!")
    assert "error=locked" in locked.headers["location"]
    assert _audit(ctx, "login.locked", "op101")
    # the right password no longer opens it
    again = client.login("op101")
    assert "error=locked" in again.headers["location"]
    page = client.http.get(again.headers["location"])
    assert "账户已锁定" in page.text
    assert _audit(ctx, "login.refused", "op101")
    # once the lock has run out, the right password works again
    with ctx.sessions.begin() as s:
        s.execute(
            update(OperatorAccount)
            .where(OperatorAccount.username == "op101")
            .values(locked_until=utcnow() - dt.timedelta(seconds=1))
        )
    assert "/login" not in client.login("op101").headers["location"]


def test_expired_password_allows_only_the_change_password_page(ctx: Any) -> None:
    make_accounts(ctx)
    with ctx.sessions.begin() as s:
        s.execute(
            update(OperatorAccount)
            .where(OperatorAccount.username == "op101")
            .values(password_changed_at=utcnow() - dt.timedelta(days=91))
        )
    client = DashClient(ctx)
    response = client.login("op101")
    assert response.headers["location"].endswith("/dashboard/password")
    blocked = client.get("/overview", follow_redirects=False)
    assert blocked.status_code == 303
    assert blocked.headers["location"].endswith("/dashboard/password")
    page = client.get("/password")
    assert "密码已过期" in page.text
    # the policy is enforced with a clear message
    weak = client.post("/password", {"current": PASSWORD, "new": "short", "confirm": "short"})
    assert weak.status_code == 400
    assert "密码至少12位" in weak.text
    assert "password_too_short" in weak.text
    new = "Another-Pass-2027#"
    done = client.post("/password", {"current": PASSWORD, "new": new, "confirm": new})
    assert done.status_code == 303
    assert client.get("/", follow_redirects=False).headers["location"].endswith("/overview")
    assert _audit(ctx, "account.password_changed", "op101")
    # the old password no longer works, the new one does
    other = DashClient(ctx)
    assert "error=" in other.login("op101").headers["location"]
    assert "/login" not in other.login("op101", new).headers["location"]


def test_a_new_account_must_change_its_one_time_password(ctx: Any) -> None:
    from gateway.dashboard.accounts import create_account
    from gateway.kit.db import session_scope

    with session_scope(ctx.sessions) as s:
        create_account(
            s, ctx.settings, username="newbie", real_name="新用户", role="operator",
            regions=["430621101"], password="One-Time-Pass-1!", created_by="test",
        )  # fmt: skip
    client = DashClient(ctx)
    response = client.login("newbie", "One-Time-Pass-1!")
    assert response.headers["location"].endswith("/dashboard/password")


def test_form_posts_without_or_with_a_wrong_csrf_token_are_refused(ctx: Any) -> None:
    make_accounts(ctx)
    client = DashClient(ctx)
    client.login("op101")
    new = "Another-Pass-2027#"
    missing = client.post(
        "/password", {"current": PASSWORD, "new": new, "confirm": new}, csrf=False
    )
    assert missing.status_code == 403
    wrong = client.post(
        "/password", {"current": PASSWORD, "new": new, "confirm": new, "csrf_token": "x" * 43}
    )
    assert wrong.status_code == 403
    # a token of another session does not work either
    other = DashClient(ctx)
    other.login("op")
    stolen = client.post(
        "/password", {"current": PASSWORD, "new": new, "confirm": new, "csrf_token": other.csrf()}
    )
    assert stolen.status_code == 403
    # nothing changed: the old password still logs in
    assert "/login" not in DashClient(ctx).login("op101").headers["location"]
    # the logout form is CSRF-checked too
    assert client.post("/logout", csrf=False).status_code == 403
    assert client.get("/overview", follow_redirects=False).status_code != 303


def test_login_form_needs_its_double_submit_token(ctx: Any) -> None:
    make_accounts(ctx)
    client = DashClient(ctx)
    response = client.http.post(
        "/dashboard/login",
        data={"username": "op101", "password": PASSWORD, "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert "error=csrf" in response.headers["location"]
    assert not _audit(ctx, "login.ok")


def test_cross_origin_post_is_refused(ctx: Any) -> None:
    make_accounts(ctx)
    client = DashClient(ctx)
    client.login("op101")
    new = "Another-Pass-2027#"
    response = client.post(
        "/password",
        {"current": PASSWORD, "new": new, "confirm": new},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403


def _age_sessions(ctx: Any, **values: Any) -> None:
    with ctx.sessions.begin() as s:
        s.execute(update(DashboardSession).values(**values))


def test_idle_session_expires(ctx: Any) -> None:
    make_accounts(ctx)
    client = DashClient(ctx)
    client.login("op101")
    assert client.get("/password").status_code == 200
    idle = ctx.settings.dashboard_session_idle_minutes
    _age_sessions(ctx, last_seen_at=utcnow() - dt.timedelta(minutes=idle + 1))
    response = client.get("/password", follow_redirects=False)
    assert response.status_code == 303
    assert "/dashboard/login" in response.headers["location"]
    with ctx.sessions() as s:
        assert s.scalar(select(DashboardSession.ended_at)) is not None


def test_session_has_an_absolute_lifetime(ctx: Any) -> None:
    make_accounts(ctx)
    client = DashClient(ctx)
    client.login("op101")
    _age_sessions(ctx, expires_at=utcnow() - dt.timedelta(seconds=1))
    response = client.get("/password", follow_redirects=False)
    assert "/dashboard/login" in response.headers["location"]


def test_logout_ends_the_session_server_side(ctx: Any) -> None:
    make_accounts(ctx)
    client = DashClient(ctx)
    client.login("op101")
    cookie = dict(client.http.cookies)
    assert client.post("/logout").status_code == 303
    # replaying the old cookie does not bring the session back
    replay = DashClient(ctx)
    for k, v in cookie.items():
        replay.http.cookies.set(k, v)
    assert "/dashboard/login" in replay.get("/password", follow_redirects=False).headers["location"]
    assert _audit(ctx, "logout", "op101")


def test_disabled_account_loses_its_session(ctx: Any) -> None:
    make_accounts(ctx)
    client = DashClient(ctx)
    client.login("op101")
    with ctx.sessions.begin() as s:
        s.execute(
            update(OperatorAccount).where(OperatorAccount.username == "op101").values(disabled=True)
        )
    assert "/dashboard/login" in client.get("/password", follow_redirects=False).headers["location"]
    assert "error=disabled" in DashClient(ctx).login("op101").headers["location"]


def test_pages_carry_security_headers(dash: Callable[[str], DashClient]) -> None:
    client = dash("op101")
    response = client.get("/password")
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_login_redirect_never_leaves_the_dashboard(ctx: Any) -> None:
    make_accounts(ctx)
    client = DashClient(ctx)
    page = client.http.get("/dashboard/login?next=//evil.example/x")
    assert 'value="/"' in page.text
    assert "evil.example" not in page.text


def test_pages_behind_login_redirect_to_it(ctx: Any) -> None:
    client = DashClient(ctx)
    response = client.get("/overview", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login?next=%2Foverview"


def test_administrators_see_no_payment_pages(dash: Callable[[str], DashClient]) -> None:
    admin = dash("admin")
    assert admin.get("/", follow_redirects=False).headers["location"].endswith("/accounts")
    for path in ("/overview", "/batches", "/failed", "/sms"):
        response = admin.get(path)
        assert response.status_code == 403, path
        assert "系统管理员不能查看支付数据" in response.text


def test_english_is_available(dash: Callable[[str], DashClient]) -> None:
    client = dash("op101")
    assert "修改密码" in client.get("/password").text
    client.get("/lang/en?next=/password")
    page = client.get("/password")
    assert "Change password" in page.text
    assert "修改密码" not in page.text
