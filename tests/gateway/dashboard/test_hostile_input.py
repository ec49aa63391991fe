"""Hostile input on the dashboard, through its real HTTP interface: ids beyond any table,
``next=`` with CR/LF and other tricks, records of other regions, cookie deletions, the
error pages' headers (500 included), the body limit, and query and form values that used
to fail with a 500 (Unicode digits, days out of range, NUL)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from gateway.batches.models import Batch, PaymentItem
from gateway.context import Context
from gateway.dashboard.app import MAX_BODY_BYTES
from gateway.dashboard.web import check_path_parameters, payments_viewer
from gateway.feedback.models import ManualConfirmation, OperatorCase
from gateway.reconciliation.models import Discrepancy
from gateway.rework.models import AuditRecord, CorrectionList, TreasuryRefund
from gateway.selfcheck.models import SelfCheckReport
from tests.gateway.dashboard.hostile_support import (
    OTHER_TOWNSHIP,
    Records,
    add_account,
    convertor_names,
    dashboard_app,
    dashboard_routes,
    fill,
    methods,
    plant,
)
from tests.gateway.dashboard.support import PASSWORD, DashClient, make_accounts

Dash = Callable[[str], DashClient]

# what every page carries, error pages included
SECURITY = {
    "content-security-policy": "frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "strict-transport-security": "max-age=",
}
# ids no table holds, and path segments that are no id at all
BAD_IDS = [
    str(2**63 - 1),
    str(2**63),
    str(2**64),
    str(10**30),
    "-1",
    "0",
    "007",
    "abc",
    "1.5",
    "1e3",
    "²",
    "１",
    "9" * 5000,
]


def assert_secure_headers(response: httpx.Response) -> None:
    for name, part in SECURITY.items():
        assert part in response.headers.get(name, ""), (response.status_code, name)


def normalised(response: httpx.Response, path: str) -> str:
    """The body without the request's own path (the language switch links back to it)."""
    return response.text.replace(path, "{path}")


def headers_of(response: httpx.Response, *, length: bool = False) -> dict[str, str]:
    """The headers but the request's own correlation id (and its length, unless asked)."""
    left_out = {"x-correlation-id"} | (set() if length else {"content-length"})
    return {k: v for k, v in response.headers.items() if k not in left_out}


@pytest.fixture
def planted(ctx: Context, dash: Dash) -> Records:
    return plant(ctx, dash("op101"))


def _id_routes(client: DashClient) -> list[tuple[str, Any, str]]:
    """(method, route, parameter) for every route with an id in its path."""
    out = []
    for route in dashboard_routes(client):
        params = {n: c for n, c in convertor_names(route).items() if c == "id"}
        for method in methods(route):
            for name in params:
                out.append((method, route, name))
    return out


def test_ids_beyond_any_table_answer_the_one_404(planted: Records, dash: Dash) -> None:
    """Refunds, cases, confirmations, discrepancies, correction lists, self-check reports
    and their export, batches and items, GET and POST: an id of 2^63 or more, a negative,
    zero, a leading zero or no number at all answer the 404 of a missing record."""
    sup = dash("sup")
    routes = _id_routes(sup)
    assert {name for _, _, name in routes} >= {
        "batch_id", "item_id", "case_id", "confirmation_id", "discrepancy_id", "refund_id",
        "list_id", "report_id",
    }  # fmt: skip
    for method, route, name in routes:
        others = {n: str(planted.ids[n]) for n in convertor_names(route)}
        missing_path = fill(route, {**others, name: "999999999"})
        missing = sup.http.request(method, "/dashboard" + missing_path, data=_csrf(sup, method))
        assert missing.status_code == 404, (method, missing_path)
        for bad in BAD_IDS:
            path = fill(route, {**others, name: bad})
            response = sup.http.request(method, "/dashboard" + path, data=_csrf(sup, method))
            assert response.status_code == 404, (method, path, response.status_code)
            assert headers_of(response) == headers_of(missing), (method, path)
            assert normalised(response, path) == normalised(missing, missing_path), path


def _csrf(client: DashClient, method: str) -> dict[str, str] | None:
    return {"csrf_token": client.csrf()} if method == "POST" else None


MODELS: dict[str, type[Any]] = {
    "batch_id": Batch,
    "item_id": PaymentItem,
    "case_id": OperatorCase,
    "discrepancy_id": Discrepancy,
    "confirmation_id": ManualConfirmation,
    "refund_id": TreasuryRefund,
    "list_id": CorrectionList,
    "report_id": SelfCheckReport,
}


def _missing_like(ctx: Context, name: str, value: int) -> int:
    """An id of as many digits as ``value`` that its table does not hold."""
    with ctx.sessions() as s:
        for candidate in range(int("9" * len(str(value))), 0, -1):
            if candidate != value and s.get(MODELS[name], candidate) is None:
                return candidate
    raise AssertionError(f"no free {name} of {len(str(value))} digits")


def test_other_regions_records_answer_exactly_like_missing_ones(
    ctx: Context, planted: Records, dash: Dash
) -> None:
    """For every record kind and every route that names one, a record of township 101
    seen from township 102 answers what a record that does not exist answers: same status,
    same headers, same page."""
    add_account(ctx, "sup102", "supervisor", [OTHER_TOWNSHIP])
    other = dash("sup102")
    county = dash("sup")
    checked: set[str] = set()
    for method, route, name in _id_routes(other):
        if name == "report_id":  # self-check reports are the county's: findings are scoped
            continue
        ids = {n: str(planted.ids[n]) for n in convertor_names(route)}
        real = fill(route, ids)
        fake_id = _missing_like(ctx, name, planted.ids[name])
        fake = fill(route, {**ids, name: str(fake_id)})
        if method == "GET":  # the record is there, and the county sees it
            assert county.get(real).status_code == 200, real
        seen = other.http.request(method, "/dashboard" + real, data=_csrf(other, method))
        unseen = other.http.request(method, "/dashboard" + fake, data=_csrf(other, method))
        assert seen.status_code == unseen.status_code == 404, (method, real, seen.status_code)
        assert headers_of(seen, length=True) == headers_of(unseen, length=True), (method, real)
        assert normalised(seen, real) == normalised(unseen, fake), (method, real)
        checked.add(name)
    assert checked == {
        "batch_id", "item_id", "case_id", "discrepancy_id", "confirmation_id", "refund_id",
        "list_id",
    }  # fmt: skip
    # nothing happened to the records
    with ctx.sessions() as s:
        acted = s.scalars(
            select(AuditRecord.action).where(
                AuditRecord.actor == "sup102", ~AuditRecord.action.startswith("login")
            )
        )
        assert not list(acted)


def test_unknown_addresses_answer_the_same_404(planted: Records, dash: Dash) -> None:
    op = dash("op101")
    missing = op.get("/batches/999999999")
    for path in ("/no-such-page", "/batches/999999999/x", "/static/none.css"):
        response = op.get(path)
        assert response.status_code == 404, path
        assert normalised(response, path) == normalised(missing, "/batches/999999999"), path
        assert_secure_headers(response)


# --- next= --------------------------------------------------------------------------------

HOSTILE_NEXT = [
    "/\r\nSet-Cookie: evil=1",
    "/overview\r\nX-Evil: 1",
    "/\n",
    "/\x00",
    "/\u2028x",
    "//evil.example/x",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "/../api/v1",
    "/%2e%2e/api",
    "/./x/../../y",
    "evil",
    "",
    "/" + "a" * 5000,
]


def _location_is_safe(location: str) -> None:
    assert not re.search(r"[\x00-\x20\x7f]", location), location
    assert location.startswith("/dashboard/"), location
    assert "evil" not in location and ".." not in location, location


@pytest.mark.parametrize("nxt", HOSTILE_NEXT)
def test_language_switch_and_login_keep_next_inside_the_dashboard(ctx: Context, nxt: str) -> None:
    make_accounts(ctx)
    client = DashClient(ctx)
    switched = client.http.get("/dashboard/lang/en", params={"next": nxt}, follow_redirects=False)
    assert switched.status_code == 303
    _location_is_safe(switched.headers["location"])
    assert switched.headers["location"] == "/dashboard/"
    page = client.http.get("/dashboard/login", params={"next": nxt})
    assert page.status_code == 200
    assert 'name="next" value="/"' in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    response = client.http.post(
        "/dashboard/login",
        data={"username": "op101", "password": PASSWORD, "csrf_token": token.group(1), "next": nxt},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/"


def test_a_next_inside_the_dashboard_is_kept(ctx: Context) -> None:
    make_accounts(ctx)
    client = DashClient(ctx)
    kept = client.http.get(
        "/dashboard/lang/zh", params={"next": "/failed?state=failed&page=2"}, follow_redirects=False
    )
    assert kept.headers["location"] == "/dashboard/failed?state=failed&page=2"
    # a path a header cannot carry as it is goes percent-encoded
    encoded = client.http.get(
        "/dashboard/lang/zh", params={"next": "/accounts/张三 x"}, follow_redirects=False
    )
    assert encoded.status_code == 303
    assert encoded.headers["location"] == "/dashboard/accounts/%E5%BC%A0%E4%B8%89%20x"


@pytest.fixture
def served(ctx: Context, gateway_http: str) -> Iterator[httpx.Client]:
    make_accounts(ctx)
    with httpx.Client(base_url=gateway_http + "/dashboard", follow_redirects=False) as client:
        yield client


def test_next_with_crlf_over_a_real_connection(served: httpx.Client) -> None:
    """Over uvicorn, a CR/LF in a Location header dropped the connection (h11
    LocalProtocolError); now the default page is the target."""
    switched = served.get("/lang/en", params={"next": "/\r\nSet-Cookie: evil=1"})
    assert switched.status_code == 303
    assert switched.headers["location"] == "/dashboard/"
    assert "evil" not in switched.headers.get("set-cookie", "")
    page = served.get("/login", params={"next": "/x\r\n"})
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    csrf_cookie = page.headers["set-cookie"].split(";")[0]
    login = served.post(
        "/login",
        data={"username": "op101", "password": PASSWORD, "csrf_token": token.group(1),
              "next": "/overview\r\nX-Evil: 1"},
        headers={"cookie": csrf_cookie},
    )  # fmt: skip
    assert login.status_code == 303
    assert login.headers["location"] == "/dashboard/"
    assert "x-evil" not in login.headers


# --- cookies ------------------------------------------------------------------------------


def _cookies(response: httpx.Response) -> dict[str, str]:
    """Set-Cookie headers by cookie name, attributes lower-cased."""
    out = {}
    for header in response.headers.get_list("set-cookie"):
        out[header.split("=", 1)[0]] = header.lower()
    return out


def _deleted_as_set(deleted: str, attributes: tuple[str, ...]) -> None:
    assert "max-age=0" in deleted or "expires=thu, 01 jan 1970" in deleted, deleted
    for attribute in attributes:
        assert attribute in deleted, (attribute, deleted)


SESSION_ATTRS = ("secure", "httponly", "samesite=strict", "path=/")


def test_cookie_deletions_carry_the_attributes_they_were_set_with(ctx: Context) -> None:
    make_accounts(ctx)
    client = DashClient(ctx)
    page = client.http.get("/dashboard/login")
    set_csrf = _cookies(page)["gw_login_csrf"]
    for attribute in SESSION_ATTRS:
        assert attribute in set_csrf
    login = client.login("op101")
    cookies = _cookies(login)
    _deleted_as_set(cookies["gw_login_csrf"], SESSION_ATTRS)
    for attribute in SESSION_ATTRS:
        assert attribute in cookies["__Host-gw_session"]
    logout = client.post("/logout")
    assert logout.status_code == 303
    _deleted_as_set(_cookies(logout)["__Host-gw_session"], SESSION_ATTRS)
    # a session that is no longer valid is deleted the same way on the way to the login
    stale = DashClient(ctx)
    stale.http.cookies.set("__Host-gw_session", "x" * 43)
    redirected = stale.get("/overview", follow_redirects=False)
    assert redirected.status_code == 303
    _deleted_as_set(_cookies(redirected)["__Host-gw_session"], SESSION_ATTRS)
    # the language cookie is Secure too
    lang = client.http.get("/dashboard/lang/en", follow_redirects=False)
    assert "secure" in _cookies(lang)["gw_lang"] and "samesite=lax" in _cookies(lang)["gw_lang"]


def test_a_hostile_login_csrf_cookie_is_replaced(ctx: Context) -> None:
    client = DashClient(ctx)
    client.http.cookies.set("gw_login_csrf", '"><script>x</script>')
    page = client.http.get("/dashboard/login")
    assert page.status_code == 200
    assert "<script>x" not in page.text
    assert re.search(r'name="csrf_token" value="[A-Za-z0-9_-]{43}"', page.text)


# --- error pages --------------------------------------------------------------------------


def _broken() -> None:
    raise RuntimeError("a fault planted by the test")


def test_every_error_page_carries_the_security_headers(planted: Records, dash: Dash) -> None:
    op = dash("op101")
    pages = {
        404: op.get("/refunds/999999"),
        403: op.post("/refunds/1/approve", {"note": "x"}),  # operators do not approve
        400: op.post("/selfcheck/run", {"since": "2026-13-01"}),
        405: op.get("/selfcheck/run"),
        # over the dashboard's limit, under the gateway's backstop for the dashboard
        413: op.post("/people", {"id_number": "x" * (MAX_BODY_BYTES + 512 * 1024)}),
    }
    for status, response in pages.items():
        assert response.status_code == status, (status, response.text[:300])
        assert_secure_headers(response)
        assert 'class="error"' in response.text, status
    assert pages[405].headers["allow"] == "POST"
    assert "bad_date" in pages[400].text and 'data-field="since"' in pages[400].text


def test_a_body_too_large_is_refused_while_it_is_read(dash: Dash) -> None:
    """No Content-Length (chunked): the limit stops the reading, with the 413 page."""
    op = dash("op101")
    token = op.csrf()

    def chunks() -> Iterator[bytes]:
        yield f"csrf_token={token}&id_number=".encode()
        for _ in range(MAX_BODY_BYTES // 65536 + 8):
            yield b"1" * 65536

    response = op.http.post(
        "/dashboard/people",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert "too_large" in response.text
    assert_secure_headers(response)


def test_the_500_page_carries_the_security_headers_and_says_nothing_internal(
    ctx: Context, dash: Dash
) -> None:
    op = dash("op101")
    app = dashboard_app(op)
    app.dependency_overrides[payments_viewer] = _broken
    try:
        response = op.get("/overview")
    finally:
        app.dependency_overrides.clear()
    assert response.status_code == 500
    assert_secure_headers(response)
    assert "internal_error" in response.text
    assert "可稍后重试" not in response.text and "may be retried" not in response.text
    assert "RuntimeError" not in response.text and "planted" not in response.text
    # the dashboard still works
    assert op.get("/overview").status_code == 200


def test_a_route_with_an_unbounded_path_parameter_is_refused() -> None:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    def thing(thing_id: int) -> None:
        del thing_id

    with pytest.raises(RuntimeError, match="thing_id"):
        check_path_parameters(app)


# --- query and form values ------------------------------------------------------------------

HOSTILE_QUERIES = [
    "/batches?page=²",
    "/batches?page=" + "9" * 5000,
    "/batches?from=0001-01-01&to=9999-12-31",
    "/batches?region=²&state=%00",
    "/failed?date_from=0001-01-01&date_to=9999-12-31&page=¹³",
    "/failed?region=%00&bank=%00&reason=%00",
    "/failed/corrections?page=-1",
    "/audit?from=0001-01-01&to=9999-12-31&actor=%00&target_id=%00",
    "/audit?action=%25%00_&page=0",
    "/sms?date=9999-12-31&batch=²&status=%00",
    "/sms?batch=" + "9" * 40,
    "/cases?tab=%00&kind=%00&state=%00&page=²",
    "/cases?tab=discrepancies&kind=%00",
    "/refunds?state=%00&page=1e9",
    "/selfcheck/{report_id}?kind=%00&page=²",
    "/cases/confirm/{item_id}?case=²",
    "/cases/confirm/{item_id}?case=" + "9" * 40,
    "/overview?done=%00",
    "/people?x=" + "张" * 3000,
]


def test_hostile_query_values_never_fail(ctx: Context, planted: Records, dash: Dash) -> None:
    for username in ("sup", "aud"):
        client = dash(username)
        for query in HOSTILE_QUERIES:
            path = query.format(**{k: str(v) for k, v in planted.ids.items()})
            response = client.get(path)
            assert response.status_code < 500, (username, path)
            if username == "sup":
                assert response.status_code == 200, (path, response.status_code)
    assert dash("sup").get("/audit?to=9999-12-31").status_code == 200


@pytest.mark.parametrize(
    ("path", "data", "field"),
    [
        ("/refunds/{refund_id}/reject", {"reason": "无\x00法"}, "reason"),
        ("/cases/case/{case_id}/close", {"reason": "\x1b[31m"}, "reason"),
        ("/cases/discrepancy/{discrepancy_id}/explain", {"explanation": "a\x00"}, "explanation"),
        ("/selfcheck/run", {"since": "\x00"}, "since"),
        ("/people", {"id_number": "43062119900101\x00"}, "id_number"),
        (
            "/failed/actions",
            {"action": "refund", "scope": "checked", "item": "{item_id}", "refund_reason": "\x07"},
            "refund_reason",
        ),
    ],
)
def test_a_control_character_in_a_form_is_refused_with_the_field_named(
    ctx: Context, planted: Records, dash: Dash, path: str, data: dict[str, str], field: str
) -> None:
    sup = dash("sup")
    ids = {k: str(v) for k, v in planted.ids.items()}
    values = {k: v.format(**ids) for k, v in data.items()}
    response = sup.post(path.format(**ids), values)
    assert response.status_code == 400, response.text[:500]
    assert "bad_characters" in response.text
    assert f'data-field="{field}"' in response.text


def test_form_values_that_used_to_fail(ctx: Context, planted: Records, dash: Dash) -> None:
    sup = dash("sup")
    ids = planted.ids
    cases: list[tuple[str, dict[str, Any]]] = [
        ("/selfcheck/run", {"since": "0001-01-01", "until": "9999-12-31"}),
        ("/selfcheck/run", {"since": "²"}),
        ("/failed/actions", {"action": "export", "scope": "checked", "item": ["²", "¹³"]}),
        ("/failed/actions", {"action": "export", "scope": "checked", "item": ["9" * 40]}),
        (
            "/failed/actions",
            {"action": "export", "scope": "filter", "filter": "date_from=0001-01-01&region=%00"},
        ),
        (f"/cases/confirm/{ids['item_id']}", {"outcome": "paid", "case": "²", "bank_ref": "X"}),
        ("/login", {"username": "op\x00", "password": "x"}),
    ]
    for path, data in cases:
        response = sup.post(path, data)
        assert response.status_code < 500, (path, response.status_code)
