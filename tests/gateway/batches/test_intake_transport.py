"""The transport of ``POST /v1/batches``: the body read with limits while it streams (depth,
sizes, UTF-8, numbers), the signature checked before the body where the client declares
its digest, every body within its route's limit while it is read. Refusals are clean 4xx
with a code and the field (the JSON path), and nothing is stored.

Over the real app in-process (httpx) where only the answer matters, and over real HTTP
(uvicorn on loopback) where streaming and sizes do."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.auth.client import GatewayClient
from gateway.auth.hmac_auth import H_CONTENT_SHA256, sign_digest, sign_headers
from gateway.batches.models import Batch, PaymentItem
from gateway.context import Context
from tests.gateway.api.support import (
    CLIENT,
    SECRET,
    Signed,
    assert_error_shape,
    raw_request,
    signed_app,
    transport_context,
    zeros,
)
from tests.gateway.helpers import payload, persons

MiB = 1024 * 1024


@pytest.fixture
def ctx(db_url: str, tmp_path: Path, dev_keys: Path) -> Iterator[Context]:
    yield from transport_context(db_url, tmp_path, dev_keys)


@pytest.fixture
def api(ctx: Context) -> Iterator[Signed]:
    yield from signed_app(ctx)


def stored(ctx: Context) -> tuple[int, int]:
    with ctx.sessions() as s:
        batches = int(s.scalar(select(func.count()).select_from(Batch)) or 0)
        items = int(s.scalar(select(func.count()).select_from(PaymentItem)) or 0)
    return batches, items


def _object_of(keys: int) -> bytes:
    return json.dumps({f"k{i}": 1 for i in range(keys)}).encode()


def body_with(name_json: bytes, n: int = 2) -> bytes:
    """A real batch whose first item's name is the raw JSON ``name_json``."""
    body = payload("B-T1", persons(n))
    body["items"][0]["name"] = "ZZMARKERZZ"
    raw = json.dumps(body, ensure_ascii=False).encode()
    return raw.replace(b'"ZZMARKERZZ"', name_json)


# --- 3. the reader raises nothing but a clean refusal --------------------------------------


@pytest.mark.parametrize(
    ("name_json", "code"),
    [
        (b'"\\udc00"', "lone_surrogate"),  # was a 500 (UnicodeDecodeError)
        (b'"\xed\xa0\x80"', "invalid_utf8"),  # raw CESU bytes: was a 500
        (b'"\\u5f20\\ud800"', "lone_surrogate"),  # yajl made 张? of it
        (b'"\\u5f20\\ud800\\u4e09"', "lone_surrogate"),  # yajl made 张 + U+10209 of it
        (b'"\xff\xfe"', "malformed_json"),
    ],
    ids=["escaped-low", "cesu-bytes", "escaped-high-alone", "escaped-high-then-other", "ff"],
)
def test_bad_text_is_a_400_naming_the_field(
    api: Signed, ctx: Context, name_json: bytes, code: str
) -> None:
    error = assert_error_shape(api.post("/v1/batches", body_with(name_json)), 400, code)
    assert error["field"] == "items[0].name"
    assert stored(ctx) == (0, 0)


def test_a_5000_digit_number_is_refused_not_a_crash(api: Signed, ctx: Context) -> None:
    """ijson 3.6 (yajl2_c) crashed the whole process (segfault) on an integer token of more
    than 4300 digits: the API died with every request in flight."""
    raw = payload("B-T2", persons(2))
    raw["items"][1].pop("amount_yuan", None)
    raw["items"][1]["amount_fen"] = 0
    body = json.dumps(raw).encode().replace(b'"amount_fen": 0', b'"amount_fen": ' + b"9" * 5000)
    error = assert_error_shape(api.post("/v1/batches", body), 400, "digit_run_too_long")
    assert error["field"] == "items[1].amount_fen"
    assert api.get("/v1/batches/B-T2").status_code == 404  # the server is alive


def test_deep_nesting_is_refused_at_the_limit(api: Signed, ctx: Context) -> None:
    """40 KB of nested arrays took the API from 134 MB to 1 GB."""
    nested = b"[" * 20_000 + b"]" * 20_000
    error = assert_error_shape(api.post("/v1/batches", body_with(nested)), 400, "too_deep")
    assert error["field"].startswith("items[0].name[0]")
    assert error["limit"] == 16
    assert stored(ctx) == (0, 0)


@pytest.mark.parametrize(
    ("name_json", "code", "field"),
    [
        (b'"' + "张".encode() * 100_000 + b'"', "token_too_long", "items[0].name"),
        (b'"' + b"x" * 5_000 + b'"', "string_too_long", "items[0].name"),
        (b'["' + b'", "'.join([b"x" * 100] * 100) + b'"]', "value_too_large", "items[0].name[80]"),
        (_object_of(70), "too_many_keys", "items[0].name"),
        (b'"a", "name": "b"', "duplicate_key", "items[0].name"),
        (b"1e99999", "number_out_of_range", "items[0].name"),
    ],
    ids=["300 KB name", "5000 characters", "large item", "70 keys", "duplicate", "exponent"],
)  # fmt: skip
def test_size_limits_name_the_path(
    api: Signed, ctx: Context, name_json: bytes, code: str, field: str
) -> None:
    error = assert_error_shape(api.post("/v1/batches", body_with(name_json)), 400, code)
    assert error["field"] == field
    assert code == "duplicate_key" or error["limit"] is not None
    assert stored(ctx) == (0, 0)


def test_unknown_top_level_field_is_refused(api: Signed, ctx: Context) -> None:
    body = payload("B-T3", persons(2))
    body["itmes"] = body["items"]
    error = assert_error_shape(api.post("/v1/batches", body), 400, "unknown_field")
    assert error["field"] == "itmes"
    assert stored(ctx) == (0, 0)


def test_rare_characters_as_escaped_pairs_are_carried(api: Signed, ctx: Context) -> None:
    """ensure_ascii JSON: 𬎆 travels as the pair \\ud870\\udf86 and is taken as one
    character."""
    ps = persons(7)
    r = api.post("/v1/batches", json.dumps(payload("B-T4", ps), ensure_ascii=True).encode())
    assert r.status_code == 201, r.text
    with ctx.sessions() as s:
        names = [
            ctx.pii.decrypt("name", n)
            for n in s.scalars(select(PaymentItem.name_enc).order_by(PaymentItem.seq))
        ]
    assert names == [p.name for p in ps]


# --- 6. the signature before the body -------------------------------------------------------


def test_declared_digest_that_differs_from_the_body_stores_nothing(
    api: Signed, ctx: Context
) -> None:
    raw = json.dumps(payload("B-T5", persons(2))).encode()
    headers = sign_headers(CLIENT, SECRET, "POST", "/v1/batches", raw)
    tampered = raw.replace(b"10001", b"90001")
    r = api.client.post("/v1/batches", content=tampered, headers=headers)
    error = assert_error_shape(r, 401, "auth_content_digest")
    assert error["field"] == H_CONTENT_SHA256
    assert stored(ctx) == (0, 0)


def test_without_declared_digest_the_old_way_still_works_up_to_1_mib(
    api: Signed, ctx: Context
) -> None:
    raw = json.dumps(payload("B-T6", persons(3))).encode()
    headers = sign_headers(CLIENT, SECRET, "POST", "/v1/batches", raw)
    del headers[H_CONTENT_SHA256]
    assert api.client.post("/v1/batches", content=raw, headers=headers).status_code == 201
    big = _padded(payload("B-T7", persons(3)), 2 * MiB)
    headers = sign_headers(CLIENT, SECRET, "POST", "/v1/batches", big)
    del headers[H_CONTENT_SHA256]
    error = assert_error_shape(
        api.client.post("/v1/batches", content=big, headers=headers), 413, "body_too_large"
    )
    assert error["limit"] == MiB and error["unit"] == "bytes"
    assert "X-Gateway-Content-SHA256" in error["message_en"]
    assert stored(ctx) == (1, 3)


def _padded(body: dict[str, Any], size: int) -> bytes:
    """The batch as JSON of about ``size`` bytes: whitespace after every comma and colon
    (each run under the reader's 64 KiB token limit)."""
    compact = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    gaps = compact.count(",") + compact.count(":")
    gap = " " * min(60_000, size // gaps + 1)
    return json.dumps(body, ensure_ascii=False, separators=("," + gap, ":" + gap)).encode()


@pytest.fixture
def server(gateway_http: str) -> str:
    return gateway_http


def test_streamed_large_batch_with_declared_digest(
    server: str, ctx: Context, tmp_path: Path
) -> None:
    """The reference client streams a batch from a file (hashed first, never held in
    memory); over 1 MiB, so only the declared-digest path takes it."""
    path = tmp_path / "batch.json"
    path.write_bytes(_padded(payload("B-T8", persons(5)), 3 * MiB))
    with GatewayClient(server, CLIENT, SECRET) as client:
        r = client.submit_batch_file(path)
        assert r.status_code == 201, r.text
        assert client.batch("B-T8").json()["item_count"] == 5


def test_unsigned_large_batch_is_refused_before_its_body(server: str, ctx: Context) -> None:
    """Before, 512 MiB of an unsigned request were spooled before the signature was
    checked. Now: a forged signature over a declared digest is refused when the headers
    arrive; no byte of the body is read (the answer comes before it is sent)."""
    headers: dict[str, str | bytes] = dict(
        sign_digest(CLIENT, b"not the secret", "POST", "/v1/batches", "0" * 64)
    )
    headers |= {"Content-Type": "application/json", "Content-Length": str(512 * MiB)}
    answer = raw_request(server, "POST", "/v1/batches", headers, zeros(512 * MiB))
    error = assert_error_shape(answer, 401, "auth_signature")
    assert error["field"] == "X-Gateway-Signature"
    assert answer.sent < 16 * MiB, answer.sent  # the socket buffers, not the body
    assert answer.closed
    # and without any signature: at most 1 MiB is read, then 413
    plain: dict[str, str | bytes] = {"Content-Type": "application/json"}
    answer = raw_request(server, "POST", "/v1/batches", plain, zeros(64 * MiB), chunked=True)
    assert_error_shape(answer, 413, "body_too_large")
    assert answer.sent < 16 * MiB, answer.sent
    assert stored(ctx) == (0, 0)


def test_hostile_name_is_refused_while_other_requests_go_on(server: str, ctx: Context) -> None:
    """One 17-million-character name took 206-265 s before its 422, and meanwhile other
    signed requests got 500s (the intake held SQLite's write lock the whole time, and
    every other request waited 30 s for it). Now the name is refused when the reader
    passes 64 KiB of it, before any transaction is open."""
    name = b'"' + b"x" * (17 * MiB) + b'"'
    raw = body_with(name)
    digest = hashlib.sha256(raw).hexdigest()
    headers: dict[str, str | bytes] = dict(
        sign_digest(CLIENT, SECRET, "POST", "/v1/batches", digest)
    )
    headers |= {"Content-Type": "application/json", "Content-Length": str(len(raw))}
    answers: list[Any] = []

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(raw), 256 * 1024):
            yield raw[i : i + 256 * 1024]

    hostile = threading.Thread(
        target=lambda: answers.append(raw_request(server, "POST", "/v1/batches", headers, chunks()))
    )
    hostile.start()
    others = []
    with GatewayClient(server, CLIENT, SECRET) as client:
        for i in range(5):
            others.append(client.batch(f"B-OTHER-{i}").status_code)
        others.append(client.submit_batch(payload("B-T9", persons(2))).status_code)
    hostile.join(timeout=120)
    assert not hostile.is_alive()
    error = assert_error_shape(answers[0], 400, "token_too_long")
    assert error["field"] == "items[0].name"
    assert others == [404] * 5 + [201]
    assert stored(ctx) == (1, 2)


# --- 5. every route's body limit, while it is read ---------------------------------------------


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/v1/bank-callbacks/abc", MiB),
        ("/v1/sms-receipts/aliyun-style", MiB),
        ("/v1/changes", 16 * 1024),
        ("/healthz", 16 * 1024),
        ("/v1/nothing-here", 16 * 1024),
    ],
)
def test_declared_body_over_the_limit_is_refused_before_it_is_sent(
    server: str, path: str, limit: int
) -> None:
    """An unauthenticated 128 MiB callback was read whole into memory before the size
    check (129 → 364 MiB). Now the declared length is refused at once."""
    headers: dict[str, str | bytes] = {
        "Content-Type": "application/json",
        "Content-Length": str(128 * MiB),
    }
    answer = raw_request(server, "POST", path, headers, zeros(128 * MiB))
    error = assert_error_shape(answer, 413, "body_too_large")
    assert error["limit"] == limit
    assert answer.sent < 16 * MiB, answer.sent
    assert answer.closed


@pytest.mark.parametrize("path", ["/v1/bank-callbacks/abc", "/v1/sms-receipts/aliyun-style"])
def test_undeclared_body_is_cut_off_at_the_limit(server: str, path: str) -> None:
    headers: dict[str, str | bytes] = {"Content-Type": "application/json"}
    answer = raw_request(server, "POST", path, headers, zeros(128 * MiB), chunked=True)
    error = assert_error_shape(answer, 413, "body_too_large")
    assert error["limit"] == MiB
    assert answer.sent < 16 * MiB, answer.sent


def test_dashboard_forms_are_bounded_too(server: str) -> None:
    headers: dict[str, str | bytes] = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(128 * MiB),
    }
    answer = raw_request(server, "POST", "/dashboard/login", headers, zeros(128 * MiB))
    assert answer.status == 413, answer.text[:300]
    assert answer.sent < 16 * MiB, answer.sent
    chunked = raw_request(
        server, "POST", "/dashboard/login", {"Content-Type": "application/x-www-form-urlencoded"},
        zeros(128 * MiB), chunked=True,
    )  # fmt: skip
    assert chunked.status == 413, chunked.text[:300]
    assert chunked.sent < 16 * MiB, chunked.sent


def test_a_library_client_reads_the_413_too(server: str) -> None:
    """httpx sends the body before it reads: it still gets the 413 (the server closes the
    connection only after answering)."""
    r = httpx.post(
        f"{server}/v1/bank-callbacks/abc",
        content=b" " * (2 * MiB),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert_error_shape(r, 413, "body_too_large")
