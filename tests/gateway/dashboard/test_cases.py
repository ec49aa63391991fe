"""Operator cases and discrepancies on the dashboard: evidence, region scope, closing with a
reason, the bank's manual confirmation with maker-checker (only the approval moves the item,
and it stages the SMS as a bank result would), and re-inquiry — the worker asks the bank
again, and never sends a file the bank already has."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from gateway.batches.models import ItemEventRecord, PaymentItem
from gateway.context import Context
from gateway.dispatch.models import OutboundFile
from gateway.dispatch.service import deliver_one, plan_one
from gateway.feedback.models import InboundFile, ManualConfirmation, OperatorCase
from gateway.feedback.service import Outcome, apply_outcomes
from gateway.notifications.models import SmsNotice
from gateway.payments.states import FileState, ItemEvent
from gateway.payments.transitions import move_items
from gateway.ports import OutcomeUnknownError
from gateway.reconciliation.models import Discrepancy
from gateway.reconciliation.service import reconcile
from gateway.rework.models import AuditRecord
from tests.gateway.dashboard.support import DashClient
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import drive, states, submit
from tests.gateway.rework.support import batch, bounce, item, item_state

PEOPLE = persons(10, seed=47)
Dash = Callable[[str], DashClient]


def case_for_items(ctx: Context) -> tuple[int, int]:
    """C-101 (township 101): item 1 in operator_case (its file escalated), item 2 unknown.
    Returns (case id, case item id)."""
    batch(ctx, "C-101", PEOPLE[:3], region="430621101")
    first, second = item(ctx, "C-101", 1), item(ctx, "C-101", 2)
    with ctx.sessions.begin() as s:
        ids = PaymentItem.id.in_([first.id, second.id])
        for event in (ItemEvent.PLAN, ItemEvent.UPLOAD_UNKNOWN):
            move_items(s, ids, event, "test")
        move_items(s, PaymentItem.id == first.id, ItemEvent.ESCALATE, "test")
        case = OperatorCase(
            kind="outcome_unknown",
            item_id=first.id,
            batch_id=first.batch_id,
            summary="多次查询后仍无法确认文件是否送达银行",
            evidence="TransportError: timed out",
        )
        s.add(case)
        s.flush()
        return case.id, first.id


def audit_rows(ctx: Context, action: str) -> list[AuditRecord]:
    with ctx.sessions() as s:
        return list(s.scalars(select(AuditRecord).where(AuditRecord.action == action)))


def confirmation_id(response_text: str) -> int:
    found = re.search(r"/cases/confirmations/(\d+)/approve", response_text)
    assert found, "no approval form on the page"
    return int(found.group(1))


def test_cases_list_and_page_show_the_evidence_within_scope(ctx: Context, dash: Dash) -> None:
    case_id, item_id = case_for_items(ctx)
    op = dash("op101")
    listing = op.get("/cases")
    assert listing.status_code == 200
    assert f"/cases/case/{case_id}" in listing.text and "多次查询仍无法确认" in listing.text
    page = op.get(f"/cases/case/{case_id}")
    assert page.status_code == 200
    it = item(ctx, "C-101", 1)
    assert it.id_number_masked in page.text and it.account_masked in page.text
    assert PEOPLE[0].id_number not in page.text and PEOPLE[0].account_no not in page.text
    assert "TransportError: timed out" in page.text
    assert "upload_unknown" in page.text and "escalate" in page.text  # the item's events
    assert f"/cases/confirm/{item_id}?case={case_id}" in page.text
    assert audit_rows(ctx, "view.case")
    # another township: as if it did not exist
    other = dash("op102")
    assert other.get(f"/cases/case/{case_id}").status_code == 404
    assert f"/cases/case/{case_id}" not in other.get("/cases").text
    assert dash("aud").get(f"/cases/case/{case_id}").status_code == 200


def test_a_case_tied_to_no_batch_is_seen_by_county_wide_viewers_only(
    ctx: Context, dash: Dash
) -> None:
    profile = ctx.profiles["hnrcu"]
    with ctx.sessions.begin() as s:
        inbound = InboundFile(
            bank_profile="hnrcu",
            file_name="RESULT_STRAY.txt",
            sha256="0" * 64,
            size=10,
            state="applied",
        )
        s.add(inbound)
        s.flush()
        stray = Outcome("99999999ZZZZ", "paid", "0000", "成功", 100, "R1", None)
        apply_outcomes(s, ctx.pii, profile, inbound, [stray], "test")
    with ctx.sessions() as s:
        case = s.scalar(select(OperatorCase))
    assert case is not None and case.kind == "unknown_serial" and case.batch_id is None
    for user, seen in (("op", True), ("sup", True), ("aud", True), ("op101", False)):
        client = dash(user)
        assert (f"/cases/case/{case.id}" in client.get("/cases").text) is seen, user
        assert client.get(f"/cases/case/{case.id}").status_code == (200 if seen else 404)


def test_manual_confirmation_needs_a_second_person(ctx: Context, dash: Dash) -> None:
    case_id, item_id = case_for_items(ctx)
    op = dash("op101")
    form = op.get(f"/cases/confirm/{item_id}?case={case_id}")
    assert form.status_code == 200 and 'name="bank_ref"' in form.text
    # paid needs the bank's reference, and every confirmation says how it was obtained
    missing = op.post(
        f"/cases/confirm/{item_id}", {"outcome": "paid", "note": "电话确认", "case": case_id}
    )
    assert missing.status_code == 400 and "银行流水号" in missing.text
    recorded = op.post(
        f"/cases/confirm/{item_id}",
        {
            "outcome": "paid",
            "bank_ref": "BK20261128001",
            "note": "电话向县联社核实，经办人王某，11月28日10时",
            "case": case_id,
        },
    )
    assert recorded.status_code == 303
    assert f"/cases/case/{case_id}" in recorded.headers["location"]
    # recording moves nothing
    assert item_state(ctx, "C-101", 1) == "operator_case"
    # the operator may not approve (not a supervisor), not even their own
    page = dash("sup").get(f"/cases/case/{case_id}")
    cid = confirmation_id(page.text)
    assert op.post(f"/cases/confirmations/{cid}/approve").status_code == 403
    assert item_state(ctx, "C-101", 1) == "operator_case"
    # a second standing confirmation of the same item is refused
    again = op.post(
        f"/cases/confirm/{item_id}",
        {"outcome": "failed", "reason_code": "account_frozen", "note": "again"},
    )
    assert again.status_code == 400

    approved = dash("sup").post(f"/cases/confirmations/{cid}/approve", {"note": "核实无误"})
    assert approved.status_code == 303
    it = item(ctx, "C-101", 1)
    assert it.state == "paid" and it.bank_ref == "BK20261128001" and it.paid_at is not None
    with ctx.sessions() as s:
        events = [
            (e.event, e.actor)
            for e in s.scalars(
                select(ItemEventRecord)
                .where(ItemEventRecord.item_id == item_id)
                .order_by(ItemEventRecord.id)
            )
        ]
        notices = list(s.scalars(select(SmsNotice).where(SmsNotice.item_id == item_id)))
        mc = s.get(ManualConfirmation, cid)
    assert events[-1] == ("operator_paid", "operator:sup")
    assert [n.notice_type for n in notices] == ["paid"]  # the SMS owed, as for a bank result
    assert mc is not None and (mc.proposed_by, mc.decided_by, mc.state) == (
        "op101",
        "sup",
        "approved",
    )
    assert [r.actor for r in audit_rows(ctx, "case.confirm_propose")] == ["op101"]
    assert [r.actor for r in audit_rows(ctx, "case.confirm_approve")] == ["sup"]
    # decided once
    assert (
        dash("sup").post(f"/cases/confirmations/{cid}/reject", {"reason": "x"}).status_code == 400
    )


def test_the_recorder_cannot_approve_their_own_confirmation(ctx: Context, dash: Dash) -> None:
    case_for_items(ctx)
    sup = dash("sup")
    unknown = item(ctx, "C-101", 2)
    recorded = sup.post(
        f"/cases/confirm/{unknown.id}",
        {"outcome": "failed", "reason_code": "account_closed", "note": "银行函件：账户已销户"},
    )
    assert recorded.status_code == 303
    page = sup.get(f"/cases/confirm/{unknown.id}")
    assert "由您记录，须另一名复核员审核" in page.text
    with ctx.sessions() as s:
        cid = s.scalar(select(ManualConfirmation.id))
    assert cid is not None
    refused = sup.post(f"/cases/confirmations/{cid}/approve")
    assert refused.status_code == 400 and "maker-checker" in refused.text
    assert item_state(ctx, "C-101", 2) == "unknown"
    # rejected by nobody else either: the operator is not a checker
    assert dash("op").post(f"/cases/confirmations/{cid}/reject", {"reason": "x"}).status_code == 403


def test_an_approved_failure_of_an_unknown_item_goes_through_the_state_machine(
    ctx: Context, dash: Dash
) -> None:
    case_for_items(ctx)
    unknown = item(ctx, "C-101", 2)
    dash("op").post(
        f"/cases/confirm/{unknown.id}",
        {"outcome": "failed", "reason_code": "account_closed", "note": "银行函件：账户已销户"},
    )
    with ctx.sessions() as s:
        cid = s.scalar(select(ManualConfirmation.id))
    assert dash("sup").post(f"/cases/confirmations/{cid}/approve").status_code == 303
    it = item(ctx, "C-101", 2)
    assert it.state == "failed" and it.reason_code == "account_closed"
    with ctx.sessions() as s:
        trail = [
            (e.event, e.from_state, e.to_state)
            for e in s.scalars(
                select(ItemEventRecord)
                .where(ItemEventRecord.item_id == it.id)
                .order_by(ItemEventRecord.id)
            )
        ]
    assert trail[-2:] == [
        ("escalate", "unknown", "operator_case"),
        ("operator_failed", "operator_case", "failed"),
    ]
    # it is now in the failed queue with its reason and action
    queue = dash("op101").get("/failed?state=failed")
    assert it.serial in queue.text and "账户已销户" in queue.text


def test_closing_a_case_needs_a_supervisor_and_a_reason(ctx: Context, dash: Dash) -> None:
    case_id, _ = case_for_items(ctx)
    assert dash("op101").post(f"/cases/case/{case_id}/close", {"reason": "x"}).status_code == 403
    assert dash("aud").post(f"/cases/case/{case_id}/close", {"reason": "x"}).status_code == 403
    sup = dash("sup")
    assert sup.post(f"/cases/case/{case_id}/close", {"reason": " "}).status_code == 400
    assert sup.post(f"/cases/case/{case_id}/close", {"reason": "x"}, csrf=False).status_code == 403
    done = sup.post(f"/cases/case/{case_id}/close", {"reason": "银行已书面确认，见人工确认C1"})
    assert done.status_code == 303
    with ctx.sessions() as s:
        case = s.get(OperatorCase, case_id)
    assert case is not None and case.state == "closed" and case.closed_by == "sup"
    assert case.close_reason == "银行已书面确认，见人工确认C1"
    [row] = audit_rows(ctx, "case.close")
    assert row.actor == "sup" and row.reason == case.close_reason
    page = sup.get(f"/cases/case/{case_id}")
    assert "银行已书面确认" in page.text and f"/cases/case/{case_id}/close" not in page.text
    assert f"/cases/case/{case_id}" in sup.get("/cases?state=closed").text
    assert f"/cases/case/{case_id}" not in sup.get("/cases").text
    assert sup.post(f"/cases/case/{case_id}/close", {"reason": "again"}).status_code == 400


def test_discrepancy_is_explained_then_closed_by_a_supervisor(ctx: Context, dash: Dash) -> None:
    batch(ctx, "D-101", PEOPLE[3:5], region="430621101")
    bounce(ctx, "D-101", [1])
    reconcile(ctx, "recon")
    with ctx.sessions() as s:
        d = s.scalar(select(Discrepancy).where(Discrepancy.type == "bounce_after_success"))
    assert d is not None
    op = dash("op101")
    assert f"/cases/discrepancy/{d.id}" in op.get("/cases?tab=discrepancies").text
    page = op.get(f"/cases/discrepancy/{d.id}")
    assert page.status_code == 200 and "成功后退票" in page.text
    assert item(ctx, "D-101", 1).account_masked in page.text
    assert dash("op102").get(f"/cases/discrepancy/{d.id}").status_code == 404
    assert op.post(f"/cases/discrepancy/{d.id}/close", {"reason": "x"}).status_code == 403
    assert op.post(f"/cases/discrepancy/{d.id}/explain", {"explanation": ""}).status_code == 400
    explained = op.post(f"/cases/discrepancy/{d.id}/explain", {"explanation": "账户已销户"})
    assert explained.status_code == 303
    sup = dash("sup")
    closed = sup.post(f"/cases/discrepancy/{d.id}/close", {"reason": "已通知乡镇收集新账户"})
    assert closed.status_code == 303
    with ctx.sessions() as s:
        done = s.get(Discrepancy, d.id)
    assert done is not None and done.state == "closed"
    assert (done.explained_by, done.closed_by) == ("op101", "sup")
    assert [r.actor for r in audit_rows(ctx, "discrepancy.explain")] == ["op101"]
    assert [r.actor for r in audit_rows(ctx, "discrepancy.close")] == ["sup"]
    # closed once: a second close is refused
    assert sup.post(f"/cases/discrepancy/{d.id}/close", {"reason": "x"}).status_code == 400


def test_confirmations_outside_the_viewers_regions_are_refused(ctx: Context, dash: Dash) -> None:
    case_id, item_id = case_for_items(ctx)
    other = dash("op102")
    assert other.get(f"/cases/confirm/{item_id}").status_code == 404
    response = other.post(
        f"/cases/confirm/{item_id}",
        {"outcome": "paid", "bank_ref": "X1", "note": "forged"},
    )
    assert response.status_code == 404
    assert other.post(f"/cases/case/{case_id}/reinquire").status_code == 404
    with ctx.sessions() as s:
        assert s.scalar(select(ManualConfirmation.id)) is None
    assert not audit_rows(ctx, "case.reinquire")


def test_auditor_cannot_act_on_cases(ctx: Context, dash: Dash) -> None:
    case_id, item_id = case_for_items(ctx)
    aud = dash("aud")
    page = aud.get(f"/cases/case/{case_id}")
    assert "/reinquire" not in page.text and "/close" not in page.text
    posts: list[tuple[str, dict[str, Any]]] = [
        (f"/cases/case/{case_id}/close", {"reason": "x"}),
        (f"/cases/case/{case_id}/reinquire", {}),
        (f"/cases/confirm/{item_id}", {"outcome": "paid", "bank_ref": "X", "note": "x"}),
        ("/cases/confirmations/1/approve", {}),
        ("/cases/confirmations/1/reject", {"reason": "x"}),
        ("/cases/discrepancy/1/explain", {"explanation": "x"}),
        ("/cases/discrepancy/1/close", {"reason": "x"}),
    ]
    for path, body in posts:
        assert aud.post(path, body).status_code == 403, path
    assert aud.get(f"/cases/confirm/{item_id}").status_code == 403
    assert item_state(ctx, "C-101", 1) == "operator_case"


class _LostThenDown:
    """The real SFTP transport, except that the first upload of the data file lands but its
    reply is lost, and from then on the bank's link is down until ``up`` is set."""

    def __init__(self, ctx: Context) -> None:
        self.profile = ctx.profiles["hnrcu"]
        self.real_open = self.profile.open_transport
        self.mode = "lose_reply"
        self.profile.open_transport = self.open  # type: ignore[method-assign]

    def open(self) -> Any:
        if self.mode == "down":
            raise OutcomeUnknownError("the bank's link is down")
        outer = self
        real = self.real_open()

        class Wrapped:
            def __enter__(self) -> Any:
                real.__enter__()
                return self

            def __exit__(self, *exc: object) -> None:
                real.__exit__(*exc)

            def put_atomic(self, directory: str, name: str, data: bytes) -> None:
                real.put_atomic(directory, name, data)
                if outer.mode == "lose_reply" and name.endswith(".txt"):
                    outer.mode = "down"
                    raise OutcomeUnknownError("the rename's reply was lost")

            def __getattr__(self, attr: str) -> Any:
                return getattr(real, attr)

        return Wrapped()


def _escalate_file(ctx: Context) -> OutboundFile:
    for _ in range(10):
        with ctx.sessions.begin() as s:
            s.execute(
                OutboundFile.__table__.update().values(
                    next_attempt_at=dt.datetime(2000, 1, 1)  # due now
                )
            )
        if not deliver_one(ctx, "t"):
            break
    with ctx.sessions() as s:
        f = s.scalar(select(OutboundFile))
    assert f is not None and f.state == FileState.ESCALATED
    return f


def test_reinquire_makes_the_worker_inquire_and_never_resend(
    ctx: Context, bank: Any, dash: Dash
) -> None:
    ctx.settings.inquiry_max_attempts = 2
    link = _LostThenDown(ctx)
    submit(ctx, payload("U-101", PEOPLE[5:8]))
    plan_one(ctx, "t")
    f = _escalate_file(ctx)
    assert states(ctx) == {"operator_case": 3}
    with ctx.sessions() as s:
        case = s.scalar(select(OperatorCase).where(OperatorCase.kind == "outcome_unknown"))
    assert case is not None
    link.mode = "up"
    # left alone, the worker does not touch an escalated file
    assert deliver_one(ctx, "t") is False
    op = dash("op101")
    page = op.get(f"/cases/case/{case.id}")
    assert f"/cases/case/{case.id}/reinquire" in page.text and f.file_name in page.text
    done = op.post(f"/cases/case/{case.id}/reinquire")
    assert done.status_code == 303 and "done=case_reinquired" in done.headers["location"]
    with ctx.sessions() as s:
        reset = s.get(OutboundFile, f.id)
    assert reset is not None and reset.state == FileState.UNKNOWN and reset.inquiries == 0
    [row] = audit_rows(ctx, "case.reinquire")
    assert row.actor == "op101" and row.detail is not None
    assert (row.detail["from_state"], row.detail["to_state"]) == ("escalated", "unknown")
    # the worker inquires: the file is on the bank's side, so it is recorded, not re-sent
    assert deliver_one(ctx, "t") is True
    with ctx.sessions() as s:
        after = s.get(OutboundFile, f.id)
    assert after is not None and after.state == FileState.DELIVERED and after.inquiries == 1
    assert drive(ctx) == {"paid": 3}  # the bank's results settle the operator cases
    summary = bank.ledger.summary()
    assert summary["files_processed"] == 1 and summary["double_credits"] == 0
    # a second re-inquiry is refused: the items have their outcome
    again = op.post(f"/cases/case/{case.id}/reinquire")
    assert again.status_code == 400


def test_reinquire_is_refused_while_a_confirmation_awaits_approval(
    ctx: Context, dash: Dash
) -> None:
    batch(ctx, "C-102", PEOPLE[8:10], region="430621101")
    with ctx.sessions.begin() as s:
        it = s.get(PaymentItem, item(ctx, "C-102", 2).id)
        assert it is not None
        move_items(s, PaymentItem.id == it.id, ItemEvent.PLAN, "test")
        f = OutboundFile(
            batch_id=it.batch_id,
            bank_profile="hnrcu",
            file_no=1,
            file_name="PAY_TEST.txt",
            signature_name="PAY_TEST.txt.sig",
            item_count=1,
            total_fen=it.amount_fen,
            sha256="0" * 64,
            size=1,
            content_enc=b"x",
            signature=b"x",
            state=FileState.ESCALATED,
        )
        s.add(f)
        s.flush()
        it.outbound_file_id = f.id
        move_items(s, PaymentItem.id == it.id, ItemEvent.UPLOAD_UNKNOWN, "test")
        move_items(s, PaymentItem.id == it.id, ItemEvent.ESCALATE, "test")
        case = OperatorCase(
            kind="outcome_unknown", outbound_file_id=f.id, summary="多次查询后仍无法确认"
        )
        s.add(case)
        s.flush()
        case_id, item_id, file_id = case.id, it.id, f.id
    op = dash("op101")
    page = op.get(f"/cases/case/{case_id}")
    assert f"/cases/confirm/{item_id}?case={case_id}" in page.text  # the file's items
    op.post(
        f"/cases/confirm/{item_id}",
        {"outcome": "paid", "bank_ref": "BK1", "note": "电话确认", "case": case_id},
    )
    refused = op.post(f"/cases/case/{case_id}/reinquire")
    assert refused.status_code == 400 and "待复核" in refused.text
    with ctx.sessions() as s:
        f_now = s.get(OutboundFile, file_id)
    assert f_now is not None and f_now.state == FileState.ESCALATED
