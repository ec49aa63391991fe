"""Applying state transitions to stored rows, with their append-only events.

The rules live in ``payments.states`` (pure); this module only writes what they allow:
bulk conditional updates (``WHERE state IN (allowed sources)``) plus one event row per
item moved, written by ``INSERT … SELECT`` so no statement is issued per item."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, insert, literal, select, update
from sqlalchemy.orm import Session

from gateway.batches.models import Batch, BatchEventRecord, ItemEventRecord, PaymentItem
from gateway.kit.clock import utcnow
from gateway.payments.states import (
    BatchEvent,
    BatchState,
    ItemEvent,
    ItemState,
    batch_next,
    item_next,
)


def move_items(
    session: Session,
    where: ColumnElement[bool],
    event: ItemEvent,
    actor: str,
    *,
    values: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Move every item matching ``where`` that may take ``event``; returns how many moved.

    Items are moved one source state at a time so each event row names its true source."""
    now = now or utcnow()
    moved = 0
    sources = [s for s in ItemState if _allows(s, event)]
    for source in sources:
        target = item_next(source, event)
        cond = (PaymentItem.state == source.value) & where
        # events first (they select the rows still in the source state), then the update
        session.execute(
            insert(ItemEventRecord).from_select(
                ["item_id", "event", "from_state", "to_state", "actor", "at", "detail"],
                select(
                    PaymentItem.id,
                    literal(event.value),
                    literal(source.value),
                    literal(target.value),
                    literal(actor),
                    literal(now),
                    literal(detail, ItemEventRecord.detail.type),
                ).where(cond),
            )
        )
        result = session.execute(
            update(PaymentItem)
            .where(cond)
            .values(state=target.value, updated_at=now, **(values or {}))
            .execution_options(synchronize_session=False)
        )
        moved += int(result.rowcount)  # type: ignore[attr-defined]
    return moved


def _allows(state: ItemState, event: ItemEvent) -> bool:
    try:
        item_next(state, event)
    except ValueError:
        return False
    return True


def move_batch(
    session: Session,
    batch: Batch,
    event: BatchEvent,
    actor: str,
    *,
    detail: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Move one (loaded, locked-by-lease or by transaction) batch and record the event."""
    now = now or utcnow()
    source = BatchState(batch.state)
    target = batch_next(source, event)
    batch.state = target.value
    batch.updated_at = now
    if target == BatchState.COMPLETED:
        batch.completed_at = now
    session.add(
        BatchEventRecord(
            batch_id=batch.id,
            event=event.value,
            from_state=source.value,
            to_state=target.value,
            actor=actor,
            at=now,
            detail=detail,
        )
    )


def complete_if_final(session: Session, batch: Batch, actor: str) -> bool:
    """Complete a sent/dispatching batch once none of its items awaits the bank."""
    if batch.state not in {BatchState.SENT, BatchState.DISPATCHING}:
        return False
    open_states = [s.value for s in ItemState if not s.is_final()]
    pending = session.scalar(
        select(PaymentItem.id)
        .where(PaymentItem.batch_id == batch.id, PaymentItem.state.in_(open_states))
        .limit(1)
    )
    if pending is not None:
        return False
    move_batch(session, batch, BatchEvent.ALL_FINAL, actor)
    return True
