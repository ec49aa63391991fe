"""Helpers of the dashboard tests: the standard accounts and a logged-in HTTP client that
carries the session's CSRF token into every form post (over https://, so the Secure cookie
is sent back as a browser would)."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.context import Context
from gateway.dashboard.accounts import create_account
from gateway.kit.db import session_scope

PASSWORD = "Test-Pass-2026!"

# username → (real name, role, regions)
ACCOUNTS: dict[str, tuple[str, str, list[str]]] = {
    "admin": ("赵管理", "admin", []),
    "sup": ("钱复核", "supervisor", ["430621"]),
    "op": ("孙经办", "operator", ["430621"]),
    "op101": ("李乡镇", "operator", ["430621101"]),
    "op102": ("周乡镇", "operator", ["430621102"]),
    "aud": ("吴审计", "auditor", []),
}

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_accounts(ctx: Context) -> None:
    with session_scope(ctx.sessions) as s:
        for username, (name, role, regions) in ACCOUNTS.items():
            create_account(
                s,
                ctx.settings,
                username=username,
                real_name=name,
                role=role,
                regions=regions,
                password=PASSWORD,
                created_by="test",
                must_change_password=False,
            )


class DashClient:
    """A browser-like client of the dashboard under ``/dashboard``."""

    def __init__(self, ctx: Context) -> None:
        self.http = TestClient(create_app(ctx), base_url="https://testserver")
        self.csrf_token: str | None = None

    def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        page = self.http.get("/dashboard/login")
        token = _CSRF.search(page.text)
        assert token, page.text
        response = self.http.post(
            "/dashboard/login",
            data={"username": username, "password": password, "csrf_token": token.group(1)},
            follow_redirects=False,
        )
        self.csrf_token = None
        return response

    def get(self, path: str, **kw: Any) -> httpx.Response:
        response = self.http.get("/dashboard" + path, **kw)
        found = _CSRF.search(response.text)
        if found and "/login" not in str(response.url):
            self.csrf_token = found.group(1)
        return response

    def csrf(self) -> str:
        if self.csrf_token is None:
            self.get("/password")
        assert self.csrf_token, "not logged in"
        return self.csrf_token

    def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kw: Any
    ) -> httpx.Response:
        body = dict(data or {})
        if csrf:
            body.setdefault("csrf_token", self.csrf())
        kw.setdefault("follow_redirects", False)
        return self.http.post("/dashboard" + path, data=body, **kw)
