"""Helpers of the rework tests: batches through the real intake, items moved through the
real transition code (``move_items``) where a bank is not needed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select

from gateway.batches.models import Batch, ItemEventRecord, PaymentItem
from gateway.context import Context
from gateway.demo.data import Person, batch_payload
from gateway.kit.clock import utcnow
from gateway.payments.states import ItemEvent
from gateway.payments.transitions import move_items
from tests.gateway.pipeline import submit


def batch(
    ctx: Context,
    no: str,
    ps: list[Person],
    *,
    region: str = "430621101",
    subsidy: str = "GDBH",
    subsidy_name: str = "耕地地力保护补贴",
    period: str = "2026",
    payer_account: str | None = None,
    reissue_of: dict[int, tuple[str, int]] | None = None,
) -> Any:
    """Submit a batch through the real intake (``reissue_of``: seq → original batch/seq)."""
    body = batch_payload(
        no,
        subsidy_code=subsidy,
        subsidy_name=subsidy_name,
        period=period,
        persons=ps,
        amount_fen=10000,
        region_code=region,
    )
    if payer_account is not None:
        body["header"]["payer_account"] = payer_account
    for seq, (orig_no, orig_seq) in (reissue_of or {}).items():
        body["items"][seq - 1]["reissue_of"] = {"batch_no": orig_no, "seq": orig_seq}
    return submit(ctx, body)


def _where(batch_no: str, seqs: list[int]) -> ColumnElement[bool]:
    return PaymentItem.batch_id.in_(
        select(Batch.id).where(Batch.batch_no == batch_no)
    ) & PaymentItem.seq.in_(seqs)


def send(ctx: Context, batch_no: str, seqs: list[int]) -> None:
    with ctx.sessions.begin() as s:
        for event in (ItemEvent.PLAN, ItemEvent.DELIVER):
            move_items(s, _where(batch_no, seqs), event, "test")


def fail(
    ctx: Context,
    batch_no: str,
    seqs: list[int],
    code: str = "account_not_found",
    bank: tuple[str, str] = ("E101", "账户不存在"),
) -> None:
    send(ctx, batch_no, seqs)
    with ctx.sessions.begin() as s:
        moved = move_items(
            s,
            _where(batch_no, seqs),
            ItemEvent.RESULT_FAILED,
            "test",
            values={"reason_code": code, "bank_code": bank[0], "bank_message": bank[1]},
        )
        assert moved == len(seqs)


def pay(ctx: Context, batch_no: str, seqs: list[int]) -> None:
    send(ctx, batch_no, seqs)
    with ctx.sessions.begin() as s:
        move_items(
            s,
            _where(batch_no, seqs),
            ItemEvent.RESULT_PAID,
            "test",
            values={"paid_at": utcnow(), "bank_code": "0000"},
        )


def bounce(ctx: Context, batch_no: str, seqs: list[int]) -> None:
    pay(ctx, batch_no, seqs)
    with ctx.sessions.begin() as s:
        move_items(
            s, _where(batch_no, seqs), ItemEvent.BOUNCE, "test", values={"reason_code": "bounced"}
        )


def item(ctx: Context, batch_no: str, seq: int) -> PaymentItem:
    with ctx.sessions() as s:
        found = s.scalar(
            select(PaymentItem)
            .join(Batch, Batch.id == PaymentItem.batch_id)
            .where(Batch.batch_no == batch_no, PaymentItem.seq == seq)
        )
        assert found is not None
        return found


def item_state(ctx: Context, batch_no: str, seq: int) -> str:
    return item(ctx, batch_no, seq).state


def events(ctx: Context, item_id: int) -> list[ItemEventRecord]:
    with ctx.sessions() as s:
        return list(
            s.scalars(
                select(ItemEventRecord)
                .where(ItemEventRecord.item_id == item_id)
                .order_by(ItemEventRecord.id)
            ).all()
        )
