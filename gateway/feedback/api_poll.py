"""Feedback from API banks: ask the bank for the status of each submission it took, apply
what it reports, and treat callbacks as hints to ask sooner.

A callback never changes a payment: it is verified (the bank's signature over the raw body,
timestamp window, nonce never seen before) and then only moves the submission's next
inquiry to *now* and counts a hint (``poll_hints``); an inquiry already on its way when the
hint came cannot push the next one back, so no news a callback announced is lost. The
inquiry's answer — a signed response over mutual TLS — is what the gateway applies,
recorded by content hash like a result file (the same answer twice changes nothing).
"""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.auth.models import RequestNonce
from gateway.batches.models import Batch, PaymentItem
from gateway.context import Context
from gateway.dispatch.models import OutboundFile
from gateway.feedback.models import InboundFile, OperatorCase
from gateway.feedback.service import Outcome, apply_outcomes
from gateway.kit.clock import utcnow
from gateway.kit.db import session_scope
from gateway.kit.leases import claim_job, release_job
from gateway.kit.logging import get_logger
from gateway.payments.states import FileState, ItemState
from gateway.ports import AdapterError, ApiItemStatus, ApiStatus, CallbackHint, FormatError
from gateway.profiles import BankProfile

log = get_logger(__name__)


def poll_api_profile(ctx: Context, profile: BankProfile, owner: str) -> int:
    """Inquire every due submission of this API bank; returns how many items moved."""
    job = f"poll:{profile.name}"
    with session_scope(ctx.sessions) as session:
        if not claim_job(session, job, owner, ctx.settings.lease_seconds):
            return 0
    moved = 0
    try:
        now = utcnow()
        with ctx.sessions() as session:
            due = session.execute(
                select(
                    OutboundFile.id,
                    Batch.serial,
                    OutboundFile.file_no,
                    OutboundFile.polls,
                    OutboundFile.poll_hints,
                )
                .join(Batch, Batch.id == OutboundFile.batch_id)
                .where(
                    OutboundFile.bank_profile == profile.name,
                    OutboundFile.state == FileState.DELIVERED,
                    OutboundFile.next_poll_at <= now,
                )
                .order_by(OutboundFile.next_poll_at)
                .limit(50)
            ).all()
        for file_id, serial, file_no, polls, hints in due:
            try:
                status = profile.api.inquire(serial or "", file_no)
            except FormatError as exc:
                # a signed answer that breaks the contract: not retried forever
                log.error("feedback.inquiry_malformed", file_id=file_id, error=str(exc))
                if polls + 1 >= ctx.settings.inquiry_max_attempts:
                    _give_up(ctx, file_id, f"FormatError: {exc}")
                else:
                    _reschedule(ctx, file_id, polls + 1, profile.poll_seconds, hints)
                continue
            except AdapterError as exc:
                log.warning("feedback.inquiry_failed", file_id=file_id, error=str(exc))
                _reschedule(ctx, file_id, polls + 1, profile.poll_seconds, hints)
                continue
            moved += _take_status(
                ctx, profile, file_id, serial or "", file_no, status, owner, hints
            )
    finally:
        with session_scope(ctx.sessions) as session:
            release_job(session, job, owner)
    return moved


def _give_up(ctx: Context, file_id: int, evidence: str) -> None:
    with session_scope(ctx.sessions) as session:
        session.add(
            OperatorCase(
                kind="inquiry_malformed",
                outbound_file_id=file_id,
                summary="银行状态查询的应答多次不符合接口规范，已停止自动查询",
                evidence=evidence,
            )
        )
        session.execute(
            update(OutboundFile).where(OutboundFile.id == file_id).values(next_poll_at=None)
        )


def _schedule_next(
    session: Session, file_id: int, hints_seen: int, next_poll_at: dt.datetime | None
) -> None:
    """Set when to ask next, unless a hint came while this inquiry was on its way: then the
    next inquiry is due now (the answer in hand may predate what the hint announced)."""
    now = utcnow()
    scheduled = session.execute(
        update(OutboundFile)
        .where(OutboundFile.id == file_id, OutboundFile.poll_hints == hints_seen)
        .values(next_poll_at=next_poll_at)
    )
    if not getattr(scheduled, "rowcount", 0):
        session.execute(
            update(OutboundFile).where(OutboundFile.id == file_id).values(next_poll_at=now)
        )


def _reschedule(ctx: Context, file_id: int, polls: int, base: float, hints_seen: int) -> None:
    delay = min(300.0, base * (2 ** min(polls, 6)))
    with session_scope(ctx.sessions) as session:
        session.execute(update(OutboundFile).where(OutboundFile.id == file_id).values(polls=polls))
        _schedule_next(session, file_id, hints_seen, utcnow() + dt.timedelta(seconds=delay))


def _take_status(
    ctx: Context,
    profile: BankProfile,
    file_id: int,
    serial: str,
    file_no: int,
    status: ApiStatus | None,
    actor: str,
    hints_seen: int,
) -> int:
    if status is None:
        # the bank acknowledged this submission earlier and now says it never took it
        with session_scope(ctx.sessions) as session:
            session.add(
                OperatorCase(
                    kind="bank_lost_submission",
                    outbound_file_id=file_id,
                    summary="银行曾确认受理此笔代发请求，查询时却答复未收到；未自动重发",
                    evidence=f"batch_serial={serial} file_no={file_no}",
                )
            )
            session.execute(
                update(OutboundFile).where(OutboundFile.id == file_id).values(next_poll_at=None)
            )
        log.error("feedback.bank_lost_submission", file_id=file_id)
        return 0
    outcomes = [
        Outcome(
            serial=i.serial,
            status=i.status.value,
            bank_code=i.bank_code,
            bank_message=i.bank_message,
            amount_fen=i.amount_fen,
            bank_ref=i.bank_ref,
            processed_at=i.processed_at,
        )
        for i in status.items
        if i.status != ApiItemStatus.PENDING
    ]
    raw = status.raw or repr(status).encode()
    sha = hashlib.sha256(raw).hexdigest()
    moved = 0
    try:
        with session_scope(ctx.sessions) as session:
            f = session.get(OutboundFile, file_id)
            assert f is not None  # noqa: S101
            seen = session.scalar(
                select(InboundFile.id).where(
                    InboundFile.bank_profile == profile.name, InboundFile.sha256 == sha
                )
            )
            if seen is None and outcomes:
                inbound = InboundFile(
                    bank_profile=profile.name,
                    kind="api_status",
                    file_name=f"{f.file_name}#{f.polls + 1}",
                    sha256=sha,
                    size=len(raw),
                    state="applied",
                    batch_serial=serial,
                    item_count=len(outcomes),
                )
                session.add(inbound)
                session.flush()
                moved = apply_outcomes(session, ctx.pii, profile, inbound, outcomes, actor)
                inbound.applied_count = moved
            f.polls += 1
            open_items = session.scalar(
                select(PaymentItem.id)
                .where(
                    PaymentItem.outbound_file_id == file_id,
                    PaymentItem.state.in_([s.value for s in ItemState if s.is_with_bank()]),
                )
                .limit(1)
            )
            if status.completed and open_items is None:
                after = None  # until a callback says something changed (退票)
            else:
                delay = min(300.0, profile.poll_seconds * (2 ** min(f.polls, 6)))
                after = utcnow() + dt.timedelta(seconds=delay)
            session.flush()
            _schedule_next(session, file_id, hints_seen, after)
    except IntegrityError:
        return 0  # another worker recorded the same answer first
    if moved:
        log.info("feedback.api_status_applied", file_id=file_id, moved=moved)
    return moved


def take_callback(
    ctx: Context,
    profile: BankProfile,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
) -> CallbackHint:
    """Verify a bank callback and turn it into an early inquiry. Raises AdapterError
    (signature, format) or ValueError("replayed") — the caller answers 401/400."""
    hint = profile.api.verify_callback(method, path, headers, body)
    with session_scope(ctx.sessions) as session:
        try:
            with session.begin_nested():
                session.add(
                    RequestNonce(
                        client_id=f"bank:{profile.name}", nonce=hint.nonce, seen_at=utcnow()
                    )
                )
        except IntegrityError:
            raise ValueError("replayed") from None
        session.execute(
            update(OutboundFile)
            .where(
                OutboundFile.bank_profile == profile.name,
                OutboundFile.file_no == hint.file_no,
                OutboundFile.state == FileState.DELIVERED,
                OutboundFile.batch_id.in_(
                    select(Batch.id).where(Batch.serial == hint.batch_serial)
                ),
            )
            .values(next_poll_at=utcnow(), poll_hints=OutboundFile.poll_hints + 1)
        )
    log.info(
        "feedback.callback_accepted",
        profile=profile.name,
        callback_event=hint.event,
        event_id=hint.event_id,
        batch_serial=hint.batch_serial,
    )
    return hint
