"""The change feed: outcome changes staged from the append-only event tables, in order,
exactly once, and served to upstream by cursor.

Source: ``item_events`` and ``batch_events`` are written in the same transaction as every
state change, with ids from a sequence. An event whose ``to_state`` is an *outcome* (an
item final for the bank: paid, failed, bounced, returned, re-issued, refunded, cancelled; a
batch completed or rejected) becomes one ``upstream_changes`` row, and, for a client with a
webhook endpoint, one ``webhook_messages`` row in the same transaction. So does an item's
move to ``operator_case`` — not an outcome but a *hold*: delivery stopped or its outcome is
unknown, and a person must act (``item.operator_case``; its outcome follows later). A hold
already resolved when it is staged (an operator's confirmation moves the item on in the
same transaction) is not reported: its outcome is.

Reading an id-ordered table while others write it has one trap: on PostgreSQL ids are
taken from the sequence when a row is inserted but become visible when its transaction
commits, so id 101 can be visible while id 100 is still uncommitted (or will never be). A
reader that remembered "done up to 101" would skip 100 for ever. Two places handle it:

1. **Reading the event tables** (``safe_horizon``): on PostgreSQL the stager briefly takes
   ``LOCK TABLE item_events, batch_events IN SHARE MODE``. That mode conflicts with the
   ``ROW EXCLUSIVE`` lock every INSERT holds until its transaction ends, so it is granted
   only once every transaction that has inserted an event (and so drawn its id) has
   committed or rolled back; ids are drawn inside the INSERT, under that lock. The maximum
   ids read under the lock are therefore a safe high-water mark: every smaller id is
   committed or will never exist. The lock is released at once (its transaction only reads
   two maxima). It never queues behind a long writer (whose transaction has been open
   longer than ``LOCK_TIMEOUT_MS``, seen in ``pg_locks``): it skips the cycle instead, since
   every new writer would queue behind its lock request; otherwise ``lock_timeout`` bounds
   the wait. Either way the feed does not advance this cycle and tries again in the next.
   A time-based visibility window was the alternative; it is not a guarantee (a
   transaction may stay open longer than any window), this is. On SQLite writers are
   serialised, so what a reader sees is always a prefix.
2. **Serving ``upstream_changes``**: only the stager writes it, and each staging
   transaction first locks the single ``upstream_feed`` row (``SELECT … FOR UPDATE``), so
   staging transactions run one after another and draw their ids only after the previous
   one committed: its ids become visible in id order, and ``id > cursor`` never skips one.

The unique ``(kind, source_event_id)`` makes staging an event twice impossible.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from gateway.batches.models import Batch, BatchEventRecord, ItemEventRecord, PaymentItem
from gateway.batches.service import count_by_state
from gateway.context import Context
from gateway.feedback.reasons import reason
from gateway.kit.clock import utcnow
from gateway.kit.db import session_scope
from gateway.kit.logging import get_logger
from gateway.kit.money import format_yuan
from gateway.payments.states import BatchState, ItemState
from gateway.upstream.models import MessageState, UpstreamChange, UpstreamFeed, WebhookMessage
from gateway.upstream.signing import new_message_id

log = get_logger(__name__)

ITEM_OUTCOMES = frozenset(s.value for s in ItemState if s.is_final())
# not an outcome: the item is held for a person (its outcome is reported when it comes)
ITEM_HOLDS = frozenset({ItemState.OPERATOR_CASE.value})
ITEM_NOTICES = ITEM_OUTCOMES | ITEM_HOLDS
HOLD_ACTION_ZH = (
    "该明细已转人工处理（发送受阻或无法确认银行是否收到），结果待定；"
    "请勿重新发放，待网关报告最终结果"
)
# completed and rejected, and whatever else is final for a batch (e.g. reconciled)
BATCH_OUTCOMES = frozenset(
    {BatchState.COMPLETED.value, BatchState.REJECTED.value}
    | {s.value for s in BatchState if s.is_final()}
)
STAGE_CHUNK = 2000  # source event ids examined per staging transaction
# Longest wait for the high-water-mark lock (and so for writers queued behind it). Kept
# below PostgreSQL's deadlock_timeout (1 s): should a writer that holds batch_events want
# item_events while the stager holds item_events and waits for batch_events, the stager's
# timeout fires first and it is the stager, never the writer's transaction, that gives up.
LOCK_TIMEOUT_MS = 500
_FEED_ROW = 1
_CURSOR_PREFIX = "c1:"


def _iso(at: dt.datetime | None) -> str | None:
    return None if at is None else at.isoformat() + "Z"


# --- the high-water mark --------------------------------------------------------------------


# How long the oldest transaction writing the event tables has been open (seconds): one
# open longer than the lock would wait for is a long writer: the stager skips the cycle
# instead of queueing (and making every other writer queue) behind it. Sessions of other
# roles, whose start time is hidden, count as long.
_OLDEST_WRITER = text(
    """
    SELECT max(coalesce(extract(epoch FROM clock_timestamp() - a.xact_start), 1e9))
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'relation' AND l.granted AND l.mode = 'RowExclusiveLock'
      AND l.relation IN ('item_events'::regclass, 'batch_events'::regclass)
      AND l.pid <> pg_backend_pid()
    """
)


def safe_horizon(ctx: Context) -> tuple[int, int] | None:
    """``(item_events id, batch_events id)`` below which every event is decided (committed
    or never to exist); None when the lock could not be had in time."""
    session = ctx.sessions()
    try:
        if session.get_bind().dialect.name == "postgresql":
            oldest = session.scalar(_OLDEST_WRITER)
            if oldest is not None and float(oldest) * 1000 > LOCK_TIMEOUT_MS:
                session.rollback()
                log.info("upstream.horizon_busy", reason="long_writer")
                return None
            session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'"))
            try:
                session.execute(text("LOCK TABLE item_events, batch_events IN SHARE MODE"))
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
                    raise
                session.rollback()
                log.info("upstream.horizon_busy", reason="lock_timeout")
                return None
        item_hi = session.scalar(select(func.max(ItemEventRecord.id))) or 0
        batch_hi = session.scalar(select(func.max(BatchEventRecord.id))) or 0
        session.commit()
        return int(item_hi), int(batch_hi)
    finally:
        session.close()


# --- staging --------------------------------------------------------------------------------


def _ensure_feed_row(ctx: Context) -> None:
    with ctx.sessions() as session:
        if session.get(UpstreamFeed, _FEED_ROW) is not None:
            return
    with session_scope(ctx.sessions) as session:
        dialect = session.get_bind().dialect.name
        ins = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(
            ins(UpstreamFeed)
            .values(id=_FEED_ROW, item_event_id=0, batch_event_id=0, updated_at=utcnow())
            .on_conflict_do_nothing(index_elements=["id"])
        )


def stage_changes(ctx: Context) -> int:
    """Stage every outcome change up to the safe high-water mark; returns how many.

    Item events are staged before batch events, up to marks taken at the same moment, so a
    batch's completion always follows its items' outcomes in the feed."""
    horizon = safe_horizon(ctx)
    if horizon is None:
        return 0
    _ensure_feed_row(ctx)
    item_hi, batch_hi = horizon
    staged = 0
    for kind, hi in (("item", item_hi), ("batch", batch_hi)):
        while True:
            n, caught_up = _stage_chunk(ctx, kind, hi)
            staged += n
            if caught_up:
                break
    if staged:
        log.info("upstream.staged", changes=staged)
    return staged


def _stage_chunk(ctx: Context, kind: str, hi: int) -> tuple[int, bool]:
    with session_scope(ctx.sessions) as session:
        # the row lock makes stagers take turns (see the module docstring)
        feed = session.get(UpstreamFeed, _FEED_ROW, with_for_update=True)
        assert feed is not None  # noqa: S101 (_ensure_feed_row created it)
        done = feed.item_event_id if kind == "item" else feed.batch_event_id
        if done >= hi:
            return 0, True
        upto = min(hi, done + STAGE_CHUNK)
        if kind == "item":
            changes = _item_changes(session, done, upto)
            feed.item_event_id = upto
        else:
            changes = _batch_changes(session, done, upto)
            feed.batch_event_id = upto
        feed.updated_at = utcnow()
        session.add_all(changes)
        session.flush()
        webhooks = ctx.settings.webhooks
        now = utcnow()
        session.add_all(
            WebhookMessage(
                change_id=c.id,
                client_id=c.client_id,
                state=MessageState.PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            for c in changes
            if c.client_id in webhooks
        )
        return len(changes), upto >= hi


def _item_changes(session: Session, after: int, upto: int) -> list[UpstreamChange]:
    rows = session.execute(
        select(ItemEventRecord, PaymentItem, Batch)
        .join(PaymentItem, PaymentItem.id == ItemEventRecord.item_id)
        .join(Batch, Batch.id == PaymentItem.batch_id)
        .where(
            ItemEventRecord.id > after,
            ItemEventRecord.id <= upto,
            ItemEventRecord.to_state.in_(ITEM_NOTICES),
        )
        .order_by(ItemEventRecord.id)
    ).all()
    now = utcnow()
    # a hold the item has already left is not news: the outcome that ended it is staged
    news = [
        (ev, item, batch)
        for ev, item, batch in rows
        if ev.to_state not in ITEM_HOLDS or item.state == ev.to_state
    ]
    return [
        UpstreamChange(
            public_id=new_message_id(),
            client_id=batch.client_id,
            kind="item",
            source_event_id=ev.id,
            batch_id=batch.id,
            item_id=item.id,
            type=f"item.{ev.to_state}",
            payload=item_payload(ev, item, batch),
            occurred_at=ev.at,
            staged_at=now,
        )
        for ev, item, batch in news
    ]


def _batch_changes(session: Session, after: int, upto: int) -> list[UpstreamChange]:
    rows = session.execute(
        select(BatchEventRecord, Batch)
        .join(Batch, Batch.id == BatchEventRecord.batch_id)
        .where(
            BatchEventRecord.id > after,
            BatchEventRecord.id <= upto,
            BatchEventRecord.to_state.in_(BATCH_OUTCOMES),
        )
        .order_by(BatchEventRecord.id)
    ).all()
    now = utcnow()
    return [
        UpstreamChange(
            public_id=new_message_id(),
            client_id=batch.client_id,
            kind="batch",
            source_event_id=ev.id,
            batch_id=batch.id,
            item_id=None,
            type=f"batch.{ev.to_state}",
            payload=batch_payload(session, ev, batch),
            occurred_at=ev.at,
            staged_at=now,
        )
        for ev, batch in rows
    ]


# --- what upstream sees ---------------------------------------------------------------------


def item_payload(ev: ItemEventRecord, item: PaymentItem, batch: Batch) -> dict[str, Any]:
    """An item outcome, personal data masked. Amount, reason and bank reference are as the
    item records them when the change is staged (normally within one worker cycle)."""
    detail = ev.detail or {}
    paid = ev.to_state == ItemState.PAID
    held = ev.to_state in ITEM_HOLDS
    r = None if paid or held or not item.reason_code else reason(item.reason_code)
    return {
        "kind": "item",
        "batch_no": batch.batch_no,
        "batch_serial": batch.serial,
        "seq": item.seq,
        "serial": item.serial,
        "state": ev.to_state,
        "state_zh": ItemState(ev.to_state).label_zh,
        "previous_state": ev.from_state,
        "event": ev.event,
        "amount_fen": item.amount_fen,
        "amount_yuan": format_yuan(item.amount_fen),
        "name": item.name_masked,
        "id_number": item.id_number_masked,
        "account_no": item.account_masked,
        "bank_code": detail.get("bank_code", item.bank_code),
        "bank_ref": item.bank_ref,
        "reason_code": r.code if r else None,
        "reason_zh": r.zh if r else None,
        "reason_en": r.en if r else None,
        "action_zh": r.action_zh if r else (HOLD_ACTION_ZH if held else None),
        "paid_at": _iso(item.paid_at),
        "occurred_at": _iso(ev.at),
    }


def batch_payload(session: Session, ev: BatchEventRecord, batch: Batch) -> dict[str, Any]:
    """A batch outcome with its figures by item state (as at staging)."""
    by_state = count_by_state(session, batch.id)
    paid = by_state.get(ItemState.PAID, (0, 0))
    failed = by_state.get(ItemState.FAILED, (0, 0))
    return {
        "kind": "batch",
        "batch_no": batch.batch_no,
        "batch_serial": batch.serial,
        "state": ev.to_state,
        "state_zh": BatchState(ev.to_state).label_zh,
        "previous_state": ev.from_state,
        "event": ev.event,
        "bank_profile": batch.bank_profile,
        "subsidy_code": batch.subsidy_code,
        "period": batch.period,
        "item_count": batch.item_count,
        "total_fen": batch.total_fen,
        "error_count": batch.error_count,
        "items_by_state": {s: {"count": n, "amount_fen": a} for s, (n, a) in by_state.items()},
        "paid": {"count": paid[0], "amount_fen": paid[1]},
        "failed": {"count": failed[0], "amount_fen": failed[1]},
        "occurred_at": _iso(ev.at),
    }


def envelope(change: UpstreamChange) -> dict[str, Any]:
    """The Standard Webhooks payload shape (``type``, ``timestamp``, ``data``) plus the id:
    the webhook body and each entry of the pull API are the same object."""
    return {
        "id": change.public_id,
        "type": change.type,
        "timestamp": _iso(change.occurred_at),
        "data": change.payload,
    }


# --- the pull API ---------------------------------------------------------------------------


class CursorError(ValueError):
    """A cursor this gateway did not hand out."""


def encode_cursor(change_id: int) -> str:
    raw = f"{_CURSOR_PREFIX}{change_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CursorError(cursor) from None
    value = raw.removeprefix(_CURSOR_PREFIX)
    if not raw.startswith(_CURSOR_PREFIX) or not value.isdigit() or len(value) > 19:
        raise CursorError(cursor)
    return int(value)


@dataclass(frozen=True)
class ChangesPage:
    changes: Sequence[dict[str, Any]]
    next_cursor: str
    has_more: bool

    def body(self) -> dict[str, Any]:
        return {
            "changes": list(self.changes),
            "next_cursor": self.next_cursor,
            "has_more": self.has_more,
        }


def changes_page(ctx: Context, client_id: str, after: str | None, limit: int) -> ChangesPage:
    """The client's changes after ``after``, oldest first; ``next_cursor`` resumes after the
    last one returned (or stays ``after`` when there is nothing new)."""
    position = decode_cursor(after)
    with ctx.sessions() as session:
        rows = session.scalars(
            select(UpstreamChange)
            .where(UpstreamChange.client_id == client_id, UpstreamChange.id > position)
            .order_by(UpstreamChange.id)
            .limit(limit + 1)
        ).all()
    page = rows[:limit]
    out = [{**envelope(c), "cursor": encode_cursor(c.id)} for c in page]
    last = page[-1].id if page else position
    return ChangesPage(out, encode_cursor(last), len(rows) > limit)
