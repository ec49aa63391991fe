"""The self-check (自查): Article 11 (二) asks for one at least every three months, Article
15 for catching false claims (虚报冒领). A run looks at the payment items of the batches
received in its period that were directed at a bank (every state but accepted, queued and
cancelled) and records what looks wrong:

- ``shared_account``: one account receives subsidies for several people;
- ``duplicate_claim``: the same person paid twice for the same subsidy item and period
  (same subsidy code *or* same subsidy name: townships code the same subsidy differently);
- ``repeated_name_mismatch``: the same account fails again and again for 户名不符;
- ``account_changed``: a person's payment goes to another account than their previous one,
  received shortly before;
- ``implausible_age``: the birth date in the ID number does not fit the subsidy.

Grouping runs in SQL on the blind indexes; only the age check decrypts, and only the ID
numbers of the period's items, a chunk at a time and once per person. Findings carry masks,
blind indexes, item ids and region codes, never raw personal data. Every run is audited
(``selfcheck.run``); the worker runs one per calendar quarter (``selfcheck_step``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Text,
    cast,
    distinct,
    false,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.orm import Session

from gateway.batches.models import Batch, PaymentItem
from gateway.context import Context
from gateway.kit.clock import CHINA, china_today, utcnow
from gateway.kit.db import session_scope
from gateway.kit.leases import claim_job, release_job
from gateway.kit.logging import get_logger
from gateway.kit.money import format_yuan
from gateway.payments.states import ItemState
from gateway.rework import audit
from gateway.rework.errors import ReworkError
from gateway.selfcheck.config import SelfCheckConfig, age_on, birth_date, period_end
from gateway.selfcheck.models import SelfCheckFinding, SelfCheckReport

log = get_logger(__name__)

CHUNK = 1000
QUARTERLY_JOB = "selfcheck.quarterly"
QUARTERLY_LEASE_SECONDS = 3600  # a quarterly run is rare and may take a while
TRIGGERS = ("manual", "quarterly")

SHARED_ACCOUNT = "shared_account"
DUPLICATE_CLAIM = "duplicate_claim"
REPEATED_NAME_MISMATCH = "repeated_name_mismatch"
ACCOUNT_CHANGED = "account_changed"
IMPLAUSIBLE_AGE = "implausible_age"

# kind → (title in Chinese, title in English, recommended action in Chinese)
KIND_LABELS: dict[str, tuple[str, str, str]] = {
    SHARED_ACCOUNT: (
        "一个账户收到多人补贴",
        "One account receives subsidies for several people",
        "核实该账户持有人与各领取人的关系，必要时暂停发放并调查",
    ),
    DUPLICATE_CLAIM: (
        "同一人同一补贴项目同一期间重复发放",
        "The same person paid twice for the same subsidy item and period",
        "核实是否重复申报（不同乡镇或不同项目编码），追回多发资金并更正基础数据",
    ),
    REPEATED_NAME_MISMATCH: (
        "同一账户反复户名不符",
        "The same account fails again and again for a name mismatch",
        "核实账户户名与领取人身份，更正基础信息后再发放，防止冒领",
    ),
    ACCOUNT_CHANGED: (
        "发放前不久变更账户",
        "Account changed shortly before a payment",
        "核实账户变更申请及本人签字材料，确认新账户为领取人本人的一卡通",
    ),
    IMPLAUSIBLE_AGE: (
        "出生日期与补贴不符",
        "Birth date does not fit the subsidy",
        "核实身份证号码与享受补贴的资格，不符合条件的停止发放并追回资金",
    ),
}
KINDS = tuple(KIND_LABELS)

# items directed at a bank: everything but not yet sent (accepted, queued) and cancelled
DIRECTED = tuple(
    s.value
    for s in ItemState
    if s not in {ItemState.ACCEPTED, ItemState.QUEUED, ItemState.CANCELLED}
)
# what a failed item may have become since (returned for correction, re-issued, refunded)
AFTER_FAILURE = (
    ItemState.FAILED.value,
    ItemState.RETURNED.value,
    ItemState.REISSUED.value,
    ItemState.REFUNDED.value,
)
NAME_MISMATCH = "name_mismatch"


class SelfCheckError(ReworkError):
    code = "selfcheck_error"


class ReportNotFoundError(SelfCheckError, LookupError):
    code = "selfcheck_report_not_found"


class SelfCheckPeriodError(SelfCheckError, ValueError):
    code = "selfcheck_period_invalid"


# --- views -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportView:
    id: int
    trigger: str
    requested_by: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    period_from: dt.date
    period_to: dt.date
    counts: dict[str, int]
    total: int

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("started_at", "finished_at", "period_from", "period_to"):
            out[key] = None if out[key] is None else out[key].isoformat()
        return out


@dataclass(frozen=True, slots=True)
class FindingView:
    id: int
    report_id: int
    kind: str
    title_zh: str
    title_en: str
    explanation_zh: str
    explanation_en: str
    action_zh: str
    subject_masked: str
    subject_bidx: str
    item_ids: list[int]
    region_codes: list[str]
    amount_fen: int
    detail: dict[str, Any]
    # payments of the finding in regions the reader may not see: counted, never named
    other_region_items: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _report_view(r: SelfCheckReport) -> ReportView:
    return ReportView(
        id=r.id,
        trigger=r.trigger,
        requested_by=r.requested_by,
        started_at=r.started_at,
        finished_at=r.finished_at,
        period_from=r.period_from,
        period_to=r.period_to,
        counts={k: int(r.counts.get(k, 0)) for k in KINDS},
        total=r.total_findings,
    )


def _finding_view(f: SelfCheckFinding) -> FindingView:
    title_zh, title_en, action_zh = KIND_LABELS.get(f.kind, (f.kind, f.kind, ""))
    zh, en = explain(f.kind, f.subject_masked, f.amount_fen, f.detail)
    return FindingView(
        id=f.id,
        report_id=f.report_id,
        kind=f.kind,
        title_zh=title_zh,
        title_en=title_en,
        explanation_zh=zh,
        explanation_en=en,
        action_zh=action_zh,
        subject_masked=f.subject_masked,
        subject_bidx=f.subject_bidx,
        item_ids=list(f.item_ids),
        region_codes=list(f.region_codes),
        amount_fen=f.amount_fen,
        detail=dict(f.detail),
    )


def explain(kind: str, subject: str, amount_fen: int, d: dict[str, Any]) -> tuple[str, str]:
    """A finding in one sentence, in Chinese and English (from its stored detail)."""
    yuan = format_yuan(amount_fen)
    if kind == SHARED_ACCOUNT:
        return (
            f"账户 {subject} 在自查期间收到 {d['people']} 名不同领取人的 {d['items']} 笔补贴"
            f"（{d['batches']} 个批次），合计 {yuan} 元。",
            f"Account {subject} received {d['items']} payments for {d['people']} different "
            f"people ({d['batches']} batches), {yuan} yuan in total.",
        )
    if kind == DUPLICATE_CLAIM:
        names = "、".join(f"{s['name']}（{s['code']}）" for s in d["subsidies"])
        return (
            f"身份证号 {subject} 的同一补贴项目 {names} 在期间 {d['period']} 已成功发放 "
            f"{d['payments']} 次（{d['batches']} 个批次），合计 {yuan} 元，"
            f"其中多发 {format_yuan(d['excess_fen'])} 元。",
            f"ID number {subject} was paid {d['payments']} times ({d['batches']} batches) for "
            f"the same subsidy item and period {d['period']}: {yuan} yuan, "
            f"{format_yuan(d['excess_fen'])} yuan too much.",
        )
    if kind == REPEATED_NAME_MISMATCH:
        return (
            f"账户 {subject} 有 {d['failures']} 笔发放因户名不符失败（{d['batches']} 个批次，"
            f"{d['people']} 名领取人），合计 {yuan} 元。",
            f"Account {subject} failed {d['failures']} times for a name mismatch "
            f"({d['batches']} batches, {d['people']} people), {yuan} yuan.",
        )
    if kind == ACCOUNT_CHANGED:
        first = d["changes"][0]
        more_zh = f"（共 {len(d['changes'])} 次变更）" if len(d["changes"]) > 1 else ""
        more_en = f" ({len(d['changes'])} changes)" if len(d["changes"]) > 1 else ""
        return (
            f"身份证号 {subject} 的补贴发往账户 {first['to_account']}，距上一笔发往账户 "
            f"{first['from_account']} 的批次仅 {first['days']} 天{more_zh}，涉及 {yuan} 元。",
            f"ID number {subject} was paid to account {first['to_account']} only "
            f"{first['days']} days after a batch that paid account {first['from_account']}"
            f"{more_en}; {yuan} yuan.",
        )
    if kind == IMPLAUSIBLE_AGE:
        p = d["problems"][0]
        return (
            f"身份证号 {subject} 按出生日期推算在期间 {p['period']} 为 {p['age']} 周岁，"
            f"与补贴「{p['subsidy_name']}」不符（{p['rule']}），共 {len(d['problems'])} 笔，"
            f"{yuan} 元。",
            f"ID number {subject} is {p['age']} years old in period {p['period']} by the birth "
            f"date, which does not fit {p['subsidy_code']} ({p['problem']}); "
            f"{len(d['problems'])} payments, {yuan} yuan.",
        )
    return (f"{kind}：{subject}", f"{kind}: {subject}")


# --- a run -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Window:
    """Batches received from ``since`` to ``until`` (Asia/Shanghai days, both included)."""

    since: dt.date
    until: dt.date
    today: dt.date

    @property
    def start(self) -> dt.datetime:
        return _utc(self.since)

    @property
    def end(self) -> dt.datetime:
        return _utc(self.until + dt.timedelta(days=1))

    def base(self, states: Sequence[str] = DIRECTED) -> list[ColumnElement[bool]]:
        return [
            Batch.received_at >= self.start,
            Batch.received_at < self.end,
            PaymentItem.state.in_(states),
        ]


@dataclass(slots=True)
class _Finding:
    kind: str
    subject_masked: str
    subject_bidx: str
    rows: list[Row[Any]]
    detail: dict[str, Any]
    amount_fen: int | None = None  # None: the sum of the rows' amounts

    def values(self, report_id: int) -> dict[str, Any]:
        amount = (
            sum(r.amount_fen for r in self.rows) if self.amount_fen is None else self.amount_fen
        )
        return {
            "report_id": report_id,
            "kind": self.kind,
            "subject_masked": self.subject_masked,
            "subject_bidx": self.subject_bidx,
            "item_ids": sorted({r.id for r in self.rows}),
            "region_codes": sorted({r.region_code for r in self.rows}),
            "amount_fen": amount,
            "detail": self.detail,
        }


def _utc(day: dt.date) -> dt.datetime:
    """Midnight of an Asia/Shanghai day as a stored (naive UTC) time."""
    local = dt.datetime.combine(day, dt.time(), tzinfo=CHINA)
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def _year_before(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def run_selfcheck(
    ctx: Context,
    *,
    requested_by: str,
    trigger: str = "manual",
    since: dt.date | None = None,
    until: dt.date | None = None,
    config: SelfCheckConfig | None = None,
) -> int:
    """Run a self-check over the batches received from ``since`` to ``until`` (Asia/Shanghai
    days, both included; default: the twelve months up to today), store the report and its
    findings, audit it (``selfcheck.run``) and return the report id."""
    name = audit.operator_name(requested_by)
    if trigger not in TRIGGERS:
        raise SelfCheckError(f"未知的自查方式：{trigger}", f"unknown trigger {trigger!r}")
    config = config or SelfCheckConfig.load(ctx.settings.selfcheck_file)
    today = china_today()
    until = until or today
    since = since or _year_before(until) + dt.timedelta(days=1)
    if since > until:
        raise SelfCheckPeriodError(
            "自查期间的开始日期晚于结束日期", "the self-check period starts after it ends"
        )
    window = _Window(since, until, today)
    started = utcnow()
    findings: list[_Finding] = []
    for finder in FINDERS:
        findings += finder(ctx, window, config)
    counts = {k: 0 for k in KINDS}
    for f in findings:
        counts[f.kind] += 1
    with session_scope(ctx.sessions) as session:
        report = SelfCheckReport(
            trigger=trigger,
            requested_by=name,
            started_at=started,
            finished_at=utcnow(),
            period_from=since,
            period_to=until,
            counts=counts,
            total_findings=len(findings),
        )
        session.add(report)
        session.flush()
        rows = [f.values(report.id) for f in findings]
        for start in range(0, len(rows), CHUNK):
            session.execute(insert(SelfCheckFinding), rows[start : start + CHUNK])
        audit.record(
            session,
            actor=name,
            action="selfcheck.run",
            target_type="selfcheck_report",
            target_id=report.id,
            detail={
                "trigger": trigger,
                "period_from": since.isoformat(),
                "period_to": until.isoformat(),
                "counts": counts,
                "total": len(findings),
            },
        )
        report_id = report.id
    log.info("selfcheck.run", report_id=report_id, trigger=trigger, counts=counts)
    return report_id


# --- the findings ----------------------------------------------------------------------------


def _item_query(*where: ColumnElement[bool]) -> Select[*tuple[Any, ...]]:
    """The columns a finding needs of its items (masks and blind indexes only)."""
    return (
        select(
            PaymentItem.id,
            PaymentItem.batch_id,
            PaymentItem.state,
            PaymentItem.amount_fen,
            PaymentItem.reason_code,
            PaymentItem.id_number_bidx,
            PaymentItem.id_number_masked,
            PaymentItem.account_bidx,
            PaymentItem.account_masked,
            Batch.region_code,
            Batch.subsidy_code,
            Batch.subsidy_name,
            Batch.period,
            Batch.received_at,
        )
        .join(Batch, Batch.id == PaymentItem.batch_id)
        .where(*where)
    )


def _rows_of(
    session: Session, key: Any, values: Iterable[str], *where: ColumnElement[bool]
) -> dict[str, list[Row[Any]]]:
    """The items whose ``key`` column is one of ``values`` (and match ``where``), grouped by
    that column, each group in (received, id) order."""
    wanted = sorted(set(values))
    out: dict[str, list[Row[Any]]] = defaultdict(list)
    for start in range(0, len(wanted), CHUNK):
        query = _item_query(key.in_(wanted[start : start + CHUNK]), *where)
        for row in session.execute(query.order_by(Batch.received_at, PaymentItem.id)):
            out[getattr(row, key.key)].append(row)
    return out


def _flagged(
    session: Session, key: Any, having: ColumnElement[bool], *where: ColumnElement[bool]
) -> list[str]:
    query = (
        select(key)
        .join(Batch, Batch.id == PaymentItem.batch_id)
        .where(*where)
        .group_by(key)
        .having(having)
    )
    return [str(v) for v in session.scalars(query)]


def _states(rows: Sequence[Row[Any]]) -> dict[str, int]:
    return dict(sorted(Counter(r.state for r in rows).items()))


def _shared_accounts(ctx: Context, w: _Window, config: SelfCheckConfig) -> list[_Finding]:
    people = func.count(distinct(PaymentItem.id_number_bidx))
    with ctx.sessions() as session:
        accounts = _flagged(
            session,
            PaymentItem.account_bidx,
            people >= config.shared_account_min_people,
            *w.base(),
        )
        groups = _rows_of(session, PaymentItem.account_bidx, accounts, *w.base())
    out = []
    for bidx, rows in sorted(groups.items()):
        paid = [r for r in rows if r.state == ItemState.PAID]
        detail = {
            "people": len({r.id_number_bidx for r in rows}),
            "items": len(rows),
            "batches": len({r.batch_id for r in rows}),
            "paid_items": len(paid),
            "paid_fen": sum(r.amount_fen for r in paid),
            "states": _states(rows),
        }
        out.append(_Finding(SHARED_ACCOUNT, rows[-1].account_masked, bidx, rows, detail))
    return out


def _duplicate_claims(ctx: Context, w: _Window, config: SelfCheckConfig) -> list[_Finding]:
    paid = w.base([ItemState.PAID.value])
    twice = func.count(distinct(PaymentItem.batch_id)) > 1
    with ctx.sessions() as session:
        persons: set[str] = set()
        for same in (Batch.subsidy_code, Batch.subsidy_name):
            query = (
                select(PaymentItem.id_number_bidx)
                .join(Batch, Batch.id == PaymentItem.batch_id)
                .where(*paid)
                .group_by(PaymentItem.id_number_bidx, Batch.period, same)
                .having(twice)
            )
            persons.update(str(v) for v in session.scalars(query))
        groups = _rows_of(session, PaymentItem.id_number_bidx, persons, *paid)
    out = []
    for bidx, rows in sorted(groups.items()):
        by_period: dict[str, list[Row[Any]]] = defaultdict(list)
        for r in rows:
            by_period[r.period].append(r)
        for period, in_period in sorted(by_period.items()):
            for claim in _same_subsidy(in_period):
                if len({r.batch_id for r in claim}) < 2:
                    continue
                total = sum(r.amount_fen for r in claim)
                detail = {
                    "period": period,
                    "payments": len(claim),
                    "batches": len({r.batch_id for r in claim}),
                    "subsidies": [
                        {"code": c, "name": n}
                        for c, n in sorted({(r.subsidy_code, r.subsidy_name) for r in claim})
                    ],
                    "excess_fen": total - claim[0].amount_fen,
                }
                out.append(
                    _Finding(DUPLICATE_CLAIM, claim[0].id_number_masked, bidx, claim, detail)
                )
    return out


def _same_subsidy(rows: Sequence[Row[Any]]) -> list[list[Row[Any]]]:
    """Partition one person's payments of one period (in received order) into groups of
    the same subsidy item: linked by the same subsidy code or the same subsidy name, also
    through a third payment."""
    groups: list[list[Row[Any]]] = []
    for row in rows:
        linked = [
            g
            for g in groups
            if any(
                r.subsidy_code == row.subsidy_code or r.subsidy_name == row.subsidy_name for r in g
            )
        ]
        merged = sorted([row, *(r for g in linked for r in g)], key=lambda r: (r.received_at, r.id))
        groups = [g for g in groups if all(g is not other for other in linked)] + [merged]
    return groups


def _name_mismatches(ctx: Context, w: _Window, config: SelfCheckConfig) -> list[_Finding]:
    where = [*w.base(AFTER_FAILURE), PaymentItem.reason_code == NAME_MISMATCH]
    batches = func.count(distinct(PaymentItem.batch_id))
    with ctx.sessions() as session:
        accounts = _flagged(
            session, PaymentItem.account_bidx, batches >= config.name_mismatch_min, *where
        )
        groups = _rows_of(session, PaymentItem.account_bidx, accounts, *where)
    out = []
    for bidx, rows in sorted(groups.items()):
        detail = {
            "failures": len(rows),
            "batches": len({r.batch_id for r in rows}),
            "people": len({r.id_number_bidx for r in rows}),
            "threshold": config.name_mismatch_min,
            "states": _states(rows),
        }
        out.append(_Finding(REPEATED_NAME_MISMATCH, rows[-1].account_masked, bidx, rows, detail))
    return out


def _account_changes(ctx: Context, w: _Window, config: SelfCheckConfig) -> list[_Finding]:
    window = dt.timedelta(days=config.account_change_window_days)
    order = (Batch.received_at, PaymentItem.id)
    person = PaymentItem.id_number_bidx
    # the previous item of a person older than the window cannot make a finding, so the
    # scan starts a window before the period
    ordered = (
        select(
            PaymentItem.id,
            PaymentItem.account_bidx,
            Batch.received_at,
            func.lag(PaymentItem.id).over(partition_by=person, order_by=order).label("prev_id"),
            func.lag(PaymentItem.account_bidx)
            .over(partition_by=person, order_by=order)
            .label("prev_account"),
        )
        .join(Batch, Batch.id == PaymentItem.batch_id)
        .where(
            Batch.received_at >= w.start - window,
            Batch.received_at < w.end,
            PaymentItem.state.in_(DIRECTED),
        )
        .subquery()
    )
    changed = select(ordered.c.id, ordered.c.prev_id).where(
        ordered.c.received_at >= w.start,
        ordered.c.prev_account.is_not(None),
        ordered.c.prev_account != ordered.c.account_bidx,
    )
    with ctx.sessions() as session:
        pairs = [(int(prev), int(cur)) for cur, prev in session.execute(changed)]
        ids = sorted({i for pair in pairs for i in pair})
        rows: dict[int, Row[Any]] = {}
        for start in range(0, len(ids), CHUNK):
            query = _item_query(PaymentItem.id.in_(ids[start : start + CHUNK]))
            rows.update((r.id, r) for r in session.execute(query))
    by_person: dict[str, list[tuple[Row[Any], Row[Any]]]] = defaultdict(list)
    for prev_id, cur_id in sorted(pairs, key=lambda p: p[1]):
        prev, cur = rows[prev_id], rows[cur_id]
        if cur.received_at - prev.received_at <= window:
            by_person[cur.id_number_bidx].append((prev, cur))
    out = []
    for bidx, changes in sorted(by_person.items()):
        detail = {
            "changes": [
                {
                    "from_item": prev.id,
                    "to_item": cur.id,
                    "from_account": prev.account_masked,
                    "to_account": cur.account_masked,
                    "days": (cur.received_at - prev.received_at).days,
                }
                for prev, cur in changes
            ],
            "window_days": config.account_change_window_days,
        }
        involved = [r for pair in changes for r in pair]
        amount = sum(cur.amount_fen for _, cur in changes)
        masked = changes[-1][1].id_number_masked
        out.append(_Finding(ACCOUNT_CHANGED, masked, bidx, involved, detail, amount))
    return out


def _implausible_ages(ctx: Context, w: _Window, config: SelfCheckConfig) -> list[_Finding]:
    births: dict[str, dt.date | None] = {}  # blind index → birth date: one decrypt a person
    flagged: dict[str, list[tuple[Row[Any], dict[str, Any]]]] = defaultdict(list)
    for chunk in _period_items(ctx, w):
        for row in chunk:
            if row.id_number_bidx not in births:
                births[row.id_number_bidx] = birth_date(
                    ctx.pii.decrypt("id_number", row.id_number_enc)
                )
            birth = births[row.id_number_bidx]
            if birth is None:
                continue
            problem = _age_problem(birth, row, w.today, config)
            if problem is not None:
                flagged[row.id_number_bidx].append((row, problem))
    out = []
    for bidx, found in sorted(flagged.items()):
        rows = [r for r, _ in found]
        detail = {"problems": [p for _, p in found]}
        out.append(_Finding(IMPLAUSIBLE_AGE, rows[-1].id_number_masked, bidx, rows, detail))
    return out


def _period_items(ctx: Context, w: _Window) -> Iterator[Sequence[Row[Any]]]:
    """The period's items with their encrypted ID numbers, a chunk (and a short read
    transaction) at a time, in id order."""
    query: Select[*tuple[Any, ...]] = (
        select(
            PaymentItem.id,
            PaymentItem.amount_fen,
            PaymentItem.id_number_enc,
            PaymentItem.id_number_bidx,
            PaymentItem.id_number_masked,
            Batch.region_code,
            Batch.subsidy_code,
            Batch.subsidy_name,
            Batch.period,
            Batch.fiscal_year,
        )
        .join(Batch, Batch.id == PaymentItem.batch_id)
        .where(*w.base())
    )
    after = 0
    while True:
        with ctx.sessions() as session:
            rows = session.execute(
                query.where(PaymentItem.id > after).order_by(PaymentItem.id).limit(CHUNK)
            ).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _age_problem(
    birth: dt.date, row: Row[Any], today: dt.date, config: SelfCheckConfig
) -> dict[str, Any] | None:
    age = age_on(birth, period_end(row.period, row.fiscal_year))
    problem, rule = None, ""
    if birth > today:
        problem, rule = "birth_in_future", "出生日期晚于今天"
    elif age > config.max_age:
        problem, rule = "over_max_age", f"任何补贴：年龄不超过{config.max_age}周岁"
    elif age < config.min_age:
        problem, rule = "under_min_age", f"任何补贴：须年满{config.min_age}周岁"
    else:
        for r in config.rules_for(row.subsidy_code, row.subsidy_name):
            if (r.min_age is not None and age < r.min_age) or (
                r.max_age is not None and age > r.max_age
            ):
                problem, rule = "subsidy_rule", r.describe_zh()
                break
    if problem is None:
        return None
    return {
        "item_id": row.id,
        "subsidy_code": row.subsidy_code,
        "subsidy_name": row.subsidy_name,
        "period": row.period,
        "age": age,
        "problem": problem,
        "rule": rule,
    }


FINDERS: tuple[Callable[[Context, _Window, SelfCheckConfig], list[_Finding]], ...] = (
    _shared_accounts,
    _duplicate_claims,
    _name_mismatches,
    _account_changes,
    _implausible_ages,
)


# --- reading reports -------------------------------------------------------------------------


def list_reports(ctx: Context, *, limit: int = 20) -> list[ReportView]:
    """The latest reports, newest first."""
    with ctx.sessions() as session:
        reports = session.scalars(
            select(SelfCheckReport).order_by(SelfCheckReport.id.desc()).limit(limit)
        )
        return [_report_view(r) for r in reports]


def get_report(ctx: Context, report_id: int) -> ReportView:
    with ctx.sessions() as session:
        return _report_view(_report(session, report_id))


def _report(session: Session, report_id: int) -> SelfCheckReport:
    report = session.get(SelfCheckReport, report_id)
    if report is None:
        raise ReportNotFoundError(
            f"自查报告 {report_id} 不存在", f"self-check report {report_id} does not exist"
        )
    return report


def in_regions(regions: Sequence[str]) -> ColumnElement[bool]:
    """Findings with a region code starting with one of ``regions`` (region code prefixes:
    digits only; anything else matches nothing)."""
    # region_codes is a JSON list of digit strings: every element starts with a quote
    text = cast(SelfCheckFinding.region_codes, Text)
    clauses = [text.like(f'%"{p}%') for p in regions if p.isascii() and p.isdigit()]
    return or_(*clauses) if clauses else false()


def _region_prefixes(regions: Sequence[str]) -> list[str]:
    return [p for p in regions if p.isascii() and p.isdigit()]


def _visible_items(session: Session, item_ids: Sequence[int], regions: Sequence[str]) -> set[int]:
    """Which of ``item_ids`` are payments of batches in ``regions`` (region prefixes)."""
    prefixes = _region_prefixes(regions)
    if not prefixes:
        return set()
    in_scope = or_(*(Batch.region_code.startswith(p, autoescape=True) for p in prefixes))
    wanted = sorted(set(item_ids))
    seen: set[int] = set()
    for start in range(0, len(wanted), CHUNK):
        seen.update(
            session.scalars(
                select(PaymentItem.id)
                .join(Batch, Batch.id == PaymentItem.batch_id)
                .where(PaymentItem.id.in_(wanted[start : start + CHUNK]), in_scope)
            )
        )
    return seen


def _scoped_detail(kind: str, detail: dict[str, Any], visible: set[int]) -> dict[str, Any]:
    """A finding's detail without the ids of payments the reader may not see."""
    if kind == ACCOUNT_CHANGED:
        changes = [
            {
                **c,
                "from_item": c.get("from_item") if c.get("from_item") in visible else None,
                "to_item": c.get("to_item") if c.get("to_item") in visible else None,
            }
            for c in detail.get("changes", [])
        ]
        return {**detail, "changes": changes}
    if kind == IMPLAUSIBLE_AGE:
        problems = [
            {**p, "item_id": p.get("item_id") if p.get("item_id") in visible else None}
            for p in detail.get("problems", [])
        ]
        return {**detail, "problems": problems}
    return detail


def _scoped(
    session: Session, views: list[FindingView], regions: Sequence[str] | None
) -> list[FindingView]:
    """Findings as a reader of ``regions`` sees them (None: every region). A finding is
    shown when one of its payments lies in the reader's regions; the ids and region codes
    of its other payments are withheld (counted in ``other_region_items``), as every other
    page withholds records of other regions. What the finding says in aggregate (how many
    payments, people, batches, how much) stays: it is the reason for the finding."""
    if regions is None:
        return views
    prefixes = _region_prefixes(regions)
    visible = _visible_items(session, [i for v in views for i in v.item_ids], regions)
    out = []
    for v in views:
        shown = [i for i in v.item_ids if i in visible]
        out.append(
            replace(
                v,
                item_ids=shown,
                region_codes=[r for r in v.region_codes if r.startswith(tuple(prefixes))],
                other_region_items=len(v.item_ids) - len(shown),
                detail=_scoped_detail(v.kind, v.detail, visible),
            )
        )
    return out


def _finding_filter(
    report_id: int, regions: Sequence[str] | None, kind: str | None
) -> list[ColumnElement[bool]]:
    where = [SelfCheckFinding.report_id == report_id]
    if regions is not None:
        where.append(in_regions(regions))
    if kind is not None:
        where.append(SelfCheckFinding.kind == kind)
    return where


def count_findings(
    ctx: Context, report_ids: Sequence[int], *, regions: Sequence[str] | None = None
) -> dict[int, dict[str, int]]:
    """Findings per report and kind within ``regions`` (one grouped query for a list)."""
    out: dict[int, dict[str, int]] = {rid: dict.fromkeys(KINDS, 0) for rid in report_ids}
    if not report_ids:
        return out
    where: list[ColumnElement[bool]] = [SelfCheckFinding.report_id.in_(list(report_ids))]
    if regions is not None:
        where.append(in_regions(regions))
    with ctx.sessions() as session:
        rows = session.execute(
            select(SelfCheckFinding.report_id, SelfCheckFinding.kind, func.count())
            .where(*where)
            .group_by(SelfCheckFinding.report_id, SelfCheckFinding.kind)
        )
        for rid, kind, n in rows:
            out[int(rid)][str(kind)] = int(n)
    return out


def list_findings(
    ctx: Context,
    report_id: int,
    *,
    regions: Sequence[str] | None = None,
    kind: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[FindingView], int]:
    """One page of a report's findings (in the report's order) and how many match in all.
    ``regions``: region code prefixes the reader may see (None: every region); the
    findings are scoped to them (``_scoped``)."""
    where = _finding_filter(report_id, regions, kind)
    with ctx.sessions() as session:
        _report(session, report_id)
        total = session.scalar(select(func.count()).select_from(SelfCheckFinding).where(*where))
        page = session.scalars(
            select(SelfCheckFinding)
            .where(*where)
            .order_by(SelfCheckFinding.id)
            .offset(max(0, offset))
            .limit(max(0, limit))
        )
        return _scoped(session, [_finding_view(f) for f in page], regions), int(total or 0)


def all_findings(
    ctx: Context, report_id: int, *, regions: Sequence[str] | None = None
) -> list[FindingView]:
    """Every finding of a report the reader may see, scoped to ``regions`` (for exports)."""
    with ctx.sessions() as session:
        _report(session, report_id)
        found = session.scalars(
            select(SelfCheckFinding)
            .where(*_finding_filter(report_id, regions, None))
            .order_by(SelfCheckFinding.id)
        )
        return _scoped(session, [_finding_view(f) for f in found], regions)


# --- the quarterly run -----------------------------------------------------------------------


def previous_quarter(today: dt.date) -> tuple[dt.date, dt.date]:
    """The calendar quarter before the one ``today`` is in: (first day, last day)."""
    this_quarter = dt.date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    last = this_quarter - dt.timedelta(days=1)
    return dt.date(last.year, last.month - 2, 1), last


def _quarter_done(ctx: Context, first: dt.date, last: dt.date) -> bool:
    with ctx.sessions() as session:
        found = session.scalar(
            select(SelfCheckReport.id)
            .where(
                SelfCheckReport.trigger == "quarterly",
                SelfCheckReport.period_from <= first,
                SelfCheckReport.period_to >= last,
            )
            .limit(1)
        )
    return found is not None


def selfcheck_step(ctx: Context, owner: str, *, today: dt.date | None = None) -> int:
    """For the worker: run the quarterly self-check of the previous calendar quarter
    (Asia/Shanghai) unless a quarterly report covers it already. Returns 1 when it ran."""
    first, last = previous_quarter(today or china_today())
    if _quarter_done(ctx, first, last):
        return 0
    with session_scope(ctx.sessions) as session:
        claimed = claim_job(session, QUARTERLY_JOB, owner, QUARTERLY_LEASE_SECONDS)
    if not claimed:
        return 0
    try:
        if _quarter_done(ctx, first, last):  # another worker ran it meanwhile
            return 0
        # the worker's id names who ran it (an operator name has no blanks)
        actor = "".join(owner.split())[:64] or QUARTERLY_JOB
        run_selfcheck(ctx, requested_by=actor, trigger="quarterly", since=first, until=last)
        return 1
    finally:
        with session_scope(ctx.sessions) as session:
            release_job(session, QUARTERLY_JOB, owner)
