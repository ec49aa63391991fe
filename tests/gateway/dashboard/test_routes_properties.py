"""Property: every dashboard route, whatever its path ids, query values and (on a POST, with
the session's valid CSRF token) form values, answers 2xx, 3xx or 4xx — never a 5xx — for a
logged-in user of each role; every answer carries the security headers, and every redirect
stays inside the dashboard.

The routes are read from the application (``iter_route_contexts``), and the names of query
and form fields from the dashboard's templates and sources, so that a new route or field is
attacked without this file changing. Records of every kind exist (``hostile_support.plant``)
so that real ids reach the handlers' deeper paths, beside ids of every other shape."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gateway.dashboard
from gateway.context import Context
from gateway.dashboard.queries_overview import BATCH_FILTERS
from gateway.dashboard.views.failed import FILTERS
from tests.gateway.dashboard.hostile_support import (
    add_account,
    convertor_names,
    dashboard_routes,
    fill,
    methods,
    plant,
)
from tests.gateway.dashboard.support import ACCOUNTS, DashClient

ROLES = ("admin", "sup", "op", "op101", "aud")
VICTIM = "victim.user"  # the account administrators' random actions may hit
EXAMPLES_PER_ROUTE = 5
_SOURCE = Path(gateway.dashboard.__file__).parent
_FIELD_PATTERNS = (
    r'name="(\w+)"',
    r'query_params\.get\("(\w+)"',
    r'form_text\(form, "(\w+)"',
    r'form\.get\("(\w+)"',
    r'form_ints\(form, "(\w+)"',
    r'_day\(form, "(\w+)"',
)


def field_names() -> list[str]:
    """Every query and form field name the dashboard's templates and code read."""
    found: set[str] = {*FILTERS, *BATCH_FILTERS, "page", "done", "next", "error"}
    for path in [*_SOURCE.rglob("*.py"), *_SOURCE.rglob("*.html")]:
        text = path.read_text(encoding="utf-8")
        for pattern in _FIELD_PATTERNS:
            found.update(re.findall(pattern, text))
        for listed in re.findall(r"filters_of\(request, \[([^\]]*)\]", text):
            found.update(re.findall(r'"(\w+)"', listed))
    found -= {"csrf_token", "viewport"}
    return sorted(found)


FIELDS = field_names()

# values that once broke something, or sit on an edge
EDGE_VALUES = [
    "",
    " ",
    "0",
    "-1",
    "1",
    "2",
    str(2**31),
    str(2**63 - 1),
    str(2**63),
    str(2**64),
    "9" * 40,
    "²",
    "¹³",
    "١٢",
    "１",
    "1e9",
    "0001-01-01",
    "9999-12-31",
    "2026-02-30",
    "2026-W01-1",
    "2026-01-01",
    "\x00",
    "a\x00b",
    "\r\n",
    "%",
    "%00",
    "_",
    "'; DROP TABLE batches; --",
    "<script>",
    "张\u200b三",
    "\u202e",
    "\ufeff",
    "𠀀" * 50,
    "all",
    "open",
    "closed",
    "failed",
    "paid",
    "refund",
    "export",
    "export_return",
    "filter",
    "checked",
    "discrepancies",
    "confirmations",
    "operator",
    "supervisor",
    "430621",
    "430621101",
    "hnrcu",
    "GDBH",
    "shared_account",
    "config_rejected",
    "login.",
    "view.",
    "//evil.example",
    "/\r\nSet-Cookie: x=1",
    "x" * 3000,
]


def _values(real_ids: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(EDGE_VALUES + real_ids),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.text(max_size=40),
    )


def _path_value(convertor: str, real_ids: list[str]) -> st.SearchStrategy[str]:
    anything = st.text(min_size=1, max_size=30)
    if convertor == "id":
        return st.one_of(
            st.sampled_from(real_ids),
            st.integers(min_value=-(2**70), max_value=2**70).map(str),
            st.sampled_from(EDGE_VALUES).filter(bool),
            anything,
        )
    if convertor == "login_name":
        mine = st.sampled_from([VICTIM, "nobody", "new"])
        return st.one_of(mine, anything.filter(lambda u: u not in ACCOUNTS))
    return st.one_of(
        st.sampled_from(["unlock", "disable", "enable", "zh", "en", "reset-password"]), anything
    )


@dataclass
class World:
    ctx: Context
    clients: dict[str, DashClient]
    real_ids: list[str]

    def client(self, role: str) -> DashClient:
        return self.clients[role]

    def relogin(self, role: str) -> None:
        client = DashClient(self.ctx)
        assert client.login(role).status_code == 303
        self.clients[role] = client


def _check(world: World, role: str, method: str, path: str, response: httpx.Response) -> None:
    where = f"{role} {method} {path}"
    assert response.status_code < 500, (where, response.status_code, response.text[:500])
    if "\n" in unquote(path):
        # Starlette's mount pattern (``.*``) stops at a line feed: the gateway's API, not
        # the dashboard, answers its 404
        return
    assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", ""), where
    assert response.headers.get("x-content-type-options") == "nosniff", where
    if not path.startswith("/static/"):
        assert response.headers.get("cache-control") == "no-store", where
    if 300 <= response.status_code < 400:
        location = response.headers["location"]
        assert location.startswith("/dashboard/"), (where, location)
        assert not re.search(r"[\x00-\x20\x7f\\]", location), (where, location)
        if location.startswith("/dashboard/login"):
            world.relogin(role)  # logged out (or its session ended): log in again


def _route_property(world: World, route: Any, method: str) -> Callable[[], None]:
    params = convertor_names(route)
    real = world.real_ids
    path_values = st.fixed_dictionaries({n: _path_value(c, real) for n, c in params.items()})
    fields = st.dictionaries(st.sampled_from(FIELDS), _values(real), max_size=5)

    @settings(
        max_examples=EXAMPLES_PER_ROUTE,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(role=st.sampled_from(ROLES), values=path_values, query=fields, form=fields)
    def attack(
        role: str, values: dict[str, str], query: dict[str, str], form: dict[str, str]
    ) -> None:
        client = world.client(role)
        path = fill(route, values)
        data = {**form, "csrf_token": client.csrf()} if method == "POST" else None
        response = client.http.request(
            method, "/dashboard" + path, params=query, data=data, follow_redirects=False
        )
        _check(world, role, method, path, response)

    return attack


def _world(ctx: Context, dash: Callable[[str], DashClient]) -> World:
    records = plant(ctx, dash("op101"))
    add_account(ctx, VICTIM, "operator", ["430621101"])
    clients = {role: dash(role) for role in ROLES}
    return World(ctx, clients, sorted({str(i) for i in records.ids.values()}))


def test_every_route_answers_below_500_for_any_input(
    ctx: Context, dash: Callable[[str], DashClient]
) -> None:
    world = _world(ctx, dash)
    routes = [(r, m) for r in dashboard_routes(world.client("sup")) for m in methods(r)]
    assert len(routes) >= 45  # every page and action of the dashboard
    for route, method in routes:
        _route_property(world, route, method)()


def test_every_route_takes_the_worst_values_for_every_role(
    ctx: Context, dash: Callable[[str], DashClient]
) -> None:
    """Not left to chance: each route, for each role, with one of the nastiest values in
    every path parameter and every known field at once (each route gets each value)."""
    world = _world(ctx, dash)
    nasty = ["\x00", str(2**63), "²", "9999-12-31", "x" * 300]
    for route in dashboard_routes(world.client("sup")):
        for method in methods(route):
            for role, value in zip(ROLES, nasty, strict=True):
                client = world.client(role)
                path = fill(route, dict.fromkeys(convertor_names(route), value))
                fields = dict.fromkeys(FIELDS, value)
                data = {**fields, "csrf_token": client.csrf()} if method == "POST" else None
                response = client.http.request(
                    method, "/dashboard" + path, params=fields if method == "GET" else None,
                    data=data, follow_redirects=False,
                )  # fmt: skip
                _check(world, role, method, path, response)
