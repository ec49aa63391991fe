"""Dispatch (发送): turn accepted batches into signed bank files and deliver them.

Two job steps, each its own transaction boundary, never holding a transaction or lock
across a network call:

1. ``plan_one``: claim an accepted batch by lease; render its file(s), sign them, and
   persist the exact bytes (encrypted), file name, hash and size — the intent — with the
   items moved to ``queued``. Commit. Nothing has left the building yet.
2. ``deliver_one``: claim a planned/unknown file by lease; **look at the far side first**
   (the file may already be there from an attempt whose outcome we never recorded); upload
   only if it is absent, under a temporary name then renamed; verify size and hash under
   the final name; then record delivery. Errors are classified by the adapter: never-sent →
   retry later with backoff; outcome unknown → inquiry next time, never a blind resend;
   host key / conflicting far-side content → an operator case. The rule that decides
   between the first two is ``docs/delivery-errors.md``.

**Never-sent work resumes by itself.** An attempt that provably reached nothing at the bank
(connection refused, DNS, TLS or SSH handshake, authentication) changes nothing: the file
keeps its state (planned, or unknown: an inquiry that never reached the bank spends none of
the inquiry budget), its items stay where they are, and it is tried again with backoff for
as long as the bank is down — there is no risk in waiting, and nothing for a person to
decide. When ``delivery_max_attempts`` such attempts in a row (``never_sent_streak``) have
failed, one ``never_sent`` case tells the operator that the bank cannot be reached and that
the gateway goes on trying; it closes by itself (``closed_by="system"``) when an attempt
reaches the bank. Past the bank's cut-off for the batch's business day the work moves to the
next business day by the calendar (``Batch.dispatch_on``; the file's bytes, fixed at planning
time and maybe already on the far side from a lost answer, are never re-rendered), is not
tried before that day begins, and the case names the new day. Before any send the far side
is looked at first (SFTP) or the bank is asked (API) whenever an earlier attempt may have
reached it.

Everything else is not retried for ever. A failure that will happen again on every attempt
is acted on at once; one whose outcome is unknown is inquired about within a budget, then
handed to a person. Either way an operator case is opened and upstream hears of it in the
same worker cycle:

- **The file cannot be made** (``plan_one``): the batch's data cannot be written in the
  bank's format (a ``FormatError``/``FieldError``), or the bank configuration is broken
  (signing key, format or API settings, an unknown profile, the PII key). No file exists,
  so the bank cannot have any item: every item fails (``unsendable``, reason
  ``request_unrenderable`` / ``dispatch_config_error``), the batch completes, and a case
  names the field or the error. Upstream receives ``item.failed`` and ``batch.completed``;
  the items are paid again by the usual correction / re-issue procedure. Database trouble
  (locked, connection lost) is not such a failure: the batch keeps its lease and is tried
  again when the lease expires, while the other batches go ahead.
- **The file cannot be delivered**: unknown outcomes are inquired about up to
  ``inquiry_max_attempts``, and an error no adapter classified counts as an unknown outcome
  (it may have happened after bytes left). A delivery configuration that cannot even be
  built (transport or API settings, keys) is escalated at once. An escalated file's items
  go to ``operator_case`` — never ``failed``: an earlier attempt may have reached the bank
  (a crash after an upload, a lost answer), and only an inquiry or the bank's word may
  settle them — and upstream receives ``item.operator_case``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gateway.batches.models import Batch, PaymentItem
from gateway.context import Context
from gateway.dispatch.calendar import (
    UnknownYearError,
    day_opens,
    dispatch_day,
    moved_past_cutoff,
)
from gateway.dispatch.models import OutboundFile
from gateway.feedback.models import OperatorCase
from gateway.kit.clock import china_today, utcnow
from gateway.kit.db import session_scope
from gateway.kit.logging import get_logger
from gateway.kit.retry import next_attempt_at, retry_never_sent
from gateway.payments.states import BatchEvent, BatchState, FileState, ItemEvent, ItemState
from gateway.payments.transitions import complete_if_final, move_batch, move_items
from gateway.ports import (
    AdapterError,
    FieldError,
    FileTransport,
    FormatError,
    HostKeyError,
    NeverSentError,
    OutcomeUnknownError,
    RejectedError,
    RequestHeader,
    RequestItem,
    TransportError,
)
from gateway.profiles import BankProfile, ProfileError

log = get_logger(__name__)
FILE_PURPOSE = "outbound-file"
# who closes a case that closes by itself (a never-sent case once the work goes out)
SYSTEM_ACTOR = "system"
NEVER_SENT_ZH = "多次尝试仍无法连接银行，系统将继续自动重试"
_A = TypeVar("_A")


def _crash_point(ctx: Context, name: str) -> None:
    """Test hook: die abruptly here (no cleanup, no commit), as a killed process would."""
    if ctx.settings.crash_at == name and ctx.settings.environment != "production":
        log.warning("worker.crash_injected", point=name)
        os._exit(137)


def _lease_free(model: type[Batch] | type[OutboundFile], now: dt.datetime) -> object:
    return or_(model.lease_until.is_(None), model.lease_until < now)


class DeferredError(Exception):
    """Database trouble while working on one claimed batch or file (``cause`` is the
    database's error). Nothing was decided: the work keeps its lease, so it is tried
    again once the lease expires and the next call of the step takes other work."""

    def __init__(self, what: str, ident: int) -> None:
        super().__init__(f"{what} {ident} deferred until its lease expires")
        self.what = what
        self.ident = ident


def is_transient(exc: BaseException) -> bool:
    """Trouble that may pass by itself: the database (locked, connection lost, pool
    exhausted) or memory. Anything else in rendering, signing or building an adapter fails
    the same way on every attempt."""
    return isinstance(exc, SQLAlchemyError | MemoryError)


def _profile_of(ctx: Context, name: str) -> BankProfile:
    profile = ctx.profiles.get(name)
    if profile is None:
        raise ProfileError(f"bank profile {name!r} is not configured")
    return profile


# --- planning -------------------------------------------------------------------------------


def _decrypted_items(ctx: Context, session: Session, batch_id: int) -> Iterator[RequestItem]:
    pii = ctx.pii
    rows = session.execute(
        select(
            PaymentItem.seq,
            PaymentItem.serial,
            PaymentItem.account_enc,
            PaymentItem.name_enc,
            PaymentItem.id_number_enc,
            PaymentItem.amount_fen,
            PaymentItem.remark,
        )
        .where(PaymentItem.batch_id == batch_id, PaymentItem.state == ItemState.ACCEPTED)
        .order_by(PaymentItem.seq)
        .execution_options(yield_per=5000)
    )
    for seq, serial, acct, name, idn, amount, remark in rows:
        yield RequestItem(
            seq=seq,
            serial=serial,
            account_no=pii.decrypt("account_no", acct),
            name=pii.decrypt("name", name),
            id_number=pii.decrypt("id_number", idn),
            amount_fen=amount,
            remark=remark or "",
        )


def _claim(
    ctx: Context, model: type[Batch] | type[OutboundFile], candidates: list[int], owner: str
) -> int | None:
    """Claim the first candidate whose lease is free (a short conditional UPDATE)."""
    for cid in candidates:
        now = utcnow()
        with session_scope(ctx.sessions) as session:
            result = session.execute(
                update(model)
                .where(model.id == cid, _lease_free(model, now))  # type: ignore[arg-type]
                .values(
                    lease_owner=owner,
                    lease_until=now + dt.timedelta(seconds=ctx.settings.lease_seconds),
                )
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                return cid
    return None


def settle_dispatch_days(ctx: Context) -> int:
    """Give a business day to accepted batches that have none yet (their year was unknown
    to the calendar when they arrived). A year still unknown keeps them waiting, with one
    open operator case per batch saying what to load. Returns how many were settled."""
    settled = 0
    with session_scope(ctx.sessions) as session:
        waiting = session.scalars(
            select(Batch).where(Batch.state == BatchState.ACCEPTED, Batch.dispatch_on.is_(None))
        ).all()
        for batch in waiting:
            profile = ctx.profiles.get(batch.bank_profile)
            if profile is None:
                continue
            try:
                batch.dispatch_on = dispatch_day(batch.received_at, profile.hours, ctx.calendar)
                settled += 1
            except UnknownYearError as exc:
                open_case = session.scalar(
                    select(OperatorCase.id).where(
                        OperatorCase.batch_id == batch.id,
                        OperatorCase.kind == "calendar_unknown_year",
                        OperatorCase.state == "open",
                    )
                )
                if open_case is None:
                    session.add(
                        OperatorCase(
                            kind="calendar_unknown_year",
                            batch_id=batch.id,
                            summary=f"工作日历缺少{exc.year}年的官方节假日安排，批次暂不发送；"
                            f"请在日历配置文件中加载{exc.year}年安排",
                            evidence=str(exc),
                        )
                    )
                    log.error("calendar.unknown_year", batch_no=batch.batch_no, year=exc.year)
    return settled


def plan_one(ctx: Context, owner: str) -> bool:
    """Plan one accepted batch; True when something was done."""
    now = utcnow()
    with ctx.sessions() as session:
        query = (
            select(Batch.id)
            .where(
                Batch.state == BatchState.ACCEPTED,
                Batch.dispatch_on <= china_today(),
                _lease_free(Batch, now),  # type: ignore[arg-type]
            )
            .order_by(Batch.id)
            .limit(5)
        )
        candidates = list(session.scalars(query))
    batch_id = _claim(ctx, Batch, candidates, owner)
    if batch_id is None:
        return False
    try:
        return _plan_claimed(ctx, owner, batch_id)
    except SQLAlchemyError as exc:
        raise DeferredError("batch", batch_id) from exc


def _plan_claimed(ctx: Context, owner: str, batch_id: int) -> bool:
    with session_scope(ctx.sessions) as session:
        batch = session.get(Batch, batch_id, with_for_update=True)
        if batch is None or batch.state != BatchState.ACCEPTED or batch.lease_owner != owner:
            return False
        try:
            profile = _profile_of(ctx, batch.bank_profile)
            planned = _render_files(ctx, session, batch, profile)
        except Exception as exc:
            if is_transient(exc):
                raise  # the lease stays ours until it expires (DeferredError)
            # the same on every attempt: act now, in this transaction (nothing written yet)
            failure = Unsendable.of(exc)
            _record_unsendable(ctx, session, batch, owner, failure)
            return True
        session.add_all(f for f, _, _ in planned)
        session.flush()
        for f, first_seq, last_seq in planned:
            move_items(
                session,
                (PaymentItem.batch_id == batch.id)
                & (PaymentItem.seq >= first_seq)
                & (PaymentItem.seq <= last_seq),
                ItemEvent.PLAN,
                owner,
                values={"outbound_file_id": f.id},
                detail={"file": f.file_name},
            )
        move_batch(session, batch, BatchEvent.PLAN, owner, detail={"files": len(planned)})
        batch.lease_owner = None
        batch.lease_until = None
    log.info("dispatch.planned", batch_serial=batch.serial, files=len(planned))
    return True


_FIELD_ZH = {
    "batch_serial": "批次流水号",
    "file_no": "文件序号",
    "payer_account": "付款账号",
    "payer_name": "付款单位名称",
    "subsidy_code": "补贴项目代码",
    "subsidy_name": "补贴项目名称",
    "period": "发放期间",
    "created_on": "日期",
    "serial": "明细流水号",
    "account_no": "账号",
    "name": "姓名",
    "id_number": "身份证号",
    "amount_fen": "金额",
    "remark": "备注",
}
_FIELD_CODE_ZH = {
    "not_encodable": "含无法编码的字符或控制字符",
    "too_long": "超出银行格式允许的长度",
    "out_of_range": "超出银行格式允许的范围",
    "invalid": "不符合银行格式",
    "empty": "为空",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Unsendable:
    """Why a batch's bank file cannot be made; ``kind`` is both the operator case's kind
    and its items' reason code."""

    kind: str  # request_unrenderable | dispatch_config_error
    error_type: str
    message: str
    field: str | None = None
    code: str | None = None

    @classmethod
    def of(cls, exc: Exception) -> Unsendable:
        kind, message = type(exc).__name__, f"{type(exc).__name__}: {exc}"[:2000]
        if isinstance(exc, FieldError):
            return cls("request_unrenderable", kind, message, exc.field_name, exc.code)
        if isinstance(exc, FormatError):
            return cls("request_unrenderable", kind, message)
        return cls("dispatch_config_error", kind, message)

    def summary_zh(self, items: int) -> str:
        if self.kind == "request_unrenderable":
            if self.field is not None:
                what = (
                    f"字段「{_FIELD_ZH.get(self.field, self.field)}」"
                    f"{_FIELD_CODE_ZH.get(self.code or '', '不符合银行格式')}"
                )
            else:
                what = "数据不符合银行文件格式"
            return (
                f"批次数据无法写入银行文件：{what}。未发送银行，{items}笔明细已置为支付失败；"
                "请更正批次数据后重新发放"
            )
        return (
            f"银行配置错误，无法生成或签名银行文件（{self.error_type}）。未发送银行，"
            f"{items}笔明细已置为支付失败；请修正银行配置（如签名密钥）后重新发放"
        )


def _record_unsendable(
    ctx: Context, session: Session, batch: Batch, owner: str, failure: Unsendable
) -> None:
    """The batch's file cannot be made: no file exists, so the bank has none of its items.
    Every item fails, the batch completes (upstream hears of both through the event trail)
    and an operator case says why. Nothing is tried again."""
    detail: dict[str, object] = {"case": failure.kind, "error": failure.error_type}
    if failure.field is not None:
        detail.update(field=failure.field, code=failure.code)
    failed = move_items(
        session,
        PaymentItem.batch_id == batch.id,
        ItemEvent.UNSENDABLE,
        owner,
        values={"reason_code": failure.kind, "bank_code": None, "bank_message": None},
        detail=detail,
    )
    move_batch(session, batch, BatchEvent.UNSENDABLE, owner, detail={**detail, "items": failed})
    batch.lease_owner = None
    batch.lease_until = None
    session.add(
        OperatorCase(
            kind=failure.kind,
            batch_id=batch.id,
            summary=failure.summary_zh(failed),
            evidence=failure.message,
        )
    )
    log.error(
        "dispatch.unsendable",
        batch_serial=batch.serial,
        kind=failure.kind,
        error_type=failure.error_type,
        field=failure.field,
        code=failure.code,
        items=failed,
    )


def _render_files(
    ctx: Context, session: Session, batch: Batch, profile: BankProfile
) -> list[tuple[OutboundFile, int, int]]:
    """Render, sign and encrypt the batch's file(s): (file, first seq, last seq) each."""
    files: list[tuple[OutboundFile, int, int]] = []
    if profile.is_api:
        per_file = int(profile.api_config.get("max_items_per_request", 50_000))
    else:
        fmt, signer = profile.format, profile.signer
        per_file = fmt.max_items_per_file
    chunk: list[RequestItem] = []
    serial = batch.serial or ""

    def close_file() -> None:
        file_no = len(files) + 1
        header = RequestHeader(
            batch_serial=serial,
            file_no=file_no,
            payer_account=batch.payer_account,
            subsidy_code=batch.subsidy_code,
            subsidy_name=batch.subsidy_name,
            period=batch.period,
            item_count=len(chunk),
            total_fen=sum(i.amount_fen for i in chunk),
            created_on=batch.dispatch_on or china_today(),
            payer_name=batch.payer_name,
        )
        # sequences run 1…n within each file (the spec); the serial carries the batch seq
        numbered = [dataclasses.replace(it, seq=n) for n, it in enumerate(chunk, start=1)]
        if profile.is_api:
            # the exact body (encrypted where configured) is fixed now and re-sent as is
            data = profile.api.render_submission(header, numbered)
            name = profile.api.request_id(serial, file_no)
            signature, signature_name = b"", ""
        else:
            data = fmt.render_request(header, numbered)
            name = fmt.request_file_name(serial, file_no)
            signature, signature_name = signer.sign(data), fmt.signature_name(name)
        f = OutboundFile(
            batch_id=batch.id,
            bank_profile=profile.name,
            file_no=file_no,
            file_name=name,
            signature_name=signature_name,
            item_count=header.item_count,
            total_fen=header.total_fen,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            content_enc=ctx.pii.encrypt_bytes(FILE_PURPOSE, data),
            signature=signature,
            state=FileState.PLANNED,
            attempts=0,
            inquiries=0,
            next_attempt_at=utcnow(),
        )
        files.append((f, chunk[0].seq, chunk[-1].seq))
        chunk.clear()

    for item in _decrypted_items(ctx, session, batch.id):
        chunk.append(item)
        if len(chunk) >= per_file:
            close_file()
    if chunk:
        close_file()
    return files


# --- delivery -------------------------------------------------------------------------------


class _FarSideConflictError(AdapterError):
    """A file with our final name but other content is on the far side."""


class _DeliveryConfigError(Exception):
    """The transport or API client cannot be built from the bank profile (unreadable keys,
    bad settings): nothing was sent, and the next attempt would fail the same way."""


def _built(build: Callable[[], _A]) -> _A:
    """An adapter built from the profile; a failure that is not the adapter's own (a
    TransportError of a transport that connects at once, say) is a configuration error."""
    try:
        return build()
    except AdapterError:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise
        raise _DeliveryConfigError(f"{type(exc).__name__}: {exc}") from exc


def deliver_one(ctx: Context, owner: str) -> bool:
    """Deliver (or inquire about) one planned/unknown file; True when something was done."""
    now = utcnow()
    with ctx.sessions() as session:
        candidates = list(
            session.scalars(
                select(OutboundFile.id)
                .where(
                    OutboundFile.state.in_([FileState.PLANNED, FileState.UNKNOWN]),
                    OutboundFile.next_attempt_at <= now,
                    _lease_free(OutboundFile, now),  # type: ignore[arg-type]
                )
                .order_by(OutboundFile.next_attempt_at, OutboundFile.id)
                .limit(5)
            )
        )
    file_id = _claim(ctx, OutboundFile, candidates, owner)
    if file_id is None:
        return False
    try:
        return _deliver_claimed(ctx, owner, file_id)
    except SQLAlchemyError as exc:
        raise DeferredError("file", file_id) from exc


def _deliver_claimed(ctx: Context, owner: str, file_id: int) -> bool:
    with session_scope(ctx.sessions) as session:
        f = session.get(OutboundFile, file_id)
        if f is None or not FileState(f.state).needs_work():
            return False
        was_unknown = f.state == FileState.UNKNOWN
        # the bank may have our submission unless every earlier attempt is recorded as
        # having reached nothing (an attempt cut short by a crash is recorded as nothing)
        maybe_taken = was_unknown or f.inquiries > 0 or f.attempts > f.never_sent_streak
        f.attempts += 1
        if was_unknown:
            f.inquiries += 1
        snapshot = (f.id, f.file_name, f.signature_name, f.sha256, f.size, f.signature)
        profile_name, content_enc = f.bank_profile, f.content_enc
        batch_serial = session.scalar(select(Batch.serial).where(Batch.id == f.batch_id)) or ""
        file_no = f.file_no
        attempts, inquiries = f.attempts, f.inquiries
    # ---- no transaction is open from here until the outcome is recorded ----
    fid, name, sig_name, sha, size, signature = snapshot
    try:
        # what the delivery needs before anything can leave (an unknown profile, the PII
        # key): a broken configuration fails the same way on every attempt
        profile = _profile_of(ctx, profile_name)
        data = ctx.pii.decrypt_bytes(FILE_PURPOSE, content_enc)
    except Exception as exc:
        if is_transient(exc):
            raise
        _escalate(ctx, fid, owner, "delivery_config_error", f"{type(exc).__name__}: {exc}")
        return True
    if profile.is_api:
        return _deliver_api(
            ctx,
            profile,
            fid,
            owner,
            (batch_serial, file_no, name),
            data,
            (attempts, inquiries, maybe_taken),
        )
    try:
        uploaded = retry_never_sent(
            lambda: _deliver(ctx, profile, name, sig_name, sha, size, data, signature),
            initial=_quick_wait(ctx),
        )
    except _DeliveryConfigError as exc:
        # an earlier attempt may have reached the bank: escalated, never failed
        _escalate(ctx, fid, owner, "delivery_config_error", str(exc))
        return True
    except HostKeyError as exc:
        _escalate(ctx, fid, owner, "host_key", str(exc))
        return True
    except _FarSideConflictError as exc:
        _escalate(ctx, fid, owner, "far_side_conflict", str(exc))
        return True
    except NeverSentError as exc:
        # nothing of this attempt reached the bank: the file keeps its state
        _retry_later(ctx, fid, owner, attempts, exc, unknown=False)
        return True
    except (OutcomeUnknownError, TransportError) as exc:
        _inquire_later(ctx, fid, owner, attempts, inquiries, exc, "outcome_unknown")
        return True
    except Exception as exc:
        # no adapter classified it, so it may have happened after bytes left: an unknown
        # outcome, inquired about within the same budget
        _inquire_later(ctx, fid, owner, attempts, inquiries, exc, "delivery_error")
        return True
    _record_delivered(ctx, fid, owner, uploaded=uploaded)
    return True


def _inquire_later(
    ctx: Context,
    file_id: int,
    owner: str,
    attempts: int,
    inquiries: int,
    exc: Exception,
    kind: str,
) -> None:
    """An attempt whose outcome is unknown: inquire next time, or hand the file to a person
    once the inquiries are used up."""
    if inquiries >= ctx.settings.inquiry_max_attempts:
        _escalate(ctx, file_id, owner, kind, f"{type(exc).__name__}: {exc}")
    else:
        _retry_later(ctx, file_id, owner, attempts, exc, unknown=True)


def _quick_wait(ctx: Context) -> float:
    """The first wait of the in-process retries of a never-sent error: never longer than
    the persisted schedule's first delay."""
    return min(0.2, ctx.settings.retry_initial_seconds)


def _deliver_api(
    ctx: Context,
    profile: BankProfile,
    file_id: int,
    owner: str,
    ids: tuple[str, int, str],
    body: bytes,
    counts: tuple[int, int, bool],
) -> bool:
    """Submit to an API bank. After an earlier attempt that may have reached the bank, ask
    the bank first: it may have taken the submission although we never saw its answer.
    An inquiry that never reached the bank (refused) is a never-sent attempt like a
    refused submission: nothing of it left, the file keeps its state."""
    serial, file_no, request_id = ids
    attempts, inquiries, maybe_taken = counts
    quick = _quick_wait(ctx)
    try:
        api = _built(lambda: profile.api)
        if maybe_taken:
            status = retry_never_sent(lambda: api.inquire(serial, file_no), initial=quick)
            if status is not None:
                log.info("dispatch.found_at_bank", request_id=request_id)
                _record_delivered(ctx, file_id, owner, uploaded=False)
                return True
        ack = retry_never_sent(lambda: api.submit(request_id, body), initial=quick)
    except RejectedError as exc:
        if exc.code in _NOT_A_REJECTION:
            # nothing proves the items were refused: a 409 means another body under our
            # idempotency key *was* taken; a signature/client refusal is our configuration.
            # Neither may send the items back for correction (that could pay twice).
            _escalate(ctx, file_id, owner, _NOT_A_REJECTION[exc.code], f"{exc.code}: {exc}")
        else:
            _record_rejected(ctx, file_id, owner, exc)
        return True
    except _DeliveryConfigError as exc:
        _escalate(ctx, file_id, owner, "delivery_config_error", str(exc))
        return True
    except NeverSentError as exc:
        _retry_later(ctx, file_id, owner, attempts, exc, unknown=False)
        return True
    except TransportError as exc:
        _inquire_later(ctx, file_id, owner, attempts, inquiries, exc, "outcome_unknown")
        return True
    except Exception as exc:
        # not classified by the adapter (a response it could not use, say): the bank may
        # have taken the submission, so an unknown outcome, inquired about next time
        _inquire_later(ctx, file_id, owner, attempts, inquiries, exc, "delivery_error")
        return True
    log.info("dispatch.submitted", request_id=request_id, replayed=ack.replayed)
    _record_delivered(ctx, file_id, owner, uploaded=not ack.replayed)
    return True


_NOT_A_REJECTION = {
    "IDEMPOTENCY_CONFLICT": "idempotency_conflict",
    "SIGNATURE_INVALID": "bank_auth_refused",
    "CLIENT_UNKNOWN": "bank_auth_refused",
}


def _record_rejected(ctx: Context, file_id: int, owner: str, exc: RejectedError) -> None:
    """The bank refused the submission outright: final for its items, and a case."""
    with session_scope(ctx.sessions) as session:
        f = session.get(OutboundFile, file_id, with_for_update=True)
        if f is None or f.lease_owner != owner:
            return
        profile = ctx.profiles[f.bank_profile]
        f.state = FileState.REJECTED
        f.last_error = f"rejected by bank: {exc.code}: {exc}"
        f.lease_owner = None
        f.lease_until = None
        _end_never_sent_streak(session, f, "银行已恢复连接并答复：拒绝了该请求（见新事项）")
        _open_case(session, f, "submission_rejected", f.last_error)
        move_items(
            session,
            PaymentItem.outbound_file_id == f.id,
            ItemEvent.FILE_REJECTED,
            owner,
            values={
                "bank_code": exc.code[:16],
                "reason_code": profile.result_codes.get(exc.code, "file_rejected"),
                "bank_message": str(exc)[:200],
            },
            detail={"request": f.file_name, "bank_code": exc.code},
        )
        batch = session.get(Batch, f.batch_id, with_for_update=True)
        if batch is not None:
            complete_if_final(session, batch, owner)
    log.error("dispatch.rejected", file_id=file_id, code=exc.code)


def _deliver(
    ctx: Context,
    profile: BankProfile,
    name: str,
    sig_name: str,
    sha: str,
    size: int,
    data: bytes,
    signature: bytes,
) -> bool:
    """Inquire, upload if absent, verify. Returns True when this call uploaded the file."""
    with _built(profile.open_transport) as t:
        if _verified_on_far_side(t, profile.inbox, name, sha, size):
            log.info("dispatch.found_on_far_side", file=name)
            return False
        # The signature was made once, at planning time, so every attempt uploads the same
        # bytes: one already there from an earlier attempt is ours; anything else is not.
        if t.stat(profile.inbox, sig_name) is None:
            t.put_atomic(profile.inbox, sig_name, signature)
        elif t.get(profile.inbox, sig_name) != signature:
            raise _FarSideConflictError(f"{sig_name} on the far side is not our signature")
        t.put_atomic(profile.inbox, name, data)
        _crash_point(ctx, "after_upload")
        try:
            verified = _verified_on_far_side(t, profile.inbox, name, sha, size)
        except NeverSentError as exc:
            # the file has left: a look at the far side that failed proves nothing now
            raise OutcomeUnknownError(f"{name} uploaded, then not verified: {exc}") from exc
        if not verified:
            raise OutcomeUnknownError(f"{name} not verified on the far side after upload")
        return True


def _verified_on_far_side(t: FileTransport, inbox: str, name: str, sha: str, size: int) -> bool:
    remote = t.stat(inbox, name)
    if remote is None:
        return False
    if remote.size != size or hashlib.sha256(t.get(inbox, name)).hexdigest() != sha:
        raise _FarSideConflictError(
            f"{name} on the far side differs from ours (size {remote.size}, ours {size})"
        )
    return True


def _record_delivered(ctx: Context, file_id: int, owner: str, *, uploaded: bool) -> None:
    now = utcnow()
    with session_scope(ctx.sessions) as session:
        f = session.get(OutboundFile, file_id, with_for_update=True)
        if f is None or f.lease_owner != owner:
            log.warning("dispatch.lease_lost", file_id=file_id)
            return
        f.state = FileState.DELIVERED
        f.delivered_at = now
        f.last_error = None
        _end_never_sent_streak(session, f, "银行已恢复连接，文件已送达银行（系统自动关闭）", now)
        if ctx.profiles[f.bank_profile].is_api:
            f.next_poll_at = now + dt.timedelta(seconds=ctx.profiles[f.bank_profile].poll_seconds)
        f.lease_owner = None
        f.lease_until = None
        where = PaymentItem.outbound_file_id == f.id
        detail = {"file": f.file_name, "uploaded_now": uploaded}
        move_items(session, where, ItemEvent.DELIVER, owner, detail=detail, now=now)
        move_items(session, where, ItemEvent.CONFIRM_SENT, owner, detail=detail, now=now)
        batch = session.get(Batch, f.batch_id, with_for_update=True)
        if batch is not None and batch.state == BatchState.DISPATCHING:
            undelivered = session.scalar(
                select(OutboundFile.id)
                .where(
                    OutboundFile.batch_id == batch.id,
                    OutboundFile.state != FileState.DELIVERED,
                )
                .limit(1)
            )
            if undelivered is None:
                move_batch(session, batch, BatchEvent.ALL_DELIVERED, owner)
    log.info("dispatch.delivered", file=f.file_name, uploaded_now=uploaded)


def _retry_later(
    ctx: Context, file_id: int, owner: str, attempts: int, exc: Exception, *, unknown: bool
) -> None:
    """Try again later. ``unknown``: the attempt may have reached the bank (a planned file
    becomes unknown: inquire next time). Otherwise nothing of it reached the bank: the file
    keeps its state, see ``_never_sent_later``."""
    if not unknown:
        _never_sent_later(ctx, file_id, owner, exc)
        return
    s = ctx.settings
    with session_scope(ctx.sessions) as session:
        f = session.get(OutboundFile, file_id, with_for_update=True)
        if f is None or f.lease_owner != owner:
            return
        f.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        f.next_attempt_at = next_attempt_at(
            attempts,
            initial=s.retry_initial_seconds,
            maximum=s.retry_max_seconds,
            retry_after=exc.retry_after if isinstance(exc, TransportError) else None,
        )
        f.lease_owner = None
        f.lease_until = None
        _end_never_sent_streak(
            session, f, "已重新连接银行，但本次发送结果未知，系统将先查询银行（系统自动关闭）"
        )
        if f.state == FileState.PLANNED:
            f.state = FileState.UNKNOWN
            move_items(
                session,
                PaymentItem.outbound_file_id == f.id,
                ItemEvent.UPLOAD_UNKNOWN,
                owner,
                detail={"file": f.file_name, "error": f.last_error},
            )
    log.warning(
        "dispatch.retry_later",
        file_id=file_id,
        unknown=True,
        attempts=attempts,
        error=f"{type(exc).__name__}: {exc}",
    )


def _never_sent_later(ctx: Context, file_id: int, owner: str, exc: Exception) -> None:
    """Nothing of this attempt reached the bank (refused, DNS, handshake): the file keeps
    its state and its items stay where they are; it is tried again with backoff, for as
    long as it takes. The operator is told once a streak of such attempts reaches
    ``delivery_max_attempts``; past the bank's cut-off the work moves to the next business
    day and waits for it (the case says so)."""
    s = ctx.settings
    now = utcnow()
    error = f"{type(exc).__name__}: {exc}"[:2000]
    moved: tuple[dt.date, dt.date] | None = None
    with session_scope(ctx.sessions) as session:
        f = session.get(OutboundFile, file_id, with_for_update=True)
        if f is None or f.lease_owner != owner:
            return
        if f.state == FileState.UNKNOWN:
            f.inquiries = max(0, f.inquiries - 1)  # nothing was asked: no inquiry spent
        f.never_sent_streak += 1
        f.last_error = error
        f.next_attempt_at = next_attempt_at(
            f.never_sent_streak,
            initial=s.retry_initial_seconds,
            maximum=s.retry_max_seconds,
            retry_after=exc.retry_after if isinstance(exc, TransportError) else None,
        )
        f.lease_owner = None
        f.lease_until = None
        moved = _move_past_cutoff(ctx, session, f, now)
        if moved is not None:
            f.next_attempt_at = max(f.next_attempt_at, day_opens(moved[1]))
        if moved is not None or f.never_sent_streak == s.delivery_max_attempts:
            _tell_never_sent(session, f, error, moved)
        streak, state = f.never_sent_streak, str(f.state)
    log.warning(
        "dispatch.retry_later",
        file_id=file_id,
        unknown=False,
        state=state,
        never_sent_streak=streak,
        moved_to=moved[1].isoformat() if moved else None,
        error=error,
    )


def _move_past_cutoff(
    ctx: Context, session: Session, f: OutboundFile, now: dt.datetime
) -> tuple[dt.date, dt.date] | None:
    """Past the bank's cut-off for the batch's business day, the batch moves to the next
    business day by the calendar: ``(from, to)``, or None while its day still holds."""
    profile = ctx.profiles.get(f.bank_profile)
    day = session.scalar(select(Batch.dispatch_on).where(Batch.id == f.batch_id))
    if profile is None or day is None:
        return None
    try:
        later = moved_past_cutoff(day, now, profile.hours, ctx.calendar)
    except UnknownYearError as exc:
        # the calendar cannot say which day is next: keep trying, never guess a day
        log.error("dispatch.cutoff_unknown_year", file_id=f.id, year=exc.year)
        return None
    if later is None:
        return None
    session.execute(
        update(Batch)
        .where(Batch.id == f.batch_id, Batch.dispatch_on < later)
        .values(dispatch_on=later)
        .execution_options(synchronize_session=False)
    )
    log.warning(
        "dispatch.moved_to_next_business_day",
        file_id=f.id,
        batch_id=f.batch_id,
        from_day=day.isoformat(),
        to_day=later.isoformat(),
    )
    return day, later


def _never_sent_summary(state: str, moved_to: dt.date | None) -> str:
    text = NEVER_SENT_ZH
    if state == FileState.UNKNOWN:
        text += "；此前一次发送结果未知，恢复连接后先向银行查询，确认银行未收到才会发送"
    else:
        text += "；文件尚未送达银行，明细仍在待发送队列"
    if moved_to is not None:
        text += f"；已过银行截止时间，顺延至下一营业日{moved_to.isoformat()}发送"
    return text + "。银行恢复后自动发送，本事项自动关闭，无需重新发放"


def _tell_never_sent(
    session: Session, f: OutboundFile, error: str, moved: tuple[dt.date, dt.date] | None
) -> None:
    """Open the file's ``never_sent`` case, or bring the open one up to date (a move to
    another business day)."""
    note = f"{utcnow():%Y-%m-%d %H:%M:%S} UTC: {f.never_sent_streak} attempts in a row reached "
    note += f"nothing at the bank; last error: {error}"
    if moved is not None:
        note += f"; dispatch day moved from {moved[0].isoformat()} to {moved[1].isoformat()}"
    case = session.scalar(
        select(OperatorCase).where(
            OperatorCase.outbound_file_id == f.id,
            OperatorCase.kind == "never_sent",
            OperatorCase.state == "open",
        )
    )
    if case is None:
        session.add(
            OperatorCase(
                kind="never_sent",
                outbound_file_id=f.id,
                batch_id=f.batch_id,
                summary=_never_sent_summary(str(f.state), moved[1] if moved else None),
                evidence=note[:4000],
            )
        )
        log.error("dispatch.never_sent_case", file_id=f.id, attempts=f.never_sent_streak)
        return
    if moved is not None:
        case.summary = _never_sent_summary(str(f.state), moved[1])
    case.evidence = ((case.evidence or "") + "\n" + note)[-8000:]


def _end_never_sent_streak(
    session: Session, f: OutboundFile, resolution: str, now: dt.datetime | None = None
) -> None:
    """An attempt reached the bank: the streak of never-sent attempts ends, and its case (if
    one was opened) closes by itself, saying how."""
    if f.never_sent_streak == 0:
        return  # no case of this streak can be open
    f.never_sent_streak = 0
    closed = session.execute(
        update(OperatorCase)
        .where(
            OperatorCase.outbound_file_id == f.id,
            OperatorCase.kind == "never_sent",
            OperatorCase.state == "open",
        )
        .values(
            state="closed",
            closed_at=now or utcnow(),
            closed_by=SYSTEM_ACTOR,
            close_reason=resolution,
        )
        .execution_options(synchronize_session=False)
    )
    if int(closed.rowcount):  # type: ignore[attr-defined]
        log.info("dispatch.never_sent_case_closed", file_id=f.id)


def _open_case(session: Session, f: OutboundFile, kind: str, evidence: str | None) -> None:
    summaries = {
        "host_key": "银行SFTP服务器主机密钥与配置不符，已停止发送",
        "far_side_conflict": "银行服务器上已有同名但内容不同的文件，已停止发送",
        "outcome_unknown": "多次查询后仍无法确认文件是否送达银行",
        "never_sent": NEVER_SENT_ZH,
        "submission_rejected": "银行拒绝了整笔代发请求",
        "idempotency_conflict": "银行报告同一请求号已用于不同内容，已停止发送，请与银行核对",
        "bank_auth_refused": "银行拒绝了本系统的签名或客户号，请检查密钥配置后重新发送",
        "delivery_config_error": "发送配置错误（银行连接参数、密钥文件等），已停止发送；"
        "修正配置后请重新查询",
        "delivery_error": "发送时多次出现未分类的错误，无法确认文件是否送达银行，已停止发送",
    }
    session.add(
        OperatorCase(
            kind=kind,
            outbound_file_id=f.id,
            summary=summaries.get(kind, kind),
            evidence=evidence,
        )
    )


def _escalate(ctx: Context, file_id: int, owner: str, kind: str, evidence: str) -> None:
    with session_scope(ctx.sessions) as session:
        f = session.get(OutboundFile, file_id, with_for_update=True)
        if f is None or f.lease_owner != owner:
            return
        f.state = FileState.ESCALATED
        f.last_error = evidence[:2000]
        f.lease_owner = None
        f.lease_until = None
        _end_never_sent_streak(session, f, f"已转为其他待处理事项（{kind}），见新事项")
        _open_case(session, f, kind, evidence[:2000])
        _hold_items(session, f, owner, kind)
    log.error("dispatch.escalated", file_id=file_id, kind=kind, evidence=evidence)


def _hold_items(session: Session, f: OutboundFile, owner: str, kind: str) -> None:
    """An escalated file's undecided items go to ``operator_case`` (through ``unknown``:
    whether the bank has them is not known to us)."""
    where = PaymentItem.outbound_file_id == f.id
    move_items(session, where, ItemEvent.UPLOAD_UNKNOWN, owner, detail={"case": kind})
    move_items(session, where, ItemEvent.ESCALATE, owner, detail={"case": kind})


# --- re-inquiry (asked for by a person) -------------------------------------------------------


class ReinquiryRefusedError(ValueError):
    """The file cannot be inquired about again (``code`` says why)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# items a re-inquiry may concern: not with the bank for certain, and not decided
_UNDECIDED = (ItemState.QUEUED.value, ItemState.UNKNOWN.value, ItemState.OPERATOR_CASE.value)


@dataclasses.dataclass(frozen=True, slots=True)
class Reinquiry:
    """What a re-inquiry changed: the worker inquires at the bank on its next cycle.

    ``mode`` is ``delivery`` (the file goes back to the delivery step, which always looks
    at the far side / asks the bank first and uploads only a file the bank does not have)
    or ``status`` (an API bank is asked for the submission's status again)."""

    file_id: int
    mode: str
    from_state: str
    to_state: str


def request_reinquiry(
    ctx: Context, session: Session, file_id: int, actor: str, *, now: dt.datetime | None = None
) -> Reinquiry:
    """Ask the worker to inquire again about a file whose outcome is unknown, after the
    automatic inquiries gave up (an operator case) or before the next scheduled one.

    Nothing is sent from here: the file is put back where the worker's own inquiry logic
    picks it up, with a fresh inquiry budget — ``deliver_one`` looks at the far side (asks
    an API bank) before anything else and uploads only a file the bank does not have;
    ``poll_api_profile`` asks an API bank for a delivered submission's status. Refused
    while a worker holds the file, and for an undelivered file once any of its items has
    an outcome (the bank evidently has the file: its results settle the rest)."""
    now = now or utcnow()
    f = session.get(OutboundFile, file_id, with_for_update=True)
    if f is None:
        raise ReinquiryRefusedError("file_not_found", f"outbound file {file_id} does not exist")
    if f.lease_until is not None and f.lease_until > now:
        raise ReinquiryRefusedError("file_busy", "a worker is working on this file right now")
    source = str(f.state)
    if f.state == FileState.DELIVERED:
        profile = ctx.profiles.get(f.bank_profile)
        if profile is None or not profile.is_api:
            raise ReinquiryRefusedError(
                "results_polled",
                "the file is on the bank's side; its result files are collected every cycle",
            )
        f.next_poll_at = now
        f.poll_hints += 1  # an inquiry already on its way does not push this one back
        f.polls = 0
        mode = "status"
    elif f.state in {FileState.ESCALATED, FileState.UNKNOWN, FileState.PLANNED}:
        decided = session.scalar(
            select(PaymentItem.id)
            .where(PaymentItem.outbound_file_id == f.id, PaymentItem.state.not_in(_UNDECIDED))
            .limit(1)
        )
        if decided is not None:
            raise ReinquiryRefusedError(
                "items_decided", "items of this file already have an outcome from the bank"
            )
        if f.state == FileState.ESCALATED:
            maybe_sent = session.scalar(
                select(PaymentItem.id)
                .where(
                    PaymentItem.outbound_file_id == f.id,
                    PaymentItem.state != ItemState.QUEUED.value,
                )
                .limit(1)
            )
            # an upload may have landed: unknown (inquire first); else never sent: planned
            f.state = FileState.UNKNOWN if maybe_sent is not None else FileState.PLANNED
            f.inquiries = 0
        f.next_attempt_at = now
        mode = "delivery"
    else:
        raise ReinquiryRefusedError(
            "not_inquirable", f"a file in state {f.state!r} is not inquired about again"
        )
    f.last_error = f"re-inquiry requested by {actor} (was {source}); {f.last_error or ''}"[:2000]
    log.info("dispatch.reinquiry_requested", file_id=f.id, mode=mode, actor=actor)
    return Reinquiry(file_id=f.id, mode=mode, from_state=source, to_state=str(f.state))
