"""schemathesis against the published schema (``/openapi.json``), over real HTTP (uvicorn on
loopback) on SQLite: every request it generates is signed with our HMAC scheme
(``gateway.auth.hmac_auth.sign_headers``, over the exact bytes and target sent), and every
answer must be no server error and conform to the schema (status, content type, headers,
body). Bounded: a few dozen examples per operation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from gateway.auth.client import signed_target
from gateway.auth.hmac_auth import sign_headers
from gateway.context import Context
from tests.gateway.api.support import CLIENT, SECRET, transport_context

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
    missing_required_header,
    unsupported_method,
]


@pytest.fixture
def ctx(sqlite_url: str, tmp_path: Path, dev_keys: Path) -> Iterator[Context]:
    yield from transport_context(sqlite_url, tmp_path, dev_keys)


@pytest.fixture
def published(gateway_http: str) -> Any:
    loaded = schemathesis.openapi.from_url(f"{gateway_http}/openapi.json")
    loaded.config.update(base_url=gateway_http)
    loaded.config.phases.update(phases=["examples", "coverage", "fuzzing"])
    loaded.config.generation.update(max_examples=25)
    return loaded


schema = schemathesis.pytest.from_fixture("published")


def send(case: Any, base_url: str, session: requests.Session) -> tuple[Any, dict[str, str]]:
    """The request as schemathesis made it, signed over the bytes and target it sends
    (the signature headers it generated replaced by real ones) — unless the case is about
    the headers themselves (a negative case there: missing or malformed ones), which goes
    out as generated. Returns the answer and the headers signed."""
    kwargs = case.as_transport_kwargs(base_url=base_url)
    request = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        cookies=kwargs.get("cookies"),
        json=kwargs.get("json"),
        data=kwargs.get("data"),
    ).prepare()
    signed: dict[str, str] = {}
    if not (case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)):
        body = request.body or b""
        raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        assert request.url is not None
        signed = sign_headers(CLIENT, SECRET, str(request.method), signed_target(request.url), raw)
        if "Content-Type" in request.headers:
            signed.pop("Content-Type", None)  # the generated one stands (a wrong one: 415)
        request.headers.update(signed)
    return session.send(request, timeout=60), signed


@settings(suppress_health_check=list(HealthCheck), deadline=None)
@schema.parametrize()
def test_published_schema_holds(case: Any, gateway_http: str) -> None:
    with requests.Session() as session:
        response, signed = send(case, gateway_http, session)
    case.validate_response(response, checks=CHECKS, headers=signed or None)
