"""An upload whose outcome is unknown is followed by an inquiry, never a blind resend; after
too many inquiries it becomes an operator case. Faults are injected around the real SFTP
transport talking to the mock bank."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from gateway.context import Context
from gateway.dispatch.models import OutboundFile
from gateway.dispatch.service import deliver_one, plan_one
from gateway.feedback.models import OperatorCase
from gateway.payments.states import FileState
from gateway.ports import OutcomeUnknownError
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import drive, states, submit


class LostRenameReply:
    """The real transport, except that the reply to the data file's rename is 'lost' (the
    rename happened on the server): the classic ambiguous failure."""

    def __init__(self, real: Any, fail_times: int, *, after: bool = True) -> None:
        self.real = real
        self.fail_times = fail_times
        self.after = after

    def __enter__(self) -> LostRenameReply:
        self.real.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.real.__exit__(*exc)

    def put_atomic(self, directory: str, name: str, data: bytes) -> None:
        if name.endswith(".txt") and self.fail_times > 0:
            self.fail_times -= 1
            if self.after:
                self.real.put_atomic(directory, name, data)
            raise OutcomeUnknownError("connection dropped before the rename reply")
        self.real.put_atomic(directory, name, data)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.real, attr)


def _inject(ctx: Context, fails: int, *, after: bool = True) -> None:
    profile = ctx.profiles["hnrcu"]
    real_open = profile.open_transport
    budget = {"n": fails}

    def open_transport() -> Any:
        t = LostRenameReply(real_open(), budget["n"], after=after)
        budget["n"] = 0  # the budget is spent by the first session that fails
        return t

    profile.open_transport = open_transport  # type: ignore[method-assign]


def test_lost_rename_reply_is_resolved_by_inquiry(ctx: Context, bank: Any) -> None:
    _inject(ctx, 1)
    submit(ctx, payload("U-1", persons(4)))
    plan_one(ctx, "t")
    assert deliver_one(ctx, "t")
    with ctx.sessions() as s:
        f = s.scalar(select(OutboundFile))
    assert f is not None and f.state == FileState.UNKNOWN
    assert states(ctx) == {"unknown": 4}
    assert drive(ctx) == {"paid": 4}
    with ctx.sessions() as s:
        f = s.scalar(select(OutboundFile))
    assert f is not None and f.state == FileState.DELIVERED and f.inquiries == 1
    summary = bank.ledger.summary()
    assert summary["files_processed"] == 1 and summary["double_credits"] == 0


def test_unknown_before_the_rename_uploads_again_after_inquiry(ctx: Context, bank: Any) -> None:
    _inject(ctx, 1, after=False)  # the drop happened before anything reached the server
    submit(ctx, payload("U-2", persons(3)))
    plan_one(ctx, "t")
    deliver_one(ctx, "t")
    assert states(ctx) == {"unknown": 3}
    assert drive(ctx) == {"paid": 3}
    assert bank.ledger.summary()["credits"] == 3


def test_inquiries_exhausted_become_an_operator_case(ctx: Context, bank: Any) -> None:
    ctx.settings.inquiry_max_attempts = 2
    profile = ctx.profiles["hnrcu"]

    def always_unknown() -> Any:
        raise OutcomeUnknownError("server stopped answering mid-session")

    profile.open_transport = always_unknown  # type: ignore[method-assign]
    submit(ctx, payload("U-3", persons(2)))
    plan_one(ctx, "t")
    for _ in range(10):
        with ctx.sessions() as s:
            s.execute(
                OutboundFile.__table__.update().values(next_attempt_at=OutboundFile.created_at)
            )
            s.commit()
        if not deliver_one(ctx, "t"):
            break
    with ctx.sessions() as s:
        f = s.scalar(select(OutboundFile))
        case = s.scalar(select(OperatorCase))
    assert f is not None and f.state == FileState.ESCALATED
    assert case is not None and case.kind == "outcome_unknown"
    assert states(ctx) == {"operator_case": 2}
    del bank


class UnclassifiedAfterUpload(LostRenameReply):
    """The real transport, except that the data file's upload ends in an error the adapter
    did not classify (after the rename happened on the server)."""

    def put_atomic(self, directory: str, name: str, data: bytes) -> None:
        self.real.put_atomic(directory, name, data)
        if name.endswith(".txt") and self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("unexpected packet from the server")


def test_an_unclassified_error_is_an_unknown_outcome_resolved_by_inquiry(
    ctx: Context, bank: Any
) -> None:
    profile = ctx.profiles["hnrcu"]
    real_open = profile.open_transport
    budget = {"n": 1}

    def open_transport() -> Any:
        t = UnclassifiedAfterUpload(real_open(), budget["n"])
        budget["n"] = 0
        return t

    profile.open_transport = open_transport  # type: ignore[method-assign]
    submit(ctx, payload("U-4", persons(3)))
    plan_one(ctx, "t")
    assert deliver_one(ctx, "t")
    with ctx.sessions() as s:
        f = s.scalar(select(OutboundFile))
    # the file may have landed: inquire next time, neither resend blindly nor fail
    assert f is not None and f.state == FileState.UNKNOWN
    assert "RuntimeError" in (f.last_error or "")
    assert states(ctx) == {"unknown": 3}
    assert drive(ctx) == {"paid": 3}
    summary = bank.ledger.summary()
    assert summary["files_processed"] == 1 and summary["double_credits"] == 0


class UnclassifiedOnEveryLook(LostRenameReply):
    """The real transport, connected, except that looking at the far side always ends in
    an error the adapter did not classify."""

    def stat(self, directory: str, name: str) -> Any:
        raise RuntimeError("transport library bug")


def test_unclassified_errors_that_persist_become_an_operator_case(ctx: Context, bank: Any) -> None:
    ctx.settings.inquiry_max_attempts = 2
    profile = ctx.profiles["hnrcu"]
    real_open = profile.open_transport
    profile.open_transport = lambda: UnclassifiedOnEveryLook(real_open(), 0)  # type: ignore[method-assign]
    submit(ctx, payload("U-5", persons(2)))
    plan_one(ctx, "t")
    for _ in range(10):
        with ctx.sessions() as s:
            s.execute(
                OutboundFile.__table__.update().values(next_attempt_at=OutboundFile.created_at)
            )
            s.commit()
        if not deliver_one(ctx, "t"):
            break
    with ctx.sessions() as s:
        f = s.scalar(select(OutboundFile))
        case = s.scalar(select(OperatorCase))
    # inquired about within the budget, then handed to a person: held, never failed
    assert f is not None and f.state == FileState.ESCALATED and f.inquiries == 2
    assert case is not None and case.kind == "delivery_error"
    assert "transport library bug" in (case.evidence or "")
    assert states(ctx) == {"operator_case": 2}
    assert list(bank.inbox.iterdir()) == []
