"""SMS to beneficiaries (惠民短信): exactly one per paid item, and one per failed item that
needs the person to act (where the county enables it).

1. *Staging* — in the same transaction that moves an item to ``paid`` (or ``failed``), a
   ledger row is written with its ``out_id`` fixed (``stage_notices``); the unique
   (item, notice type) key makes a second one impossible.
2. *Sending* — a worker step claims due rows by lease, outside quiet hours and within the
   provider's rate, and calls the provider outside any transaction:
   accepted → ``sent``; a permanent refusal → ``rejected`` (never retried); never sent or
   throttled → retried later with backoff (honouring Retry-After); **outcome unknown →
   ``unknown``**, resolved by receipts or by querying the provider for that out_id — a
   resend happens only when the provider proves it never took the message.
3. *Receipts* (pushed or queried) are append-only facts; they move ``sent`` to
   ``delivered``/``failed`` idempotently — late and duplicate receipts change nothing more.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, insert, or_, select, update
from sqlalchemy.orm import Session

from gateway.batches.models import Batch, PaymentItem
from gateway.context import Context
from gateway.feedback.reasons import reason
from gateway.kit.clock import CHINA, utcnow
from gateway.kit.db import session_scope
from gateway.kit.logging import get_logger
from gateway.kit.money import format_yuan
from gateway.kit.pii import mask_phone
from gateway.kit.retry import next_attempt_at
from gateway.notifications.config import SmsConfig, quiet_until
from gateway.notifications.models import SmsNotice, SmsReceiptRecord
from gateway.ports import (
    NeverSentError,
    OutcomeUnknownError,
    SmsMessage,
    SmsProvider,
    SmsReceipt,
    SmsRejectedError,
    SmsStatus,
    TransportError,
)

log = get_logger(__name__)

# reasons a person must act on (bring a new card, fix the name at the bank, unfreeze …)
ACTIONABLE = {
    "account_not_found",
    "name_mismatch",
    "account_frozen",
    "account_closed",
    "id_mismatch",
    "bounced",
}
MAX_QUERIES = 6


def out_id_for(serial: str, notice_type: str) -> str:
    return f"{serial}{'P' if notice_type == 'paid' else 'F'}"


def stage_notices(session: Session, item_ids: list[int], notice_type: str) -> None:
    """Write the ledger rows for items that just became paid/failed (same transaction)."""
    if not item_ids:
        return
    rows = session.execute(
        select(PaymentItem.id, PaymentItem.serial, PaymentItem.reason_code).where(
            PaymentItem.id.in_(item_ids), PaymentItem.phone_enc.is_not(None)
        )
    ).all()
    existing = set(
        session.scalars(
            select(SmsNotice.item_id).where(
                SmsNotice.item_id.in_([r[0] for r in rows]), SmsNotice.notice_type == notice_type
            )
        )
    )
    now = utcnow()
    values = [
        {
            "item_id": item_id,
            "notice_type": notice_type,
            "out_id": out_id_for(serial, notice_type),
            "state": "pending",
            "attempts": 0,
            "queries": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for item_id, serial, reason_code in rows
        if item_id not in existing and (notice_type == "paid" or reason_code in ACTIONABLE)
    ]
    if values:
        session.execute(insert(SmsNotice), values)


class RateLimiter:
    """A token bucket per provider (per process)."""

    def __init__(self, rate_per_second: float) -> None:
        self.rate = max(rate_per_second, 0.001)
        self.tokens = self.rate
        self.at = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


@dataclass
class Sms:
    """What the SMS steps need, built once per process."""

    config: SmsConfig
    provider: SmsProvider | None
    limiter: RateLimiter


def sms_of(ctx: Context) -> Sms:
    """The process's SMS runtime for this context (built once; ``reset_sms`` drops it)."""
    existing = ctx.runtime.get("sms")
    if isinstance(existing, Sms):
        return existing
    config = ctx.sms_config
    provider: SmsProvider | None = None
    if config.enabled and config.provider:
        from adapters.registry import build_sms_provider  # noqa: PLC0415 (composition root)

        provider = build_sms_provider(config.provider)
    sms = Sms(config, provider, RateLimiter(config.rate_per_second))
    ctx.runtime["sms"] = sms
    return sms


def reset_sms(ctx: Context) -> None:
    """Forget the SMS runtime (after the SMS configuration changed)."""
    old = ctx.runtime.pop("sms", None)
    if isinstance(old, Sms) and old.provider is not None:
        old.provider.close()


def _due(now: dt.datetime, states: list[str]) -> Select[Any]:
    return (
        select(SmsNotice.id)
        .where(
            SmsNotice.state.in_(states),
            SmsNotice.next_attempt_at <= now,
            or_(SmsNotice.lease_until.is_(None), SmsNotice.lease_until < now),
        )
        .order_by(SmsNotice.next_attempt_at, SmsNotice.id)
        .limit(100)
    )


def _claim(ctx: Context, notice_id: int, owner: str, states: list[str]) -> bool:
    now = utcnow()
    with session_scope(ctx.sessions) as session:
        result = session.execute(
            update(SmsNotice)
            .where(
                SmsNotice.id == notice_id,
                SmsNotice.state.in_(states),
                or_(SmsNotice.lease_until.is_(None), SmsNotice.lease_until < now),
            )
            .values(lease_owner=owner, lease_until=now + dt.timedelta(seconds=120))
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def sms_step(ctx: Context, owner: str, *, now: dt.datetime | None = None) -> int:
    """Send due notices and resolve unknown ones; returns how many changed state."""
    sms = sms_of(ctx)
    now = now or utcnow()
    changed = 0
    with ctx.sessions() as session:
        pending = list(session.scalars(_due(now, ["pending"])))
        # "sending" with an expired lease: a worker died mid-call — as unknown as a timeout
        unknown = list(session.scalars(_due(now, ["unknown", "sending"])))
    if not sms.config.enabled or sms.provider is None:
        if pending:
            with session_scope(ctx.sessions) as session:
                session.execute(
                    update(SmsNotice)
                    .where(SmsNotice.id.in_(pending))
                    .values(state="skipped", final_at=now, last_error="SMS disabled")
                )
        return len(pending)
    local = now.replace(tzinfo=dt.UTC).astimezone(CHINA)
    quiet_end = quiet_until(local, sms.config.quiet_start, sms.config.quiet_end)
    for notice_id in unknown:
        if _claim(ctx, notice_id, owner, ["unknown", "sending"]):
            changed += _resolve_unknown(ctx, sms, notice_id)
    if quiet_end is not None:
        return changed  # 免打扰: nothing is sent until the quiet hours end
    for notice_id in pending:
        if not sms.limiter.take():
            break
        if _claim(ctx, notice_id, owner, ["pending"]):
            changed += _send(ctx, sms, notice_id)
    return changed


def _message(ctx: Context, sms: Sms, notice: SmsNotice) -> SmsMessage | None:
    with ctx.sessions() as session:
        row = session.execute(
            select(PaymentItem, Batch)
            .join(Batch, Batch.id == PaymentItem.batch_id)
            .where(PaymentItem.id == notice.item_id)
        ).first()
    if row is None:
        return None
    item, batch = row
    if item.phone_enc is None:
        return None
    template = sms.config.templates.get(notice.notice_type)
    if template is None:
        return None
    paid_on = (item.paid_at or utcnow()).replace(tzinfo=dt.UTC).astimezone(CHINA).date()
    params = {
        "subsidy": batch.subsidy_name,
        "amount": format_yuan(item.amount_fen),
        "date": f"{paid_on.month}月{paid_on.day}日",
        "last4": item.account_masked[-4:],
    }
    if notice.notice_type == "failed":
        params["reason"] = reason(item.reason_code).zh
    return SmsMessage(
        out_id=notice.out_id,
        phone=ctx.pii.decrypt("phone", item.phone_enc),
        sign_name=sms.config.sign_name_for(batch.region_code),
        template_id=template.template_id,
        params=params,
    )


def _finish(ctx: Context, notice_id: int, **values: Any) -> None:
    with session_scope(ctx.sessions) as session:
        session.execute(
            update(SmsNotice)
            .where(SmsNotice.id == notice_id)
            .values(lease_owner=None, lease_until=None, **values)
        )


def _send(ctx: Context, sms: Sms, notice_id: int) -> int:
    assert sms.provider is not None  # noqa: S101 (checked by the caller)
    with ctx.sessions() as session:
        notice = session.get(SmsNotice, notice_id)
    if notice is None:
        return 0
    msg = _message(ctx, sms, notice)
    if msg is None:
        _finish(ctx, notice_id, state="skipped", final_at=utcnow(), last_error="no template")
        return 1
    attempts = notice.attempts + 1
    # the attempt is recorded before the call: a crash leaves "sending", resolved by query
    _finish_keep = {
        "attempts": attempts,
        "provider": sms.provider.name,
        "template_id": msg.template_id,
    }
    with session_scope(ctx.sessions) as session:
        session.execute(
            update(SmsNotice)
            .where(SmsNotice.id == notice_id)
            .values(state="sending", **_finish_keep)
        )
    try:
        result = sms.provider.send(msg)
    except SmsRejectedError as exc:
        _finish(
            ctx,
            notice_id,
            state="rejected",
            final_at=utcnow(),
            last_code=exc.code,
            last_error=f"{exc.scope}: {exc}",
        )
        log.warning("sms.rejected", out_id=notice.out_id, code=exc.code, scope=exc.scope)
        return 1
    except NeverSentError as exc:
        _finish(
            ctx,
            notice_id,
            state="pending",
            last_error=str(exc),
            next_attempt_at=next_attempt_at(
                attempts, initial=2, maximum=600, retry_after=exc.retry_after
            ),
        )
        return 0
    except OutcomeUnknownError as exc:
        _finish(
            ctx,
            notice_id,
            state="unknown",
            last_error=str(exc),
            next_attempt_at=next_attempt_at(1, initial=5, maximum=600),
        )
        log.warning("sms.outcome_unknown", out_id=notice.out_id)
        return 1
    except TransportError as exc:  # throttled / busy: the provider did not take it
        _finish(
            ctx,
            notice_id,
            state="pending",
            last_error=str(exc),
            next_attempt_at=next_attempt_at(
                attempts, initial=2, maximum=600, retry_after=exc.retry_after
            ),
        )
        return 0
    _finish(
        ctx,
        notice_id,
        state="sent",
        provider_ref=result.provider_ref,
        sent_at=utcnow(),
        last_error=None,
    )
    log.info("sms.sent", out_id=notice.out_id, phone=mask_phone(msg.phone))
    return 1


def _resolve_unknown(ctx: Context, sms: Sms, notice_id: int) -> int:
    """Ask the provider about an unknown send; resend only if it proves it never took it."""
    assert sms.provider is not None  # noqa: S101
    with ctx.sessions() as session:
        notice = session.get(SmsNotice, notice_id)
        phone_enc = (
            session.scalar(select(PaymentItem.phone_enc).where(PaymentItem.id == notice.item_id))
            if notice
            else None
        )
    if notice is None or phone_enc is None:
        return 0
    sent_on = (notice.sent_at or notice.created_at).replace(tzinfo=dt.UTC).astimezone(CHINA)
    try:
        receipts = sms.provider.query(
            notice.out_id, sent_on.date(), phone=ctx.pii.decrypt("phone", phone_enc)
        )
    except (TransportError, SmsRejectedError) as exc:
        queries = notice.queries + 1
        if queries >= MAX_QUERIES:
            _finish(
                ctx,
                notice_id,
                state="gave_up",
                queries=queries,
                final_at=utcnow(),
                last_error=f"query failed: {exc}",
            )
        else:
            _finish(
                ctx,
                notice_id,
                queries=queries,
                next_attempt_at=next_attempt_at(queries, initial=5, maximum=600),
            )
        return 0
    if not receipts:
        # proven never taken: back to pending, same out_id (the only safe resend)
        _finish(
            ctx, notice_id, state="pending", queries=notice.queries + 1, next_attempt_at=utcnow()
        )
        return 1
    _record_receipts(ctx, receipts, "query")
    first = receipts[0]
    _finish(
        ctx,
        notice_id,
        state="sent",
        provider_ref=first.provider_ref,
        queries=notice.queries + 1,
        sent_at=notice.sent_at or utcnow(),
    )
    apply_receipts(ctx, receipts, source=None)
    return 1


def _record_receipts(ctx: Context, receipts: list[SmsReceipt], source: str) -> None:
    with session_scope(ctx.sessions) as session:
        session.execute(
            insert(SmsReceiptRecord),
            [
                {
                    "out_id": r.out_id,
                    "provider_ref": r.provider_ref,
                    "status": r.status.value,
                    "code": r.code,
                    "source": source,
                    "reported_at": r.at.astimezone(dt.UTC).replace(tzinfo=None) if r.at else None,
                    "received_at": utcnow(),
                }
                for r in receipts
            ],
        )


def apply_receipts(ctx: Context, receipts: list[SmsReceipt], *, source: str | None) -> int:
    """Record receipts (pushed: ``source="push"``) and settle the notices they name; late
    and duplicate receipts change nothing more. Returns how many notices moved."""
    if source is not None and receipts:
        _record_receipts(ctx, receipts, source)
    moved = 0
    with session_scope(ctx.sessions) as session:
        for r in receipts:
            if r.status == SmsStatus.PENDING:
                continue
            # a receipt without our out_id (some providers omit it) is matched by their ref
            key = (
                SmsNotice.out_id == r.out_id
                if r.out_id
                else SmsNotice.provider_ref == r.provider_ref
            )
            result = session.execute(
                update(SmsNotice)
                .where(key, SmsNotice.state.in_(["sent", "unknown", "sending"]))
                .values(
                    state="delivered" if r.delivered else "failed",
                    last_code=r.code or None,
                    provider_ref=r.provider_ref,
                    final_at=utcnow(),
                )
            )
            moved += int(result.rowcount)  # type: ignore[attr-defined]
    return moved


def sms_summary(ctx: Context) -> dict[str, int]:
    """The gateway's own view of its SMS ledger (the demo also asks the SMS centre)."""
    from sqlalchemy import func  # noqa: PLC0415

    with ctx.sessions() as session:
        rows = session.execute(
            select(SmsNotice.notice_type, SmsNotice.state, func.count()).group_by(
                SmsNotice.notice_type, SmsNotice.state
            )
        ).all()
    counts: dict[str, int] = {}
    taken = {"sent", "delivered", "failed"}  # the provider accepted these
    out = {
        "paid_notices": 0,
        "failure_notices": 0,
        "delivered": 0,
        "pending": 0,
        "rejected": 0,
        "skipped": 0,
        "gave_up": 0,
    }
    for notice_type, state, n in rows:
        counts[state] = counts.get(state, 0) + int(n)
        if state in taken:
            out["paid_notices" if notice_type == "paid" else "failure_notices"] += int(n)
    out["delivered"] = counts.get("delivered", 0)
    out["pending"] = sum(counts.get(k, 0) for k in ("pending", "sending", "unknown"))
    for key in ("rejected", "skipped", "gave_up"):
        out[key] = counts.get(key, 0)
    return out
