"""Treasury refunds (退回国库): cut-off selection, maker-checker, approval moving items to
``refunded`` with events, and re-issue from a refund through the real intake."""

from __future__ import annotations

import datetime as dt
import threading
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gateway.batches.models import PaymentItem
from gateway.context import Context
from gateway.payments.states import ItemEvent, ItemState
from gateway.payments.transitions import move_items
from gateway.rework.errors import (
    MakerCheckerError,
    NothingSelectedError,
    OperatorRequiredError,
    ReasonRequiredError,
    RefundSelectionError,
    RefundStaleError,
    RefundStateError,
)
from gateway.rework.models import AuditRecord, TreasuryRefund, TreasuryRefundItem
from gateway.rework.refunds import (
    RefundState,
    approve_refund,
    list_refunds,
    propose_refund,
    refund_items,
    refund_summary,
    reject_refund,
)
from tests.gateway.helpers import persons
from tests.gateway.rework.support import (
    batch,
    bounce,
    events,
    fail,
    item,
    item_state,
    pay,
    send,
)

PEOPLE = persons(8, seed=23)
YEAR_END = dt.date(2026, 12, 31)
WHY = "补贴对象当年无法更正（已去世，无继承账户）"


def _unpaid(ctx: Context) -> None:
    """R-1 (2026): 1 failed, 2 returned, 3 bounced, 4 paid, 5 still with the bank."""
    batch(ctx, "R-1", PEOPLE[:5])
    fail(ctx, "R-1", [1, 2])
    with ctx.sessions.begin() as s:
        move_items(s, PaymentItem.id == item(ctx, "R-1", 2).id, ItemEvent.RETURN, "test")
    bounce(ctx, "R-1", [3])
    pay(ctx, "R-1", [4])
    send(ctx, "R-1", [5])


def test_cutoff_selects_only_unpaid_final_items(ctx: Context) -> None:
    _unpaid(ctx)
    with pytest.raises(RefundSelectionError) as early:
        propose_refund(
            ctx, proposer="张出纳", reason=WHY, fiscal_year=2026, as_of=dt.date(2026, 12, 30)
        )
    assert set(early.value.problems.values()) == {"before_cutoff"}
    refund = propose_refund(ctx, proposer="张出纳", reason=WHY, fiscal_year=2026, as_of=YEAR_END)
    assert refund.state == RefundState.PROPOSED
    assert refund.item_count == 3
    assert refund.amount_fen == 10001 + 10002 + 10003
    assert refund.cutoff == YEAR_END and refund.payer_account == "43001700062050500001"
    assert refund.treasury_ref is None
    listed = {(i.seq, i.from_state) for i in refund_items(ctx, refund.id)}
    assert listed == {(1, "failed"), (2, "returned"), (3, "bounced")}
    # proposing moves nothing yet
    assert item_state(ctx, "R-1", 1) == ItemState.FAILED
    # the same items cannot be proposed twice
    with pytest.raises(NothingSelectedError):
        propose_refund(ctx, proposer="张出纳", reason=WHY, fiscal_year=2026, as_of=YEAR_END)


def test_configured_cutoff(ctx: Context) -> None:
    _unpaid(ctx)
    ctx.settings = ctx.settings.model_copy(update={"refund_cutoff": "11-30"})
    refund = propose_refund(
        ctx, proposer="张出纳", reason=WHY, batch_no="R-1", as_of=dt.date(2026, 11, 30)
    )
    assert refund.cutoff == dt.date(2026, 11, 30) and refund.item_count == 3
    # a year whose cut-off has not come yet is not selected
    batch(ctx, "R-2027", PEOPLE[:1], period="2027")
    fail(ctx, "R-2027", [1])
    with pytest.raises(RefundSelectionError):
        propose_refund(
            ctx, proposer="张出纳", reason=WHY, fiscal_year=2027, as_of=dt.date(2027, 11, 29)
        )


def test_explicit_items_all_or_nothing(ctx: Context) -> None:
    _unpaid(ctx)
    ids = {seq: item(ctx, "R-1", seq).id for seq in range(1, 6)}
    with pytest.raises(RefundSelectionError) as refused:
        propose_refund(
            ctx, proposer="张出纳", reason=WHY, item_ids=[ids[1], ids[4], ids[5]], as_of=YEAR_END
        )
    assert refused.value.problems == {
        ids[4]: "not_refundable:paid",
        ids[5]: "not_refundable:sent",
    }
    with pytest.raises(RefundSelectionError) as missing:
        propose_refund(ctx, proposer="张出纳", reason=WHY, item_ids=[999999], as_of=YEAR_END)
    assert missing.value.problems == {999999: "not_found"}
    with pytest.raises(RefundSelectionError) as early:
        propose_refund(
            ctx, proposer="张出纳", reason=WHY, item_ids=[ids[1]], as_of=dt.date(2026, 6, 1)
        )
    assert early.value.problems == {ids[1]: "before_cutoff"}
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(TreasuryRefund)) == 0
    one = propose_refund(ctx, proposer="张出纳", reason=WHY, item_ids=[ids[1]], as_of=YEAR_END)
    assert one.item_count == 1 and one.amount_fen == 10001
    with pytest.raises(RefundSelectionError) as twice:
        propose_refund(
            ctx, proposer="张出纳", reason=WHY, item_ids=[ids[1], ids[2]], as_of=YEAR_END
        )
    assert twice.value.problems == {ids[1]: "already_in_refund"}


def test_reason_and_selection_required(ctx: Context) -> None:
    _unpaid(ctx)
    with pytest.raises(ReasonRequiredError):
        propose_refund(ctx, proposer="张出纳", reason=" ", fiscal_year=2026, as_of=YEAR_END)
    with pytest.raises(NothingSelectedError):
        propose_refund(ctx, proposer="张出纳", reason=WHY, as_of=YEAR_END)


def test_one_refund_per_payer_account(ctx: Context) -> None:
    batch(ctx, "A-1", PEOPLE[:2])
    batch(ctx, "A-2", PEOPLE[2:4], payer_account="43001700062050509999")
    fail(ctx, "A-1", [1])
    fail(ctx, "A-2", [1])
    with pytest.raises(RefundSelectionError):
        propose_refund(ctx, proposer="张出纳", reason=WHY, fiscal_year=2026, as_of=YEAR_END)
    refund = propose_refund(
        ctx,
        proposer="张出纳",
        reason=WHY,
        fiscal_year=2026,
        payer_account="43001700062050509999",
        as_of=YEAR_END,
    )
    assert refund.item_count == 1 and refund.payer_account == "43001700062050509999"


def test_maker_checker_and_approval(ctx: Context) -> None:
    _unpaid(ctx)
    refund = propose_refund(ctx, proposer="张出纳", reason=WHY, fiscal_year=2026, as_of=YEAR_END)
    # the proposer cannot approve, however the name is typed
    for same in ("张出纳", " 张出纳 "):
        with pytest.raises(MakerCheckerError):
            approve_refund(ctx, refund.id, same)
    with pytest.raises(MakerCheckerError):
        reject_refund(ctx, refund.id, "张出纳", "撤回")
    assert item_state(ctx, "R-1", 1) == ItemState.FAILED

    approved = approve_refund(ctx, refund.id, "赵科长", note="年终清理")
    assert approved.state == RefundState.APPROVED
    assert approved.decided_by == "赵科长" and approved.decided_at is not None
    assert approved.treasury_ref is not None and approved.treasury_ref.startswith("TK")
    assert approved.treasury_ref.endswith(f"{refund.id:06d}")
    for seq, source in ((1, "failed"), (2, "returned"), (3, "bounced")):
        it = item(ctx, "R-1", seq)
        assert it.state == ItemState.REFUNDED
        last = events(ctx, it.id)[-1]
        assert (last.event, last.from_state, last.to_state, last.actor) == (
            "refund",
            source,
            "refunded",
            "operator:赵科长",
        )
        assert last.detail == {
            "treasury_refund_id": refund.id,
            "treasury_ref": approved.treasury_ref,
        }
    assert item_state(ctx, "R-1", 4) == ItemState.PAID
    assert item_state(ctx, "R-1", 5) == ItemState.SENT

    # decided once: a second approval, by anyone, and a late rejection are refused
    with pytest.raises(RefundStateError):
        approve_refund(ctx, refund.id, "钱主任")
    with pytest.raises(RefundStateError):
        approve_refund(ctx, refund.id, "赵科长")
    with pytest.raises(RefundStateError):
        reject_refund(ctx, refund.id, "钱主任", "不同意")

    assert refund_summary(ctx) == {"count": 3, "amount_fen": 30006}
    assert [r.id for r in list_refunds(ctx, state="approved")] == [refund.id]
    with ctx.sessions() as s:
        actions = [
            (a.action, a.actor)
            for a in s.scalars(select(AuditRecord).order_by(AuditRecord.id)).all()
        ]
    assert actions == [("refund.propose", "张出纳"), ("refund.approve", "赵科长")]


def test_rejected_refund_cannot_be_approved_and_frees_its_items(ctx: Context) -> None:
    _unpaid(ctx)
    refund = propose_refund(ctx, proposer="张出纳", reason=WHY, batch_no="R-1", as_of=YEAR_END)
    with pytest.raises(ReasonRequiredError):
        reject_refund(ctx, refund.id, "赵科长", "")
    rejected = reject_refund(ctx, refund.id, "赵科长", "还可以更正账号")
    assert rejected.state == RefundState.REJECTED and rejected.decision_note == "还可以更正账号"
    with pytest.raises(RefundStateError):
        approve_refund(ctx, refund.id, "钱主任")
    assert item_state(ctx, "R-1", 1) == ItemState.FAILED
    assert refund_summary(ctx) == {"count": 0, "amount_fen": 0}
    # its items are free again
    again = propose_refund(ctx, proposer="张出纳", reason=WHY, batch_no="R-1", as_of=YEAR_END)
    assert again.item_count == 3
    with ctx.sessions() as s:
        standing = s.scalar(
            select(func.count())
            .select_from(TreasuryRefundItem)
            .where(TreasuryRefundItem.active_item_id.is_not(None))
        )
    assert standing == 3


def test_approval_refused_when_an_item_moved_on(ctx: Context) -> None:
    _unpaid(ctx)
    refund = propose_refund(ctx, proposer="张出纳", reason=WHY, batch_no="R-1", as_of=YEAR_END)
    # meanwhile upstream re-issues the returned item (intake accepts returned items)
    batch(ctx, "R-1B", [PEOPLE[1]], reissue_of={1: ("R-1", 2)})
    with pytest.raises(RefundStaleError):
        approve_refund(ctx, refund.id, "赵科长")
    # nothing changed: still proposed, nothing refunded
    assert [r.state for r in list_refunds(ctx)] == ["proposed"]
    assert item_state(ctx, "R-1", 1) == ItemState.FAILED
    assert item_state(ctx, "R-1", 2) == ItemState.REISSUED
    reject_refund(ctx, refund.id, "赵科长", "明细已变化")
    fresh = propose_refund(ctx, proposer="张出纳", reason=WHY, batch_no="R-1", as_of=YEAR_END)
    assert fresh.item_count == 2
    assert approve_refund(ctx, fresh.id, "赵科长").state == RefundState.APPROVED


def test_reissue_from_a_refund_through_intake(ctx: Context) -> None:
    batch(ctx, "Y-1", PEOPLE[:2])
    fail(ctx, "Y-1", [1])
    pay(ctx, "Y-1", [2])
    refund = propose_refund(ctx, proposer="张出纳", reason=WHY, fiscal_year=2026, as_of=YEAR_END)
    approve_refund(ctx, refund.id, "赵科长")
    (ref,) = refund_items(ctx, refund.id)
    assert ref.state == ItemState.REFUNDED and ref.reissue_of == {"batch_no": "Y-1", "seq": 1}

    batch(ctx, "Y-2", [PEOPLE[0]], reissue_of={1: (ref.reissue_of["batch_no"], ref.seq)})
    original = item(ctx, "Y-1", 1)
    reissue = item(ctx, "Y-2", 1)
    assert original.state == ItemState.REISSUED
    assert reissue.reissue_of_id == original.id and reissue.state == ItemState.ACCEPTED
    # the refund record stands: it is reported, and shows the item re-issued since
    (after,) = refund_items(ctx, refund.id)
    assert after.state == ItemState.REISSUED
    assert refund_summary(ctx) == {"count": 1, "amount_fen": 10001}
    assert [r.state for r in list_refunds(ctx)] == ["approved"]


def test_reissue_event_names_the_refunded_source(ctx: Context) -> None:
    batch(ctx, "Z-1", PEOPLE[:1])
    fail(ctx, "Z-1", [1])
    refund = propose_refund(ctx, proposer="张出纳", reason=WHY, fiscal_year=2026, as_of=YEAR_END)
    approve_refund(ctx, refund.id, "赵科长")
    batch(ctx, "Z-2", PEOPLE[:1], reissue_of={1: ("Z-1", 1)})
    last = events(ctx, item(ctx, "Z-1", 1).id)[-1]
    assert (last.event, last.from_state, last.to_state) == ("reissue", "refunded", "reissued")


def test_concurrent_approvals_one_wins(pg_url: str, tmp_path: Path, dev_keys: Path) -> None:
    """Two checkers approve the same refund at once on PostgreSQL: exactly one succeeds and
    the items move once."""
    from gateway.demo.banks import write_profiles
    from tests.conftest import make_settings

    profiles = write_profiles(tmp_path, dev_keys, 9)
    ctx = Context.build(make_settings(pg_url, profiles))  # type: ignore[arg-type]
    try:
        batch(ctx, "P-1", PEOPLE[:4])
        fail(ctx, "P-1", [1, 2, 3, 4])
        refund = propose_refund(ctx, proposer="张出纳", reason=WHY, batch_no="P-1", as_of=YEAR_END)
        outcomes: list[str] = []
        barrier = threading.Barrier(2)

        def approve(name: str) -> None:
            barrier.wait()
            try:
                approve_refund(ctx, refund.id, name)
                outcomes.append("approved")
            except RefundStateError:
                outcomes.append("refused")

        threads = [threading.Thread(target=approve, args=(n,)) for n in ("赵科长", "钱主任")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(outcomes) == ["approved", "refused"]
        trail = events(ctx, item(ctx, "P-1", 1).id)
        assert [e.event for e in trail].count("refund") == 1
        assert refund_summary(ctx)["count"] == 4
    finally:
        ctx.close()


@pytest.mark.parametrize(
    ("value", "ok"),
    [("12-31", True), ("11-30", True), ("02-28", True), ("02-29", False), ("04-31", False)],
)
def test_cutoff_setting_is_a_day_every_year_has(value: str, ok: bool) -> None:
    from pydantic import ValidationError

    from gateway.settings import Settings

    if ok:
        assert Settings(refund_cutoff=value).refund_cutoff == value
    else:
        with pytest.raises(ValidationError):
            Settings(refund_cutoff=value)


# --- one person, however spelled ---------------------------------------------------------

_FORMAT = ["\u200b", "\u200c", "\u200d", "\u00ad", "\ufeff", "\u202e", "\u2066", "\u2060"]
_NAME = st.text(
    alphabet=st.characters(categories=["Lu", "Ll", "Lo", "Nd"]), min_size=1, max_size=12
)


def _folded(name: str) -> str:
    """The test's own reading of "the same name": NFKC + casefold, Cf characters removed."""
    text = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


@st.composite
def _spelling(draw: st.DrawFn, base: str) -> str:
    out: list[str] = []
    for c in base:
        style = draw(st.sampled_from(["same", "upper", "lower", "wide"]))
        ch = c.upper() if style == "upper" else c.lower() if style == "lower" else c
        if style == "wide" and "!" <= ch <= "~":
            ch = chr(ord(ch) + 0xFEE0)
        out.append(ch if _folded(ch) == _folded(c) else c)  # e.g. ı → I folds to i
        if draw(st.integers(0, 4)) == 0:
            out.insert(draw(st.integers(0, len(out))), draw(st.sampled_from(_FORMAT)))
    return "".join(out)


@st.composite
def _maker_and_lookalike(draw: st.DrawFn) -> tuple[str, str]:
    maker = draw(_NAME.filter(lambda n: 0 < len(n.strip()) == len(n)))
    return maker, draw(_spelling(maker))


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=_maker_and_lookalike())
def test_the_maker_never_checks_their_own_refund_however_spelled(
    ctx: Context, names: tuple[str, str]
) -> None:
    maker, checker = names
    assert _folded(maker) == _folded(checker)
    ctx.settings.refund_cutoff = "01-01"
    with ctx.sessions() as s:
        first = s.scalar(select(func.count()).select_from(TreasuryRefund)) == 0
    if first:
        batch(ctx, "R-P", PEOPLE[:1])
        fail(ctx, "R-P", [1])
    try:
        proposed = propose_refund(ctx, proposer=maker, reason=WHY, batch_no="R-P")
    except OperatorRequiredError:
        return  # a name no one may act under (e.g. too long once folded)
    with pytest.raises((MakerCheckerError, OperatorRequiredError)):
        approve_refund(ctx, proposed.id, checker)
    with pytest.raises((MakerCheckerError, OperatorRequiredError)):
        reject_refund(ctx, proposed.id, checker, "同一人")
    assert item_state(ctx, "R-P", 1) == ItemState.FAILED
    # a different person frees the items for the next example
    reject_refund(ctx, proposed.id, "另一位复核员", "换人重新提交")
