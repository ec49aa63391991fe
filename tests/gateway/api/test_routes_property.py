"""Every route of the API, signed (so past authentication): any path id or query value,
any body, gives a 2xx, a 404 or another 4xx in our error shape — never a 5xx. The routes
and their parameters are read from the app's OpenAPI document, so a new one is covered
without a change here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.auth.client import signed_target
from gateway.auth.hmac_auth import sign_headers
from tests.gateway.api.support import CLIENT, SECRET


@pytest.fixture
def http(gateway_http: str) -> Iterator[httpx.Client]:
    """Real HTTP (uvicorn on loopback): the path is decoded once, as in production (the
    in-process test client decodes it twice)."""
    with httpx.Client(base_url=gateway_http, timeout=60) as client:
        yield client


# text a client could put in a URL (no lone surrogates: they have no UTF-8 form)
URL_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)
VALUES = st.one_of(
    URL_TEXT,
    st.integers().map(str),
    st.sampled_from(
        [
            str(2**63),
            str(-(2**63) - 1),
            str(2**31),
            "9" * 5000,
            "1e309",
            "NaN",
            "-0",
            "0x10",
            "²",
            "¹³",
            "%00",
            "../..",
            "",
            " ",
        ]
    ),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | URL_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(URL_TEXT, inner, max_size=3),
    max_leaves=8,
)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]


def operations(base_url: str) -> list[Operation]:
    doc = httpx.get(f"{base_url}/openapi.json").json()
    out = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            params = op.get("parameters", [])
            out.append(
                Operation(
                    method.upper(),
                    path,
                    tuple(p["name"] for p in params if p["in"] == "path"),
                    tuple(p["name"] for p in params if p["in"] == "query"),
                )
            )
    return out


def check(response: Any, route: str) -> None:
    assert response.status_code < 500, (route, response.status_code, response.text[:300])
    if response.status_code >= 400:
        errors = response.json()["errors"]
        assert errors and all(e["code"] and e["message_zh"] and e["message_en"] for e in errors)


def test_the_routes_are_read_from_the_app(gateway_http: str) -> None:
    assert {(o.method, o.path) for o in operations(gateway_http)} >= {
        ("POST", "/v1/batches"),
        ("GET", "/v1/batches/{batch_no}"),
        ("GET", "/v1/batches/{batch_no}/items"),
        ("GET", "/v1/changes"),
        ("POST", "/v1/bank-callbacks/{profile_name}"),
        ("POST", "/v1/sms-receipts/{provider}"),
    }


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_path_or_query_value_is_never_a_5xx(
    gateway_http: str, http: httpx.Client, data: st.DataObject
) -> None:
    op = data.draw(st.sampled_from(operations(gateway_http)), label="operation")
    path = op.path
    for name in op.path_params:
        value = data.draw(VALUES, label=name)
        path = path.replace("{" + name + "}", quote(value, safe=""))
    names = st.sampled_from(op.query_params) | URL_TEXT if op.query_params else URL_TEXT
    query = data.draw(st.lists(st.tuples(names, VALUES), max_size=4), label="query")
    target = path + (f"?{urlencode(query)}" if query else "")
    method = op.method
    body = b""
    if method == "POST":
        body = json.dumps(data.draw(JSON_VALUES, label="body")).encode()
    headers = sign_headers(CLIENT, SECRET, method, signed_target(target), body)
    response = http.request(method, target, content=body, headers=headers)
    check(response, f"{method} {target}")
    if method == "GET" and response.status_code == 401:
        # a signed request is authenticated: only a path that does not reach a route
        # (e.g. an encoded "/") or no route of ours may refuse it another way
        pytest.fail(f"signed GET refused: {target} {response.text[:200]}")
