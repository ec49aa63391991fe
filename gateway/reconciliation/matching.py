"""Reconciliation (对账), the pure part: no I/O, no clock, no database.

Callers (``service``, ``statements``) load *facts* — items, the bank's per-item results,
the bank's money evidence — and pass ``now``; this module classifies, adds up, matches and
names every mismatch as a :class:`Finding`. Everything here is deterministic, so it is
unit-tested with hypothesis (``tests/gateway/reconciliation/test_matching.py``).

Item level
    Every item has exactly one current :class:`Outcome` (``classify``): not sent, pending
    (with the bank), paid, failed, or bounced (paid, then the money came back: 退票). A
    :class:`Tally` adds counts and amounts per outcome and, independently, what was sent;
    ``Tally.balanced`` is the identity *sent = paid + failed + bounced + pending* (counts
    and fen) that must hold per file, per batch, per bank and per day.

Account level
    The bank's money evidence for a batch is a list of :class:`MoneyLine` (a debit of the
    payer account, or a credit back), per item serial where the bank itemises it:

    - banks that send payer-account notifications (ISO 20022 camt.054, the fixed-width
      bank's ``ACT_`` account movements files): the booked entries (``lines_from_entries``)
      — an entry's itemised details (``TxDtls``, movement lines naming an item) give
      per-item lines, the rest of its amount is a line without a serial;
    - banks that send none (an API bank read without its account movements): the bank's own
      reported paid results (``lines_from_results``) — each file's/answer's paid totals are
      checked against its lines by the parser, so the per-item paid reports *are* the
      bank's reported paid totals per file. It is the only evidence such a bank gives; a
      person must compare it with the account statement.

    ``match_money`` expects a debit of every paid or bounced item and a credit back of
    every bounced one; *debited − credited = paid* is the tie-out.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from gateway.kit.money import format_yuan
from gateway.payments.states import InvalidTransitionError, ItemState

# --- enums -----------------------------------------------------------------------------------


class Outcome(StrEnum):
    """An item's one current outcome, for reconciliation."""

    NOT_SENT = "not_sent"
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    BOUNCED = "bounced"

    @property
    def label_zh(self) -> str:
        return _OUTCOME_LABELS_ZH[self]


_OUTCOME_LABELS_ZH = {
    Outcome.NOT_SENT: "未发送",
    Outcome.PENDING: "待银行结果",
    Outcome.PAID: "已支付",
    Outcome.FAILED: "支付失败",
    Outcome.BOUNCED: "退票",
}

# Every item state, mapped. ``None``: a follow-up of a failure *or* of a bounce (returned for
# correction, re-issued, refunded to the treasury) — the item's event trail decides.
_OUTCOME_OF_STATE: dict[ItemState, Outcome | None] = {
    ItemState.ACCEPTED: Outcome.NOT_SENT,
    ItemState.QUEUED: Outcome.NOT_SENT,
    ItemState.CANCELLED: Outcome.NOT_SENT,
    ItemState.SENT: Outcome.PENDING,
    ItemState.UNKNOWN: Outcome.PENDING,
    ItemState.OPERATOR_CASE: Outcome.PENDING,
    ItemState.PAID: Outcome.PAID,
    ItemState.FAILED: Outcome.FAILED,
    ItemState.BOUNCED: Outcome.BOUNCED,
    ItemState.RETURNED: None,
    ItemState.REISSUED: None,
    ItemState.REFUNDED: None,
}


class DiscrepancyType(StrEnum):
    """What kind of mismatch (差异类型)."""

    MISSING_RESULT = "missing_result"
    RESULT_FOR_UNSENT = "result_for_unsent"
    AMOUNT_DIFFERS = "amount_differs"
    PAID_THEN_FAILED = "paid_then_failed"
    BOUNCE_AFTER_SUCCESS = "bounce_after_success"
    DEBIT_WITHOUT_ITEMS = "debit_without_items"
    ITEMS_WITHOUT_DEBIT = "items_without_debit"

    @property
    def label_zh(self) -> str:
        return _TYPE_LABELS_ZH[self]


_TYPE_LABELS_ZH = {
    DiscrepancyType.MISSING_RESULT: "发送后未收到结果",
    DiscrepancyType.RESULT_FOR_UNSENT: "未发送明细的结果",
    DiscrepancyType.AMOUNT_DIFFERS: "金额不符",
    DiscrepancyType.PAID_THEN_FAILED: "结果前后矛盾",
    DiscrepancyType.BOUNCE_AFTER_SUCCESS: "成功后退票",
    DiscrepancyType.DEBIT_WITHOUT_ITEMS: "有扣款无明细",
    DiscrepancyType.ITEMS_WITHOUT_DEBIT: "有明细无扣款",
}


class DiscrepancyState(StrEnum):
    """open → explained → closed; only a person explains and closes."""

    OPEN = "open"
    EXPLAINED = "explained"
    CLOSED = "closed"

    def is_resolved(self) -> bool:
        return self == DiscrepancyState.CLOSED

    @property
    def label_zh(self) -> str:
        return _STATE_LABELS_ZH[self]


_STATE_LABELS_ZH = {
    DiscrepancyState.OPEN: "待处理",
    DiscrepancyState.EXPLAINED: "已说明",
    DiscrepancyState.CLOSED: "已关闭",
}

UNRESOLVED = (DiscrepancyState.OPEN.value, DiscrepancyState.EXPLAINED.value)


class DiscrepancyEvent(StrEnum):
    DETECT = "detect"  # (none) → open
    EXPLAIN = "explain"  # open → explained
    CLOSE = "close"  # explained → closed
    # the condition is no longer (or again) observed: recorded, the state does not change
    # (a fixed mismatch is never silently dropped — a person closes it)
    CLEARED = "cleared"
    OBSERVED_AGAIN = "observed_again"


DISCREPANCY_TRANSITIONS: dict[tuple[DiscrepancyState, DiscrepancyEvent], DiscrepancyState] = {
    (DiscrepancyState.OPEN, DiscrepancyEvent.EXPLAIN): DiscrepancyState.EXPLAINED,
    (DiscrepancyState.EXPLAINED, DiscrepancyEvent.CLOSE): DiscrepancyState.CLOSED,
}


def discrepancy_next(state: DiscrepancyState, event: DiscrepancyEvent) -> DiscrepancyState:
    """The discrepancy state after ``event``; raises InvalidTransitionError."""
    try:
        return DISCREPANCY_TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransitionError("discrepancy", state, event) from None


# --- facts -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemFact:
    item_id: int
    serial: str
    amount_fen: int
    state: str
    file_id: int | None = None
    bounced: bool = False  # its trail holds a ``bounce`` event (money came back: 退票)


@dataclass(frozen=True, slots=True)
class ResultFact:
    """One row of ``item_results``: a per-item result as the bank reported it."""

    result_id: int
    item_id: int | None
    serial: str
    status: str  # paid | failed | returned
    amount_fen: int
    disposition: str  # applied | duplicate | conflict | unknown_item | mismatch
    bank_code: str = ""
    bank_ref: str = ""
    source: str = ""  # the inbound file's name


@dataclass(frozen=True, slots=True)
class EntryFact:
    """A booked entry on the payer account (camt.054 ``Ntry``, a statement line)."""

    entry_id: int
    direction: Literal["debit", "credit"]
    amount_fen: int
    booked_on: dt.date
    bank_ref: str = ""
    batch_serial: str | None = None
    details: tuple[tuple[str, int], ...] = ()  # (item serial, fen)


@dataclass(frozen=True, slots=True)
class FileFact:
    """An outbound request file: what it declared and when it left."""

    file_id: int
    file_name: str
    item_count: int
    total_fen: int
    sent_at: dt.datetime | None  # delivered (or, while unconfirmed, planned) at


@dataclass(frozen=True, slots=True)
class MoneyLine:
    """One piece of the bank's money evidence for a batch."""

    direction: Literal["debit", "credit"]
    amount_fen: int  # may be negative for the unitemised rest of an entry
    serial: str | None  # None: an amount the bank did not itemise
    source: str  # ``entry:<id>`` or ``result:<id>``


@dataclass(frozen=True)
class ReconciliationConfig:
    """Tuning. ``missing_result_after``: a sent item with no result after this long is a
    discrepancy. ``debit_grace``: how long after a batch completed its debit notice may
    still arrive before a shortfall is a discrepancy (banks with notices only; excess
    money is reported at once). ``cursor_lag``: rows younger than this are read again next
    run (a transaction that commits late is never skipped). ``sweep_interval``: how often
    every completed, not yet reconciled batch is checked again (in between, only batches
    something happened to are)."""

    missing_result_after: dt.timedelta = dt.timedelta(hours=48)
    debit_grace: dt.timedelta = dt.timedelta(hours=48)
    cursor_lag: dt.timedelta = dt.timedelta(seconds=60)
    sweep_interval: dt.timedelta = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class BatchFacts:
    batch_id: int
    batch_no: str
    serial: str | None
    state: str
    completed_at: dt.datetime | None
    has_account_notices: bool
    items: Sequence[ItemFact]
    files: Sequence[FileFact] = ()
    results: Sequence[ResultFact] = ()  # applied/duplicate results of its items
    lines: Sequence[MoneyLine] = ()


@dataclass(frozen=True)
class Finding:
    """A mismatch, named. ``key`` identifies it across runs (idempotent detection);
    ``rechecked``: a condition re-evaluated every run (it may clear), as opposed to a
    recorded fact (a conflicting result, a bounce) that never goes away. ``evidence``
    is JSON-safe and holds no personal data (serials, amounts, bank codes and refs)."""

    type: DiscrepancyType
    key: str
    summary: str
    evidence: dict[str, Any]
    amount_fen: int | None = None
    batch_id: int | None = None
    item_id: int | None = None
    result_id: int | None = None
    entry_id: int | None = None
    file_id: int | None = None
    rechecked: bool = False
    shortfall: bool = False  # money missing (may still arrive) rather than money in excess


# --- item level ------------------------------------------------------------------------------


def classify(state: str, bounced: bool = False) -> Outcome:
    """The one current outcome of an item in ``state``."""
    outcome = _OUTCOME_OF_STATE[ItemState(state)]
    if outcome is None:
        return Outcome.BOUNCED if bounced else Outcome.FAILED
    return outcome


def is_sent(state: str) -> bool:
    """The item has left our hands (the bank has, or may have, it), whatever happened next.
    Deliberately decided from the state alone, independently of ``classify``."""
    return ItemState(state) not in {ItemState.ACCEPTED, ItemState.QUEUED, ItemState.CANCELLED}


@dataclass
class Tally:
    """Counts and amounts (fen) per outcome, plus what was sent, counted on its own."""

    count: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    fen: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    sent_count: int = 0
    sent_fen: int = 0

    def add(self, state: str, amount_fen: int, bounced: bool = False) -> Outcome:
        outcome = classify(state, bounced)
        self.count[outcome] += 1
        self.fen[outcome] += amount_fen
        if is_sent(state):
            self.sent_count += 1
            self.sent_fen += amount_fen
        return outcome

    def merge(self, other: Tally) -> None:
        for o in Outcome:
            self.count[o] += other.count[o]
            self.fen[o] += other.fen[o]
        self.sent_count += other.sent_count
        self.sent_fen += other.sent_fen

    @property
    def items(self) -> int:
        return sum(self.count.values())

    @property
    def items_fen(self) -> int:
        return sum(self.fen.values())

    @property
    def balanced(self) -> bool:
        """sent = paid + failed + bounced + pending, in count and in fen; every item is
        either sent or not."""
        parts = (Outcome.PAID, Outcome.FAILED, Outcome.BOUNCED, Outcome.PENDING)
        return (
            self.sent_count == sum(self.count[o] for o in parts)
            and self.sent_fen == sum(self.fen[o] for o in parts)
            and self.items == self.sent_count + self.count[Outcome.NOT_SENT]
            and self.items_fen == self.sent_fen + self.fen[Outcome.NOT_SENT]
        )

    def as_dict(self) -> dict[str, int]:
        out = {"sent_count": self.sent_count, "sent_fen": self.sent_fen}
        for o in Outcome:
            out[f"{o.value}_count"] = self.count[o]
            out[f"{o.value}_fen"] = self.fen[o]
        return out


def tally(items: Iterable[ItemFact]) -> Tally:
    t = Tally()
    for it in items:
        t.add(it.state, it.amount_fen, it.bounced)
    return t


# --- account level ---------------------------------------------------------------------------


def lines_from_entries(entries: Iterable[EntryFact]) -> list[MoneyLine]:
    """Money lines from booked payer-account entries: one per itemised detail, plus the
    part of the entry's amount its details do not account for (if any)."""
    lines: list[MoneyLine] = []
    for e in entries:
        source = f"entry:{e.entry_id}"
        for serial, fen in e.details:
            lines.append(MoneyLine(e.direction, fen, serial, source))
        rest = e.amount_fen - sum(fen for _, fen in e.details)
        if rest or not e.details:
            lines.append(MoneyLine(e.direction, rest, None, source))
    return lines


_EVIDENCE_DISPOSITIONS = frozenset({"applied", "duplicate"})


def lines_from_results(results: Iterable[ResultFact]) -> list[MoneyLine]:
    """Money lines for a bank that sends no account notices: the bank's own accepted paid
    reports. Per serial, the first report that it paid (``paid`` or ``returned``) is a
    debit; a ``returned`` report is also a credit back. Conflicting and mismatched reports
    are not evidence (they are discrepancies of their own)."""
    debited: set[str] = set()
    credited: set[str] = set()
    lines: list[MoneyLine] = []
    for r in sorted(results, key=lambda r: r.result_id):
        if r.disposition not in _EVIDENCE_DISPOSITIONS:
            continue
        source = f"result:{r.result_id}"
        if r.status in {"paid", "returned"} and r.serial not in debited:
            debited.add(r.serial)
            lines.append(MoneyLine("debit", r.amount_fen, r.serial, source))
        if r.status == "returned" and r.serial not in credited:
            credited.add(r.serial)
            lines.append(MoneyLine("credit", r.amount_fen, r.serial, source))
    return lines


@dataclass
class MoneyMatch:
    """The batch's money: what should have moved, what the bank says moved."""

    expected_debit_fen: int = 0  # paid + bounced items
    expected_credit_fen: int = 0  # bounced items
    debited_fen: int = 0
    credited_fen: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def paid_fen(self) -> int:
        return self.expected_debit_fen - self.expected_credit_fen

    @property
    def net_debited_fen(self) -> int:
        return self.debited_fen - self.credited_fen

    @property
    def difference_fen(self) -> int:
        """debited − credited − paid: zero when the money ties out."""
        return self.net_debited_fen - self.paid_fen


def match_money(
    batch_id: int,
    items: Sequence[ItemFact],
    lines: Sequence[MoneyLine],
) -> MoneyMatch:
    """Match the bank's money lines against the batch's items (all of them final)."""
    expected: dict[str, dict[str, int]] = {"debit": {}, "credit": {}}
    by_serial = {it.serial: it for it in items}
    for it in items:
        outcome = classify(it.state, it.bounced)
        if outcome in {Outcome.PAID, Outcome.BOUNCED}:
            expected["debit"][it.serial] = it.amount_fen
        if outcome == Outcome.BOUNCED:
            expected["credit"][it.serial] = it.amount_fen
    got: dict[str, dict[str, int]] = {"debit": defaultdict(int), "credit": defaultdict(int)}
    pool = {"debit": 0, "credit": 0}
    sources: dict[str, set[str]] = {"debit": set(), "credit": set()}
    for line in lines:
        sources[line.direction].add(line.source)
        if line.serial is None:
            pool[line.direction] += line.amount_fen
        else:
            got[line.direction][line.serial] += line.amount_fen
    m = MoneyMatch(
        expected_debit_fen=sum(expected["debit"].values()),
        expected_credit_fen=sum(expected["credit"].values()),
        debited_fen=sum(got["debit"].values()) + pool["debit"],
        credited_fen=sum(got["credit"].values()) + pool["credit"],
    )
    for direction in ("debit", "credit"):
        m.findings += _match_direction(
            batch_id,
            direction,
            expected[direction],
            got[direction],
            pool[direction],
            by_serial,
            sorted(sources[direction]),
        )
    return m


def _match_direction(
    batch_id: int,
    direction: str,
    expected: Mapping[str, int],
    got: Mapping[str, int],
    pool: int,
    by_serial: Mapping[str, ItemFact],
    sources: list[str],
) -> list[Finding]:
    what = "扣款" if direction == "debit" else "退回入账"
    base = f"batch:{batch_id}:{direction}"
    findings: list[Finding] = []
    uncovered: dict[str, int] = {}
    for serial in sorted(set(expected) | set(got)):
        want, have = expected.get(serial, 0), got.get(serial, 0)
        if want == have:
            continue
        if have == 0:
            uncovered[serial] = want
            continue
        it = by_serial.get(serial)
        ev: dict[str, Any] = {
            "direction": direction,
            "serial": serial,
            "expected_fen": want,
            "booked_fen": have,
            "item_state": it.state if it else None,
            "sources": sources,
        }
        if want == 0:
            findings.append(
                Finding(
                    DiscrepancyType.DEBIT_WITHOUT_ITEMS,
                    f"debit_without_items:{base}:{serial}:{have}",
                    f"银行{what}{format_yuan(have)}元，对应的明细（{serial}）"
                    + ("不属于本批次" if it is None else "并未支付成功"),
                    ev,
                    amount_fen=have,
                    batch_id=batch_id,
                    item_id=it.item_id if it else None,
                    rechecked=True,
                )
            )
        else:
            findings.append(
                Finding(
                    DiscrepancyType.AMOUNT_DIFFERS,
                    f"amount_differs:{base}:{serial}:{want}:{have}",
                    f"明细{serial}应{what}{format_yuan(want)}元，银行实际{what}"
                    f"{format_yuan(have)}元",
                    ev,
                    amount_fen=have - want,
                    batch_id=batch_id,
                    item_id=it.item_id if it else None,
                    rechecked=True,
                    shortfall=have < want,
                )
            )
    missing = sum(uncovered.values())
    if pool == missing:
        return findings  # the unitemised amounts cover exactly the items not itemised
    ev = {
        "direction": direction,
        "uncovered_serials": sorted(uncovered),
        "uncovered_fen": missing,
        "unitemised_fen": pool,
        "sources": sources,
    }
    if pool == 0:
        findings.append(
            Finding(
                DiscrepancyType.ITEMS_WITHOUT_DEBIT,
                f"items_without_debit:{base}:{len(uncovered)}:{missing}",
                f"{len(uncovered)}笔明细（合计{format_yuan(missing)}元）未见银行{what}",
                ev,
                amount_fen=missing,
                batch_id=batch_id,
                rechecked=True,
                shortfall=True,
            )
        )
    elif missing == 0 and pool > 0:
        findings.append(
            Finding(
                DiscrepancyType.DEBIT_WITHOUT_ITEMS,
                f"debit_without_items:{base}:pool:{pool}",
                f"银行{what}{format_yuan(pool)}元，对应不到本批次的明细",
                ev,
                amount_fen=pool,
                batch_id=batch_id,
                rechecked=True,
            )
        )
    else:
        findings.append(
            Finding(
                DiscrepancyType.AMOUNT_DIFFERS,
                f"amount_differs:{base}:pool:{missing}:{pool}",
                f"本批次应{what}{format_yuan(missing)}元，银行未逐笔列明的{what}为"
                f"{format_yuan(pool)}元",
                ev,
                amount_fen=pool - missing,
                batch_id=batch_id,
                rechecked=True,
                shortfall=pool < missing,
            )
        )
    return findings


# --- one batch -------------------------------------------------------------------------------

MoneyState = Literal["in_flight", "tied", "awaiting", "differs"]


@dataclass
class BatchVerdict:
    batch_id: int
    tally: Tally
    files: dict[int, Tally]
    money: MoneyMatch | None  # None while items still await the bank
    money_state: MoneyState
    findings: list[Finding]
    unbalanced: list[str]  # broken identities (a bug, not a bank problem)

    @property
    def all_final(self) -> bool:
        return self.tally.count[Outcome.PENDING] == 0

    @property
    def ties_out(self) -> bool:
        return self.all_final and self.money_state == "tied" and not self.unbalanced

    @property
    def money_checked(self) -> bool:
        """Every money condition was evaluated (so an earlier one not seen now cleared)."""
        return self.money_state in {"tied", "differs"}


def check_batch(
    facts: BatchFacts, now: dt.datetime, config: ReconciliationConfig | None = None
) -> BatchVerdict:
    """Tally a batch, check its results against its states, and — once every item is final
    — match its money. Shortfalls of a bank that sends notices wait ``debit_grace`` after
    completion (the notice may still come); excess money is reported at once."""
    config = config or ReconciliationConfig()
    t = Tally()
    files: dict[int, Tally] = {}
    for it in facts.items:
        t.add(it.state, it.amount_fen, it.bounced)
        if it.file_id is not None:
            files.setdefault(it.file_id, Tally()).add(it.state, it.amount_fen, it.bounced)
    unbalanced = [] if t.balanced else [f"batch {facts.batch_no}: sent ≠ sum of outcomes"]
    for f in facts.files:
        ft = files.get(f.file_id, Tally())
        if not ft.balanced or (ft.items, ft.items_fen) != (f.item_count, f.total_fen):
            unbalanced.append(
                f"file {f.file_name}: declared {f.item_count} items / {f.total_fen} fen, "
                f"items hold {ft.items} / {ft.items_fen}"
            )
    findings = agreement(facts.batch_id, facts.items, facts.results)
    if t.count[Outcome.PENDING]:
        return BatchVerdict(facts.batch_id, t, files, None, "in_flight", findings, unbalanced)
    money = match_money(facts.batch_id, facts.items, facts.lines)
    state: MoneyState = "tied"
    if money.findings or money.difference_fen:
        waiting = facts.has_account_notices and (
            facts.completed_at is None or now - facts.completed_at < config.debit_grace
        )
        if waiting:
            findings += [f for f in money.findings if not f.shortfall]
            state = "awaiting"
        else:
            findings += money.findings
            state = "differs"
    return BatchVerdict(facts.batch_id, t, files, money, state, findings, unbalanced)


_CONSISTENT_LAST_STATUS = {
    Outcome.PAID: {"paid"},
    Outcome.BOUNCED: {"paid", "returned"},
    Outcome.FAILED: {"failed"},
    Outcome.PENDING: set(),
    Outcome.NOT_SENT: set(),
}


def agreement(
    batch_id: int, items: Sequence[ItemFact], results: Sequence[ResultFact]
) -> list[Finding]:
    """The results recorded as applied must agree with each item's state: the last applied
    result names the outcome the item holds. A disagreement is reported as a contradiction
    between the bank's word and ours (``paid_then_failed``)."""
    applied: dict[int, list[ResultFact]] = defaultdict(list)
    for r in sorted(results, key=lambda r: r.result_id):
        if r.item_id is not None and r.disposition == "applied":
            applied[r.item_id].append(r)
    findings: list[Finding] = []
    for it in items:
        rows = applied.get(it.item_id)
        if not rows:
            continue
        outcome = classify(it.state, it.bounced)
        last = rows[-1]
        if last.status in _CONSISTENT_LAST_STATUS[outcome]:
            continue
        findings.append(
            Finding(
                DiscrepancyType.PAID_THEN_FAILED,
                f"paid_then_failed:item:{it.item_id}:{it.state}:{last.result_id}",
                f"明细{it.serial}的状态（{outcome.label_zh}）与银行结果（{last.status}）不一致",
                {
                    "check": "state_disagrees_with_result",
                    "serial": it.serial,
                    "item_state": it.state,
                    "outcome": outcome.value,
                    "applied_results": [[r.result_id, r.status, r.bank_code] for r in rows],
                },
                amount_fen=it.amount_fen,
                batch_id=batch_id,
                item_id=it.item_id,
                result_id=last.result_id,
                rechecked=True,
            )
        )
    return findings


# --- facts that are discrepancies in themselves ------------------------------------------------


def judge_result(r: ResultFact, item: ItemFact | None, batch_id: int | None) -> Finding | None:
    """A recorded bank result that is a discrepancy by itself: one for an item never sent,
    one whose amount or account differ from what was sent, one contradicting an earlier
    result. Keyed by the result row: it is a fact, it never clears."""
    ev: dict[str, Any] = {
        "serial": r.serial,
        "reported_status": r.status,
        "reported_fen": r.amount_fen,
        "bank_code": r.bank_code,
        "bank_ref": r.bank_ref,
        "source": r.source,
        "disposition": r.disposition,
    }
    if item is not None:
        ev |= {"item_state": item.state, "sent_fen": item.amount_fen}
    common: dict[str, Any] = {
        "batch_id": batch_id,
        "item_id": item.item_id if item else None,
        "result_id": r.result_id,
    }
    if r.disposition == "unknown_item" or (
        r.disposition == "conflict" and item is not None and not is_sent(item.state)
    ):
        return Finding(
            DiscrepancyType.RESULT_FOR_UNSENT,
            f"result_for_unsent:result:{r.result_id}",
            f"银行报告了本系统未发送的明细（流水号{r.serial}，{format_yuan(r.amount_fen)}元）",
            ev,
            amount_fen=r.amount_fen,
            **common,
        )
    if r.disposition == "mismatch":
        sent = item.amount_fen if item else 0
        differs = "金额" if item is None or sent != r.amount_fen else "账号"
        return Finding(
            DiscrepancyType.AMOUNT_DIFFERS,
            f"amount_differs:result:{r.result_id}",
            f"银行回盘{differs}与发送的明细不一致（流水号{r.serial}：发送{format_yuan(sent)}元，"
            f"回盘{format_yuan(r.amount_fen)}元），未采纳",
            ev | {"differs": "amount" if differs == "金额" else "account"},
            amount_fen=r.amount_fen - sent,
            **common,
        )
    if r.disposition == "conflict":
        held = classify(item.state, item.bounced).label_zh if item else "?"
        return Finding(
            DiscrepancyType.PAID_THEN_FAILED,
            f"paid_then_failed:result:{r.result_id}",
            f"明细{r.serial}已为“{held}”，银行又报告“{r.status}”（{r.bank_code}），未覆盖",
            ev,
            amount_fen=item.amount_fen if item else r.amount_fen,
            **common,
        )
    return None


def judge_bounce(
    item: ItemFact, batch_id: int, event_id: int, at: dt.datetime, source: str | None
) -> Finding:
    """退票: a paid item's money came back. A normal event with its own state; a person
    must see it (the beneficiary was not paid after all: re-issue or refund)."""
    return Finding(
        DiscrepancyType.BOUNCE_AFTER_SUCCESS,
        f"bounce_after_success:item:{item.item_id}",
        f"明细{item.serial}支付成功后被退票，{format_yuan(item.amount_fen)}元退回付款账户；"
        "请核实账户后重新发放或退回国库",
        {
            "serial": item.serial,
            "amount_fen": item.amount_fen,
            "item_state": item.state,
            "bounce_event_id": event_id,
            "bounced_at": at.isoformat(),
            "source": source,
        },
        amount_fen=item.amount_fen,
        batch_id=batch_id,
        item_id=item.item_id,
    )


def judge_missing(
    f: FileFact,
    batch_id: int,
    pending: Sequence[ItemFact],
    now: dt.datetime,
    config: ReconciliationConfig,
) -> Finding | None:
    """Items of a file still awaiting the bank ``missing_result_after`` after it left."""
    if not pending or f.sent_at is None or now - f.sent_at < config.missing_result_after:
        return None
    hours = int((now - f.sent_at).total_seconds() // 3600)
    fen = sum(it.amount_fen for it in pending)
    return Finding(
        DiscrepancyType.MISSING_RESULT,
        f"missing_result:file:{f.file_id}",
        f"文件{f.file_name}发出{hours}小时后仍有{len(pending)}笔（{format_yuan(fen)}元）"
        "未收到银行结果",
        {
            "file": f.file_name,
            "sent_at": f.sent_at.isoformat(),
            "waited_hours": hours,
            "pending_count": len(pending),
            "pending_fen": fen,
            "serials": sorted(it.serial for it in pending)[:200],
            "states": sorted({it.state for it in pending}),
        },
        amount_fen=fen,
        batch_id=batch_id,
        file_id=f.file_id,
        rechecked=True,
    )


def judge_unattributed_entry(e: EntryFact, reason: str) -> Finding:
    """A booked entry on the payer account that names no batch of ours we sent."""
    what = "扣款" if e.direction == "debit" else "退回入账"
    return Finding(
        DiscrepancyType.DEBIT_WITHOUT_ITEMS,
        f"debit_without_items:entry:{e.entry_id}",
        f"付款账户{e.booked_on.isoformat()}有银行{what}{format_yuan(e.amount_fen)}元"
        f"（银行流水{e.bank_ref}），对应不到本系统发送的批次",
        {
            "direction": e.direction,
            "amount_fen": e.amount_fen,
            "booked_on": e.booked_on.isoformat(),
            "bank_ref": e.bank_ref,
            "batch_serial": e.batch_serial,
            "details": [list(d) for d in e.details][:200],
            "reason": reason,
        },
        amount_fen=e.amount_fen,
        entry_id=e.entry_id,
    )
