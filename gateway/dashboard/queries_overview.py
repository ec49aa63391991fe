"""The SQL behind the overview, batch, item and person pages.

Aggregates are grouped in the database (``GROUP BY``); no query loads every item of a batch
or of a month. Rows are kept within the viewer's regions through the batch they belong to
(a join to ``batches`` only when the viewer is scoped: an auditor's counts need none).
Encrypted personal data is never selected here: pages show the ``*_masked`` columns, and
only the unmask page decrypts (``item_clear``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.orm import Session

from gateway.batches.models import Batch, BatchError, BatchEventRecord, ItemEventRecord, PaymentItem
from gateway.context import Context
from gateway.dashboard.web import (
    Page,
    Viewer,
    china_day_start_utc,
    parse_day,
    region_clause,
)
from gateway.dispatch.calendar import UnknownYearError, dispatch_day
from gateway.dispatch.models import OutboundFile
from gateway.feedback.models import InboundFile, ItemResult, OperatorCase
from gateway.feedback.reasons import reason
from gateway.kit.clock import CHINA
from gateway.notifications.models import SmsNotice
from gateway.payments.states import BatchState, FileState, ItemState
from gateway.reconciliation.matching import UNRESOLVED, DiscrepancyState, DiscrepancyType
from gateway.reconciliation.models import Discrepancy
from gateway.rework.models import (
    CorrectionList,
    CorrectionListItem,
    TreasuryRefund,
    TreasuryRefundItem,
)

# --- how operators group item states ----------------------------------------------------------

GROUPS = ("paid", "failed", "pending", "closed")
_GROUP_OF = {
    ItemState.PAID: "paid",
    ItemState.FAILED: "failed",
    ItemState.BOUNCED: "failed",
    ItemState.RETURNED: "failed",
    ItemState.ACCEPTED: "pending",
    ItemState.QUEUED: "pending",
    ItemState.SENT: "pending",
    ItemState.UNKNOWN: "pending",
    ItemState.OPERATOR_CASE: "pending",
    # replaced by a re-issue, refunded to the treasury, cancelled: nothing more to pay
    ItemState.REISSUED: "closed",
    ItemState.REFUNDED: "closed",
    ItemState.CANCELLED: "closed",
}
GROUP_LABELS = {
    "paid": ("已支付", "paid"),
    "failed": ("失败", "failed"),
    "pending": ("处理中", "pending"),
    "closed": ("已重发/退库/取消", "re-issued / refunded / cancelled"),
}
OPEN_OUTCOMES = (ItemState.UNKNOWN.value, ItemState.OPERATOR_CASE.value)


def item_group(state: str) -> str:
    try:
        return _GROUP_OF[ItemState(state)]
    except ValueError:
        return "pending"


# --- labels of recorded events, case kinds and SMS states ------------------------------------

EVENT_LABELS: dict[str, tuple[str, str]] = {
    # batch events
    "receive": ("接收批次", "received"),
    "reject": ("校验未通过，拒绝", "rejected"),
    "accept": ("受理", "accepted"),
    "plan": ("生成银行文件", "bank file planned"),
    "all_delivered": ("全部送达银行", "all delivered to the bank"),
    "all_final": ("全部明细已有结果", "every item final"),
    "unsendable": ("无法生成银行文件，未发送", "bank file could not be made; not sent"),
    "reconcile": ("对账完成", "reconciled"),
    # item events
    "deliver": ("送达银行", "delivered to the bank"),
    "upload_unknown": ("上传结果未知", "upload outcome unknown"),
    "confirm_sent": ("查询确认已送达", "confirmed delivered"),
    "confirm_unsent": ("查询确认未送达", "confirmed not delivered"),
    "escalate": ("转人工处理", "escalated to an operator"),
    "file_rejected": ("银行拒收文件", "file rejected by the bank"),
    "result_paid": ("银行回盘：成功", "bank result: paid"),
    "result_failed": ("银行回盘：失败", "bank result: failed"),
    "operator_paid": ("人工确认：成功", "operator confirmed: paid"),
    "operator_failed": ("人工确认：失败", "operator confirmed: failed"),
    "bounce": ("退票", "returned after payment"),
    "return": ("退回修改", "returned for correction"),
    "reissue": ("重新发放", "re-issued"),
    "refund": ("退回国库", "refunded to the treasury"),
    "cancel": ("取消", "cancelled"),
}

CASE_KINDS: dict[str, tuple[str, str]] = {
    "outcome_unknown": ("文件是否送达无法确认", "delivery cannot be confirmed"),
    "never_sent": ("无法连接银行", "bank unreachable"),
    "host_key": ("银行主机密钥不符", "bank host key mismatch"),
    "far_side_conflict": ("银行端同名文件内容不同", "different file of that name at the bank"),
    "submission_rejected": ("银行拒绝代发请求", "submission rejected"),
    "idempotency_conflict": ("请求号冲突", "idempotency conflict"),
    "bank_auth_refused": ("银行拒绝签名或客户号", "bank refused our credentials"),
    "bank_lost_submission": ("银行称未收到已受理请求", "bank lost an acknowledged submission"),
    "inquiry_malformed": ("银行查询应答不合规范", "malformed inquiry answers"),
    "result_file_invalid": ("回盘文件校验失败", "result file failed verification"),
    "unknown_serial": ("回盘含未发送流水号", "result for a serial never sent"),
    "result_mismatch": ("回盘金额或账号不符", "result differs from what was sent"),
    "conflicting_result": ("结果前后矛盾", "conflicting results"),
    "calendar_unknown_year": ("工作日历缺少年份", "calendar year missing"),
    "request_unrenderable": ("批次数据无法写入银行文件", "batch data cannot be written"),
    "dispatch_config_error": ("银行配置错误，无法生成银行文件", "bank file could not be made"),
    "delivery_config_error": ("发送配置错误", "delivery configuration broken"),
    "delivery_error": ("发送多次出错", "delivery kept failing"),
}

SMS_GROUPS = ("delivered", "sent", "failed", "pending", "skipped")
_SMS_GROUP_OF = {
    "delivered": "delivered",
    "sent": "sent",
    "failed": "failed",
    "rejected": "failed",
    "gave_up": "failed",
    "pending": "pending",
    "sending": "pending",
    "unknown": "pending",
    "skipped": "skipped",
}
SMS_LABELS: dict[str, tuple[str, str]] = {
    "delivered": ("已送达", "delivered"),
    "sent": ("已发出待回执", "sent, awaiting receipt"),
    "failed": ("发送失败", "failed"),
    "rejected": ("被拒", "rejected"),
    "gave_up": ("放弃", "gave up"),
    "pending": ("待发送", "pending"),
    "sending": ("发送中", "sending"),
    "unknown": ("结果未知", "unknown"),
    "skipped": ("未发送", "skipped"),
}
FILE_STATE_LABELS: dict[str, tuple[str, str]] = {
    FileState.PLANNED: ("待发送", "planned"),
    FileState.UNKNOWN: ("送达未知", "unknown"),
    FileState.DELIVERED: ("已送达", "delivered"),
    FileState.REJECTED: ("被拒收", "rejected"),
    FileState.ESCALATED: ("已转人工", "escalated"),
    "applied": ("已处理", "applied"),
}
CASE_STATES: dict[str, tuple[str, str]] = {
    "open": ("待处理", "open"),
    "closed": ("已关闭", "closed"),
}
REFUND_STATES: dict[str, tuple[str, str]] = {
    "proposed": ("待复核", "proposed"),
    "approved": ("已批准", "approved"),
    "rejected": ("已驳回", "rejected"),
}
RESULT_STATUSES: dict[str, tuple[str, str]] = {
    "paid": ("成功", "paid"),
    "failed": ("失败", "failed"),
    "returned": ("退票", "returned"),
}
DISPOSITIONS: dict[str, tuple[str, str]] = {
    "applied": ("已采纳", "applied"),
    "duplicate": ("重复，未改变", "duplicate"),
    "conflict": ("与先前结果矛盾，未采纳", "conflict, not applied"),
    "unknown_item": ("未发送的流水号", "unknown serial"),
    "mismatch": ("金额或账号不符，未采纳", "mismatch, not applied"),
}
INBOUND_KINDS: dict[str, tuple[str, str]] = {
    "result": ("回盘文件", "result file"),
    "account_notice": ("账户通知", "account notice"),
    "api_status": ("接口状态应答", "API status"),
    "account_movements": ("账户明细", "account movements"),
}


def label(table: dict[str, tuple[str, str]], key: str | None, lang: str) -> str:
    """The Chinese (or English) label of ``key`` in ``table``; the key itself if unknown."""
    if key is None:
        return "-"
    found = table.get(key)
    if found is None:
        return key
    return found[1] if lang == "en" else found[0]


# --- small value types -------------------------------------------------------------------------


@dataclass
class Tally:
    count: int = 0
    fen: int = 0

    def add(self, count: int, fen: int) -> None:
        self.count += count
        self.fen += fen


AnySelect = Select[*tuple[Any, ...]]


def within(stmt: AnySelect, viewer: Viewer) -> AnySelect:
    """Keep rows of batches in the viewer's regions (``batches`` is already joined)."""
    clause = region_clause(viewer, Batch.region_code)
    return stmt if clause is None else stmt.where(clause)


def batch_ids(viewer: Viewer, *where: ColumnElement[bool]) -> AnySelect:
    """The ids of the viewer's batches matching ``where``: filter items by ``batch_id IN``
    this (the planner then starts from the batches' index, not from every item ever)."""
    return within(select(Batch.id).where(*where), viewer)


def in_scope(stmt: AnySelect, viewer: Viewer, onclause: ColumnElement[bool]) -> AnySelect:
    """Keep rows whose batch (reached by ``onclause``) is in the viewer's regions."""
    clause = region_clause(viewer, Batch.region_code)
    if clause is None:
        return stmt
    return stmt.join(Batch, onclause).where(clause)


def _percent(part: int, whole: int) -> int:
    return 0 if whole <= 0 else max(1 if part else 0, round(100 * part / whole))


# --- the overview ------------------------------------------------------------------------------


@dataclass
class ReasonBar:
    code: str
    zh: str
    en: str
    count: int
    fen: int
    width: int  # 0..100, relative to the most frequent reason


@dataclass
class BankHealth:
    name: str
    display_name: str
    kind: str
    last_delivered: dt.datetime | None
    last_applied: dt.datetime | None
    unknown: int
    operator_case: int
    cutoff: dt.time | None
    every_day: bool
    working_today: bool | None  # None: the calendar does not know this year
    minutes_to_cutoff: int | None  # None: no cut-off, or not a working day
    dispatch_on: dt.date | None  # the business day a batch received now goes out

    @property
    def open_outcomes(self) -> int:
        return self.unknown + self.operator_case


@dataclass
class Overview:
    today: dt.date
    month_start: dt.date
    batches_today: dict[str, int]
    batches_month: dict[str, int]
    items: dict[str, Tally]
    items_by_state: list[tuple[str, Tally]]
    reasons: list[ReasonBar]
    banks: list[BankHealth]
    discrepancies: list[tuple[str, int, int]]  # type, open, explained
    cases: list[tuple[str, int]]
    sms: dict[str, int]

    @property
    def discrepancy_total(self) -> int:
        return sum(o + e for _, o, e in self.discrepancies)

    @property
    def case_total(self) -> int:
        return sum(n for _, n in self.cases)

    @property
    def sms_total(self) -> int:
        return sum(self.sms.values())


def overview(session: Session, ctx: Context, viewer: Viewer, now: dt.datetime) -> Overview:
    """Everything the overview shows; ``now`` is aware (any zone) or naive UTC."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    today = now.astimezone(CHINA).date()
    month_start = today.replace(day=1)
    since_today = china_day_start_utc(today)
    since_month = china_day_start_utc(month_start)
    this_month = Batch.received_at >= since_month

    batches_today: dict[str, int] = {}
    batches_month: dict[str, int] = {}
    stmt: AnySelect = (
        select(
            Batch.state,
            func.count(),
            func.sum(case((Batch.received_at >= since_today, 1), else_=0)),
        )
        .where(this_month)
        .group_by(Batch.state)
    )
    for state, n, n_today in session.execute(within(stmt, viewer)):
        batches_month[state] = int(n)
        if n_today:
            batches_today[state] = int(n_today)

    items = {g: Tally() for g in GROUPS}
    by_state: dict[str, Tally] = {}
    stmt = (
        select(PaymentItem.state, func.count(), func.coalesce(func.sum(PaymentItem.amount_fen), 0))
        .where(PaymentItem.batch_id.in_(batch_ids(viewer, this_month)))
        .group_by(PaymentItem.state)
    )
    for state, n, fen in session.execute(stmt):
        items[item_group(state)].add(int(n), int(fen))
        by_state[state] = Tally(int(n), int(fen))
    order = [s.value for s in ItemState]
    items_by_state = sorted(by_state.items(), key=lambda kv: order.index(kv[0]))

    stmt = (
        select(
            PaymentItem.reason_code,
            func.count(),
            func.coalesce(func.sum(PaymentItem.amount_fen), 0),
        )
        .where(
            PaymentItem.batch_id.in_(batch_ids(viewer, this_month)),
            PaymentItem.reason_code.is_not(None),
        )
        .group_by(PaymentItem.reason_code)
    )
    rows = [(str(c), int(n), int(f)) for c, n, f in session.execute(stmt)]
    top = max((n for _, n, _ in rows), default=0)
    reasons = [
        ReasonBar(code, reason(code).zh, reason(code).en, n, fen, _percent(n, top))
        for code, n, fen in sorted(rows, key=lambda r: (-r[1], r[0]))
    ]

    return Overview(
        today=today,
        month_start=month_start,
        batches_today=batches_today,
        batches_month=batches_month,
        items=items,
        items_by_state=items_by_state,
        reasons=reasons,
        banks=bank_health(session, ctx, viewer, now),
        discrepancies=open_discrepancies(session, viewer),
        cases=open_cases(session, viewer),
        sms=sms_of_month(session, viewer, since_month),
    )


def bank_health(
    session: Session, ctx: Context, viewer: Viewer, now: dt.datetime
) -> list[BankHealth]:
    """Per bank profile: the last successful exchange each way, items whose outcome is
    open, and today's cut-off."""
    delivered = {
        str(p): at
        for p, at in session.execute(
            in_scope(
                select(OutboundFile.bank_profile, func.max(OutboundFile.delivered_at))
                .where(OutboundFile.state == FileState.DELIVERED.value)
                .group_by(OutboundFile.bank_profile),
                viewer,
                Batch.id == OutboundFile.batch_id,
            )
        )
    }
    applied = {
        str(p): at
        for p, at in session.execute(
            in_scope(
                select(InboundFile.bank_profile, func.max(InboundFile.received_at))
                .where(InboundFile.state == "applied")
                .group_by(InboundFile.bank_profile),
                viewer,
                Batch.serial == InboundFile.batch_serial,
            )
        )
    }
    open_items: dict[tuple[str, str], int] = {}
    stmt: AnySelect = (
        select(Batch.bank_profile, PaymentItem.state, func.count())
        .join(Batch, Batch.id == PaymentItem.batch_id)
        .where(PaymentItem.state.in_(OPEN_OUTCOMES))
        .group_by(Batch.bank_profile, PaymentItem.state)
    )
    for profile, state, n in session.execute(within(stmt, viewer)):
        open_items[(str(profile), str(state))] = int(n)

    local = now.astimezone(CHINA)
    out: list[BankHealth] = []
    for name in sorted(ctx.profiles):
        profile = ctx.profiles[name]
        hours = profile.hours
        working: bool | None
        try:
            working = hours.every_day or ctx.calendar.is_working_day(local.date())
        except UnknownYearError:
            working = None
        try:
            goes_out: dt.date | None = dispatch_day(now, hours, ctx.calendar)
        except (UnknownYearError, RuntimeError):
            goes_out = None
        minutes: int | None = None
        if hours.cutoff is not None and working:
            cut = dt.datetime.combine(local.date(), hours.cutoff, tzinfo=CHINA)
            minutes = int((cut - local).total_seconds() // 60)
        out.append(
            BankHealth(
                name=name,
                display_name=profile.display_name,
                kind=profile.kind,
                last_delivered=delivered.get(name),
                last_applied=applied.get(name),
                unknown=open_items.get((name, ItemState.UNKNOWN.value), 0),
                operator_case=open_items.get((name, ItemState.OPERATOR_CASE.value), 0),
                cutoff=hours.cutoff,
                every_day=hours.every_day,
                working_today=working,
                minutes_to_cutoff=minutes,
                dispatch_on=goes_out,
            )
        )
    return out


def open_discrepancies(session: Session, viewer: Viewer) -> list[tuple[str, int, int]]:
    """Unresolved discrepancies (open, explained) by type."""
    counts: dict[str, list[int]] = {}
    stmt: AnySelect = (
        select(Discrepancy.type, Discrepancy.state, func.count())
        .where(Discrepancy.state.in_(UNRESOLVED))
        .group_by(Discrepancy.type, Discrepancy.state)
    )
    for type_, state, n in session.execute(
        in_scope(stmt, viewer, Batch.id == Discrepancy.batch_id)
    ):
        pair = counts.setdefault(str(type_), [0, 0])
        pair[0 if state == DiscrepancyState.OPEN else 1] += int(n)
    return [(t, o, e) for t, (o, e) in sorted(counts.items())]


def discrepancy_type_label(type_: str, lang: str) -> str:
    try:
        t = DiscrepancyType(type_)
    except ValueError:
        return type_
    return t.value.replace("_", " ") if lang == "en" else t.label_zh


def discrepancy_state_label(state: str, lang: str) -> str:
    try:
        s = DiscrepancyState(state)
    except ValueError:
        return state
    return s.value if lang == "en" else s.label_zh


def open_cases(session: Session, viewer: Viewer) -> list[tuple[str, int]]:
    """Open operator cases by kind. A case belongs to the batch it names, or to the batch of
    the outbound file it names; cases naming neither (a result file that failed
    verification) are counted only for viewers who see every region."""
    stmt: AnySelect = (
        select(OperatorCase.kind, func.count())
        .where(OperatorCase.state == "open")
        .group_by(OperatorCase.kind)
    )
    clause = region_clause(viewer, Batch.region_code)
    if clause is not None:
        stmt = (
            stmt.outerjoin(OutboundFile, OutboundFile.id == OperatorCase.outbound_file_id)
            .join(Batch, Batch.id == func.coalesce(OperatorCase.batch_id, OutboundFile.batch_id))
            .where(clause)
        )
    return sorted(((str(k), int(n)) for k, n in session.execute(stmt)), key=lambda kn: -kn[1])


def sms_of_month(session: Session, viewer: Viewer, since: dt.datetime) -> dict[str, int]:
    """SMS notices of the items of the batches received since ``since``, by outcome."""
    out = dict.fromkeys(SMS_GROUPS, 0)
    stmt: AnySelect = (
        select(SmsNotice.state, func.count())
        .join(PaymentItem, PaymentItem.id == SmsNotice.item_id)
        .where(PaymentItem.batch_id.in_(batch_ids(viewer, Batch.received_at >= since)))
        .group_by(SmsNotice.state)
    )
    for state, n in session.execute(stmt):
        out[_SMS_GROUP_OF.get(str(state), "pending")] += int(n)
    return out


# --- the batch list ----------------------------------------------------------------------------

BATCH_FILTERS = ("bank", "region", "subsidy", "state", "from", "to")


@dataclass
class BatchFilters:
    bank: str | None = None
    region: str | None = None
    subsidy: str | None = None
    state: str | None = None
    day_from: dt.date | None = None
    day_to: dt.date | None = None
    ignored: list[str] = field(default_factory=list)  # values that were not understood

    @classmethod
    def parse(cls, raw: dict[str, str]) -> BatchFilters:
        f = cls()
        f.bank = raw.get("bank")
        f.subsidy = raw.get("subsidy")
        region = raw.get("region")
        if region is not None:
            if region.isdigit() and len(region) <= 12:
                f.region = region
            else:
                f.ignored.append("region")
        state = raw.get("state")
        if state is not None:
            if state in {s.value for s in BatchState}:
                f.state = state
            else:
                f.ignored.append("state")
        for key in ("from", "to"):
            if key in raw:
                day = parse_day(raw[key])
                if day is None:
                    f.ignored.append(key)
                elif key == "from":
                    f.day_from = day
                else:
                    f.day_to = day
        return f

    def where(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.bank:
            out.append(Batch.bank_profile == self.bank)
        if self.region:
            out.append(Batch.region_code.startswith(self.region, autoescape=True))
        if self.subsidy:
            out.append(
                (Batch.subsidy_code == self.subsidy)
                | Batch.subsidy_name.contains(self.subsidy, autoescape=True)
            )
        if self.state:
            out.append(Batch.state == self.state)
        if self.day_from:
            out.append(Batch.received_at >= china_day_start_utc(self.day_from))
        if self.day_to:
            out.append(Batch.received_at < china_day_start_utc(self.day_to + dt.timedelta(days=1)))
        return out


def batch_page(
    session: Session, viewer: Viewer, filters: BatchFilters, number: int, size: int
) -> Page:
    """One page of batches, newest first (``ix_batches_received_at`` /
    ``ix_batches_region_received``)."""
    conditions = filters.where()
    total = session.scalar(
        within(select(func.count()).select_from(Batch).where(*conditions), viewer)
    )
    page = Page(number=number, size=size, total=int(total or 0))
    page.number = min(page.number, page.pages)
    rows = session.scalars(
        within(select(Batch).where(*conditions), viewer)
        .order_by(Batch.received_at.desc(), Batch.id.desc())
        .offset(page.offset)
        .limit(size)
    ).all()
    page.rows = list(rows)
    return page


@dataclass
class Progress:
    """How far a batch's items have come (counts and fen per group)."""

    tallies: dict[str, Tally] = field(default_factory=lambda: {g: Tally() for g in GROUPS})

    @property
    def count(self) -> int:
        return sum(t.count for t in self.tallies.values())

    def segments(self) -> list[tuple[str, int, int]]:
        """(group, x, width) of a 100-unit stacked bar, paid first."""
        out: list[tuple[str, int, int]] = []
        x = 0
        whole = self.count
        for group in GROUPS:
            n = self.tallies[group].count
            if not n:
                continue
            width = min(100 - x, _percent(n, whole))
            out.append((group, x, width))
            x += width
        return out


def progress_of(session: Session, batch_ids: Sequence[int]) -> dict[int, Progress]:
    """Progress of a page of batches, in one grouped query (``ix_payment_items_batch_state``)."""
    out = {bid: Progress() for bid in batch_ids}
    if not batch_ids:
        return out
    for batch_id, state, n, fen in session.execute(
        select(
            PaymentItem.batch_id,
            PaymentItem.state,
            func.count(),
            func.coalesce(func.sum(PaymentItem.amount_fen), 0),
        )
        .where(PaymentItem.batch_id.in_(list(batch_ids)))
        .group_by(PaymentItem.batch_id, PaymentItem.state)
    ):
        out[int(batch_id)].tallies[item_group(state)].add(int(n), int(fen))
    return out


# --- one batch ---------------------------------------------------------------------------------


@dataclass
class TimelineEntry:
    at: dt.datetime
    event: str
    to_state: str
    actor: str | None
    items: int | None = None  # item milestones: how many items, first and last time
    last_at: dt.datetime | None = None
    from_state: str | None = None


def batch_timeline(session: Session, batch_id: int) -> list[TimelineEntry]:
    """The batch's own events, and each item-level milestone summarised (how many items,
    first and last time) rather than every item event."""
    entries = [
        TimelineEntry(e.at, e.event, e.to_state, e.actor, from_state=e.from_state)
        for e in session.scalars(
            select(BatchEventRecord)
            .where(BatchEventRecord.batch_id == batch_id)
            .order_by(BatchEventRecord.at, BatchEventRecord.id)
        )
    ]
    item_ids = select(PaymentItem.id).where(PaymentItem.batch_id == batch_id)
    for event, to_state, n, first, last in session.execute(
        select(
            ItemEventRecord.event,
            ItemEventRecord.to_state,
            func.count(),
            func.min(ItemEventRecord.at),
            func.max(ItemEventRecord.at),
        )
        .where(ItemEventRecord.item_id.in_(item_ids))
        .group_by(ItemEventRecord.event, ItemEventRecord.to_state)
    ):
        entries.append(TimelineEntry(first, event, to_state, None, int(n), last))
    # batch events before the item milestones of the same moment
    entries.sort(key=lambda e: (e.at, e.items is not None))
    return entries


@dataclass
class FileRow:
    direction: str  # out | in
    name: str
    kind: str
    sha256: str
    size: int
    state: str
    at: dt.datetime | None
    items: int
    signed_by: str
    total_fen: int | None = None
    detail: str | None = None


def signature_facts(signature: bytes) -> dict[str, str]:
    """The ``alg=`` and ``key-id=`` lines of a detached signature file, when it has them."""
    try:
        text = signature[:4096].decode("ascii")
    except UnicodeDecodeError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in {"alg", "key-id"} and value.strip():
            out[key] = value.strip()[:64]
    return out


def profile_signer(ctx: Context, profile_name: str) -> str:
    """What the bank profile says signs our files (algorithm and announced key id)."""
    profile = ctx.profiles.get(profile_name)
    if profile is None:
        return "-"
    alg = str(profile.crypto_config.get("crypto", "-"))
    key_id = profile.crypto_config.get("own_key_id")
    return f"{alg} · key-id {key_id}" if key_id else alg


def batch_files(session: Session, ctx: Context, batch: Batch) -> list[FileRow]:
    """Outbound files of the batch (without their bytes) and the bank's files naming it."""
    out: list[FileRow] = []
    fallback = profile_signer(ctx, batch.bank_profile)
    for f in session.execute(
        select(
            OutboundFile.file_name,
            OutboundFile.signature_name,
            OutboundFile.sha256,
            OutboundFile.size,
            OutboundFile.state,
            OutboundFile.item_count,
            OutboundFile.total_fen,
            OutboundFile.created_at,
            OutboundFile.delivered_at,
            OutboundFile.attempts,
            OutboundFile.last_error,
            OutboundFile.signature,
        )
        .where(OutboundFile.batch_id == batch.id)
        .order_by(OutboundFile.file_no)
    ):
        facts = signature_facts(f.signature)
        signed_by = (
            f"{facts.get('alg', '?')} · key-id {facts['key-id']}" if "key-id" in facts else fallback
        )
        out.append(
            FileRow(
                direction="out",
                name=f.file_name,
                kind=f.signature_name,
                sha256=f.sha256,
                size=int(f.size),
                state=f.state,
                at=f.delivered_at or f.created_at,
                items=int(f.item_count),
                signed_by=signed_by,
                total_fen=int(f.total_fen),
                detail=f.last_error if f.state != FileState.DELIVERED else None,
            )
        )
    if batch.serial:
        profile = ctx.profiles.get(batch.bank_profile)
        verify = str(profile.crypto_config.get("crypto", "-")) if profile else "-"
        for i in session.scalars(
            select(InboundFile)
            .where(InboundFile.batch_serial == batch.serial)
            .order_by(InboundFile.received_at, InboundFile.id)
        ):
            out.append(
                FileRow(
                    direction="in",
                    name=i.file_name,
                    kind=i.kind,
                    sha256=i.sha256,
                    size=int(i.size),
                    state=i.state,
                    at=i.received_at,
                    items=int(i.applied_count),
                    signed_by=f"{i.bank_profile} · {verify}",
                    detail=i.error,
                )
            )
    return out


def batch_errors(session: Session, batch_id: int, limit: int) -> tuple[int, list[BatchError]]:
    total = session.scalar(
        select(func.count()).select_from(BatchError).where(BatchError.batch_id == batch_id)
    )
    rows = session.scalars(
        select(BatchError)
        .where(BatchError.batch_id == batch_id)
        .order_by(BatchError.seq.is_not(None), BatchError.seq, BatchError.id)
        .limit(limit)
    ).all()
    return int(total or 0), list(rows)


ITEM_COLUMNS = (
    PaymentItem.id,
    PaymentItem.seq,
    PaymentItem.serial,
    PaymentItem.state,
    PaymentItem.amount_fen,
    PaymentItem.name_masked,
    PaymentItem.id_number_masked,
    PaymentItem.account_masked,
    PaymentItem.phone_masked,
    PaymentItem.reason_code,
    PaymentItem.bank_code,
    PaymentItem.bank_message,
    PaymentItem.paid_at,
)


def batch_items(
    session: Session, batch_id: int, state: str | None, number: int, size: int, total: int
) -> Page:
    """One page of a batch's items in sequence (masked columns only)."""
    page = Page(number=number, size=size, total=total)
    page.number = min(page.number, page.pages)
    stmt: AnySelect = select(*ITEM_COLUMNS).where(PaymentItem.batch_id == batch_id)
    if state:
        stmt = stmt.where(PaymentItem.state == state)
    page.rows = list(
        session.execute(stmt.order_by(PaymentItem.seq).offset(page.offset).limit(size)).all()
    )
    return page


# --- one item ----------------------------------------------------------------------------------


@dataclass
class ItemFacts:
    item: PaymentItem
    batch: Batch
    events: list[ItemEventRecord]
    results: list[tuple[ItemResult, str]]  # result, inbound file name
    sms: list[SmsNotice]
    cases: list[OperatorCase]
    discrepancies: list[Discrepancy]
    correction_lists: list[CorrectionList]
    refunds: list[tuple[TreasuryRefundItem, TreasuryRefund]]
    reissue_of: Any | None  # (id, serial, state, batch_no)
    reissued_by: list[Any]
    outbound_file: str | None


def find_item(session: Session, item_id: int) -> tuple[PaymentItem, Batch] | None:
    row = session.execute(
        select(PaymentItem, Batch)
        .join(Batch, Batch.id == PaymentItem.batch_id)
        .where(PaymentItem.id == item_id)
    ).first()
    return None if row is None else (row[0], row[1])


def _item_ref() -> AnySelect:
    return select(PaymentItem.id, PaymentItem.serial, PaymentItem.state, Batch.batch_no).join(
        Batch, Batch.id == PaymentItem.batch_id
    )


def item_facts(session: Session, item: PaymentItem, batch: Batch) -> ItemFacts:
    """Everything recorded about one item (each list by an indexed column)."""
    reissue_of = None
    if item.reissue_of_id is not None:
        reissue_of = session.execute(
            _item_ref().where(PaymentItem.id == item.reissue_of_id)
        ).first()
    # a re-issue is always for the same person (intake checks it): the blind index finds it
    reissued_by = session.execute(
        _item_ref()
        .where(
            PaymentItem.id_number_bidx == item.id_number_bidx,
            PaymentItem.reissue_of_id == item.id,
        )
        .order_by(PaymentItem.id)
    ).all()
    outbound = None
    if item.outbound_file_id is not None:
        outbound = session.scalar(
            select(OutboundFile.file_name).where(OutboundFile.id == item.outbound_file_id)
        )
    return ItemFacts(
        item=item,
        batch=batch,
        events=list(
            session.scalars(
                select(ItemEventRecord)
                .where(ItemEventRecord.item_id == item.id)
                .order_by(ItemEventRecord.at, ItemEventRecord.id)
            )
        ),
        results=[
            (r, str(name))
            for r, name in session.execute(
                select(ItemResult, InboundFile.file_name)
                .join(InboundFile, InboundFile.id == ItemResult.inbound_file_id)
                .where(ItemResult.item_id == item.id)
                .order_by(ItemResult.id)
            )
        ],
        sms=list(
            session.scalars(
                select(SmsNotice).where(SmsNotice.item_id == item.id).order_by(SmsNotice.id)
            )
        ),
        cases=list(
            session.scalars(
                select(OperatorCase)
                .where(OperatorCase.item_id == item.id)
                .order_by(OperatorCase.id)
            )
        ),
        discrepancies=list(
            session.scalars(
                select(Discrepancy).where(Discrepancy.item_id == item.id).order_by(Discrepancy.id)
            )
        ),
        correction_lists=list(
            session.scalars(
                select(CorrectionList)
                .join(CorrectionListItem, CorrectionListItem.list_id == CorrectionList.id)
                .where(CorrectionListItem.item_id == item.id)
                .order_by(CorrectionList.id)
            )
        ),
        refunds=[
            (ri, rf)
            for ri, rf in session.execute(
                select(TreasuryRefundItem, TreasuryRefund)
                .join(TreasuryRefund, TreasuryRefund.id == TreasuryRefundItem.refund_id)
                .where(TreasuryRefundItem.item_id == item.id)
                .order_by(TreasuryRefund.id)
            )
        ],
        reissue_of=reissue_of,
        reissued_by=list(reissued_by),
        outbound_file=outbound,
    )


UNMASKED_FIELDS = (
    ("name", "name_enc"),
    ("id_number", "id_number_enc"),
    ("account_no", "account_enc"),
    ("phone", "phone_enc"),
)


def item_clear(ctx: Context, item: PaymentItem) -> dict[str, str | None]:
    """The item's personal data in clear (only for the unmask page, after a stated reason)."""
    out: dict[str, str | None] = {}
    for name, column in UNMASKED_FIELDS:
        token = getattr(item, column)
        out[name] = ctx.pii.decrypt(name, token) if token else None
    return out


# --- what the templates of these pages use -----------------------------------------------------


def template_helpers(lang: str) -> dict[str, Any]:
    """Label functions for the overview, batch, item and person templates."""

    def pick(zh: str, en: str) -> str:
        return en if lang == "en" else zh

    def reason_of(code: str | None) -> Any:
        return reason(code)

    return {
        "event_label": lambda key: label(EVENT_LABELS, key, lang),
        "case_kind": lambda key: label(CASE_KINDS, key, lang),
        "sms_state": lambda key: label(SMS_LABELS, key, lang),
        "file_state": lambda key: label(FILE_STATE_LABELS, key, lang),
        "inbound_kind": lambda key: label(INBOUND_KINDS, key, lang),
        "result_status": lambda key: label(RESULT_STATUSES, key, lang),
        "disposition": lambda key: label(DISPOSITIONS, key, lang),
        "case_state": lambda key: label(CASE_STATES, key, lang),
        "refund_state": lambda key: label(REFUND_STATES, key, lang),
        "group_label": lambda key: label(GROUP_LABELS, key, lang),
        "discrepancy_type": lambda key: discrepancy_type_label(key, lang),
        "discrepancy_state": lambda key: discrepancy_state_label(key, lang),
        "reason_text": lambda code: pick(reason(code).zh, reason(code).en),
        "reason_of": reason_of,
        "groups": GROUPS,
        "item_states": [s.value for s in ItemState],
        "batch_states": [s.value for s in BatchState],
    }
