"""Feedback (回盘): take the bank's result files, verify, record, apply.

Per bank profile, one worker at a time (a named lease) lists the bank's outbox. Each
result file is downloaded, recorded **by content hash** (a file processed twice changes
nothing), its detached signature verified with the bank's key, parsed, and applied in one
transaction:

- a result for an item still with the bank moves it to ``paid`` or ``failed`` (the bank's
  code mapped to our reason code);
- the same result again is recorded as a duplicate and changes nothing;
- a *different* result for an item already final is a conflict: recorded, never applied,
  and an operator case is opened;
- a result for a serial we never sent, or whose amount/account differ from what we sent,
  is recorded and opened as a case.

Results are append-only facts (``item_results``); item rows only carry the current state.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.batches.models import Batch, ItemEventRecord, PaymentItem
from gateway.context import Context
from gateway.dispatch.models import OutboundFile
from gateway.feedback.models import AccountEntryRecord, InboundFile, ItemResult, OperatorCase
from gateway.kit.clock import CHINA, utcnow
from gateway.kit.db import session_scope
from gateway.kit.leases import claim_job, release_job
from gateway.kit.logging import get_logger
from gateway.kit.pii import PiiCipher
from gateway.notifications.service import stage_notices
from gateway.payments.states import (
    FileState,
    InvalidTransitionError,
    ItemEvent,
    ItemState,
    item_next,
)
from gateway.payments.transitions import complete_if_final, move_items
from gateway.ports import (
    AccountNotice,
    AccountNoticeFormat,
    AdapterError,
    FormatError,
    RemoteFile,
    ResultFile,
    ResultItem,
    ResultStatus,
    SignatureError,
)
from gateway.profiles import BankProfile

log = get_logger(__name__)


@dataclass
class PollOutcome:
    files_seen: int = 0
    files_applied: int = 0
    files_rejected: int = 0
    results_applied: int = 0


def poll_profile(ctx: Context, profile: BankProfile, owner: str) -> PollOutcome:
    """List the bank's outbox and take every result file not yet recorded."""
    out = PollOutcome()
    job = f"poll:{profile.name}"
    with session_scope(ctx.sessions) as session:
        if not claim_job(session, job, owner, ctx.settings.lease_seconds):
            return out
    try:
        fmt = profile.format
        with profile.open_transport() as t:
            listing = {r.name: r for r in t.list(profile.outbox)}
            notices = isinstance(fmt, AccountNoticeFormat)
            names = sorted(
                n
                for n in listing
                if (
                    fmt.is_result_file_name(n) or (notices and fmt.is_account_notice_name(n))  # type: ignore[attr-defined]
                )
                and fmt.signature_name(n) in listing
            )
            with ctx.sessions() as session:
                known = {
                    (name, size)
                    for name, size in session.execute(
                        select(InboundFile.file_name, InboundFile.size).where(
                            InboundFile.bank_profile == profile.name,
                            InboundFile.file_name.in_(names),
                        )
                    )
                }
            for name in names:
                remote: RemoteFile = listing[name]
                if (name, remote.size) in known:
                    continue
                out.files_seen += 1
                data = t.get(profile.outbox, name)
                signature = t.get(profile.outbox, fmt.signature_name(name))
                if isinstance(fmt, AccountNoticeFormat) and fmt.is_account_notice_name(name):
                    take_account_notice(ctx, profile, name, data, signature, owner)
                    continue
                applied = take_result_file(ctx, profile, name, data, signature, owner)
                if applied is None:
                    continue
                if applied >= 0:
                    out.files_applied += 1
                    out.results_applied += applied
                else:
                    out.files_rejected += 1
    except AdapterError as exc:
        log.warning(
            "feedback.poll_failed", profile=profile.name, error=f"{type(exc).__name__}: {exc}"
        )
    finally:
        with session_scope(ctx.sessions) as session:
            release_job(session, job, owner)
    return out


def take_account_notice(
    ctx: Context, profile: BankProfile, name: str, data: bytes, signature: bytes, actor: str
) -> int | None:
    """Record a payer-account notification (camt.054) as facts for reconciliation. A credit
    entry naming items (money that came back: 退票) bounces those items. Returns the number
    of entries recorded, -1 when refused, None when seen before."""
    fmt = profile.format
    assert isinstance(fmt, AccountNoticeFormat)  # noqa: S101 (only called for such formats)
    sha = hashlib.sha256(data).hexdigest()
    with ctx.sessions() as session:
        if session.scalar(
            select(InboundFile.id).where(
                InboundFile.bank_profile == profile.name, InboundFile.sha256 == sha
            )
        ):
            return None
    error: str | None = None
    notice: AccountNotice | None = None
    try:
        profile.signer.verify(data, signature)
        notice = fmt.parse_account_notice(data)
    except (SignatureError, FormatError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    try:
        with session_scope(ctx.sessions) as session:
            inbound = InboundFile(
                bank_profile=profile.name,
                kind="account_notice",
                file_name=name,
                sha256=sha,
                size=len(data),
                state="rejected" if error else "applied",
                error=error,
                item_count=len(notice.entries) if notice else 0,
            )
            session.add(inbound)
            session.flush()
            if notice is None:
                session.add(
                    OperatorCase(
                        kind="result_file_invalid",
                        inbound_file_id=inbound.id,
                        summary="银行账户通知文件签名或格式校验失败，未处理",
                        evidence=error,
                    )
                )
                log.error("feedback.notice_rejected", file=name, error=error)
                return -1
            returns: list[Outcome] = []
            for e in notice.entries:
                session.add(
                    AccountEntryRecord(
                        bank_profile=profile.name,
                        inbound_file_id=inbound.id,
                        account=e.account,
                        amount_fen=e.amount_fen,
                        direction=e.direction,
                        booked_on=e.booked_on,
                        bank_ref=e.bank_ref,
                        batch_serial=e.batch_serial,
                        file_no=e.file_no,
                        details=[[serial, fen] for serial, fen in e.details],
                    )
                )
                if e.direction == "credit":
                    returns += [
                        Outcome(
                            serial=serial,
                            status="returned",
                            bank_code="RETURN",
                            bank_message="退票",
                            amount_fen=fen,
                            bank_ref=e.bank_ref,
                            processed_at=None,
                        )
                        for serial, fen in e.details
                    ]
            session.flush()
            if returns:
                inbound.applied_count = apply_outcomes(
                    session, ctx.pii, profile, inbound, returns, actor
                )
    except IntegrityError:
        return None
    log.info("feedback.notice_recorded", file=name, entries=len(notice.entries))
    return len(notice.entries)


def take_result_file(
    ctx: Context, profile: BankProfile, name: str, data: bytes, signature: bytes, actor: str
) -> int | None:
    """Record and apply one result file. Returns the number of results applied, -1 when the
    file was rejected (bad signature or format), None when this exact file was seen before."""
    sha = hashlib.sha256(data).hexdigest()
    with ctx.sessions() as session:
        seen = session.scalar(
            select(InboundFile.id).where(
                InboundFile.bank_profile == profile.name, InboundFile.sha256 == sha
            )
        )
    if seen is not None:
        return None
    error: str | None = None
    parsed: ResultFile | None = None
    try:
        profile.signer.verify(data, signature)
        candidate = profile.format.parse_result(data)
        claimed = profile.format.parse_result_file_name(name)
        if claimed is not None and claimed != (candidate.batch_serial, candidate.file_no):
            raise FormatError(
                f"{name} names batch {claimed[0]} file {claimed[1]} but carries "
                f"batch {candidate.batch_serial} file {candidate.file_no}"
            )
        parsed = candidate
    except (SignatureError, FormatError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    try:
        with session_scope(ctx.sessions) as session:
            inbound = InboundFile(
                bank_profile=profile.name,
                file_name=name,
                sha256=sha,
                size=len(data),
                state="rejected" if error else "applied",
                error=error,
                batch_serial=parsed.batch_serial if parsed else None,
                item_count=len(parsed.items) if parsed else 0,
            )
            session.add(inbound)
            session.flush()
            if parsed is None:
                case = OperatorCase(
                    kind="result_file_invalid",
                    inbound_file_id=inbound.id,
                    summary="银行回盘文件签名或格式校验失败，未处理；请联系银行重发回盘",
                    evidence=error,
                )
                session.add(case)
                _escalate_named_file(session, profile, name, case, actor)
                log.error("feedback.file_rejected", file=name, error=error)
                return -1
            applied = _apply(session, ctx.pii, profile, inbound, parsed, actor)
            inbound.applied_count = applied
    except IntegrityError:
        # another worker recorded the same file first
        return None
    log.info("feedback.file_applied", file=name, results=len(parsed.items), applied=applied)
    return applied


@dataclass(frozen=True, slots=True)
class Outcome:
    """One per-item result as any bank reported it (file line, API status), normalised."""

    serial: str
    status: str  # paid | failed | returned
    bank_code: str
    bank_message: str
    amount_fen: int
    bank_ref: str
    processed_at: dt.datetime | None
    account_no: str | None = None  # when the bank repeats it (file formats do)


def outcome_of(r: ResultItem) -> Outcome:
    return Outcome(
        serial=r.serial,
        status="paid" if r.status == ResultStatus.PAID else "failed",
        bank_code=r.bank_code,
        bank_message=r.bank_message,
        amount_fen=r.amount_fen,
        bank_ref=r.bank_ref,
        processed_at=r.processed_at,
        account_no=r.account_no,
    )


# the states an item can be in after a given bank outcome (so seeing it again is a duplicate)
_CONSISTENT = {
    "paid": {
        ItemState.PAID,
        ItemState.BOUNCED,
        ItemState.RETURNED,
        ItemState.REISSUED,
        ItemState.REFUNDED,
    },
    "failed": {ItemState.FAILED, ItemState.RETURNED, ItemState.REISSUED, ItemState.REFUNDED},
    "returned": {ItemState.BOUNCED, ItemState.RETURNED, ItemState.REISSUED, ItemState.REFUNDED},
}


def _events_for(state: ItemState, status: str) -> list[ItemEvent]:
    if status == "paid":
        return [ItemEvent.RESULT_PAID]
    if status == "failed":
        return [ItemEvent.RESULT_FAILED]
    # returned (退票): paid, then the money came back
    return (
        [ItemEvent.BOUNCE] if state == ItemState.PAID else [ItemEvent.RESULT_PAID, ItemEvent.BOUNCE]
    )


def _path(state: ItemState, events: list[ItemEvent]) -> list[ItemState] | None:
    states = [state]
    for event in events:
        try:
            states.append(item_next(states[-1], event))
        except InvalidTransitionError:
            return None
    return states


def _escalate_named_file(
    session: Session, profile: BankProfile, name: str, case: OperatorCase, actor: str
) -> None:
    """A broken result file whose name says which request it answers: that request's items
    still awaiting the bank become operator cases (a person asks the bank to resend); a
    good result file arriving later still settles them."""
    claimed = profile.format.parse_result_file_name(name)
    if claimed is None:
        return
    serial, file_no = claimed
    f = session.scalar(
        select(OutboundFile)
        .join(Batch, Batch.id == OutboundFile.batch_id)
        .where(Batch.serial == serial, OutboundFile.file_no == file_no)
    )
    if f is None:
        return
    case.outbound_file_id = f.id
    case.batch_id = f.batch_id
    move_items(
        session,
        PaymentItem.outbound_file_id == f.id,
        ItemEvent.ESCALATE,
        actor,
        detail={"case": "result_file_invalid", "file": name},
    )


def _apply(
    session: Session,
    pii: PiiCipher,
    profile: BankProfile,
    inbound: InboundFile,
    parsed: ResultFile,
    actor: str,
) -> int:
    if not parsed.accepted:
        return _apply_file_rejection(session, profile, inbound, parsed, actor)
    return apply_outcomes(
        session, pii, profile, inbound, [outcome_of(r) for r in parsed.items], actor
    )


def apply_outcomes(
    session: Session,
    pii: PiiCipher,
    profile: BankProfile,
    inbound: InboundFile,
    outcomes: Sequence[Outcome],
    actor: str,
) -> int:
    """Record every outcome as a fact and move the items they legitimately move; returns
    how many items moved. Conflicts and strangers become operator cases."""
    serials = [r.serial for r in outcomes]
    items: dict[str, PaymentItem] = {}
    for start in range(0, len(serials), 5000):
        chunk = serials[start : start + 5000]
        for row in session.scalars(
            select(PaymentItem).where(PaymentItem.serial.in_(chunk)).with_for_update()
        ):
            items[row.serial] = row
    now = utcnow()
    result_rows: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    cases: list[OperatorCase] = []
    touched_batches: set[int] = set()
    for r in outcomes:
        it = items.get(r.serial)
        disposition, case = _judge(pii, it, r)
        result_rows.append(_result_row(inbound.id, it, r, disposition, now))
        if case is not None:
            cases.append(
                OperatorCase(
                    kind=case,
                    item_id=it.id if it else None,
                    batch_id=it.batch_id if it else None,
                    inbound_file_id=inbound.id,
                    summary=_CASE_SUMMARY[case],
                    evidence=f"serial={r.serial} status={r.status} code={r.bank_code} "
                    f"amount={r.amount_fen} ref={r.bank_ref}",
                )
            )
        if disposition != "applied" or it is None:
            continue
        source = ItemState(it.state)
        steps = _events_for(source, r.status)
        path = _path(source, steps)
        assert path is not None  # noqa: S101 (_judge said it applies)
        paid = r.status in {"paid", "returned"}
        updates.append(
            {
                "b_id": it.id,
                "state": path[-1].value,
                "bank_code": r.bank_code,
                "bank_message": r.bank_message[:200],
                "bank_ref": (r.bank_ref or it.bank_ref) or None,
                "reason_code": None if r.status == "paid" else profile.reason_for(r.bank_code),
                "paid_at": (it.paid_at or _utc(r.processed_at, now)) if paid else None,
                "updated_at": now,
            }
        )
        for event, a, b in zip(steps, path, path[1:], strict=False):
            events.append(
                {
                    "item_id": it.id,
                    "event": event.value,
                    "from_state": a.value,
                    "to_state": b.value,
                    "actor": actor,
                    "at": now,
                    "detail": {"source": inbound.file_name, "bank_code": r.bank_code},
                }
            )
        it.state = path[-1].value  # keep the session's view consistent within this file
        touched_batches.add(it.batch_id)
    if result_rows:
        session.execute(insert(ItemResult), result_rows)
    if updates:
        table = PaymentItem.__table__
        assert isinstance(table, Table)  # noqa: S101 (narrowing for the type checker)
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                state=bindparam("state"),
                bank_code=bindparam("bank_code"),
                bank_message=bindparam("bank_message"),
                bank_ref=bindparam("bank_ref"),
                reason_code=bindparam("reason_code"),
                paid_at=bindparam("paid_at"),
                updated_at=bindparam("updated_at"),
            ),
            updates,
        )
        session.execute(insert(ItemEventRecord), events)
    session.add_all(cases)
    session.flush()
    # the SMS owed for these outcomes is staged in this same transaction (outbox)
    stage_notices(session, [u["b_id"] for u in updates if u["state"] == "paid"], "paid")
    stage_notices(
        session,
        [u["b_id"] for u in updates if u["state"] in {"failed", "bounced"}],
        "failed",
    )
    for batch_id in touched_batches:
        batch = session.get(Batch, batch_id, with_for_update=True)
        if batch is not None:
            complete_if_final(session, batch, actor)
    return len(updates)


_CASE_SUMMARY = {
    "unknown_serial": "银行回盘中有本系统未发送的明细流水号",
    "result_mismatch": "银行回盘的金额或账号与发送的明细不一致，未采纳",
    "conflicting_result": "同一明细收到相互矛盾的银行结果（如先成功后失败），未覆盖",
}


def _judge(pii: PiiCipher, it: PaymentItem | None, r: Outcome) -> tuple[str, str | None]:
    """What to make of one outcome: (disposition, operator case kind or None)."""
    if it is None:
        return "unknown_item", "unknown_serial"
    # the serial ties the result to the item; amount and account (compared through the
    # blind index, without decrypting) guard against a bank mixing lines up
    if it.amount_fen != r.amount_fen or (
        r.account_no is not None and pii.blind_index("account_no", r.account_no) != it.account_bidx
    ):
        return "mismatch", "result_mismatch"
    state = ItemState(it.state)
    if _path(state, _events_for(state, r.status)) is not None:
        return "applied", None
    if state in _CONSISTENT[r.status]:
        return "duplicate", None
    return "conflict", "conflicting_result"


def _utc(at: dt.datetime | None, default: dt.datetime) -> dt.datetime:
    """The bank's local (Asia/Shanghai) time as naive UTC, as stored."""
    if at is None:
        return default
    aware = at if at.tzinfo else at.replace(tzinfo=CHINA)
    return aware.astimezone(dt.UTC).replace(tzinfo=None)


def _result_row(
    inbound_id: int, it: PaymentItem | None, r: Outcome, disposition: str, now: dt.datetime
) -> dict[str, Any]:
    return {
        "inbound_file_id": inbound_id,
        "item_id": it.id if it else None,
        "serial": r.serial,
        "status": r.status,
        "amount_fen": r.amount_fen,
        "bank_code": r.bank_code,
        "bank_message": r.bank_message[:200],
        "bank_ref": r.bank_ref,
        "processed_at": _utc(r.processed_at, now),
        "disposition": disposition,
        "recorded_at": now,
    }


def _apply_file_rejection(
    session: Session, profile: BankProfile, inbound: InboundFile, parsed: ResultFile, actor: str
) -> int:
    """The bank refused a whole request file: its items fail with reason ``file_rejected``."""
    f = session.scalar(
        select(OutboundFile)
        .join(Batch, Batch.id == OutboundFile.batch_id)
        .where(Batch.serial == parsed.batch_serial, OutboundFile.file_no == parsed.file_no)
    )
    if f is None:
        session.add(
            OperatorCase(
                kind="unknown_serial",
                inbound_file_id=inbound.id,
                summary="银行拒收了一个本系统没有记录的文件",
                evidence=f"batch_serial={parsed.batch_serial} file_no={parsed.file_no}",
            )
        )
        return 0
    f.state = FileState.REJECTED
    f.last_error = f"rejected by bank: {parsed.rejected_code}"
    moved = move_items(
        session,
        PaymentItem.outbound_file_id == f.id,
        ItemEvent.FILE_REJECTED,
        actor,
        values={
            "bank_code": parsed.rejected_code,
            "reason_code": "file_rejected",
            "bank_message": "整个文件被银行拒收",
        },
        detail={"file": inbound.file_name, "bank_code": parsed.rejected_code},
    )
    batch = session.get(Batch, f.batch_id, with_for_update=True)
    if batch is not None:
        complete_if_final(session, batch, actor)
    log.error("feedback.request_file_rejected", file=f.file_name, code=parsed.rejected_code)
    del profile
    return moved


def poll_all(ctx: Context, owner: str) -> Sequence[PollOutcome]:
    return [poll_profile(ctx, p, owner) for p in ctx.profiles.values()]
