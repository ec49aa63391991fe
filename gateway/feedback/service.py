"""Feedback (回盘): take the bank's result files, verify, record, apply.

Per bank profile, one worker at a time (a named lease) lists the bank's outbox. Each
result file is downloaded, recorded **by content hash** (a file processed twice changes
nothing), its detached signature verified with the bank's key, parsed, and applied in one
transaction. A file is known by its content, not by its name or size: a new version of a
known name (the bank re-publishes it) is read and applied by the same rules, and when it
is valid the cases opened for a refused earlier version of that name close by themselves
(``poll_profile`` says when a name is read again):

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.batches.models import Batch, ItemEventRecord, PaymentItem
from gateway.context import Context
from gateway.dispatch.models import OutboundFile
from gateway.feedback.models import (
    AccountEntryRecord,
    InboundFile,
    ItemResult,
    OperatorCase,
    OutboxEntry,
)
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
    AccountEntry,
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
from gateway.rework import audit

log = get_logger(__name__)


#: A version read this long ago (our clock) has its ``.sig`` read once more: SFTP times are
#: whole seconds, so a rewrite in the same second with the same size shows only in the bytes
#: (and such a rewrite can only come within a second of our read).
SETTLE_SECONDS: Final = 2.0


@dataclass
class PollOutcome:
    files_seen: int = 0  # files downloaded: new names, changed listings, settle re-reads
    files_applied: int = 0
    files_rejected: int = 0
    results_applied: int = 0
    signatures_checked: int = 0  # .sig files read once more to settle a version


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the gateway last saw of one outbox name (an ``OutboxEntry``, detached), with the
    state and the signature of the version it read there."""

    id: int
    size: int
    mtime: int | None
    sig_size: int
    sig_mtime: int | None
    sha256: str
    signature_sha256: str | None
    read_at: dt.datetime
    settled: bool
    version_state: str | None
    version_signature: str | None

    def pair_ok(self) -> bool:
        """The last read found a version that was applied, with the very .sig it was
        judged with (not a .sig written between our two reads)."""
        return (
            self.version_state == "applied"
            and self.signature_sha256 is not None
            and self.signature_sha256 == self.version_signature
        )


@dataclass(frozen=True, slots=True)
class _Taken:
    """What taking one file's bytes came to: ``seen`` (this version is recorded already, or
    is still refused under this signature), ``applied`` or ``rejected``."""

    inbound_id: int | None
    outcome: str
    applied: int = 0


def _look_again(seen: _Seen | None, remote: RemoteFile, sig: RemoteFile, now: dt.datetime) -> str:
    """Why to read a listed name: ``new``, ``changed`` (the listing of the file or of its
    .sig differs from the last read), ``settle`` (read its .sig once more), or ``""``."""
    if seen is None:
        return "new"
    if (seen.size, seen.mtime, seen.sig_size, seen.sig_mtime) != (
        remote.size,
        remote.mtime,
        sig.size,
        sig.mtime,
    ):
        return "changed"
    if remote.mtime is None or sig.mtime is None:
        return "settle"  # a server without times: the tiny .sig at every poll
    if not seen.settled and (now - seen.read_at).total_seconds() >= SETTLE_SECONDS:
        return "settle"
    return ""


def _last_seen(ctx: Context, profile: str, names: Sequence[str]) -> dict[str, _Seen]:
    out: dict[str, _Seen] = {}
    with ctx.sessions() as session:
        for start in range(0, len(names), 1000):
            rows = session.execute(
                select(OutboxEntry, InboundFile.state, InboundFile.signature_sha256)
                .outerjoin(InboundFile, InboundFile.id == OutboxEntry.inbound_file_id)
                .where(
                    OutboxEntry.bank_profile == profile,
                    OutboxEntry.file_name.in_(names[start : start + 1000]),
                )
            )
            for e, state, signature in rows:
                out[e.file_name] = _Seen(
                    id=e.id,
                    size=e.size,
                    mtime=e.mtime,
                    sig_size=e.sig_size,
                    sig_mtime=e.sig_mtime,
                    sha256=e.sha256,
                    signature_sha256=e.signature_sha256,
                    read_at=e.read_at,
                    settled=e.settled,
                    version_state=state,
                    version_signature=signature,
                )
    return out


def _remember(
    ctx: Context,
    profile: str,
    name: str,
    remote: RemoteFile,
    sig: RemoteFile,
    *,
    sha: str,
    signature_sha: str,
    inbound_id: int | None,
    read_at: dt.datetime,
    settled: bool,
) -> None:
    """Record what was read under ``name`` (one row per name, replaced each read)."""
    values: dict[str, Any] = {
        "size": remote.size,
        "mtime": remote.mtime,
        "sig_size": sig.size,
        "sig_mtime": sig.mtime,
        "sha256": sha,
        "signature_sha256": signature_sha,
        "read_at": read_at,
        "settled": settled,
    }
    if inbound_id is not None:
        values["inbound_file_id"] = inbound_id
    where = (OutboxEntry.bank_profile == profile) & (OutboxEntry.file_name == name)
    for _ in range(2):
        try:
            with session_scope(ctx.sessions) as session:
                done = session.execute(
                    update(OutboxEntry)
                    .where(where)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                if int(done.rowcount) == 0:  # type: ignore[attr-defined]
                    session.add(OutboxEntry(bank_profile=profile, file_name=name, **values))
            return
        except IntegrityError:
            continue  # another worker recorded the name first: update it


def _settled(ctx: Context, entry_id: int) -> None:
    with session_scope(ctx.sessions) as session:
        session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id == entry_id)
            .values(settled=True)
            .execution_options(synchronize_session=False)
        )


def poll_profile(ctx: Context, profile: BankProfile, owner: str) -> PollOutcome:
    """List the bank's outbox and take every version of a file not yet recorded.

    A file is known by its content: a version is recorded once by the hash of its bytes,
    whatever its name or size. The listing only says when to read a name again (so the
    outbox is not downloaded at every poll): a name never read, or whose size or
    modification time, or those of its ``.sig``, differ from the last read; and once, at
    least ``SETTLE_SECONDS`` after a read, its ``.sig`` bytes (tiny) — the file itself too
    when they differ or when the version read was rejected — because SFTP times are whole
    seconds. A server that gives no times has the ``.sig`` read at every poll."""
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
            last = _last_seen(ctx, profile.name, names)
            for name in names:
                remote: RemoteFile = listing[name]
                sig_remote = listing[fmt.signature_name(name)]
                seen = last.get(name)
                now = utcnow()
                why = _look_again(seen, remote, sig_remote, now)
                if not why:
                    continue
                if why == "settle":
                    assert seen is not None  # noqa: S101 (settle only follows a read)
                    out.signatures_checked += 1
                    again = hashlib.sha256(t.get(profile.outbox, fmt.signature_name(name)))
                    if seen.pair_ok() and again.hexdigest() == seen.signature_sha256:
                        if not seen.settled:
                            _settled(ctx, seen.id)
                        continue
                out.files_seen += 1
                data = t.get(profile.outbox, name)
                signature = t.get(profile.outbox, fmt.signature_name(name))
                if isinstance(fmt, AccountNoticeFormat) and fmt.is_account_notice_name(name):
                    taken = _take_account_notice(ctx, profile, name, data, signature, owner)
                else:
                    taken = _take_result_file(ctx, profile, name, data, signature, owner)
                    if taken.outcome == "applied":
                        out.files_applied += 1
                        out.results_applied += taken.applied
                    elif taken.outcome == "rejected":
                        out.files_rejected += 1
                sha = hashlib.sha256(data).hexdigest()
                signature_sha = hashlib.sha256(signature).hexdigest()
                unchanged = seen is not None and (sha, signature_sha) == (
                    seen.sha256,
                    seen.signature_sha256,
                )
                _remember(
                    ctx,
                    profile.name,
                    name,
                    remote,
                    sig_remote,
                    sha=sha,
                    signature_sha=signature_sha,
                    inbound_id=taken.inbound_id,
                    # a settle re-read that found the same bytes: nothing came since
                    read_at=seen.read_at if why == "settle" and unchanged and seen else now,
                    settled=why == "settle" and unchanged,
                )
    except AdapterError as exc:
        log.warning(
            "feedback.poll_failed", profile=profile.name, error=f"{type(exc).__name__}: {exc}"
        )
    finally:
        with session_scope(ctx.sessions) as session:
            release_job(session, job, owner)
    return out


def _known(ctx: Context, profile: str, sha: str) -> Any:
    """(id, state, signature_sha256) of the version with these bytes, or None."""
    with ctx.sessions() as session:
        return session.execute(
            select(InboundFile.id, InboundFile.state, InboundFile.signature_sha256).where(
                InboundFile.bank_profile == profile, InboundFile.sha256 == sha
            )
        ).first()


def _version(
    session: Session, known: Any, values: dict[str, Any], error: str | None
) -> InboundFile | None:
    """The ``InboundFile`` to record a version in: a new row, or (``known``) the row of a
    version rejected before under another signature, now judged again. None when another
    worker recorded or judged it meanwhile."""
    if known is None:
        inbound = InboundFile(**values, state="rejected" if error else "applied", error=error)
        session.add(inbound)
        session.flush()
        return inbound
    row = session.get(InboundFile, known.id, with_for_update=True)
    if row is None or row.state != "rejected" or error is not None:
        return None
    # rejected under one signature, verified under this one: the version is applied now
    # (its earlier refusal stays in its operator case's evidence)
    for key in ("signature_sha256", "batch_serial", "item_count"):
        if key in values:
            setattr(row, key, values[key])
    row.state, row.error = "applied", None
    return row


def entry_record(bank_profile: str, inbound_id: int, e: AccountEntry) -> AccountEntryRecord:
    """The row recording one booked entry of the payer account, as the bank notified it."""
    return AccountEntryRecord(
        bank_profile=bank_profile,
        inbound_file_id=inbound_id,
        account=e.account,
        amount_fen=e.amount_fen,
        direction=e.direction,
        booked_on=e.booked_on,
        bank_ref=e.bank_ref,
        batch_serial=e.batch_serial,
        file_no=e.file_no,
        details=[[serial, fen] for serial, fen in e.details],
        entry_id=e.entry_id,
    )


def return_outcomes(entries: Sequence[AccountEntry], code: str | None = None) -> list[Outcome]:
    """The items that credit entries give back (退票), once per serial, under the bank code
    ``code`` (default: the entry's own return code, else ``RETURN``)."""
    out: dict[str, Outcome] = {}
    for e in entries:
        if e.direction != "credit":
            continue
        for serial, fen in e.details:
            out.setdefault(
                serial,
                Outcome(
                    serial=serial,
                    status="returned",
                    bank_code=code or e.reason_code or "RETURN",
                    bank_message="退票",
                    amount_fen=fen,
                    bank_ref=e.bank_ref,
                    processed_at=None,
                ),
            )
    return list(out.values())


_EntryFact = tuple[str, int, str, dt.date, str, tuple[tuple[str, int], ...]]


def _entry_fact(
    account: str,
    amount_fen: int,
    direction: str,
    booked_on: dt.date,
    bank_ref: str,
    details: Iterable[Sequence[Any]] | None,
) -> _EntryFact:
    """What makes two notified entries the same booking."""
    items = tuple(sorted((str(serial), int(fen)) for serial, fen in details or ()))
    return (account, amount_fen, direction, booked_on, bank_ref, items)


def _entries_of_earlier_versions(
    session: Session, bank_profile: str, file_name: str, inbound_id: int
) -> list[_EntryFact]:
    """The entries recorded from earlier applied versions of the notice ``file_name`` (a
    bank re-publishing a notice under the same name), as a multiset of facts."""
    rows = session.execute(
        select(
            AccountEntryRecord.account,
            AccountEntryRecord.amount_fen,
            AccountEntryRecord.direction,
            AccountEntryRecord.booked_on,
            AccountEntryRecord.bank_ref,
            AccountEntryRecord.details,
        )
        .join(InboundFile, InboundFile.id == AccountEntryRecord.inbound_file_id)
        .where(
            InboundFile.bank_profile == bank_profile,
            InboundFile.kind == "account_notice",
            InboundFile.file_name == file_name,
            InboundFile.id != inbound_id,
        )
    ).all()
    return [_entry_fact(*row) for row in rows]


def take_account_notice(
    ctx: Context, profile: BankProfile, name: str, data: bytes, signature: bytes, actor: str
) -> int | None:
    """Record a payer-account notification (camt.054) as facts for reconciliation. A credit
    entry naming items (money that came back: 退票) bounces those items. A new version of a
    notice (same name, other bytes) records only the bookings the earlier versions did not
    have. Returns the number of entries recorded, -1 when refused, None when seen before."""
    taken = _take_account_notice(ctx, profile, name, data, signature, actor)
    if taken.outcome == "seen":
        return None
    return taken.applied if taken.outcome == "applied" else -1


def _take_account_notice(
    ctx: Context, profile: BankProfile, name: str, data: bytes, signature: bytes, actor: str
) -> _Taken:
    fmt = profile.format
    assert isinstance(fmt, AccountNoticeFormat)  # noqa: S101 (only called for such formats)
    sha = hashlib.sha256(data).hexdigest()
    signature_sha = hashlib.sha256(signature).hexdigest()
    known = _known(ctx, profile.name, sha)
    if known is not None and (known.state != "rejected" or known.signature_sha256 == signature_sha):
        return _Taken(known.id, "seen")
    error: str | None = None
    notice: AccountNotice | None = None
    try:
        profile.signer.verify(data, signature)
        notice = fmt.parse_account_notice(data)
    except (SignatureError, FormatError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    if known is not None and error is not None:
        return _Taken(known.id, "seen")  # still refused: nothing new
    try:
        with session_scope(ctx.sessions) as session:
            inbound = _version(
                session,
                known,
                {
                    "bank_profile": profile.name,
                    "kind": "account_notice",
                    "file_name": name,
                    "sha256": sha,
                    "size": len(data),
                    "signature_sha256": signature_sha,
                    "item_count": len(notice.entries) if notice else 0,
                },
                error,
            )
            if inbound is None:
                return _Taken(known.id if known else None, "seen")
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
                return _Taken(inbound.id, "rejected")
            fresh: list[AccountEntry] = []
            earlier = _entries_of_earlier_versions(session, profile.name, name, inbound.id)
            for e in notice.entries:
                fact = _entry_fact(
                    e.account, e.amount_fen, e.direction, e.booked_on, e.bank_ref, e.details
                )
                if fact in earlier:
                    # a new version of this notice repeats this booking: it was recorded from
                    # an earlier version and is the same booking, not a second one (a
                    # booking changed in any way is recorded, and reconciliation flags it)
                    earlier.remove(fact)
                    continue
                fresh.append(e)
                session.add(entry_record(profile.name, inbound.id, e))
            recorded = len(fresh)
            returns = return_outcomes(fresh, "RETURN")  # the profile maps RETURN to bounced
            session.flush()
            if returns:
                inbound.applied_count = apply_outcomes(
                    session, ctx.pii, profile, inbound, returns, actor
                )
            _close_file_cases(session, profile, name, inbound, actor)
    except IntegrityError:
        return _Taken(None, "seen")
    log.info("feedback.notice_recorded", file=name, entries=len(notice.entries), recorded=recorded)
    return _Taken(inbound.id, "applied", recorded)


def take_result_file(
    ctx: Context, profile: BankProfile, name: str, data: bytes, signature: bytes, actor: str
) -> int | None:
    """Record and apply one result file. Returns the number of results applied, -1 when the
    file was rejected (bad signature or format), None when this exact file was seen before
    (or is still refused under this signature)."""
    taken = _take_result_file(ctx, profile, name, data, signature, actor)
    if taken.outcome == "seen":
        return None
    return taken.applied if taken.outcome == "applied" else -1


def _take_result_file(
    ctx: Context, profile: BankProfile, name: str, data: bytes, signature: bytes, actor: str
) -> _Taken:
    """A version is recorded once by its bytes' hash. A version rejected before is judged
    again only when it comes with another signature (a .sig written after the file)."""
    sha = hashlib.sha256(data).hexdigest()
    signature_sha = hashlib.sha256(signature).hexdigest()
    known = _known(ctx, profile.name, sha)
    if known is not None and (known.state != "rejected" or known.signature_sha256 == signature_sha):
        return _Taken(known.id, "seen")
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
    if known is not None and error is not None:
        return _Taken(known.id, "seen")  # still refused: nothing new, no second case
    try:
        with session_scope(ctx.sessions) as session:
            inbound = _version(
                session,
                known,
                {
                    "bank_profile": profile.name,
                    "file_name": name,
                    "sha256": sha,
                    "size": len(data),
                    "signature_sha256": signature_sha,
                    "batch_serial": parsed.batch_serial if parsed else None,
                    "item_count": len(parsed.items) if parsed else 0,
                },
                error,
            )
            if inbound is None:
                return _Taken(known.id if known else None, "seen")
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
                return _Taken(inbound.id, "rejected")
            applied = _apply(session, ctx.pii, profile, inbound, parsed, actor)
            inbound.applied_count = applied
            _close_file_cases(session, profile, name, inbound, actor)
    except IntegrityError:
        # another worker recorded the same file first
        return _Taken(None, "seen")
    log.info(
        "feedback.file_applied",
        file=name,
        results=len(parsed.items),
        applied=applied,
        version="again" if known is not None else "new",
    )
    return _Taken(inbound.id, "applied", applied)


_AUTO_CLOSE_REASON = (
    "银行重新发布的同名文件 {name} 已通过签名与格式校验并处理，相关明细已按银行结果更新，"
    "无需人工处理（系统自动关闭）"
)


def _close_file_cases(
    session: Session, profile: BankProfile, name: str, inbound: InboundFile, actor: str
) -> None:
    """A valid version of a file arrived: the ``result_file_invalid`` cases opened for
    versions of that name refused before (tampered, broken, a .sig not yet rewritten) close
    by themselves — once no item of the request file they escalated is still waiting in
    ``operator_case`` (the valid version settled them by the usual rules). Audited."""
    earlier = select(InboundFile.id).where(
        InboundFile.bank_profile == profile.name, InboundFile.file_name == name
    )
    cases = session.scalars(
        select(OperatorCase)
        .where(
            OperatorCase.kind == "result_file_invalid",
            OperatorCase.state == "open",
            OperatorCase.inbound_file_id.in_(earlier),
        )
        .with_for_update()
    ).all()
    now = utcnow()
    reason = _AUTO_CLOSE_REASON.format(name=name)
    for case in cases:
        if case.outbound_file_id is not None and session.scalar(
            select(PaymentItem.id)
            .where(
                PaymentItem.outbound_file_id == case.outbound_file_id,
                PaymentItem.state == ItemState.OPERATOR_CASE,
            )
            .limit(1)
        ):
            continue
        case.state, case.closed_at, case.closed_by = "closed", now, actor[:64]
        case.close_reason = reason
        audit.record(
            session,
            actor=actor,
            action="case.auto_close",
            target_type="operator_case",
            target_id=case.id,
            reason=reason,
            detail={"kind": case.kind, "inbound_file_id": inbound.id, "batch_id": case.batch_id},
        )
        log.info("feedback.case_closed_by_new_version", case_id=case.id, file=name)


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
