"""Treasury refunds on the dashboard: proposed from the failed-payments queue by one person,
approved or rejected by a different supervisor (the proposer is refused, with the reason in
Chinese and English), scoped to the viewer's regions, audited."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from gateway.context import Context
from gateway.rework.models import AuditRecord, TreasuryRefund
from tests.gateway.dashboard.support import DashClient
from tests.gateway.helpers import persons
from tests.gateway.rework.support import batch, fail, item, item_state, pay

PEOPLE = persons(8, seed=43)
WHY = "当年无法更正：账户已销户，本人已迁出"
Dash = Callable[[str], DashClient]


def unpaid(ctx: Context) -> None:
    """R-101 (township 101): 1, 2 failed, 3 paid; R-102 (township 102): 1 failed."""
    ctx.settings.refund_cutoff = "01-01"  # this year's items may be refunded already
    batch(ctx, "R-101", PEOPLE[:3], region="430621101")
    fail(ctx, "R-101", [1, 2])
    pay(ctx, "R-101", [3])
    batch(ctx, "R-102", PEOPLE[3:4], region="430621102")
    fail(ctx, "R-102", [1])


def propose(client: DashClient, ctx: Context, seqs: list[int], batch_no: str = "R-101") -> int:
    ids = [item(ctx, batch_no, n).id for n in seqs]
    response = client.post(
        "/failed/actions",
        {"action": "refund", "scope": "checked", "item": ids, "refund_reason": WHY},
    )
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert "/dashboard/refunds/" in location and "done=refund_proposed" in location
    return int(location.split("/refunds/")[1].split("?")[0])


def refund(ctx: Context, refund_id: int) -> TreasuryRefund:
    with ctx.sessions() as s:
        found = s.get(TreasuryRefund, refund_id)
        assert found is not None
        return found


def actions(ctx: Context, prefix: str) -> list[tuple[str, str]]:
    with ctx.sessions() as s:
        rows = s.scalars(
            select(AuditRecord)
            .where(AuditRecord.action.startswith(prefix))
            .order_by(AuditRecord.id)
        )
        return [(r.action, r.actor) for r in rows]


def test_propose_then_approve_as_two_different_people(ctx: Context, dash: Dash) -> None:
    unpaid(ctx)
    op = dash("op")
    refund_id = propose(op, ctx, [1, 2])
    page = op.get(f"/refunds/{refund_id}")
    assert page.status_code == 200
    assert "待审核" in page.text and WHY in page.text
    assert item(ctx, "R-101", 1).id_number_masked in page.text
    assert PEOPLE[0].id_number not in page.text and PEOPLE[0].account_no not in page.text
    assert f"/refunds/{refund_id}/approve" not in page.text  # an operator does not decide
    assert item_state(ctx, "R-101", 1) == "failed"  # proposing moves nothing

    sup = dash("sup")
    page = sup.get(f"/refunds/{refund_id}")
    assert f"/refunds/{refund_id}/approve" in page.text
    done = sup.post(f"/refunds/{refund_id}/approve", {"note": "同意"})
    assert done.status_code == 303 and "done=refund_approved" in done.headers["location"]
    decided = refund(ctx, refund_id)
    assert decided.state == "approved" and decided.decided_by == "sup"
    assert decided.proposed_by == "op" and decided.treasury_ref
    assert item_state(ctx, "R-101", 1) == item_state(ctx, "R-101", 2) == "refunded"
    assert actions(ctx, "refund.") == [("refund.propose", "op"), ("refund.approve", "sup")]
    shown = sup.get(f"/refunds/{refund_id}?done=refund_approved")
    assert decided.treasury_ref in shown.text and "已批准" in shown.text
    listed = sup.get("/refunds?state=approved")
    assert f"/refunds/{refund_id}" in listed.text
    assert f"/refunds/{refund_id}" not in sup.get("/refunds?state=proposed").text
    assert ("view.refund", "sup") in actions(ctx, "view.refund")


def test_the_proposer_cannot_approve_their_own_refund(ctx: Context, dash: Dash) -> None:
    unpaid(ctx)
    sup = dash("sup")
    refund_id = propose(sup, ctx, [1])
    page = sup.get(f"/refunds/{refund_id}")
    assert "须由另一名复核员审核" in page.text
    refused = sup.post(f"/refunds/{refund_id}/approve")
    assert refused.status_code == 400
    assert "提交人不能审核自己提交的退库单" in refused.text
    assert "maker-checker" in refused.text
    assert sup.post(f"/refunds/{refund_id}/reject", {"reason": "x"}).status_code == 400
    assert refund(ctx, refund_id).state == "proposed"
    assert item_state(ctx, "R-101", 1) == "failed"
    assert actions(ctx, "refund.") == [("refund.propose", "sup")]


def test_reject_needs_a_reason_and_frees_the_items(ctx: Context, dash: Dash) -> None:
    unpaid(ctx)
    refund_id = propose(dash("op101"), ctx, [1])
    sup = dash("sup")
    assert sup.post(f"/refunds/{refund_id}/reject", {"reason": ""}).status_code == 400
    done = sup.post(f"/refunds/{refund_id}/reject", {"reason": "仍可更正，先退回乡镇"})
    assert done.status_code == 303
    assert refund(ctx, refund_id).state == "rejected"
    assert item_state(ctx, "R-101", 1) == "failed"
    # decided once: no second decision
    assert sup.post(f"/refunds/{refund_id}/approve").status_code == 400
    # the item may be proposed again
    assert propose(dash("op101"), ctx, [1]) != refund_id


def test_unrefundable_items_are_refused_with_the_reason(ctx: Context, dash: Dash) -> None:
    unpaid(ctx)
    op = dash("op101")
    paid = item(ctx, "R-101", 3).id
    response = op.post(
        "/failed/actions",
        {"action": "refund", "scope": "checked", "item": [paid], "refund_reason": WHY},
    )
    assert response.status_code == 400
    assert "不能退回国库" in response.text
    missing_reason = op.post(
        "/failed/actions",
        {"action": "refund", "scope": "checked", "item": [item(ctx, "R-101", 1).id]},
    )
    assert missing_reason.status_code == 400 and "理由" in missing_reason.text
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(TreasuryRefund)) == 0


def test_refunds_are_scoped_and_only_supervisors_decide(ctx: Context, dash: Dash) -> None:
    unpaid(ctx)
    theirs = propose(dash("op102"), ctx, [1], batch_no="R-102")
    op101 = dash("op101")
    assert op101.get(f"/refunds/{theirs}").status_code == 404
    assert f"/refunds/{theirs}" not in op101.get("/refunds").text
    # an operator is not a checker; an auditor reads but never acts
    assert dash("op").post(f"/refunds/{theirs}/approve").status_code == 403
    aud = dash("aud")
    assert aud.get(f"/refunds/{theirs}").status_code == 200
    assert aud.post(f"/refunds/{theirs}/approve").status_code == 403
    assert aud.post(f"/refunds/{theirs}/reject", {"reason": "x"}).status_code == 403
    # without the CSRF token nothing is decided
    sup = dash("sup")
    assert sup.post(f"/refunds/{theirs}/approve", csrf=False).status_code == 403
    assert refund(ctx, theirs).state == "proposed"
    assert item_state(ctx, "R-102", 1) == "failed"


def test_propose_every_refundable_item_of_the_filter(ctx: Context, dash: Dash) -> None:
    unpaid(ctx)
    op = dash("op101")
    response = op.post(
        "/failed/actions",
        {"action": "refund", "scope": "filter", "filter": "", "refund_reason": WHY},
    )
    assert response.status_code == 303, response.text
    refund_id = int(response.headers["location"].split("/refunds/")[1].split("?")[0])
    proposed = refund(ctx, refund_id)
    # township 101's two failed items; not the paid one, not township 102's
    assert proposed.item_count == 2 and proposed.proposed_by == "op101"
    again = op.post(
        "/failed/actions",
        {"action": "refund", "scope": "filter", "filter": "state=unknown", "refund_reason": WHY},
    )
    assert again.status_code == 400
