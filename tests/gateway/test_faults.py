"""Every fault of the mock bank's seeded schedule, for each kind of bank, with the same
invariants: nobody is paid twice, no item is marked paid that the bank did not credit (or
failed that it did), and every item ends final or in an operator case."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.batches.models import PaymentItem
from gateway.context import Context
from gateway.dispatch.models import OutboundFile
from gateway.payments.states import FileState, ItemState
from gateway.worker import run_cycle
from tests.gateway.helpers import payload, persons
from tests.waits import wait_until

PEOPLE = persons(6, seed=31)
SFTP_FAULTS = [
    "refuse_connection",
    "drop_mid_upload",
    "lose_rename_reply",
    "delay_results",
    "malformed_result_file",
    "partial_result_file",
    "bounce_after_paid",
    "restart",
    "tampered_result_file",
]
API_FAULTS = [
    "refuse_connection",
    "timeout_after_apply",
    "error_5xx_before_apply",
    "error_5xx_after_apply",
    "rate_limit",
    "bounce_after_paid",
]
CASES = (
    [("hnrcu", k) for k in SFTP_FAULTS]
    + [("psbc", k) for k in SFTP_FAULTS]
    + [("abc", k) for k in API_FAULTS]
)
SETTLED = {s.value for s in ItemState if s.is_final()} | {ItemState.OPERATOR_CASE.value}


def _extra(kind: str) -> str:
    return (
        "\n[faults]\nseed = 20261128\ndelay_results_seconds = 1.0\nbounce_after_seconds = 0.3\n"
        "republish_after_seconds = 0.5\n"
        f'[[faults.rules]]\nkind = "{kind}"\nnth = [1]\n'
    )


def _quiet(ctx: Context) -> bool:
    with ctx.sessions() as s:
        items = {st for (st,) in s.execute(select(PaymentItem.state).group_by(PaymentItem.state))}
        waiting = s.scalar(
            select(func.count())
            .select_from(OutboundFile)
            .where(OutboundFile.state.in_([FileState.PLANNED, FileState.UNKNOWN]))
        )
    return bool(items) and items <= SETTLED and not waiting


def _bank_idle(bank: Any) -> bool:
    """The bank owes nothing more: every request file in its inbox taken (a round of its
    processor now), every result, notice and 退票 it scheduled done, and for the open API
    every disbursement decided and every callback delivered (or given up). A 退票 the open
    API has scheduled is not visible here: ``run_until_settled`` waits for its effect."""
    bank.processor.tick()
    if bank.processor.pending_count:
        return False
    if bank.config.api is not None:
        store = bank.api.bank.store
        if store.processing_requests() or store.undelivered_events():
            return False
    return True


def run_until_settled(
    ctx: Context, bank: Any, kind: str, *, returns_reported: bool = True, timeout: float = 45.0
) -> None:
    """Worker cycles until the gateway is quiet and no late bank event (a bounce, a delayed
    or duplicate result, a file sent again) can still come: the bank owed nothing before the
    last cycle, which left the gateway with nothing to wait for and gave the bank nothing
    new. A 退票 the bank reports must have reached the gateway."""

    def settled() -> bool:
        idle_before = _bank_idle(bank)
        run_cycle(ctx, "fault-test")
        return (
            idle_before
            and _quiet(ctx)
            and _bank_idle(bank)
            and (kind != "bounce_after_paid" or not returns_reported or _has_bounce_or_case(ctx))
            # the bank publishes the genuine file after the tampered one: wait for it
            and (kind != "tampered_result_file" or not _has_case(ctx))
        )

    wait_until(
        settled,
        timeout=timeout,
        max_interval=0.05,
        what=lambda: f"the gateway and the bank to settle ({kind}; bank {bank.ledger.summary()})",
    )


def _has_case(ctx: Context) -> bool:
    with ctx.sessions() as s:
        return bool(
            s.scalar(
                select(func.count())
                .select_from(PaymentItem)
                .where(PaymentItem.state == ItemState.OPERATOR_CASE)
            )
        )


def _has_bounce_or_case(ctx: Context) -> bool:
    with ctx.sessions() as s:
        return bool(
            s.scalar(
                select(func.count())
                .select_from(PaymentItem)
                .where(PaymentItem.state.in_([ItemState.BOUNCED, ItemState.OPERATOR_CASE]))
            )
        )


def check_invariants(ctx: Context, bank: Any) -> dict[str, int]:
    summary = bank.ledger.summary()
    assert summary["double_credits"] == 0
    credited = {c.item_serial for c in bank.ledger.credits()}
    with ctx.sessions() as s:
        items = s.execute(select(PaymentItem.serial, PaymentItem.state)).all()
    counts: dict[str, int] = {}
    for serial, state in items:
        counts[state] = counts.get(state, 0) + 1
        assert state in SETTLED, (serial, state)
        if state in {ItemState.PAID, ItemState.BOUNCED}:
            assert serial in credited, f"{serial} marked {state} but the bank never credited it"
        if state == ItemState.FAILED:
            assert serial not in credited, f"{serial} marked failed but the bank credited it"
    return counts


@pytest.fixture(params=CASES, ids=[f"{b}-{k}" for b, k in CASES])
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def bank_extra(case: tuple[str, str]) -> str:
    return _extra(case[1])


@pytest.fixture
def any_bank(case: tuple[str, str], request: pytest.FixtureRequest) -> Any:
    fixture = {"hnrcu": "bank", "psbc": "iso_bank", "abc": "api_bank"}[case[0]]
    return request.getfixturevalue(fixture)


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """These run on SQLite only: the matrix is about bank behaviour, not the database."""
    return sqlite_url


@pytest.fixture
def fault_ctx(case: tuple[str, str], any_bank: Any, request: pytest.FixtureRequest) -> Any:
    """The gateway context, built after the bank so its profile points at the bank."""
    ctx: Context = request.getfixturevalue("ctx")
    if case[0] == "abc":
        ctx.profiles["abc"].api_config["read_timeout"] = 1.0  # the bank holds for 3 s
        ctx.profiles["abc"]._api = None
        request.getfixturevalue("gateway_http")
    return ctx


@pytest.mark.slow
def test_fault(case: tuple[str, str], any_bank: Any, fault_ctx: Context) -> None:
    profile, kind = case
    from tests.gateway.pipeline import submit

    body = payload(f"F-{profile}-{kind}", PEOPLE)
    body["header"]["bank_profile"] = profile
    submit(fault_ctx, body)
    # every bank reports its 退票: the fixed-width one in an account movements file (ACT_…)
    run_until_settled(fault_ctx, any_bank, kind)
    counts = check_invariants(fault_ctx, any_bank)
    fired = {k for k, _ in any_bank.faults.fired()}
    assert kind in fired, f"the fault {kind} never fired"
    if kind in {"malformed_result_file", "partial_result_file"}:
        assert counts.get("operator_case") == len(PEOPLE)
    elif kind == "bounce_after_paid":
        assert counts.get("bounced") == 1
    else:
        assert counts == {"paid": len(PEOPLE)}, counts


class TestNoDedupeAndLostAnswers:
    """The bank pays again whatever it receives again; the gateway must never resend what
    may already have arrived."""

    @pytest.fixture
    def bank_dedupe(self) -> bool:
        return False

    @pytest.fixture(
        params=[
            ("abc", "timeout_after_apply"),
            ("hnrcu", "lose_rename_reply"),
            ("abc", "error_5xx_after_apply"),
            ("psbc", "lose_rename_reply"),
        ],
        ids=lambda c: f"{c[0]}-{c[1]}",
    )
    def case(self, request: pytest.FixtureRequest) -> tuple[str, str]:
        return request.param  # type: ignore[no-any-return]

    def test_paid_once(self, case: tuple[str, str], any_bank: Any, fault_ctx: Context) -> None:
        from tests.gateway.pipeline import submit

        body = payload(f"N-{case[0]}", PEOPLE)
        body["header"]["bank_profile"] = case[0]
        submit(fault_ctx, body)
        run_until_settled(fault_ctx, any_bank, case[1])
        assert check_invariants(fault_ctx, any_bank) == {"paid": len(PEOPLE)}
        assert any_bank.ledger.summary()["credits"] == len(PEOPLE)
