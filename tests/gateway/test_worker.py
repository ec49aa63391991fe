"""The worker's resilience (issue 11), through real worker cycles on SQLite and PostgreSQL
with the mock bank over real SFTP: a failure to render, sign or deliver never becomes an
endless retry — one that will happen again is acted on at once, one that may pass is
retried within its budget — and either way an operator case is opened and upstream hears
of it in the same cycle (except a bank that cannot be reached: nothing left, so the worker
goes on trying and only tells the operator, issue 12); a failing step does not stop the
other steps; a failing batch does not stop the other batches; interrupts are not
swallowed; `gateway worker` survives a database locked by a long intake."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, update

from gateway.api.app import create_app
from gateway.batches.models import Batch, ItemEventRecord, PaymentItem
from gateway.context import Context
from gateway.dispatch.models import OutboundFile
from gateway.feedback.models import OperatorCase
from gateway.payments.states import BatchState, FileState, ItemState
from gateway.worker import CycleReport, run_cycle, run_worker
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import drive, submit
from tests.gateway.upstream.support import Api
from tests.waits import wait_until

CONTROL_NAME = "耕地地力\x07保护补贴"  # what an older intake let through


def _batch(ctx: Context, no: str) -> Batch:
    with ctx.sessions() as s:
        b = s.scalar(select(Batch).where(Batch.batch_no == no))
    assert b is not None
    return b


def _item_states(ctx: Context, no: str) -> dict[str, int]:
    with ctx.sessions() as s:
        rows = s.execute(
            select(PaymentItem.state, func.count())
            .join(Batch, Batch.id == PaymentItem.batch_id)
            .where(Batch.batch_no == no)
            .group_by(PaymentItem.state)
        ).all()
    return {st: int(n) for st, n in rows}


def _cases(ctx: Context) -> list[OperatorCase]:
    with ctx.sessions() as s:
        return list(s.scalars(select(OperatorCase).order_by(OperatorCase.id)))


def _accepted_by_an_older_version(ctx: Context, no: str, seed: int, n: int = 2) -> None:
    """A batch whose header the renderer refuses, as an intake before issue 11 accepted it
    (today's intake refuses it, so the stored header is changed after intake)."""
    submit(ctx, payload(no, persons(n, seed=seed), period=f"2{seed:03d}"))
    with ctx.sessions.begin() as s:
        s.execute(update(Batch).where(Batch.batch_no == no).values(subsidy_name=CONTROL_NAME))


@pytest.fixture
def api(ctx: Context) -> Iterator[Api]:
    """The upstream pull API (GET /v1/changes) as the finance system reads it."""
    with TestClient(create_app(ctx)) as client:
        yield Api(client)


def _upstream(api: Api, batch_no: str) -> list[dict[str, Any]]:
    changes, _ = api.all_changes(limit=100)
    return [c for c in changes if c["data"]["batch_no"] == batch_no]


def _clean(report: CycleReport) -> CycleReport:
    assert report.failed_steps == [], report
    return report


# --- failures that will happen again: acted on in the first cycle ---------------------------


def test_an_unrenderable_batch_fails_in_one_cycle_with_a_case_and_an_upstream_notice(
    ctx: Context, bank: Any, api: Api
) -> None:
    _accepted_by_an_older_version(ctx, "W-BAD", seed=1, n=3)
    submit(ctx, payload("W-OK", persons(2, seed=2)))
    _clean(run_cycle(ctx, "w1"))
    # the bad batch: every item failed with our reason code, the batch completed, no file
    bad = _batch(ctx, "W-BAD")  # completed (and reconciled at once: nothing paid, no debit)
    assert BatchState(bad.state).is_settled() and bad.lease_owner is None
    assert _item_states(ctx, "W-BAD") == {ItemState.FAILED.value: 3}
    with ctx.sessions() as s:
        reasons = set(
            s.scalars(select(PaymentItem.reason_code).where(PaymentItem.batch_id == bad.id))
        )
        files = s.scalar(
            select(func.count()).select_from(OutboundFile).where(OutboundFile.batch_id == bad.id)
        )
        trail = s.execute(
            select(ItemEventRecord.event, ItemEventRecord.from_state, ItemEventRecord.to_state)
            .join(PaymentItem, PaymentItem.id == ItemEventRecord.item_id)
            .where(PaymentItem.batch_id == bad.id, ItemEventRecord.event == "unsendable")
        ).all()
    assert reasons == {"request_unrenderable"} and files == 0
    assert set(trail) == {("unsendable", "accepted", "failed")} and len(trail) == 3
    # one operator case naming the field, in Chinese; the evidence says what the adapter said
    [case] = _cases(ctx)
    assert (case.kind, case.batch_id, case.state) == ("request_unrenderable", bad.id, "open")
    assert "补贴项目名称" in case.summary and "3笔明细已置为支付失败" in case.summary
    evidence = case.evidence or ""
    assert "subsidy_name" in evidence and "control character" in evidence
    # upstream hears of it in the same cycle: every item failed, then the batch completed
    changes = [c for c in _upstream(api, "W-BAD") if c["type"] != "batch.reconciled"]
    assert [c["type"] for c in changes] == ["item.failed"] * 3 + ["batch.completed"]
    first = changes[0]["data"]
    assert (first["event"], first["reason_code"]) == ("unsendable", "request_unrenderable")
    assert first["reason_zh"].startswith("批次数据无法写入银行文件") and first["action_zh"]
    assert changes[-1]["data"]["failed"]["count"] == 3
    # the good batch went ahead in the same cycle; only its file reached the bank
    assert _batch(ctx, "W-OK").state != BatchState.ACCEPTED
    with ctx.sessions() as s:
        names = set(s.scalars(select(OutboundFile.file_name)))
    assert {p.name for p in bank.inbox.iterdir() if p.suffix == ".txt"} == names
    # nothing is tried again: later cycles leave the bad batch (and its case) alone
    assert drive(ctx) == {"failed": 3, "paid": 2}
    assert len(_cases(ctx)) == 1


def test_unsendable_batches_do_not_starve_the_others(ctx: Context, bank: Any) -> None:
    # more refused batches than the planner looks at in one go, all older than the good one
    for n in range(7):
        _accepted_by_an_older_version(ctx, f"W-P{n}", seed=10 + n)
    submit(ctx, payload("W-GOOD", persons(2, seed=30)))
    report = _clean(run_cycle(ctx, "w1"))
    assert report.planned == 8 and report.delivered == 1
    for n in range(7):
        assert BatchState(_batch(ctx, f"W-P{n}").state).is_settled()
    with ctx.sessions() as s:
        assert s.scalar(select(OutboundFile.state)) == FileState.DELIVERED
    assert [c.kind for c in _cases(ctx)] == ["request_unrenderable"] * 7


def test_a_broken_signing_key_fails_the_batch_at_once(
    ctx: Context, bank: Any, api: Api, tmp_path: Path
) -> None:
    profile = ctx.profiles["hnrcu"]
    missing = tmp_path / "rotated-away.pem"
    ctx.profiles["hnrcu"] = dataclasses.replace(
        profile, crypto_config={**profile.crypto_config, "own_key": str(missing)}, _signer=None
    )
    submit(ctx, payload("W-KEY", persons(2, seed=40)))
    _clean(run_cycle(ctx, "w1"))
    assert BatchState(_batch(ctx, "W-KEY").state).is_settled()
    assert _item_states(ctx, "W-KEY") == {ItemState.FAILED.value: 2}
    [case] = _cases(ctx)
    assert case.kind == "dispatch_config_error" and "银行配置错误" in case.summary
    assert "own_key" in (case.evidence or "") and str(missing) in (case.evidence or "")
    assert [p for p in bank.inbox.iterdir()] == []  # nothing was sent
    changes = [c for c in _upstream(api, "W-KEY") if c["type"] != "batch.reconciled"]
    assert [c["type"] for c in changes] == ["item.failed", "item.failed", "batch.completed"]
    assert {c["data"]["reason_code"] for c in changes[:2]} == {"dispatch_config_error"}


def test_an_api_bank_batch_its_renderer_refuses_fails_at_once(ctx: Context, api_bank: Any) -> None:
    body = payload("W-API", persons(2, seed=41))
    submit(ctx, {**body, "header": {**body["header"], "bank_profile": "abc"}})
    with ctx.sessions.begin() as s:
        s.execute(update(Batch).where(Batch.batch_no == "W-API").values(subsidy_name=CONTROL_NAME))
    _clean(run_cycle(ctx, "w1"))
    assert BatchState(_batch(ctx, "W-API").state).is_settled()
    assert _item_states(ctx, "W-API") == {ItemState.FAILED.value: 2}
    assert [c.kind for c in _cases(ctx)] == ["request_unrenderable"]


# --- failures that may pass: retried within the budget, then a person -----------------------


def test_a_bank_unreachable_past_the_retry_budget_is_told_and_retried_without_a_hold(
    ctx: Context, api: Api
) -> None:
    # no bank listens on the profile's port: every attempt is refused (never sent). Nothing
    # left, so nothing is held: the operator is told once, and the worker goes on trying
    # (issue 12; before, the items were held in operator_case and nothing resumed)
    ctx.settings.delivery_max_attempts = 3
    submit(ctx, payload("W-DOWN", persons(2, seed=42)))

    def told() -> OperatorCase | None:
        _clean(run_cycle(ctx, "w1"))
        cases = _cases(ctx)
        return cases[0] if cases else None

    case = wait_until(told, timeout=120, what="the operator told after the retry budget")
    with ctx.sessions() as s:
        f = s.scalar(select(OutboundFile))
    assert f is not None and f.state == FileState.PLANNED and f.attempts >= 3
    assert "NeverSent" in (f.last_error or "")
    assert case.kind == "never_sent" and case.outbound_file_id == f.id and case.state == "open"
    assert "系统将继续自动重试" in case.summary
    # the items wait in the queue, and upstream hears of no hold: there is none
    assert _item_states(ctx, "W-DOWN") == {ItemState.QUEUED.value: 2}
    assert _upstream(api, "W-DOWN") == []
    # and it goes on by itself, without a second case
    tried = f.attempts

    def tried_again() -> bool:
        _clean(run_cycle(ctx, "w1"))
        with ctx.sessions() as s:
            return int(s.scalar(select(OutboundFile.attempts)) or 0) > tried

    wait_until(tried_again, timeout=60, what="another attempt past the budget")
    assert len(_cases(ctx)) == 1 and _upstream(api, "W-DOWN") == []


def test_a_transport_that_cannot_be_built_is_escalated_at_once(
    ctx: Context, bank: Any, api: Api, tmp_path: Path
) -> None:
    profile = ctx.profiles["hnrcu"]
    submit(ctx, payload("W-CFG", persons(2, seed=43)))
    broken = {**profile.transport_config, "client_key": str(tmp_path / "no-such-key")}
    ctx.profiles["hnrcu"] = dataclasses.replace(profile, transport_config=broken)
    report = run_cycle(ctx, "w1")
    # the bank's result folder cannot be polled either: logged, the other steps ran
    assert report.failed_steps == ["poll:hnrcu"] and report.delivered == 1
    with ctx.sessions() as s:
        f = s.scalar(select(OutboundFile))
    assert f is not None and f.state == FileState.ESCALATED and f.attempts == 1
    [case] = _cases(ctx)
    assert case.kind == "delivery_config_error" and "client_key" in (case.evidence or "")
    assert _item_states(ctx, "W-CFG") == {ItemState.OPERATOR_CASE.value: 2}
    assert [c["type"] for c in _upstream(api, "W-CFG")] == ["item.operator_case"] * 2
    assert list(bank.inbox.iterdir()) == []


# --- one failing step, batch or file does not stop the rest ---------------------------------


def _fail_statements(ctx: Context, marker: str, error: BaseException | None = None) -> None:
    """The database driver fails every statement that names ``marker`` (a table): a fault
    injected below our code, as a broken table or a lock would."""
    dbapi = ctx.engine.dialect.loaded_dbapi

    @event.listens_for(ctx.engine, "before_cursor_execute")
    def _fail(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if marker in statement:
            raise error if error is not None else dbapi.OperationalError("database is locked")


def test_a_failing_step_is_logged_and_the_others_still_run(
    ctx: Context, bank: Any, api: Api
) -> None:
    _fail_statements(ctx, "reconciliation_cursors")  # the reconciliation step
    submit(ctx, payload("W-STEP", persons(3, seed=44)))

    def paid_and_reported() -> bool:
        with structlog.testing.capture_logs() as logs:
            report = run_cycle(ctx, "w1")
        assert report.failed_steps == ["reconcile"]
        failures = [e for e in logs if e["event"] == "worker.step_failed"]
        assert [(e["step"], e["error_type"], e["transient"]) for e in failures] == [
            ("reconcile", "OperationalError", True)
        ]
        assert "database is locked" in failures[0]["error"]
        assert "parameters" not in failures[0]["error"]  # no statement, no values
        return _item_states(ctx, "W-STEP") == {ItemState.PAID.value: 3} and any(
            c["type"] == "batch.completed" for c in _upstream(api, "W-STEP")
        )

    # the steps after the failing one (SMS, upstream) ran in the same cycles
    wait_until(paid_and_reported, timeout=60, what="paid, and reported upstream")


def test_a_batch_whose_planning_keeps_failing_does_not_block_the_others(
    ctx: Context, bank: Any
) -> None:
    submit(ctx, payload("W-SICK", persons(2, seed=45)))
    submit(ctx, payload("W-WELL", persons(2, seed=46)))
    sick = _batch(ctx, "W-SICK").id
    dbapi = ctx.engine.dialect.loaded_dbapi

    @event.listens_for(ctx.engine, "before_cursor_execute")
    def _fail(_conn: Any, _cursor: Any, statement: str, params: Any, *_args: Any) -> None:
        # reading the sick batch's items for its file fails, every time
        values = params.values() if isinstance(params, dict) else params
        if "FROM payment_items" in statement and "account_enc" in statement and sick in values:
            raise dbapi.OperationalError("disk I/O error")

    report = run_cycle(ctx, "w1")
    assert report.failed_steps == ["plan"]  # logged, and the other batch went ahead
    assert report.planned == 1 and report.delivered == 1
    assert _batch(ctx, "W-WELL").state != BatchState.ACCEPTED
    # the sick batch keeps its lease, which backs it off: the next cycle does not retry it
    # at once, and never fails it — database trouble passes
    assert _clean(run_cycle(ctx, "w1")).planned == 0
    sick_now = _batch(ctx, "W-SICK")
    assert sick_now.state == BatchState.ACCEPTED and sick_now.lease_owner == "w1"
    assert _item_states(ctx, "W-SICK") == {ItemState.ACCEPTED.value: 2}


def test_a_failing_nonce_purge_is_logged_and_the_worker_goes_on(ctx: Context, bank: Any) -> None:
    _fail_statements(ctx, "request_nonces")  # the purge runs on the first cycle
    submit(ctx, payload("W-NONCE", persons(2, seed=49)))
    with structlog.testing.capture_logs() as logs:
        run_worker(ctx, owner="w1", max_seconds=0)  # one cycle, then it stops
    failures = [e for e in logs if e["event"] == "worker.step_failed"]
    assert [e["step"] for e in failures] == ["purge_nonces"]
    assert logs[-1]["event"] == "worker.stop"
    assert _batch(ctx, "W-NONCE").state != BatchState.ACCEPTED  # the cycle did its work


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_interrupts_are_not_swallowed(ctx: Context, interrupt: type[BaseException]) -> None:
    submit(ctx, payload("W-INT", persons(1, seed=47)))
    _fail_statements(ctx, "FROM payment_items", interrupt())
    with pytest.raises(interrupt):
        run_cycle(ctx, "w1")


# --- `gateway worker` and a database locked by a long intake --------------------------------


def _worker_env(ctx: Context, log_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_ENVIRONMENT": "test",
            "GATEWAY_DATABASE_URL": ctx.settings.database_url,
            "GATEWAY_BANK_PROFILES_FILE": str(ctx.settings.bank_profiles_file),
            "GATEWAY_POLL_INTERVAL_SECONDS": "0.1",
            "GATEWAY_LOG_JSON": "true",
            "GATEWAY_LOG_FILE": str(log_file),
        }
    )
    return env


def _log_events(log_file: Path) -> list[dict[str, Any]]:
    if not log_file.exists():
        return []
    out = []
    for line in log_file.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line still being written
    return out


@pytest.mark.slow
def test_gateway_worker_survives_a_locked_database_and_goes_on(
    ctx: Context, bank: Any, tmp_path: Path
) -> None:
    if not ctx.settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite's database-wide write lock")
    submit(ctx, payload("W-LOCK", persons(3, seed=48)))
    path = ctx.settings.database_url.removeprefix("sqlite:///")
    intake = sqlite3.connect(path, isolation_level=None)
    intake.execute("BEGIN IMMEDIATE")  # a long intake holds the write lock
    log_file = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "worker", "--max-seconds", "600"],
        env=_worker_env(ctx, log_file),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def locked_and_logged() -> list[dict[str, Any]]:
            assert worker.poll() is None, f"the worker exited with {worker.returncode}"
            return [
                e
                for e in _log_events(log_file)
                if e.get("event") == "worker.step_failed"
                and "database is locked" in e.get("error", "")
            ]

        [first, *_] = wait_until(
            locked_and_logged, timeout=180, max_interval=0.5, what="a logged lock error"
        )
        assert first["level"] == "error" and first["transient"] is True
        assert worker.poll() is None  # it survived and goes on
        intake.execute("ROLLBACK")  # the intake ends
        intake.close()

        def all_paid() -> bool:
            assert worker.poll() is None, f"the worker exited with {worker.returncode}"
            return _item_states(ctx, "W-LOCK") == {ItemState.PAID.value: 3}

        wait_until(all_paid, timeout=180, max_interval=0.5, what="the batch paid by the worker")
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        rc = worker.wait(timeout=120)
    assert rc == 0
    events = [e.get("event") for e in _log_events(log_file)]
    assert "worker.stop" in events
    assert bank.ledger.summary()["double_credits"] == 0
