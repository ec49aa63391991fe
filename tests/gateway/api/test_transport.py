"""The HTTP transport of the upstream API: every header, path and query value bounded and
refused cleanly (never a 500), the Content-Type required, FastAPI's own refusals in our
error shape. Over the real app (httpx ``TestClient``) on a real database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.auth.hmac_auth import (
    H_CLIENT,
    H_CONTENT_SHA256,
    H_NONCE,
    H_SIGNATURE,
    H_TIMESTAMP,
    sign_headers,
)
from gateway.batches.models import Batch
from gateway.context import Context
from tests.gateway.api.support import (
    CLIENT,
    SECRET,
    RawAnswer,
    Signed,
    assert_error_shape,
    raw_request,
)
from tests.gateway.helpers import payload, persons


def _count_batches(ctx: Context) -> int:
    from sqlalchemy import func, select

    with ctx.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Batch)) or 0)


# --- 1. the signature headers: every one bounded, ASCII, well-formed -----------------------
# Over real HTTP (uvicorn): the in-process test client does not send non-ASCII header
# bytes as they are, and "²" as the byte B2 is what made str.isdigit() say yes.


def signed_raw_get(base_url: str, target: str, replace: dict[str, bytes]) -> RawAnswer:
    headers: dict[str, str | bytes] = dict(sign_headers(CLIENT, SECRET, "GET", target))
    headers.update(replace)
    return raw_request(base_url, "GET", target, headers)


MALFORMED_TIMESTAMPS = [
    "²".encode("latin-1"),  # str.isdigit() says yes, int() says no: was a 500
    "¹³".encode("latin-1"),  # was a 500
    b"1" * 5000,  # more digits than int() takes: was a 500
    "１７００".encode(),  # full-width digits, as UTF-8 bytes
    b"-1700000000",
    b"1.7e9",
    b"0x10",
]

BAD_HEADERS: list[tuple[str, bytes, str]] = [
    (H_CLIENT, b"c" * 5000, "auth_unknown_client"),
    (H_CLIENT, "county-finance\xe9".encode("latin-1"), "auth_unknown_client"),
    (H_NONCE, b"n" * 65, "auth_nonce"),
    (H_NONCE, b"n" * 15, "auth_nonce"),
    (H_NONCE, ("n" * 15 + "\xe9").encode("latin-1"), "auth_nonce"),
    (H_SIGNATURE, b"A" * 5000, "auth_signature"),
    (H_SIGNATURE, b"not base64 at all", "auth_signature"),
    (H_CONTENT_SHA256, b"0" * 63, "auth_content_digest"),
    (H_CONTENT_SHA256, b"F" * 64, "auth_content_digest"),  # upper case is not ours
    (H_CONTENT_SHA256, b"0" * 5000, "auth_content_digest"),
]


def test_malformed_timestamps_are_a_401_naming_the_header(gateway_http: str) -> None:
    for timestamp in MALFORMED_TIMESTAMPS:
        r = signed_raw_get(gateway_http, "/v1/batches/B-1", {H_TIMESTAMP: timestamp})
        error = assert_error_shape(r, 401, "auth_timestamp")
        assert error["field"] == H_TIMESTAMP, timestamp[:20]


def test_every_auth_header_is_bounded(gateway_http: str) -> None:
    for header, value, code in BAD_HEADERS:
        r = signed_raw_get(gateway_http, "/v1/batches/B-1", {header: value})
        error = assert_error_shape(r, 401, code)
        assert error["field"] == header, (header, value[:20])
    # and the server is well: a good request still goes through
    assert signed_raw_get(gateway_http, "/v1/batches/B-1", {}).status == 404


def test_a_declared_digest_that_is_not_the_body_is_refused(api: Signed) -> None:
    """A GET has no body: a declared digest of another one is not what was signed."""
    r = api.get("/v1/batches/B-1", headers={H_CONTENT_SHA256: "0" * 64})
    assert_error_shape(r, 401, "auth_content_digest")


def test_missing_header_is_named(api: Signed) -> None:
    r = api.client.get("/v1/batches/B-1", headers={H_CLIENT: "county-finance"})
    error = assert_error_shape(r, 401, "auth_missing")
    assert error["field"] == H_TIMESTAMP


# --- 2. path and query values: bounded, 4xx, never a 5xx -------------------------------------


@pytest.fixture
def one_batch(api: Signed) -> str:
    r = api.post("/v1/batches", payload("B-Q", persons(3)))
    assert r.status_code == 201, r.text
    return "B-Q"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (f"after_seq={2**63}", "after_seq"),  # was a 500 (SQLite integer overflow)
        (f"after_seq={2**31}", "after_seq"),
        ("after_seq=100000000", "after_seq"),  # one past the largest seq
        ("after_seq=-1", "after_seq"),
        ("after_seq=1e3", "after_seq"),
        ("after_seq=" + "9" * 5000, "after_seq"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        (f"limit={2**63}", "limit"),
        ("state=nope", "state"),
    ],
)
def test_bad_query_values_are_400_naming_the_parameter(
    api: Signed, one_batch: str, query: str, field: str
) -> None:
    r = api.get(f"/v1/batches/{one_batch}/items?{query}")
    error = assert_error_shape(r, 400, "invalid_parameter")
    assert error["field"] == field


def test_largest_after_seq_is_an_empty_page(api: Signed, one_batch: str) -> None:
    r = api.get(f"/v1/batches/{one_batch}/items?after_seq=99999999")
    assert r.status_code == 200, r.text
    assert r.json()["items"] == [] and r.json()["next_after_seq"] is None


@pytest.mark.parametrize(
    "batch_no",
    ["B" * 65, "B%20Q", "%E5%BC%A0", "%FF", "B-Q%00", "..%2F..", "B" * 5000],
)
@pytest.mark.parametrize("suffix", ["", "/items"])
def test_bad_batch_numbers_are_4xx(api: Signed, batch_no: str, suffix: str) -> None:
    r = api.get(f"/v1/batches/{batch_no}{suffix}")
    assert r.status_code in (400, 404), r.text
    assert_error_shape(r, r.status_code)


def test_unknown_batch_is_404(api: Signed) -> None:
    error = assert_error_shape(api.get("/v1/batches/B-NONE"), 404, "batch_not_found")
    assert error["field"] == "batch_no"


def test_changes_cursor_bounded(api: Signed) -> None:
    assert_error_shape(api.get("/v1/changes?after=" + "x" * 65), 400, "invalid_parameter")
    assert_error_shape(api.get(f"/v1/changes?limit={2**63}"), 400, "invalid_parameter")


def test_unknown_route_and_method_answer_our_shape(api: Signed) -> None:
    assert_error_shape(api.get("/v1/nothing-here"), 404, "not_found")
    assert_error_shape(api.client.delete("/v1/batches"), 405, "method_not_allowed")


# --- 7. Content-Type -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 201),
        ("application/json; charset=utf-8", 201),
        ('application/json; charset="UTF-8"', 201),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/json; charset=latin-1", 415),
        ("application/json; boundary=x", 415),
        ("application/jsonx", 415),
        (None, 415),
    ],
)
def test_batches_need_json_content_type(
    api: Signed, ctx: Context, content_type: str | None, status: int
) -> None:
    body = payload("B-CT", persons(2))
    if content_type is None:
        r = api.post("/v1/batches", body, drop=("Content-Type",))
    else:
        r = api.post("/v1/batches", body, headers={"Content-Type": content_type})
    assert r.status_code == status, r.text
    if status == 415:
        error = assert_error_shape(r, 415, "unsupported_media_type")
        assert error["field"] == "Content-Type"
        assert _count_batches(ctx) == 0


def test_unauthenticated_is_401_before_the_content_type(api: Signed) -> None:
    r = api.client.post("/v1/batches", content=b"{}", headers={"Content-Type": "text/plain"})
    assert_error_shape(r, 401, "auth_missing")


def test_callback_content_type_checked_after_its_signature(api: Signed) -> None:
    # an unsigned callback learns only that it is not authenticated
    forged = api.client.post(
        "/v1/bank-callbacks/abc", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert_error_shape(forged, 401, "callback_signature")
    unknown = api.client.post("/v1/bank-callbacks/nobank", content=b"{}")
    assert_error_shape(unknown, 404, "unknown_bank")


def test_sms_receipt_content_type(api: Signed, tmp_path: Path) -> None:
    """The provider's receipts (signed as the mock SMS centre signs them): 415 for another
    Content-Type, but only once the signature holds."""
    import secrets
    import time

    from mock_sms.receipts import receipt_signature

    provider = "aliyun-style"
    secret = (tmp_path / "sms" / "aliyun.secret").read_text(encoding="ascii").strip()
    body = b"[]"
    ts, nonce = str(int(time.time())), secrets.token_urlsafe(24)
    headers = {
        "X-Sms-Timestamp": ts,
        "X-Sms-Nonce": nonce,
        "X-Sms-Signature": receipt_signature(secret, provider, ts, nonce, body),
    }
    path = f"/v1/sms-receipts/{provider}"
    wrong = api.client.post(path, content=body, headers={**headers, "Content-Type": "text/csv"})
    assert_error_shape(wrong, 415, "unsupported_media_type")
    unsigned = api.client.post(path, content=body, headers={"Content-Type": "text/csv"})
    assert_error_shape(unsigned, 401, "receipt_signature")
    ok = api.client.post(
        path, content=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert ok.status_code == 204, ok.text


# --- 8. the published schema -----------------------------------------------------------------


def test_openapi_document_is_valid_and_complete(api: Signed) -> None:
    from openapi_spec_validator import validate

    doc = api.client.get("/openapi.json").json()
    validate(doc)
    post = doc["paths"]["/v1/batches"]["post"]
    schema_ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema_ref == "#/components/schemas/BatchSubmission"
    assert {"201", "400", "401", "409", "413", "415", "422", "503"} <= set(post["responses"])
    schemes = doc["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values()} == {
        H_CLIENT,
        H_TIMESTAMP,
        H_NONCE,
        H_CONTENT_SHA256,
        H_SIGNATURE,
    }
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                assert "HTTPValidationError" not in json.dumps(response), (method, path, status)
            if path.startswith(("/v1/batches", "/v1/changes")):
                assert operation["security"] == [{name: [] for name in schemes}]
                assert "401" in operation["responses"]


def test_request_schema_fits_real_batches(api: Signed) -> None:
    """The published BatchSubmission takes a real batch, refuses unknown fields and a
    missing amount (a client generated from it sends what the intake takes)."""
    import jsonschema

    doc = api.client.get("/openapi.json").json()
    schema = {"$ref": "#/components/schemas/BatchSubmission", "components": doc["components"]}
    good = payload("B-S", persons(3))
    jsonschema.validate(good, schema)
    typo = json.loads(json.dumps(good))
    typo["items"][0]["phone_no"] = typo["items"][0].pop("phone", "13800000000")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(typo, schema)
    both = json.loads(json.dumps(good))
    both["items"][0]["amount_fen"] = 100
    both["items"][0]["amount_yuan"] = "1.00"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(both, schema)
