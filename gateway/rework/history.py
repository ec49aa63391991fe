"""The history of a person's payments (个人发放记录), found through the ID number's blind
index: every item for that person across batches, grouped into re-issue chains
(original → re-issue → …), each with its state, amount, failure reason and advice, the
correction lists it was on, its treasury refunds and its full event trail.

Everything returned is masked; the query itself is audited (the ID number is recorded only
as its blind index)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from gateway.batches.models import Batch, ItemEventRecord, PaymentItem
from gateway.context import Context
from gateway.feedback.reasons import reason
from gateway.kit.db import session_scope
from gateway.kit.identity import id_number_problem, normalize_id_number
from gateway.kit.pii import mask_id_number
from gateway.payments.states import ItemState
from gateway.rework import audit
from gateway.rework.errors import InvalidIdNumberError
from gateway.rework.models import CorrectionListItem, TreasuryRefund, TreasuryRefundItem


@dataclass(frozen=True, slots=True)
class EventView:
    at: dt.datetime
    event: str
    from_state: str | None
    to_state: str
    actor: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat() + "Z",
            "event": self.event,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "actor": self.actor,
        }


@dataclass(frozen=True, slots=True)
class RefundRef:
    refund_id: int
    state: str
    treasury_ref: str | None
    amount_fen: int
    decided_at: dt.datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "refund_id": self.refund_id,
            "state": self.state,
            "treasury_ref": self.treasury_ref,
            "amount_fen": self.amount_fen,
            "decided_at": self.decided_at.isoformat() + "Z" if self.decided_at else None,
        }


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One item of the person, masked."""

    item_id: int
    batch_no: str
    seq: int
    serial: str
    region_code: str
    subsidy_code: str
    subsidy_name: str
    period: str
    fiscal_year: int
    state: str
    amount_fen: int
    name_masked: str
    account_masked: str
    reason_code: str | None
    bank_code: str | None
    bank_message: str | None
    paid_at: dt.datetime | None
    received_at: dt.datetime
    reissue_of_id: int | None
    reissued_by_id: int | None
    refunds: list[RefundRef] = field(default_factory=list)
    correction_lists: list[int] = field(default_factory=list)
    events: list[EventView] = field(default_factory=list)

    @property
    def state_zh(self) -> str:
        return ItemState(self.state).label_zh

    @property
    def failed(self) -> bool:
        return self.reason_code is not None or self.state == ItemState.BOUNCED

    @property
    def reason_zh(self) -> str | None:
        if not self.failed:
            return None
        return reason(self.reason_code or "bounced").zh

    @property
    def action_zh(self) -> str | None:
        if not self.failed:
            return None
        return reason(self.reason_code or "bounced").action_zh

    def as_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "batch_no": self.batch_no,
            "seq": self.seq,
            "serial": self.serial,
            "region_code": self.region_code,
            "subsidy_code": self.subsidy_code,
            "subsidy_name": self.subsidy_name,
            "period": self.period,
            "fiscal_year": self.fiscal_year,
            "state": self.state,
            "state_zh": self.state_zh,
            "amount_fen": self.amount_fen,
            "name_masked": self.name_masked,
            "account_masked": self.account_masked,
            "reason_code": self.reason_code,
            "reason_zh": self.reason_zh,
            "action_zh": self.action_zh,
            "bank_code": self.bank_code,
            "bank_message": self.bank_message,
            "paid_at": self.paid_at.isoformat() + "Z" if self.paid_at else None,
            "reissue_of_id": self.reissue_of_id,
            "reissued_by_id": self.reissued_by_id,
            "refunds": [r.as_dict() for r in self.refunds],
            "correction_lists": self.correction_lists,
            "events": [e.as_dict() for e in self.events],
        }


@dataclass(frozen=True, slots=True)
class PaymentChain:
    """An original item and its re-issues, in order (original first)."""

    entries: list[HistoryEntry]

    @property
    def original(self) -> HistoryEntry:
        return self.entries[0]

    @property
    def latest(self) -> HistoryEntry:
        return self.entries[-1]

    @property
    def paid_fen(self) -> int:
        return sum(e.amount_fen for e in self.entries if e.state == ItemState.PAID)

    def as_dict(self) -> dict[str, Any]:
        return {
            "subsidy_code": self.original.subsidy_code,
            "subsidy_name": self.original.subsidy_name,
            "period": self.original.period,
            "outcome": self.latest.state,
            "outcome_zh": self.latest.state_zh,
            "paid_fen": self.paid_fen,
            "entries": [e.as_dict() for e in self.entries],
        }


@dataclass(frozen=True, slots=True)
class PersonHistory:
    id_number_masked: str
    chains: list[PaymentChain]

    @property
    def item_count(self) -> int:
        return sum(len(c.entries) for c in self.chains)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id_number_masked": self.id_number_masked,
            "item_count": self.item_count,
            "chains": [c.as_dict() for c in self.chains],
        }


def payment_history(ctx: Context, id_number: str, *, operator: str | None = None) -> PersonHistory:
    """Every payment item for the person with ``id_number``, as re-issue chains (oldest
    first). The look-up is audited under ``operator`` (``system`` when a program asks)."""
    actor = audit.operator_name(operator) if operator is not None else "system"
    idn = normalize_id_number(id_number)
    problem = id_number_problem(idn)
    if problem is not None:
        raise InvalidIdNumberError("身份证号码无效", f"the ID number is invalid ({problem})")
    bidx = ctx.pii.blind_index("id_number", idn)
    with session_scope(ctx.sessions) as session:
        rows = session.execute(
            select(PaymentItem, Batch)
            .join(Batch, Batch.id == PaymentItem.batch_id)
            .where(PaymentItem.id_number_bidx == bidx)
            .order_by(Batch.received_at, PaymentItem.id)
        ).all()
        ids = [item.id for item, _ in rows]
        events: dict[int, list[EventView]] = defaultdict(list)
        refunds: dict[int, list[RefundRef]] = defaultdict(list)
        lists: dict[int, list[int]] = defaultdict(list)
        if ids:
            for ev in session.scalars(
                select(ItemEventRecord)
                .where(ItemEventRecord.item_id.in_(ids))
                .order_by(ItemEventRecord.at, ItemEventRecord.id)
            ):
                events[ev.item_id].append(
                    EventView(ev.at, ev.event, ev.from_state, ev.to_state, ev.actor)
                )
            for ri, rf in session.execute(
                select(TreasuryRefundItem, TreasuryRefund)
                .join(TreasuryRefund, TreasuryRefund.id == TreasuryRefundItem.refund_id)
                .where(TreasuryRefundItem.item_id.in_(ids))
                .order_by(TreasuryRefund.id)
            ):
                refunds[ri.item_id].append(
                    RefundRef(rf.id, rf.state, rf.treasury_ref, ri.amount_fen, rf.decided_at)
                )
            for item_id, list_id in session.execute(
                select(CorrectionListItem.item_id, CorrectionListItem.list_id)
                .where(CorrectionListItem.item_id.in_(ids))
                .order_by(CorrectionListItem.list_id)
            ):
                lists[int(item_id)].append(int(list_id))
        audit.record(
            session,
            actor=actor,
            action="history.query",
            target_type="person",
            target_id=bidx,
            detail={"items": len(ids)},
        )
        id_masked = rows[0][0].id_number_masked if rows else mask_id_number(idn)

    successor = {item.reissue_of_id: item.id for item, _ in rows if item.reissue_of_id}
    entries = {
        item.id: HistoryEntry(
            item_id=item.id,
            batch_no=batch.batch_no,
            seq=item.seq,
            serial=item.serial,
            region_code=batch.region_code,
            subsidy_code=batch.subsidy_code,
            subsidy_name=batch.subsidy_name,
            period=batch.period,
            fiscal_year=batch.fiscal_year,
            state=item.state,
            amount_fen=item.amount_fen,
            name_masked=item.name_masked,
            account_masked=item.account_masked,
            reason_code=item.reason_code,
            bank_code=item.bank_code,
            bank_message=item.bank_message,
            paid_at=item.paid_at,
            received_at=batch.received_at,
            reissue_of_id=item.reissue_of_id,
            reissued_by_id=successor.get(item.id),
            refunds=refunds.get(item.id, []),
            correction_lists=lists.get(item.id, []),
            events=events.get(item.id, []),
        )
        for item, batch in rows
    }
    chains: list[PaymentChain] = []
    for entry in entries.values():  # oldest first
        if entry.reissue_of_id is not None and entry.reissue_of_id in entries:
            continue  # not the head of a chain
        chain = [entry]
        seen = {entry.item_id}
        while chain[-1].reissued_by_id is not None and chain[-1].reissued_by_id not in seen:
            nxt = entries[chain[-1].reissued_by_id]
            chain.append(nxt)
            seen.add(nxt.item_id)
        chains.append(PaymentChain(chain))
    return PersonHistory(id_number_masked=id_masked, chains=chains)
