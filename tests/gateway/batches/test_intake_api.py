"""Intake over the HTTP API on a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from gateway.api.app import create_app
from gateway.auth.hmac_auth import sign_headers
from gateway.batches.models import Batch, BatchError, ItemEventRecord, PaymentItem
from gateway.context import Context
from gateway.payments.states import ItemEvent, ItemState
from gateway.payments.transitions import move_items
from gateway.settings import DEV_API_CLIENTS
from tests.gateway.helpers import payload, persons

CLIENT = "county-finance"
SECRET = DEV_API_CLIENTS[CLIENT].encode()


class Api:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    def post(self, body: dict[str, Any] | bytes, **sign: Any) -> Any:
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        headers = sign_headers(CLIENT, SECRET, "POST", "/v1/batches", raw, **sign)
        return self.client.post("/v1/batches", content=raw, headers=headers)

    def get(self, target: str) -> Any:
        return self.client.get(target, headers=sign_headers(CLIENT, SECRET, "GET", target))


@pytest.fixture
def api(ctx: Context) -> Iterator[Api]:
    with TestClient(create_app(ctx)) as client:
        yield Api(client)


def count(ctx: Context, model: Any) -> int:
    with ctx.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_accept_then_status_and_masked_items(api: Api, ctx: Context) -> None:
    ps = persons(5)
    r = api.post(payload("B-1", ps))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["state"] == "accepted" and body["item_count"] == 5 and len(body["serial"]) == 16
    status = api.get("/v1/batches/B-1").json()
    assert status["items_by_state"]["accepted"]["count"] == 5
    assert status["total_fen"] == sum(10000 + i for i in range(1, 6))
    items = api.get("/v1/batches/B-1/items?limit=2").json()
    assert [i["seq"] for i in items["items"]] == [1, 2]
    assert items["next_after_seq"] == 2
    first = items["items"][0]
    assert first["id_number"] == ps[0].id_number[:4] + "*" * 10 + ps[0].id_number[-4:]
    assert ps[0].account_no not in json.dumps(items)
    assert ps[0].name not in json.dumps(items, ensure_ascii=False)
    # every item has its 'accept' event
    assert count(ctx, ItemEventRecord) == 5


@pytest.mark.parametrize(
    "tamper",
    ["no_headers", "bad_signature", "unknown_client", "stale", "replay"],
)
def test_unauthenticated_changes_nothing(api: Api, ctx: Context, tamper: str) -> None:
    raw = json.dumps(payload("B-A", persons(2)), ensure_ascii=False).encode()
    headers = sign_headers(CLIENT, SECRET, "POST", "/v1/batches", raw)
    if tamper == "no_headers":
        headers = {}
    elif tamper == "bad_signature":
        headers["X-Gateway-Signature"] = sign_headers(CLIENT, b"wrong", "POST", "/v1/batches", raw)[
            "X-Gateway-Signature"
        ]
    elif tamper == "unknown_client":
        headers["X-Gateway-Client"] = "someone-else"
    elif tamper == "stale":
        headers = sign_headers(
            CLIENT, SECRET, "POST", "/v1/batches", raw, timestamp=int(time.time()) - 3600
        )
    elif tamper == "replay":
        first = api.client.post("/v1/batches", content=raw, headers=headers)
        assert first.status_code == 201
    r = api.client.post("/v1/batches", content=raw, headers=headers)
    assert r.status_code == 401
    assert r.json()["errors"][0]["code"].startswith("auth_")
    assert count(ctx, Batch) == (1 if tamper == "replay" else 0)


def test_tampered_body_refused(api: Api, ctx: Context) -> None:
    raw = json.dumps(payload("B-T", persons(2)), ensure_ascii=False).encode()
    headers = sign_headers(CLIENT, SECRET, "POST", "/v1/batches", raw)
    r = api.client.post("/v1/batches", content=raw.replace(b"10001", b"90001"), headers=headers)
    assert r.status_code == 401
    assert count(ctx, Batch) == 0


def test_idempotent_same_content_and_409_on_different(api: Api, ctx: Context) -> None:
    body = payload("B-2", persons(3))
    first = api.post(body)
    again = api.post(body)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    body["items"][0]["remark"] = "changed"
    conflict = api.post(body)
    assert conflict.status_code == 409
    assert conflict.json()["errors"][0]["code"] == "batch_no_reused"
    assert count(ctx, Batch) == 1
    assert count(ctx, PaymentItem) == 3


def test_rejected_batch_stored_with_every_reason(api: Api, ctx: Context) -> None:
    body = payload("B-3", persons(4))
    items = body["items"]
    items[0]["id_number"] = items[0]["id_number"][:17] + (
        "1" if items[0]["id_number"][17] == "0" else "0"
    )
    items[1].pop("amount_yuan", None)
    items[1]["amount_fen"] = 100.5
    items[2]["account_no"] = items[2]["account_no"][:-1] + str(
        (int(items[2]["account_no"][-1]) + 1) % 10
    )
    items[3]["name"] = "张\u0000三"
    r = api.post(body)
    assert r.status_code == 422
    errs = {(e["seq"], e["field"], e["code"]) for e in r.json()["errors"]}
    assert (1, "id_number", "id_number_check_digit") in errs
    assert (2, "amount_fen", "amount_not_integer_fen") in errs
    assert (3, "account_no", "account_check_digit") in errs
    assert (4, "name", "name_control_character") in errs
    assert (None, "total_amount", "total_mismatch") in errs
    assert all(e["message_zh"] and e["message_en"] for e in r.json()["errors"])
    assert count(ctx, PaymentItem) == 0  # nothing half-applied
    assert count(ctx, BatchError) == len(errs)
    again = api.post(body)
    assert again.status_code == 422 and again.json() == r.json()


def test_count_and_duplicates_within_batch(api: Api) -> None:
    ps = persons(3)
    body = payload("B-4", ps)
    body["items"].append(dict(body["items"][0], seq=4))
    body["items"].append(dict(body["items"][1], seq=2))
    r = api.post(body)
    errs = {(e["seq"], e["code"]) for e in r.json()["errors"]}
    assert (4, "duplicate_person_in_batch") in errs
    assert (2, "seq_duplicate") in errs
    assert (None, "count_mismatch") in errs


def test_same_person_subsidy_period_refused_across_batches(api: Api, ctx: Context) -> None:
    ps = persons(4)
    assert api.post(payload("B-5", ps[:2])).status_code == 201
    r = api.post(payload("B-6", ps[1:3]))
    assert r.status_code == 422
    assert {(e["seq"], e["code"]) for e in r.json()["errors"]} == {(1, "already_paid_elsewhere")}
    # another period or subsidy item is a different payment
    assert api.post(payload("B-7", ps[1:3], period="2027")).status_code == 201
    assert api.post(payload("B-8", ps[1:3], subsidy="GLJT")).status_code == 201
    assert count(ctx, PaymentItem) == 6


def _fail(ctx: Context, batch_no: str, seq: int) -> None:
    """Drive an item to 'failed' through the real transitions (as the bank result would)."""
    with ctx.sessions() as s:
        batch_id = s.scalar(select(Batch.id).where(Batch.batch_no == batch_no))
        where = (PaymentItem.batch_id == batch_id) & (PaymentItem.seq == seq)
        for event in (ItemEvent.PLAN, ItemEvent.DELIVER, ItemEvent.RESULT_FAILED):
            assert move_items(s, where, event, "test") == 1
        s.commit()


def test_reissue_of_failed_item(api: Api, ctx: Context) -> None:
    ps = persons(3)
    assert api.post(payload("B-9", ps)).status_code == 201
    # not failed yet: refused
    early = payload("B-10", ps[:1])
    early["items"][0]["reissue_of"] = {"batch_no": "B-9", "seq": 1}
    r = api.post(early)
    assert {e["code"] for e in r.json()["errors"]} == {"reissue_target_not_failed"}
    _fail(ctx, "B-9", 1)
    ok = payload("B-11", ps[:1])
    ok["items"][0]["reissue_of"] = {"batch_no": "B-9", "seq": 1}
    assert api.post(ok).status_code == 201, api.post(ok).text
    with ctx.sessions() as s:
        states = dict(
            s.execute(
                select(PaymentItem.seq, PaymentItem.state)
                .join(Batch)
                .where(Batch.batch_no == "B-9")
            ).all()
        )
        new = s.scalar(select(PaymentItem).join(Batch).where(Batch.batch_no == "B-11"))
        assert new is not None and new.reissue_of_id is not None
    assert states[1] == ItemState.REISSUED
    # twice: refused
    twice = payload("B-12", ps[:1])
    twice["items"][0]["reissue_of"] = {"batch_no": "B-9", "seq": 1}
    assert {e["code"] for e in api.post(twice).json()["errors"]} == {
        "reissue_target_already_reissued"
    }
    # another person cannot take a failed item's place
    _fail(ctx, "B-9", 2)
    other = payload("B-13", ps[2:3])
    other["items"][0]["reissue_of"] = {"batch_no": "B-9", "seq": 2}
    assert "reissue_person_differs" in {e["code"] for e in api.post(other).json()["errors"]}
    missing = payload("B-14", ps[1:2])
    missing["items"][0]["reissue_of"] = {"batch_no": "nope", "seq": 1}
    assert {e["code"] for e in api.post(missing).json()["errors"]} == {"reissue_target_missing"}


def test_malformed_json_stores_nothing(api: Api, ctx: Context) -> None:
    r = api.post(b'{"header": {"batch_no": "X"}, "items": [')
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == "malformed_json"
    assert count(ctx, Batch) == 0


def test_rare_characters_stored_encrypted_and_intact(api: Api, ctx: Context) -> None:
    ps = persons(7)  # the first people of the demo data have 䶮 𬎆 龑 and · names
    assert api.post(payload("B-15", ps)).status_code == 201
    with ctx.sessions() as s:
        rows = s.scalars(select(PaymentItem).order_by(PaymentItem.seq)).all()
        names = [ctx.pii.decrypt("name", r.name_enc) for r in rows]
        dump = "\n".join(
            str(row)
            for table in ("payment_items", "batches", "item_events", "batch_events")
            for row in s.execute(text(f"SELECT * FROM {table}")).all()  # noqa: S608
        )
    assert names == [p.name for p in ps]
    for p in ps:
        assert p.id_number not in dump
        assert p.account_no not in dump
        assert p.phone not in dump
        assert p.name not in dump


def test_concurrent_identical_submissions_create_one_batch(ctx: Context) -> None:
    """Real concurrency: several threads submit the same batch at once."""
    import hashlib
    import io

    from gateway.batches.service import IntakeService

    raw = json.dumps(payload("B-C", persons(50)), ensure_ascii=False).encode()
    sha = hashlib.sha256(raw).hexdigest()
    barrier = threading.Barrier(4)
    answers: list[Any] = []

    def go() -> None:
        service = IntakeService(ctx.sessions, ctx.pii, ctx.profiles)
        barrier.wait()
        answers.append(service.submit(CLIENT, io.BytesIO(raw), sha))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [201] * 4
    assert len({a.body["serial"] for a in answers}) == 1
    assert count(ctx, Batch) == 1
    assert count(ctx, PaymentItem) == 50


def test_concurrent_batches_for_the_same_person_accept_one(ctx: Context) -> None:
    import hashlib
    import io

    from gateway.batches.service import IntakeService

    ps = persons(20)
    raws = [json.dumps(payload(f"B-P{i}", ps), ensure_ascii=False).encode() for i in range(3)]
    barrier = threading.Barrier(3)
    answers: list[Any] = []

    def go(raw: bytes) -> None:
        service = IntakeService(ctx.sessions, ctx.pii, ctx.profiles)
        barrier.wait()
        answers.append(service.submit(CLIENT, io.BytesIO(raw), hashlib.sha256(raw).hexdigest()))

    threads = [threading.Thread(target=go, args=(r,)) for r in raws]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [201, 422, 422]
    assert count(ctx, PaymentItem) == 20
