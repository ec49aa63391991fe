"""The pure reconciliation logic: classification, tallies, money matching, findings —
hypothesis properties (totals conserved, every item classified exactly once, perfect
evidence ties out, every perturbation is named) and unit cases."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.payments.states import InvalidTransitionError, ItemState
from gateway.reconciliation.matching import (
    DISCREPANCY_TRANSITIONS,
    BatchFacts,
    DiscrepancyEvent,
    DiscrepancyState,
    DiscrepancyType,
    EntryFact,
    FileFact,
    ItemFact,
    MoneyLine,
    Outcome,
    ReconciliationConfig,
    ResultFact,
    Tally,
    check_batch,
    classify,
    discrepancy_next,
    is_sent,
    judge_bounce,
    judge_missing,
    judge_result,
    judge_unattributed_entry,
    lines_from_entries,
    lines_from_results,
    match_money,
    tally,
)

NOW = dt.datetime(2026, 11, 30, 8, 0, 0)
_FOLLOW_UPS = {ItemState.RETURNED, ItemState.REISSUED, ItemState.REFUNDED}


@st.composite
def item_facts(draw: st.DrawFn, *, final: bool = False) -> list[ItemFact]:
    states = [s for s in ItemState if not final or s.is_final()]
    n = draw(st.integers(min_value=0, max_value=40))
    out = []
    for i in range(n):
        state = draw(st.sampled_from(states))
        bounced = state == ItemState.BOUNCED or (state in _FOLLOW_UPS and draw(st.booleans()))
        out.append(
            ItemFact(
                item_id=i + 1,
                serial=f"S{i + 1:08d}",
                amount_fen=draw(st.integers(min_value=1, max_value=10**12)),
                state=state.value,
                file_id=draw(st.sampled_from([1, 2, 3])),
                bounced=bounced,
            )
        )
    return out


def perfect_lines(items: list[ItemFact], how: str) -> list[MoneyLine]:
    """The money evidence a well-behaved bank gives for ``items``."""
    paid = [it for it in items if classify(it.state, it.bounced) in {Outcome.PAID, Outcome.BOUNCED}]
    bounced = [it for it in items if classify(it.state, it.bounced) == Outcome.BOUNCED]
    if how == "itemised":
        entries = (
            [
                EntryFact(
                    1,
                    "debit",
                    sum(i.amount_fen for i in paid),
                    NOW.date(),
                    "R1",
                    "B",
                    tuple((i.serial, i.amount_fen) for i in paid),
                )
            ]
            if paid
            else []
        )
        entries += [
            EntryFact(
                10 + k,
                "credit",
                i.amount_fen,
                NOW.date(),
                f"R{k}",
                None,
                ((i.serial, i.amount_fen),),
            )
            for k, i in enumerate(bounced)
        ]
        return lines_from_entries(entries)
    if how == "lump":
        entries = []
        if paid:
            entries.append(EntryFact(1, "debit", sum(i.amount_fen for i in paid), NOW.date()))
        if bounced:
            entries.append(EntryFact(2, "credit", sum(i.amount_fen for i in bounced), NOW.date()))
        return lines_from_entries(entries)
    # results: the bank's own paid reports (banks without notices), with duplicates
    results = []
    rid = 0
    for it in paid:
        for status in ("paid", "paid") if it not in bounced else ("paid", "returned"):
            rid += 1
            disposition = "applied" if rid % 2 else "duplicate"
            results.append(
                ResultFact(rid, it.item_id, it.serial, status, it.amount_fen, disposition)
            )
    return lines_from_results(results)


def test_every_item_state_has_an_outcome() -> None:
    for state in ItemState:
        for bounced in (False, True):
            assert isinstance(classify(state.value, bounced), Outcome)
    assert classify("returned", bounced=True) == Outcome.BOUNCED
    assert classify("refunded", bounced=False) == Outcome.FAILED
    assert classify("operator_case") == Outcome.PENDING
    assert not is_sent("queued") and is_sent("unknown")


@given(item_facts())
def test_totals_conserved_and_every_item_classified_once(items: list[ItemFact]) -> None:
    t = tally(items)
    assert t.items == len(items)
    assert t.items_fen == sum(it.amount_fen for it in items)
    assert sum(t.count.values()) == len(items)  # exactly one outcome each
    assert t.balanced  # sent = paid + failed + bounced + pending
    # per file, merged, gives the batch's figures
    merged = Tally()
    for file_id in {it.file_id for it in items}:
        merged.merge(tally([it for it in items if it.file_id == file_id]))
    assert merged.as_dict() == t.as_dict()


@settings(max_examples=150)
@given(item_facts(final=True), st.sampled_from(["itemised", "lump", "results"]))
def test_perfect_evidence_ties_out(items: list[ItemFact], how: str) -> None:
    m = match_money(1, items, perfect_lines(items, how))
    assert m.findings == []
    assert m.difference_fen == 0
    assert m.net_debited_fen == sum(
        it.amount_fen for it in items if classify(it.state, it.bounced) == Outcome.PAID
    )
    facts = BatchFacts(
        1, "B-1", "B", "completed", NOW, True, items, lines=perfect_lines(items, how)
    )
    verdict = check_batch(facts, NOW)
    assert verdict.ties_out and verdict.findings == []


@settings(max_examples=150)
@given(
    item_facts(final=True),
    st.sampled_from(["itemised", "lump", "results"]),
    st.integers(min_value=1, max_value=10**9),
    st.data(),
)
def test_every_money_perturbation_is_named(
    items: list[ItemFact], how: str, extra: int, data: st.DataObject
) -> None:
    lines = perfect_lines(items, how)
    # money the bank took that no item explains
    m = match_money(1, items, [*lines, MoneyLine("debit", extra, None, "entry:99")])
    assert m.difference_fen == extra
    assert {f.type for f in m.findings} & {
        DiscrepancyType.DEBIT_WITHOUT_ITEMS,
        DiscrepancyType.AMOUNT_DIFFERS,
    }
    assert all(not f.shortfall for f in m.findings)
    # a debit line lost: the money is short by exactly that line
    debits = [i for i, line in enumerate(lines) if line.direction == "debit" and line.amount_fen]
    if debits:
        drop = data.draw(st.sampled_from(debits))
        m = match_money(1, items, lines[:drop] + lines[drop + 1 :])
        assert m.difference_fen == -lines[drop].amount_fen
        assert m.findings and all(f.shortfall for f in m.findings)
        assert {f.type for f in m.findings} <= {
            DiscrepancyType.ITEMS_WITHOUT_DEBIT,
            DiscrepancyType.AMOUNT_DIFFERS,
        }


def _items() -> list[ItemFact]:
    return [
        ItemFact(1, "S1", 10000, "paid", 1),
        ItemFact(2, "S2", 20000, "paid", 1),
        ItemFact(3, "S3", 30000, "failed", 1),
    ]


def test_debit_for_a_failed_item_is_money_without_items() -> None:
    lines = lines_from_entries(
        [
            EntryFact(
                5,
                "debit",
                60000,
                NOW.date(),
                "R",
                "B",
                (("S1", 10000), ("S2", 20000), ("S3", 30000)),
            )
        ]
    )
    m = match_money(1, _items(), lines)
    assert [(f.type, f.item_id) for f in m.findings] == [(DiscrepancyType.DEBIT_WITHOUT_ITEMS, 3)]
    assert m.difference_fen == 30000


def test_itemised_amount_differs_and_unitemised_rest() -> None:
    # the entry says 29 000 but itemises 10 000 + 20 000: the rest (−1 000) is unexplained
    lines = lines_from_entries(
        [EntryFact(5, "debit", 29000, NOW.date(), "R", "B", (("S1", 10000), ("S2", 20000)))]
    )
    m = match_money(1, _items(), lines)
    assert [f.type for f in m.findings] == [DiscrepancyType.AMOUNT_DIFFERS]
    assert m.findings[0].shortfall and m.difference_fen == -1000
    lines = lines_from_entries(
        [EntryFact(5, "debit", 29000, NOW.date(), "R", "B", (("S1", 9000), ("S2", 20000)))]
    )
    m = match_money(1, _items(), lines)
    assert [(f.type, f.item_id, f.amount_fen) for f in m.findings] == [
        (DiscrepancyType.AMOUNT_DIFFERS, 1, -1000)
    ]


def test_no_debit_at_all_waits_for_the_grace_then_is_named() -> None:
    config = ReconciliationConfig(debit_grace=dt.timedelta(hours=2))
    facts = BatchFacts(1, "B-1", "B", "completed", NOW, True, _items())
    early = check_batch(facts, NOW + dt.timedelta(hours=1), config)
    assert early.money_state == "awaiting" and early.findings == [] and not early.ties_out
    late = check_batch(facts, NOW + dt.timedelta(hours=3), config)
    assert late.money_state == "differs"
    assert [(f.type, f.amount_fen) for f in late.findings] == [
        (DiscrepancyType.ITEMS_WITHOUT_DEBIT, 30000)
    ]
    # a bank without notices has its evidence already: no waiting
    no_notices = BatchFacts(1, "B-1", "B", "completed", NOW, False, _items())
    assert check_batch(no_notices, NOW, config).money_state == "differs"


def test_excess_money_is_named_at_once() -> None:
    facts = BatchFacts(
        1,
        "B-1",
        "B",
        "completed",
        NOW,
        True,
        _items(),
        lines=[
            MoneyLine("debit", 30000, "S1", "entry:1"),
            MoneyLine("debit", 20000, "S2", "entry:1"),
        ],
    )
    verdict = check_batch(facts, NOW)
    assert verdict.money_state == "awaiting"  # within the grace: only the excess is named
    assert [f.type for f in verdict.findings] == [DiscrepancyType.AMOUNT_DIFFERS]


def test_in_flight_batches_are_not_money_checked() -> None:
    items = [*_items(), ItemFact(4, "S4", 1, "sent", 1)]
    verdict = check_batch(BatchFacts(1, "B-1", "B", "sent", None, True, items), NOW)
    assert verdict.money is None and verdict.money_state == "in_flight" and not verdict.all_final


def test_files_must_hold_what_they_declared() -> None:
    files = [FileFact(1, "PAY_1.txt", 3, 60000, NOW), FileFact(2, "PAY_2.txt", 1, 5, NOW)]
    facts = BatchFacts(1, "B-1", "B", "completed", NOW, False, _items(), files=files)
    verdict = check_batch(facts, NOW)
    assert verdict.unbalanced == ["file PAY_2.txt: declared 1 items / 5 fen, items hold 0 / 0"]
    assert not verdict.ties_out


def test_results_must_agree_with_states() -> None:
    items = [ItemFact(1, "S1", 100, "failed", 1), ItemFact(2, "S2", 100, "paid", 1)]
    results = [
        ResultFact(1, 1, "S1", "paid", 100, "applied"),
        ResultFact(2, 2, "S2", "paid", 100, "applied"),
    ]
    facts = BatchFacts(
        1,
        "B-1",
        "B",
        "completed",
        NOW,
        False,
        items,
        results=results,
        lines=lines_from_results(results),
    )
    found = check_batch(facts, NOW).findings
    # the bank's word (paid) against ours (failed); as money evidence, a payment for an
    # item we hold failed
    assert sorted((f.type.value, f.item_id) for f in found) == [
        ("debit_without_items", 1),
        ("paid_then_failed", 1),
    ]


def test_results_as_evidence_ignore_conflicts_and_mismatches() -> None:
    lines = lines_from_results(
        [
            ResultFact(1, 1, "S1", "paid", 100, "applied"),
            ResultFact(2, 1, "S1", "paid", 100, "duplicate"),
            ResultFact(3, 1, "S1", "failed", 100, "conflict"),
            ResultFact(4, 2, "S2", "paid", 999, "mismatch"),
            ResultFact(5, 3, "S3", "returned", 50, "applied"),
        ]
    )
    assert [(x.direction, x.serial, x.amount_fen) for x in lines] == [
        ("debit", "S1", 100),
        ("debit", "S3", 50),
        ("credit", "S3", 50),
    ]


def test_result_facts_name_their_type() -> None:
    sent = ItemFact(1, "S1", 100, "paid", 1)
    never = ItemFact(2, "S2", 100, "cancelled", None)
    cases = [
        (ResultFact(1, None, "SX", "paid", 100, "unknown_item"), None, "result_for_unsent"),
        (ResultFact(2, 2, "S2", "paid", 100, "conflict"), never, "result_for_unsent"),
        (ResultFact(3, 1, "S1", "paid", 90, "mismatch"), sent, "amount_differs"),
        (ResultFact(4, 1, "S1", "failed", 100, "conflict"), sent, "paid_then_failed"),
    ]
    for result, item, expected in cases:
        finding = judge_result(result, item, 7)
        assert finding is not None and finding.type == expected
        assert finding.key.endswith(f":result:{result.result_id}") and not finding.rechecked
    assert judge_result(ResultFact(5, 1, "S1", "paid", 100, "applied"), sent, 7) is None
    assert judge_result(ResultFact(6, 1, "S1", "paid", 100, "duplicate"), sent, 7) is None


def test_bounce_missing_and_unattributed_findings() -> None:
    bounce = judge_bounce(ItemFact(1, "S1", 100, "bounced", 1, True), 7, 55, NOW, "C054_R1.xml")
    assert bounce.type == DiscrepancyType.BOUNCE_AFTER_SUCCESS and bounce.amount_fen == 100
    config = ReconciliationConfig(missing_result_after=dt.timedelta(hours=1))
    f = FileFact(3, "PAY_3.txt", 2, 200, NOW)
    pending = [ItemFact(1, "S1", 100, "sent", 3), ItemFact(2, "S2", 100, "unknown", 3)]
    assert judge_missing(f, 7, pending, NOW + dt.timedelta(minutes=59), config) is None
    missing = judge_missing(f, 7, pending, NOW + dt.timedelta(hours=2), config)
    assert missing is not None and missing.type == DiscrepancyType.MISSING_RESULT
    assert missing.evidence["pending_count"] == 2 and missing.rechecked
    entry = judge_unattributed_entry(EntryFact(9, "debit", 500, NOW.date(), "R9"), "未列明批次")
    assert entry.type == DiscrepancyType.DEBIT_WITHOUT_ITEMS and entry.entry_id == 9


def test_discrepancy_lifecycle_is_open_explained_closed() -> None:
    s = discrepancy_next(DiscrepancyState.OPEN, DiscrepancyEvent.EXPLAIN)
    assert s == DiscrepancyState.EXPLAINED
    assert discrepancy_next(s, DiscrepancyEvent.CLOSE) == DiscrepancyState.CLOSED
    with pytest.raises(InvalidTransitionError):
        discrepancy_next(DiscrepancyState.OPEN, DiscrepancyEvent.CLOSE)
    for event in DiscrepancyEvent:
        with pytest.raises(InvalidTransitionError):
            discrepancy_next(DiscrepancyState.CLOSED, event)
    assert all(not s.is_resolved() for (s, _e) in DISCREPANCY_TRANSITIONS)
    assert all(t.label_zh for t in DiscrepancyType) and all(s.label_zh for s in DiscrepancyState)
