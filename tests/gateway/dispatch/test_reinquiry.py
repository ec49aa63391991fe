"""A re-inquiry asked for by a person (``request_reinquiry``): the file goes back where the
worker's own inquiry logic picks it up, with a fresh inquiry budget — never a resend from
here, never while a worker holds the file, never once its items have an outcome."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from gateway.batches.models import PaymentItem
from gateway.context import Context
from gateway.dispatch.models import OutboundFile
from gateway.dispatch.service import ReinquiryRefusedError, request_reinquiry
from gateway.kit.clock import utcnow
from gateway.payments.states import FileState, ItemEvent
from gateway.payments.transitions import move_items
from tests.gateway.helpers import persons
from tests.gateway.rework.support import batch, item

PEOPLE = persons(4, seed=59)


def a_file(ctx: Context, state: FileState, *, profile: str = "hnrcu", inquiries: int = 5) -> int:
    """Batch Q-1 (two items) planned into one outbound file in ``state``."""
    batch(ctx, "Q-1", PEOPLE[:2])
    with ctx.sessions.begin() as s:
        first = item(ctx, "Q-1", 1)
        f = OutboundFile(
            batch_id=first.batch_id,
            bank_profile=profile,
            file_no=1,
            file_name="PAY_Q1.txt",
            signature_name="PAY_Q1.txt.sig",
            item_count=2,
            total_fen=1,
            sha256="0" * 64,
            size=1,
            content_enc=b"x",
            signature=b"x",
            state=state,
            attempts=7,
            inquiries=inquiries,
            next_attempt_at=utcnow() + dt.timedelta(hours=1),
        )
        s.add(f)
        s.flush()
        move_items(
            s,
            PaymentItem.batch_id == first.batch_id,
            ItemEvent.PLAN,
            "test",
            values={"outbound_file_id": f.id},
        )
        return f.id


def items_to(ctx: Context, *events: ItemEvent) -> None:
    with ctx.sessions.begin() as s:
        for event in events:
            move_items(s, PaymentItem.outbound_file_id.is_not(None), event, "test")


def reinquire(ctx: Context, file_id: int) -> OutboundFile:
    with ctx.sessions.begin() as s:
        request_reinquiry(ctx, s, file_id, "operator:op")
    with ctx.sessions() as s:
        f = s.get(OutboundFile, file_id)
        assert f is not None
        return f


def test_an_escalated_unknown_upload_goes_back_to_the_inquiry(ctx: Context) -> None:
    file_id = a_file(ctx, FileState.ESCALATED)
    items_to(ctx, ItemEvent.UPLOAD_UNKNOWN, ItemEvent.ESCALATE)
    before = utcnow()
    f = reinquire(ctx, file_id)
    assert f.state == FileState.UNKNOWN and f.inquiries == 0 and f.attempts == 7
    assert f.next_attempt_at <= utcnow() and f.next_attempt_at >= before
    assert f.last_error is not None and "re-inquiry requested by operator:op" in f.last_error
    # the items wait for the inquiry or the bank's result, untouched
    with ctx.sessions() as s:
        assert set(s.scalars(select(PaymentItem.state))) == {"operator_case"}


def test_a_file_never_sent_goes_back_to_planned(ctx: Context) -> None:
    file_id = a_file(ctx, FileState.ESCALATED)
    assert reinquire(ctx, file_id).state == FileState.PLANNED


def test_an_unknown_file_is_inquired_about_now(ctx: Context) -> None:
    file_id = a_file(ctx, FileState.UNKNOWN, inquiries=2)
    items_to(ctx, ItemEvent.UPLOAD_UNKNOWN)
    f = reinquire(ctx, file_id)
    assert f.state == FileState.UNKNOWN and f.next_attempt_at <= utcnow()
    assert f.inquiries == 2  # the budget is only renewed after the worker gave up


def test_refused_once_an_item_has_its_outcome(ctx: Context) -> None:
    file_id = a_file(ctx, FileState.ESCALATED)
    items_to(ctx, ItemEvent.UPLOAD_UNKNOWN, ItemEvent.ESCALATE)
    with ctx.sessions.begin() as s:
        move_items(s, PaymentItem.id == item(ctx, "Q-1", 1).id, ItemEvent.RESULT_PAID, "bank")
    with pytest.raises(ReinquiryRefusedError) as refused:
        reinquire(ctx, file_id)
    assert refused.value.code == "items_decided"


def test_refused_while_a_worker_holds_the_file(ctx: Context) -> None:
    file_id = a_file(ctx, FileState.UNKNOWN)
    with ctx.sessions.begin() as s:
        f = s.get(OutboundFile, file_id)
        assert f is not None
        f.lease_owner, f.lease_until = "w1", utcnow() + dt.timedelta(minutes=1)
    with pytest.raises(ReinquiryRefusedError) as refused:
        reinquire(ctx, file_id)
    assert refused.value.code == "file_busy"


def test_a_delivered_file(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    sftp = a_file(ctx, FileState.DELIVERED)
    with pytest.raises(ReinquiryRefusedError) as refused:
        reinquire(ctx, sftp)
    assert refused.value.code == "results_polled"
    with ctx.sessions.begin() as s:
        f = s.get(OutboundFile, sftp)
        assert f is not None
        f.bank_profile, f.polls, f.next_poll_at = "abc", 6, None
    # an API bank is asked for the submission's status again (the worker's poll)
    monkeypatch.setitem(ctx.profiles, "abc", SimpleNamespace(is_api=True))  # type: ignore[arg-type]
    api = reinquire(ctx, sftp)
    assert api.state == FileState.DELIVERED and api.polls == 0
    assert api.next_poll_at is not None and api.next_poll_at <= utcnow()


def test_a_rejected_file_is_not_inquired_about(ctx: Context) -> None:
    file_id = a_file(ctx, FileState.REJECTED)
    with pytest.raises(ReinquiryRefusedError) as refused:
        reinquire(ctx, file_id)
    assert refused.value.code == "not_inquirable"
    with pytest.raises(ReinquiryRefusedError):
        reinquire(ctx, 999_999)
