"""The change feed and the pull API (GET /v1/changes): every outcome exactly once, in
order, per client, masked; cursors stable while changes keep coming."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from gateway.auth.hmac_auth import sign_headers
from gateway.batches.models import ItemEventRecord, PaymentItem
from gateway.context import Context
from gateway.kit.db import session_scope
from gateway.upstream.delivery import deliver_webhooks, summary
from gateway.upstream.feed import LOCK_TIMEOUT_MS, decode_cursor, encode_cursor, stage_changes
from gateway.upstream.models import UpstreamChange, UpstreamFeed, WebhookMessage
from tests.gateway.upstream.support import Api, configure, produce
from tests.waits import wait_until


def _count(ctx: Context, model: Any) -> int:
    with ctx.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_outcomes_are_staged_once_with_a_webhook_only_where_configured(uctx: Context) -> None:
    produce(uctx, "F-1", 5, failed={2: "name_mismatch"})
    produce(uctx, "O-1", 3, client="other-county", seed=8)
    assert stage_changes(uctx) == 5 + 1 + 3 + 1
    assert stage_changes(uctx) == 0  # nothing twice
    with uctx.sessions() as s:
        changes = s.scalars(select(UpstreamChange).order_by(UpstreamChange.id)).all()
        messages = s.scalars(select(WebhookMessage)).all()
    mine = [c for c in changes if c.client_id == "county-finance"]
    assert [c.type for c in mine] == ["item.failed"] + ["item.paid"] * 4 + ["batch.completed"]
    # one webhook per change of the client that has an endpoint, none for the other
    assert sorted(m.change_id for m in messages) == [c.id for c in mine]
    assert {m.client_id for m in messages} == {"county-finance"}
    assert all(c.public_id.startswith("msg_") for c in changes)
    # an endpoint removed from the settings: its messages fail, nothing is sent
    configure(uctx, webhooks={})
    assert deliver_webhooks(uctx, "w1") == 0
    assert summary(uctx) == {"delivered": 0, "pending": 0, "failed": 6}
    with uctx.sessions() as s:
        errors = set(s.scalars(select(WebhookMessage.last_error)))
    assert errors == {"no webhook endpoint configured"}


def test_pages_cover_every_change_once_in_order_masked_and_only_for_the_client(
    uctx: Context, api: Api
) -> None:
    people = produce(uctx, "F-2", 7, failed={3: "account_closed", 6: "account_frozen"})
    produce(uctx, "O-2", 4, client="other-county", seed=9)
    stage_changes(uctx)
    seen, cursor = api.all_changes(limit=3)
    assert len(seen) == 8
    assert len({c["id"] for c in seen}) == 8
    assert [c["type"] for c in seen][-1] == "batch.completed"  # after all its items
    assert {c["data"]["batch_no"] for c in seen} == {"F-2"}  # other clients invisible
    items = {c["data"]["seq"]: c["data"] for c in seen if c["data"]["kind"] == "item"}
    assert sorted(items) == list(range(1, 8))
    closed = items[3]
    assert closed["state"] == "failed" and closed["state_zh"] == "支付失败"
    assert closed["reason_code"] == "account_closed"
    assert closed["reason_zh"] == "账户已销户" and closed["action_zh"]
    assert closed["bank_code"] == "E42" and closed["previous_state"] == "sent"
    paid = items[1]
    assert paid["state"] == "paid" and paid["reason_code"] is None
    assert paid["bank_ref"] == "REF-F-2" and paid["paid_at"].endswith("Z")
    assert paid["amount_fen"] == 10001 and paid["amount_yuan"] == "100.01"
    assert paid["serial"] and paid["batch_serial"] and paid["occurred_at"]
    batch = seen[-1]["data"]
    assert batch["paid"] == {"count": 5, "amount_fen": sum(10000 + s for s in (1, 2, 4, 5, 7))}
    assert batch["failed"]["count"] == 2 and batch["state_zh"] == "已完成"
    # personal data only masked
    text = json.dumps(seen, ensure_ascii=False)
    for p in people:
        assert p.name not in text and p.id_number not in text and p.account_no not in text
        assert p.phone not in text
    assert paid["id_number"].count("*") == 10 and paid["account_no"].count("*") >= 8
    # the end: nothing new, the cursor stays where it is
    again = api.changes(cursor)
    assert again == {"changes": [], "next_cursor": cursor, "has_more": False}
    # the other client sees its own, and only those
    theirs, _ = api.as_("other-county").all_changes(limit=100)
    assert [c["data"]["batch_no"] for c in theirs] == ["O-2"] * 5
    # each entry's own cursor resumes right after it
    resumed = api.changes(seen[1]["cursor"], limit=100)["changes"]
    assert [c["id"] for c in resumed] == [c["id"] for c in seen[2:]]
    assert decode_cursor(encode_cursor(123456789)) == 123456789
    # strangers and forged cursors are refused
    r = api.client.get("/v1/changes")
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "auth_missing"
    forged = sign_headers("county-finance", b"wrong", "GET", "/v1/changes")
    assert api.client.get("/v1/changes", headers=forged).status_code == 401
    for bad in ["not-a-cursor", encode_cursor(1)[:-1] + "!", "YWJjOjEy"]:
        r = api.get(f"/v1/changes?after={bad}")
        assert r.status_code == 400, bad
        assert r.json()["errors"][0]["code"] == "invalid_cursor"
    for limit in ("0", "1001"):
        r = api.get(f"/v1/changes?limit={limit}")
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "invalid_parameter"


def test_changes_produced_while_paging_are_neither_missed_nor_repeated(
    uctx: Context, api: Api
) -> None:
    produce(uctx, "F-4", 5)
    stage_changes(uctx)
    first = api.changes(limit=4)
    assert first["has_more"]
    # more outcomes arrive between two pages
    produce(uctx, "F-5", 6, failed={1: "account_not_found"}, seed=11)
    stage_changes(uctx)
    rest, cursor = api.all_changes(limit=4, after=first["next_cursor"])
    produce(uctx, "F-6", 2, seed=12)
    stage_changes(uctx)
    tail, _ = api.all_changes(limit=4, after=cursor)
    ids = [c["id"] for c in first["changes"] + rest + tail]
    with uctx.sessions() as s:
        expected = s.scalars(
            select(UpstreamChange.public_id)
            .where(UpstreamChange.client_id == "county-finance")
            .order_by(UpstreamChange.id)
        ).all()
    assert ids == list(expected) and len(ids) == 6 + 7 + 3


def test_concurrent_writers_stagers_and_a_reader(uctx: Context, api: Api) -> None:
    """Batches settle in one thread while two stagers and a paging reader run: the reader
    ends up with every change exactly once, in feed order."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def stager() -> None:
        try:
            while not stop.is_set():
                stage_changes(uctx)
                stop.wait(0.005)  # a stager's pace, not a wait for anything
        except BaseException as exc:  # pragma: no cover (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=stager) for _ in range(2)]
    for t in threads:
        t.start()
    seen: list[Any] = []
    cursor: str | None = None
    try:
        for i in range(6):
            produce(uctx, f"C-{i}", 3, failed={2: "bank_other"} if i % 2 else None, seed=20 + i)
            page = api.changes(cursor, limit=2)
            seen.extend(page["changes"])
            cursor = page["next_cursor"]
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    stage_changes(uctx)
    rest, _ = api.all_changes(limit=5, after=cursor)
    seen.extend(rest)
    assert len(seen) == 6 * 4
    assert len({c["id"] for c in seen}) == len(seen)
    with uctx.sessions() as s:
        expected = s.scalars(select(UpstreamChange.public_id).order_by(UpstreamChange.id)).all()
    assert [c["id"] for c in seen] == list(expected)
    # every batch's completion comes after its own items
    position = {c["id"]: n for n, c in enumerate(seen)}
    for c in seen:
        if c["type"] == "batch.completed":
            items = [x for x in seen if x["data"]["batch_no"] == c["data"]["batch_no"]]
            assert max(position[x["id"]] for x in items) == position[c["id"]]


@pytest.fixture
def pg_ctx(pg_url: str, tmp_path: Path, dev_keys: Path) -> Iterator[Context]:
    """PostgreSQL only: SQLite serialises writers, so there an uncommitted smaller id
    cannot exist."""
    from gateway.demo.banks import write_profiles
    from tests.conftest import make_settings

    context = Context.build(make_settings(pg_url, write_profiles(tmp_path, dev_keys, 9)))  # type: ignore[arg-type]
    try:
        yield context
    finally:
        context.close()


def test_an_event_committed_late_with_a_smaller_id_is_not_skipped(pg_ctx: Context) -> None:
    """PostgreSQL hands out ids at insert and shows rows at commit: id N+1 may be visible
    while N is not yet. The feed must wait for N rather than step over it."""
    uctx = pg_ctx
    produce(uctx, "L-1", 2)
    stage_changes(uctx)
    with uctx.sessions() as s:
        first, second = s.scalars(select(PaymentItem.id).order_by(PaymentItem.seq)).all()
    slow = uctx.sessions()
    try:
        # a slow writer draws the smaller id and does not commit yet …
        slow.add(
            ItemEventRecord(
                item_id=first, event="bounce", from_state="paid", to_state="bounced", actor="slow"
            )
        )
        slow.flush()
        # … while a quick one draws a larger id and commits
        with session_scope(uctx.sessions) as quick:
            quick.add(
                ItemEventRecord(
                    item_id=second,
                    event="bounce",
                    from_state="paid",
                    to_state="bounced",
                    actor="quick",
                )
            )
        assert stage_changes(uctx) == 0  # the high-water mark cannot be had yet

        # once the slow writer has been open longer than the lock would wait, the stager
        # does not even queue (which would hold up every other writer): it skips at once,
        # without asking for the lock
        def slow_writer_open_ms() -> float:
            age = slow.scalar(
                text("SELECT extract(epoch FROM clock_timestamp() - transaction_timestamp())")
            )
            return float(age) * 1000

        wait_until(
            lambda: slow_writer_open_ms() > LOCK_TIMEOUT_MS,
            what="the slow writer to be open longer than the lock would wait",
        )
        statements: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
            statements.append(statement)

        event.listen(uctx.engine, "before_cursor_execute", record)
        try:
            assert stage_changes(uctx) == 0
        finally:
            event.remove(uctx.engine, "before_cursor_execute", record)
        assert statements and not any("LOCK TABLE" in s.upper() for s in statements)
        slow.commit()
    finally:
        slow.close()
    assert stage_changes(uctx) == 2
    with uctx.sessions() as s:
        late = s.scalars(
            select(UpstreamChange)
            .where(UpstreamChange.type == "item.bounced")
            .order_by(UpstreamChange.id)
        ).all()
        feed = s.get(UpstreamFeed, 1)
    assert [c.item_id for c in late] == [first, second]
    assert feed is not None and feed.item_event_id == max(c.source_event_id for c in late)
