"""Reconciliation (对账): the service — load facts, run the pure matching, record
discrepancies, reconcile batches.

``reconcile(ctx, actor)`` is one incremental run, safe to call every worker cycle and from
several workers (a named job lease lets one run at a time). Each step is its own short
transaction:

1. **Streams.** New rows of the append-only tables are read from a cursor
   (``reconciliation_cursors``; rows younger than ``cursor_lag`` are read again next run, so
   a transaction that commits late is never skipped):

   - ``item_results``: a result for an item never sent (disposition ``unknown_item``, or a
     conflicting result for an item that never left) → ``result_for_unsent``; a result whose
     amount or account differ from what was sent (``mismatch``) → ``amount_differs``; a
     result contradicting an earlier one (``conflict``: paid then failed, or failed then
     paid) → ``paid_then_failed``;
   - ``item_events`` of kind ``bounce`` (退票) → ``bounce_after_success``;
   - ``account_entries`` (camt.054 notices): each entry is linked once to the sent batch it
     names (its batch serial, else its items' serials); an entry naming no sent batch of
     ours → ``debit_without_items``;
   - ``batch_events`` (a batch just completed) and ``discrepancy_events`` (a person just
     closed a discrepancy of a batch).

   A completed or reconciled batch touched by any of these is checked (step 3); every
   ``sweep_interval`` all completed, not yet reconciled batches are (a debit grace that
   ran out). So a run costs what changed, not the ten years of history.
2. **Missing results.** Items of in-flight batches still with the bank
   ``missing_result_after`` after their file left → ``missing_result`` (one per file).
3. **Batches.** Each batch to check is
   tallied (sent = paid + failed + bounced + pending, per file and per batch), its applied
   results are checked against its item states, and its money is matched: the payer
   account's booked debits and credits (banks with notices: camt.054, the fixed-width
   bank's ``ACT_`` movements files, an API bank's account movements) or the bank's reported
   paid results (banks without) against its paid and bounced items. Mismatches →
   ``amount_differs``, ``debit_without_items``, ``items_without_debit`` (a shortfall waits
   ``debit_grace`` for a late notice). A completed batch whose money ties out and which
   has no unresolved discrepancy becomes ``reconciled`` (a recorded batch event).

Discrepancies are keyed (``Discrepancy.key``): detecting the same mismatch again never adds
a row. Nothing deletes one: a condition no longer observed is marked ``cleared_at`` (and
an event recorded) and still waits for a person to explain and close it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, func, select
from sqlalchemy.orm import Session

from gateway.batches.models import Batch, BatchEventRecord, ItemEventRecord, PaymentItem
from gateway.context import Context
from gateway.dispatch.models import OutboundFile
from gateway.feedback.models import AccountEntryRecord, InboundFile, ItemResult
from gateway.kit.clock import CHINA, utcnow
from gateway.kit.db import session_scope
from gateway.kit.leases import claim_job, release_job
from gateway.kit.logging import get_logger
from gateway.kit.operators import name_problem
from gateway.payments.states import BatchEvent, BatchState, ItemEvent, ItemState
from gateway.payments.transitions import move_batch
from gateway.ports import AccountNoticeFormat
from gateway.reconciliation.matching import (
    UNRESOLVED,
    BatchFacts,
    BatchVerdict,
    DiscrepancyEvent,
    DiscrepancyState,
    DiscrepancyType,
    EntryFact,
    FileFact,
    Finding,
    ItemFact,
    MoneyLine,
    ReconciliationConfig,
    ResultFact,
    Tally,
    check_batch,
    discrepancy_next,
    judge_bounce,
    judge_missing,
    judge_result,
    judge_unattributed_entry,
    lines_from_entries,
    lines_from_results,
)
from gateway.reconciliation.models import (
    AccountEntryLink,
    Discrepancy,
    DiscrepancyEventRecord,
    ReconciliationCursor,
)
from gateway.rework.audit import record as audit_record

log = get_logger(__name__)

RECONCILE_JOB = "reconcile"
CHUNK = 5000
# batches whose items went (or may have gone) to the bank
DISPATCHED = (
    BatchState.DISPATCHING.value,
    BatchState.SENT.value,
    BatchState.COMPLETED.value,
    BatchState.RECONCILED.value,
)
_WITH_BANK = [s.value for s in ItemState if s.is_with_bank()]
_FACT_DISPOSITIONS = ("unknown_item", "mismatch", "conflict")
# re-evaluated conditions of a batch's money (cleared only when the money was checked)
_MONEY_KEY_PREFIXES = (
    "amount_differs:batch:",
    "debit_without_items:batch:",
    "items_without_debit:batch:",
)


# the money figures of ``ReconciliationReport.by_bank_day`` (batches whose items are final)
_MONEY_FIGURES = ("debited_fen", "credited_fen", "difference_fen")


class DiscrepancyNotFoundError(LookupError):
    """No discrepancy with that id."""


@dataclass
class ReconciliationReport:
    """What one run did, and where things stand.

    ``open_by_type`` counts *unresolved* discrepancies (open or explained: not yet closed
    by a person) of all time; ``ok`` is true when there are none, every completed batch is
    reconciled and every identity held. ``by_bank_day`` adds up the batches checked in this
    run per ``"<bank profile>/<business day>"``: counts and fen per outcome, and the money
    (debited, credited back, difference = debited − credited − paid)."""

    ran: bool = True  # False: another worker held the reconciliation lease
    checked_batches: int = 0
    reconciled: list[str] = field(default_factory=list)  # batch numbers, this run
    opened: dict[str, int] = field(default_factory=dict)  # new discrepancies by type
    cleared: int = 0
    open_by_type: dict[str, int] = field(default_factory=dict)
    completed_unreconciled: int = 0
    by_bank_day: dict[str, dict[str, int]] = field(default_factory=dict)
    unbalanced: list[str] = field(default_factory=list)

    @property
    def discrepancies(self) -> int:
        return sum(self.open_by_type.values())

    @property
    def ok(self) -> bool:
        return not self.open_by_type and not self.completed_unreconciled and not self.unbalanced

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "ran": self.ran,
            "checked_batches": self.checked_batches,
            "reconciled": list(self.reconciled),
            "opened": dict(self.opened),
            "cleared": self.cleared,
            "discrepancies": self.discrepancies,
            "by_type": dict(self.open_by_type),
            "completed_unreconciled": self.completed_unreconciled,
            "by_bank_day": dict(self.by_bank_day),
            "unbalanced": list(self.unbalanced),
        }


@dataclass(frozen=True)
class _Where:
    """Where a finding belongs: bank, payer account, business day."""

    bank_profile: str | None
    payer_account: str | None
    day: dt.date | None


# --- entry points ----------------------------------------------------------------------------


def reconcile(
    ctx: Context,
    actor: str,
    *,
    now: dt.datetime | None = None,
    config: ReconciliationConfig | None = None,
) -> ReconciliationReport:
    """One incremental reconciliation run (see the module docstring), for the worker to
    call every cycle. ``now`` is naive UTC like every stored time (default: the clock); a
    later ``now`` shows what will be overdue. Returns what the run did and where things
    stand; ``report.ok`` is false while anything needs a person."""
    config = config or ReconciliationConfig()
    report = ReconciliationReport()
    with session_scope(ctx.sessions) as session:
        claimed = claim_job(session, RECONCILE_JOB, actor, ctx.settings.lease_seconds)
    if not claimed:
        report.ran = False
        _fill_status(ctx, report)
        return report
    try:
        now = now or utcnow()
        # batch id → the states in which what touched it calls for a check
        touched: dict[int, set[str]] = defaultdict(set)
        for stream, states in _STREAMS:
            with session_scope(ctx.sessions) as session:
                for batch_id in stream(session, ctx, actor, now, config, report):
                    touched[batch_id] |= states
        with session_scope(ctx.sessions) as session:
            _missing_results(session, actor, now, config, report)
            sweep = _sweep_due(session, now, config)
        with ctx.sessions() as session:
            ids: set[int] = set()
            if sweep:
                ids |= set(
                    session.scalars(select(Batch.id).where(Batch.state == BatchState.COMPLETED))
                )
            touched_list = sorted(touched)
            for start in range(0, len(touched_list), CHUNK):
                for batch_id, state in session.execute(
                    select(Batch.id, Batch.state).where(
                        Batch.id.in_(touched_list[start : start + CHUNK])
                    )
                ):
                    if state in touched[batch_id]:
                        ids.add(batch_id)
        for batch_id in sorted(ids):
            with session_scope(ctx.sessions) as session:
                _check_one(session, ctx, batch_id, actor, now, config, report)
    finally:
        with session_scope(ctx.sessions) as session:
            release_job(session, RECONCILE_JOB, actor)
    _fill_status(ctx, report)
    log.info(
        "reconciliation.run",
        checked=report.checked_batches,
        reconciled=len(report.reconciled),
        opened=report.opened,
        cleared=report.cleared,
        unresolved=report.discrepancies,
        ok=report.ok,
    )
    for problem in report.unbalanced:
        log.error("reconciliation.unbalanced", problem=problem)
    return report


def summary(ctx: Context) -> dict[str, Any]:
    """For the demo's JSON (``reconciliation``): ``ok``, ``discrepancies`` (unresolved: open
    or explained, not yet closed), ``by_type``, ``by_state`` and the batch counts."""
    with ctx.sessions() as session:
        by_type, by_state = _unresolved_counts(session)
        batches = {
            str(st): int(n)
            for st, n in session.execute(
                select(Batch.state, func.count())
                .where(Batch.state.in_([BatchState.COMPLETED, BatchState.RECONCILED]))
                .group_by(Batch.state)
            )
        }
    unreconciled = batches.get(BatchState.COMPLETED.value, 0)
    return {
        "ok": not by_type and not unreconciled,
        "discrepancies": sum(by_type.values()),
        "by_type": by_type,
        "by_state": by_state,
        "batches": {
            "completed_unreconciled": unreconciled,
            "reconciled": batches.get(BatchState.RECONCILED.value, 0),
        },
    }


def explain(
    ctx: Context,
    discrepancy_id: int,
    actor: str,
    explanation: str,
    *,
    now: dt.datetime | None = None,
    audit_detail: dict[str, Any] | None = None,
) -> Discrepancy:
    """A person (``actor``: their account's login name) explains a discrepancy (open →
    explained); audited as ``discrepancy.explain``, with ``audit_detail`` (e.g. the
    dashboard session)."""
    return _transition(
        ctx, discrepancy_id, DiscrepancyEvent.EXPLAIN, actor, explanation, now, audit_detail
    )


def close(
    ctx: Context,
    discrepancy_id: int,
    actor: str,
    reason: str,
    *,
    now: dt.datetime | None = None,
    audit_detail: dict[str, Any] | None = None,
) -> Discrepancy:
    """A person closes an explained discrepancy (explained → closed), saying why; audited
    as ``discrepancy.close``."""
    return _transition(
        ctx, discrepancy_id, DiscrepancyEvent.CLOSE, actor, reason, now, audit_detail
    )


def list_discrepancies(
    ctx: Context,
    *,
    states: Sequence[str] = UNRESOLVED,
    type: DiscrepancyType | None = None,
    batch_id: int | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[Discrepancy]:
    """Discrepancies for a screen, oldest first, paginated by id."""
    query = select(Discrepancy).where(Discrepancy.state.in_(states), Discrepancy.id > after_id)
    if type is not None:
        query = query.where(Discrepancy.type == type.value)
    if batch_id is not None:
        query = query.where(Discrepancy.batch_id == batch_id)
    with ctx.sessions() as session:
        return list(session.scalars(query.order_by(Discrepancy.id).limit(limit)))


def history(ctx: Context, discrepancy_id: int) -> list[DiscrepancyEventRecord]:
    """Every recorded step of one discrepancy, in order."""
    with ctx.sessions() as session:
        return list(
            session.scalars(
                select(DiscrepancyEventRecord)
                .where(DiscrepancyEventRecord.discrepancy_id == discrepancy_id)
                .order_by(DiscrepancyEventRecord.id)
            )
        )


# --- facts of one batch (shared with the statements) -----------------------------------------


def batch_day(batch: Batch) -> dt.date:
    """The business day a batch belongs to: the day it went to the bank."""
    if batch.dispatch_on is not None:
        return batch.dispatch_on
    return china_date(batch.received_at)


def china_date(at: dt.datetime) -> dt.date:
    """The Asia/Shanghai calendar day of a stored (naive UTC) time."""
    return at.replace(tzinfo=dt.UTC).astimezone(CHINA).date()


def has_account_notices(ctx: Context, profile_name: str) -> bool:
    """Whether the bank shows the payer account's booked entries: notifications (camt.054)
    or, for an API bank with ``account_movements``, its account movements (issue 12).
    Banks that show none are reconciled against their own reported paid results."""
    profile = ctx.profiles.get(profile_name)
    if profile is None:
        return False
    if profile.is_api:
        return profile.account_movements
    return isinstance(profile.format, AccountNoticeFormat)


def load_batch_facts(session: Session, ctx: Context, batch: Batch) -> BatchFacts:
    """Everything reconciliation needs to know about one batch, from the database."""
    item_ids = select(PaymentItem.id).where(PaymentItem.batch_id == batch.id)
    bounced = set(
        session.scalars(
            select(ItemEventRecord.item_id).where(
                ItemEventRecord.item_id.in_(item_ids), ItemEventRecord.event == ItemEvent.BOUNCE
            )
        )
    )
    items = [
        ItemFact(item_id, serial, amount, state, file_id, item_id in bounced)
        for item_id, serial, amount, state, file_id in session.execute(
            select(
                PaymentItem.id,
                PaymentItem.serial,
                PaymentItem.amount_fen,
                PaymentItem.state,
                PaymentItem.outbound_file_id,
            )
            .where(PaymentItem.batch_id == batch.id)
            .order_by(PaymentItem.seq)
        )
    ]
    files = [
        FileFact(f.id, f.file_name, f.item_count, f.total_fen, f.delivered_at or f.created_at)
        for f in session.scalars(
            select(OutboundFile).where(OutboundFile.batch_id == batch.id).order_by(OutboundFile.id)
        )
    ]
    results = _result_facts(
        session,
        (ItemResult.item_id.in_(item_ids)) & ItemResult.disposition.in_(["applied", "duplicate"]),
    )
    notices = has_account_notices(ctx, batch.bank_profile)
    lines: list[MoneyLine]
    if notices:
        lines = lines_from_entries(_entry_facts(session, batch))
    else:
        lines = lines_from_results(results)
    return BatchFacts(
        batch_id=batch.id,
        batch_no=batch.batch_no,
        serial=batch.serial,
        state=batch.state,
        completed_at=batch.completed_at,
        has_account_notices=notices,
        items=items,
        files=files,
        results=results,
        lines=lines,
    )


def _entry_facts(session: Session, batch: Batch) -> list[EntryFact]:
    """The payer-account entries of a batch: linked to it, or naming its serial."""
    linked = select(AccountEntryLink.entry_id).where(AccountEntryLink.batch_id == batch.id)
    named = (AccountEntryRecord.bank_profile == batch.bank_profile) & (
        AccountEntryRecord.batch_serial == batch.serial
    )
    rows = session.scalars(
        select(AccountEntryRecord)
        .where(AccountEntryRecord.id.in_(linked) | named)
        .order_by(AccountEntryRecord.id)
    )
    return [_entry_fact(e) for e in rows]


def _entry_fact(e: AccountEntryRecord) -> EntryFact:
    return EntryFact(
        entry_id=e.id,
        direction="credit" if e.direction == "credit" else "debit",
        amount_fen=e.amount_fen,
        booked_on=e.booked_on,
        bank_ref=e.bank_ref,
        batch_serial=e.batch_serial,
        details=tuple((str(s), int(f)) for s, f in (e.details or [])),
    )


def _result_facts(session: Session, where: ColumnElement[bool]) -> list[ResultFact]:
    return [
        ResultFact(
            result_id=r.id,
            item_id=r.item_id,
            serial=r.serial,
            status=r.status,
            amount_fen=r.amount_fen,
            disposition=r.disposition,
            bank_code=r.bank_code,
            bank_ref=r.bank_ref,
            source=name,
        )
        for r, name in session.execute(
            select(ItemResult, InboundFile.file_name)
            .join(InboundFile, InboundFile.id == ItemResult.inbound_file_id)
            .where(where)
            .order_by(ItemResult.id)
        )
    ]


def _where_of(batch: Batch) -> _Where:
    return _Where(batch.bank_profile, batch.payer_account, batch_day(batch))


# --- step 1: streams -------------------------------------------------------------------------


def _cursor(session: Session, name: str) -> ReconciliationCursor:
    cursor = session.get(ReconciliationCursor, name)
    if cursor is None:
        cursor = ReconciliationCursor(name=name, last_id=0)
        session.add(cursor)
        session.flush()
    return cursor


def _advance(cursor: ReconciliationCursor, aged: Iterable[int], now: dt.datetime) -> None:
    top = max(aged, default=cursor.last_id)
    if top > cursor.last_id:
        cursor.last_id = top
        cursor.updated_at = now


def _chunks(
    session: Session, query: Select[*tuple[Any, ...]], id_column: Any, after: int
) -> Iterator[Sequence[Row[Any]]]:
    """The rows of ``query`` whose ``id_column`` is beyond ``after``, in id order, one chunk
    at a time (every stream reads its append-only table this way; rows carry ``.id``)."""
    while True:
        rows = session.execute(
            query.where(id_column > after).order_by(id_column).limit(CHUNK)
        ).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _batches_of(session: Session, batch_ids: Iterable[int]) -> dict[int, Batch]:
    ids = sorted(set(batch_ids))
    out: dict[int, Batch] = {}
    for start in range(0, len(ids), CHUNK):
        for b in session.scalars(select(Batch).where(Batch.id.in_(ids[start : start + CHUNK]))):
            out[b.id] = b
    return out


def _item_facts(session: Session, item_ids: Iterable[int]) -> dict[int, tuple[ItemFact, int]]:
    """Item facts (with their bounce flag) and batch ids, by item id."""
    ids = sorted(set(item_ids))
    out: dict[int, tuple[ItemFact, int]] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        bounced = set(
            session.scalars(
                select(ItemEventRecord.item_id).where(
                    ItemEventRecord.item_id.in_(chunk), ItemEventRecord.event == ItemEvent.BOUNCE
                )
            )
        )
        for it in session.scalars(select(PaymentItem).where(PaymentItem.id.in_(chunk))):
            fact = ItemFact(
                it.id, it.serial, it.amount_fen, it.state, it.outbound_file_id, it.id in bounced
            )
            out[it.id] = (fact, it.batch_id)
    return out


def _results_stream(
    session: Session,
    ctx: Context,
    actor: str,
    now: dt.datetime,
    config: ReconciliationConfig,
    report: ReconciliationReport,
) -> set[int]:
    """New ``item_results``: the ones that are discrepancies in themselves; the batches
    they touch."""
    cursor = _cursor(session, "item_results")
    touched: set[int] = set()
    for rows in _chunks(
        session,
        select(
            ItemResult.id,
            ItemResult.item_id,
            ItemResult.disposition,
            ItemResult.recorded_at,
            InboundFile.bank_profile,
        ).join(InboundFile, InboundFile.id == ItemResult.inbound_file_id),
        ItemResult.id,
        cursor.last_id,
    ):
        items = _item_facts(session, [r.item_id for r in rows if r.item_id is not None])
        touched |= {batch_id for _, batch_id in items.values()}
        strange = [r for r in rows if r.disposition in _FACT_DISPOSITIONS]
        if strange:
            facts = {
                f.result_id: f
                for f in _result_facts(session, ItemResult.id.in_([r.id for r in strange]))
            }
            batches = _batches_of(session, [b for _, b in items.values()])
            placed: list[tuple[Finding, _Where]] = []
            for r in strange:
                entry = items.get(r.item_id) if r.item_id is not None else None
                item, batch_id = entry if entry else (None, None)
                finding = judge_result(facts[r.id], item, batch_id)
                if finding is None:
                    continue
                batch = batches.get(batch_id) if batch_id is not None else None
                where = (
                    _where_of(batch)
                    if batch
                    else _Where(r.bank_profile, None, china_date(r.recorded_at))
                )
                placed.append((finding, where))
            _record(session, placed, actor, now, report)
        _advance(cursor, (r.id for r in rows if r.recorded_at <= now - config.cursor_lag), now)
    del ctx
    return touched


def _bounces_stream(
    session: Session,
    ctx: Context,
    actor: str,
    now: dt.datetime,
    config: ReconciliationConfig,
    report: ReconciliationReport,
) -> set[int]:
    """New ``bounce`` events (退票): each is a discrepancy a person must see."""
    cursor = _cursor(session, "item_events")
    touched: set[int] = set()
    for rows in _chunks(
        session,
        select(
            ItemEventRecord.id,
            ItemEventRecord.item_id,
            ItemEventRecord.event,
            ItemEventRecord.at,
            ItemEventRecord.detail,
        ),
        ItemEventRecord.id,
        cursor.last_id,
    ):
        bounces = [r for r in rows if r.event == ItemEvent.BOUNCE]
        if bounces:
            items = _item_facts(session, [r.item_id for r in bounces])
            batches = _batches_of(session, [b for _, b in items.values()])
            placed: list[tuple[Finding, _Where]] = []
            for r in bounces:
                if r.item_id not in items:
                    continue
                item, batch_id = items[r.item_id]
                source = (r.detail or {}).get("source")
                finding = judge_bounce(item, batch_id, r.id, r.at, source)
                placed.append((finding, _where_of(batches[batch_id])))
                touched.add(batch_id)
            _record(session, placed, actor, now, report)
        _advance(cursor, (r.id for r in rows if r.at <= now - config.cursor_lag), now)
    del ctx
    return touched


def _entries_stream(
    session: Session,
    ctx: Context,
    actor: str,
    now: dt.datetime,
    config: ReconciliationConfig,
    report: ReconciliationReport,
) -> set[int]:
    """New payer-account entries: link each to the sent batch it names; one naming none of
    ours is a discrepancy."""
    cursor = _cursor(session, "account_entries")
    touched: set[int] = set()
    scan = cursor.last_id
    while True:
        entries = list(
            session.scalars(
                select(AccountEntryRecord)
                .where(AccountEntryRecord.id > scan)
                .order_by(AccountEntryRecord.id)
                .limit(CHUNK)
            )
        )
        if not entries:
            break
        scan = entries[-1].id
        links = {
            link.entry_id: link
            for link in session.scalars(
                select(AccountEntryLink).where(
                    AccountEntryLink.entry_id.in_([e.id for e in entries])
                )
            )
        }
        placed: list[tuple[Finding, _Where]] = []
        for e in entries:
            link = links.get(e.id)
            if link is None:
                batch, reason = _batch_named_by(session, e)
                link = AccountEntryLink(
                    entry_id=e.id, batch_id=batch.id if batch else None, linked_at=now
                )
                session.add(link)
                if batch is None:
                    finding = judge_unattributed_entry(_entry_fact(e), reason)
                    placed.append((finding, _Where(e.bank_profile, e.account, e.booked_on)))
            if link.batch_id is not None:
                touched.add(link.batch_id)
        session.flush()
        _record(session, placed, actor, now, report)
        _advance(cursor, (e.id for e in entries if e.recorded_at <= now - config.cursor_lag), now)
    del ctx
    return touched


def _batch_named_by(session: Session, e: AccountEntryRecord) -> tuple[Batch | None, str]:
    """The sent batch an entry names (its batch serial, else its first known item serial),
    or None with the reason."""
    batch: Batch | None = None
    if e.batch_serial:
        batch = session.scalar(
            select(Batch).where(
                Batch.serial == e.batch_serial, Batch.bank_profile == e.bank_profile
            )
        )
    if batch is None and e.details:
        serials = [str(s) for s, _ in e.details]
        batch = session.scalar(
            select(Batch)
            .join(PaymentItem, PaymentItem.batch_id == Batch.id)
            .where(PaymentItem.serial.in_(serials), Batch.bank_profile == e.bank_profile)
            .limit(1)
        )
    if batch is None:
        return (
            None,
            "所列批次或明细不是本系统发送的" if e.batch_serial or e.details else "未列明批次",
        )
    if batch.state not in DISPATCHED:
        return None, f"所列批次{batch.batch_no}尚未发送（{BatchState(batch.state).label_zh}）"
    if batch.payer_account != e.account:
        return None, f"所列批次{batch.batch_no}的付款账户不是此账户"
    return batch, ""


def _batch_events_stream(
    session: Session,
    ctx: Context,
    actor: str,
    now: dt.datetime,
    config: ReconciliationConfig,
    report: ReconciliationReport,
) -> set[int]:
    """Batches that just completed (every item final): check them now."""
    cursor = _cursor(session, "batch_events")
    touched: set[int] = set()
    for rows in _chunks(
        session,
        select(
            BatchEventRecord.id,
            BatchEventRecord.batch_id,
            BatchEventRecord.event,
            BatchEventRecord.at,
        ),
        BatchEventRecord.id,
        cursor.last_id,
    ):
        touched |= {r.batch_id for r in rows if r.event == BatchEvent.ALL_FINAL}
        _advance(cursor, (r.id for r in rows if r.at <= now - config.cursor_lag), now)
    del ctx, actor, report
    return touched


def _closings_stream(
    session: Session,
    ctx: Context,
    actor: str,
    now: dt.datetime,
    config: ReconciliationConfig,
    report: ReconciliationReport,
) -> set[int]:
    """Batches whose discrepancy a person just closed: they may be reconciled now."""
    cursor = _cursor(session, "discrepancy_events")
    touched: set[int] = set()
    for rows in _chunks(
        session,
        select(
            DiscrepancyEventRecord.id,
            DiscrepancyEventRecord.event,
            DiscrepancyEventRecord.at,
            Discrepancy.batch_id,
        ).join(Discrepancy, Discrepancy.id == DiscrepancyEventRecord.discrepancy_id),
        DiscrepancyEventRecord.id,
        cursor.last_id,
    ):
        touched |= {
            r.batch_id for r in rows if r.event == DiscrepancyEvent.CLOSE and r.batch_id is not None
        }
        _advance(cursor, (r.id for r in rows if r.at <= now - config.cursor_lag), now)
    del ctx, actor, report
    return touched


_COMPLETED = frozenset({BatchState.COMPLETED.value})
_SETTLED = frozenset({BatchState.COMPLETED.value, BatchState.RECONCILED.value})
# each stream, and the batch states in which a batch it touches is checked: new bank facts
# matter to reconciled batches too; a completion or a closing only to completed ones
_STREAMS: tuple[tuple[Callable[..., set[int]], frozenset[str]], ...] = (
    (_results_stream, _SETTLED),
    (_bounces_stream, _SETTLED),
    (_entries_stream, _SETTLED),
    (_batch_events_stream, _COMPLETED),
    (_closings_stream, _COMPLETED),
)


def _sweep_due(session: Session, now: dt.datetime, config: ReconciliationConfig) -> bool:
    """Every ``sweep_interval`` every completed batch is checked again (a debit grace that
    ran out; anything a stream could not see). The marker is this run's ``now``."""
    marker = _cursor(session, "sweep")
    due = marker.last_id == 0 or not (
        dt.timedelta(0) <= now - marker.updated_at < config.sweep_interval
    )
    if due:
        marker.last_id = 1
        marker.updated_at = now
    return due


# --- step 2: missing results -----------------------------------------------------------------


def _missing_results(
    session: Session,
    actor: str,
    now: dt.datetime,
    config: ReconciliationConfig,
    report: ReconciliationReport,
) -> None:
    in_flight = list(
        session.scalars(
            select(Batch).where(Batch.state.in_([BatchState.DISPATCHING, BatchState.SENT]))
        )
    )
    placed: list[tuple[Finding, _Where]] = []
    for batch in in_flight:
        pending: dict[int, list[ItemFact]] = defaultdict(list)
        for item_id, serial, amount, state, file_id in session.execute(
            select(
                PaymentItem.id,
                PaymentItem.serial,
                PaymentItem.amount_fen,
                PaymentItem.state,
                PaymentItem.outbound_file_id,
            ).where(PaymentItem.batch_id == batch.id, PaymentItem.state.in_(_WITH_BANK))
        ):
            if file_id is not None:
                pending[file_id].append(ItemFact(item_id, serial, amount, state, file_id))
        if not pending:
            continue
        for f in session.scalars(select(OutboundFile).where(OutboundFile.id.in_(list(pending)))):
            fact = FileFact(
                f.id, f.file_name, f.item_count, f.total_fen, f.delivered_at or f.created_at
            )
            finding = judge_missing(fact, batch.id, pending[f.id], now, config)
            if finding is not None:
                placed.append((finding, _where_of(batch)))
    seen = _record(session, placed, actor, now, report)
    earlier = session.scalars(
        select(Discrepancy).where(
            Discrepancy.type == DiscrepancyType.MISSING_RESULT,
            Discrepancy.state.in_(UNRESOLVED),
            Discrepancy.cleared_at.is_(None),
        )
    )
    _clear(session, [d for d in earlier if d.key not in seen], actor, now, report)


# --- step 3: one batch -----------------------------------------------------------------------


def _check_one(
    session: Session,
    ctx: Context,
    batch_id: int,
    actor: str,
    now: dt.datetime,
    config: ReconciliationConfig,
    report: ReconciliationReport,
) -> BatchVerdict | None:
    batch = session.get(Batch, batch_id, with_for_update=True)
    if batch is None or batch.state not in DISPATCHED:
        return None
    facts = load_batch_facts(session, ctx, batch)
    verdict = check_batch(facts, now, config)
    report.checked_batches += 1
    where = _where_of(batch)
    seen = _record(session, [(f, where) for f in verdict.findings], actor, now, report)
    earlier = session.scalars(
        select(Discrepancy).where(
            Discrepancy.batch_id == batch.id,
            Discrepancy.state.in_(UNRESOLVED),
            Discrepancy.rechecked.is_(True),
            Discrepancy.cleared_at.is_(None),
            Discrepancy.type != DiscrepancyType.MISSING_RESULT,
        )
    )
    gone = [
        d
        for d in earlier
        if d.key not in seen
        and (verdict.money_checked or not d.key.startswith(_MONEY_KEY_PREFIXES))
    ]
    _clear(session, gone, actor, now, report)
    bank_day = f"{batch.bank_profile}/{where.day}"
    total = report.by_bank_day.setdefault(
        bank_day, Tally().as_dict() | dict.fromkeys(_MONEY_FIGURES, 0)
    )
    for k, v in verdict.tally.as_dict().items():
        total[k] += v
    if verdict.money is not None:
        total["debited_fen"] += verdict.money.debited_fen
        total["credited_fen"] += verdict.money.credited_fen
        total["difference_fen"] += verdict.money.difference_fen
    report.unbalanced += verdict.unbalanced
    if batch.state == BatchState.COMPLETED and verdict.ties_out:
        unresolved = session.scalar(
            select(func.count())
            .select_from(Discrepancy)
            .where(Discrepancy.batch_id == batch.id, Discrepancy.state.in_(UNRESOLVED))
        )
        if not unresolved:
            money = verdict.money
            assert money is not None  # noqa: S101 (ties_out implies money was matched)
            move_batch(
                session,
                batch,
                BatchEvent.RECONCILE,
                actor,
                detail={
                    "paid_fen": money.paid_fen,
                    "debited_fen": money.debited_fen,
                    "credited_fen": money.credited_fen,
                    "evidence": "account_notices" if facts.has_account_notices else "results",
                },
                now=now,
            )
            report.reconciled.append(batch.batch_no)
    return verdict


# --- recording -------------------------------------------------------------------------------


def _record(
    session: Session,
    placed: Sequence[tuple[Finding, _Where]],
    actor: str,
    now: dt.datetime,
    report: ReconciliationReport,
) -> set[str]:
    """Record findings not yet known (by key); a cleared one observed again is noted.
    Returns the keys seen."""
    keys = sorted({f.key for f, _ in placed})
    known: dict[str, Discrepancy] = {}
    for start in range(0, len(keys), CHUNK):
        for d in session.scalars(
            select(Discrepancy).where(Discrepancy.key.in_(keys[start : start + CHUNK]))
        ):
            known[d.key] = d
    for finding, where in placed:
        seen = known.get(finding.key)
        if seen is None:
            d = Discrepancy(
                key=finding.key,
                type=finding.type.value,
                state=DiscrepancyState.OPEN.value,
                rechecked=finding.rechecked,
                bank_profile=where.bank_profile,
                payer_account=where.payer_account,
                day=where.day,
                batch_id=finding.batch_id,
                item_id=finding.item_id,
                item_result_id=finding.result_id,
                account_entry_id=finding.entry_id,
                outbound_file_id=finding.file_id,
                amount_fen=finding.amount_fen,
                summary=finding.summary,
                evidence=finding.evidence,
                detected_at=now,
                detected_by=actor,
                updated_at=now,
            )
            session.add(d)
            session.flush()
            _event(session, d, DiscrepancyEvent.DETECT, None, actor, now, finding.summary)
            known[finding.key] = d
            report.opened[finding.type.value] = report.opened.get(finding.type.value, 0) + 1
            log.warning(
                "reconciliation.discrepancy",
                discrepancy_id=d.id,
                type=d.type,
                batch_id=d.batch_id,
                amount_fen=d.amount_fen,
            )
        elif seen.cleared_at is not None and seen.state != DiscrepancyState.CLOSED:
            seen.cleared_at = None
            seen.updated_at = now
            _event(session, seen, DiscrepancyEvent.OBSERVED_AGAIN, seen.state, actor, now, None)
    return set(keys)


def _clear(
    session: Session,
    gone: Sequence[Discrepancy],
    actor: str,
    now: dt.datetime,
    report: ReconciliationReport,
) -> None:
    for d in gone:
        d.cleared_at = now
        d.updated_at = now
        _event(
            session,
            d,
            DiscrepancyEvent.CLEARED,
            d.state,
            actor,
            now,
            "对账时已不再出现此差异；仍需人工说明并关闭",
        )
        report.cleared += 1


def _event(
    session: Session,
    d: Discrepancy,
    event: DiscrepancyEvent,
    from_state: str | None,
    actor: str,
    now: dt.datetime,
    note: str | None,
) -> None:
    session.add(
        DiscrepancyEventRecord(
            discrepancy_id=d.id,
            event=event.value,
            from_state=from_state,
            to_state=d.state,
            actor=actor,
            at=now,
            note=note,
        )
    )


def _transition(
    ctx: Context,
    discrepancy_id: int,
    event: DiscrepancyEvent,
    actor: str,
    text: str,
    now: dt.datetime | None,
    audit_detail: dict[str, Any] | None,
) -> Discrepancy:
    actor, text = actor.strip(), text.strip()
    if not actor or len(actor) > 64 or name_problem(actor) is not None:
        raise ValueError(
            "a discrepancy is explained and closed by a named person (≤ 64 characters, "
            "no control or invisible characters)"
        )
    if not text:
        raise ValueError("say what happened (explain) or why it is closed (close)")
    now = now or utcnow()
    with session_scope(ctx.sessions) as session:
        d = session.get(Discrepancy, discrepancy_id, with_for_update=True)
        if d is None:
            raise DiscrepancyNotFoundError(discrepancy_id)
        source = DiscrepancyState(d.state)
        target = discrepancy_next(source, event)
        d.state = target.value
        d.updated_at = now
        if event == DiscrepancyEvent.EXPLAIN:
            d.explained_at, d.explained_by, d.explanation = now, actor, text
        else:
            d.closed_at, d.closed_by, d.close_reason = now, actor, text
        _event(session, d, event, source.value, actor, now, text)
        # the audit log (审计日志) of every important operation, in the same transaction
        audit_record(
            session,
            actor=actor,
            action=f"discrepancy.{event.value}",
            target_type="discrepancy",
            target_id=d.id,
            reason=text,
            detail={
                **(audit_detail or {}),
                "type": d.type,
                "from": source.value,
                "to": target.value,
            },
        )
    log.info("reconciliation.discrepancy_" + event.value, discrepancy_id=d.id, actor=actor)
    return d


# --- status ----------------------------------------------------------------------------------


def _unresolved_counts(session: Session) -> tuple[dict[str, int], dict[str, int]]:
    by_type: dict[str, int] = {}
    by_state: dict[str, int] = {}
    for t, st, n in session.execute(
        select(Discrepancy.type, Discrepancy.state, func.count())
        .where(Discrepancy.state.in_(UNRESOLVED))
        .group_by(Discrepancy.type, Discrepancy.state)
    ):
        by_type[str(t)] = by_type.get(str(t), 0) + int(n)
        by_state[str(st)] = by_state.get(str(st), 0) + int(n)
    return by_type, by_state


def _fill_status(ctx: Context, report: ReconciliationReport) -> None:
    with ctx.sessions() as session:
        report.open_by_type, _ = _unresolved_counts(session)
        report.completed_unreconciled = int(
            session.scalar(
                select(func.count()).select_from(Batch).where(Batch.state == BatchState.COMPLETED)
            )
            or 0
        )
