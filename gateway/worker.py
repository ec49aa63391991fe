"""The worker: a loop of short job steps, safe to run as several processes at once.

Each step claims its work by lease, does its network call outside any transaction, and
records the outcome in a new transaction. Killing a worker at any point loses nothing: an
expired lease frees the work for the next worker, which inquires before acting again.

A worker survives any error of a step: it is logged (``worker.step_failed``, no personal
data) and the cycle goes on with the other steps; within the plan and deliver steps a
failing batch or file keeps its lease or backs off, so the others go ahead. Work that fails
for good is taken out of the queue by the step itself, with an operator case (see
``gateway.dispatch.service``). Only KeyboardInterrupt and SystemExit end the loop early.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from gateway.auth.hmac_auth import purge_nonces
from gateway.batches.models import Batch
from gateway.context import Context
from gateway.dispatch.service import (
    DeferredError,
    deliver_one,
    is_transient,
    plan_one,
    settle_dispatch_days,
)
from gateway.feedback.api_movements import poll_api_movements, reads_movements
from gateway.feedback.api_poll import poll_api_profile
from gateway.feedback.service import poll_profile
from gateway.kit.db import session_scope
from gateway.kit.logging import correlation, get_logger
from gateway.notifications.service import sms_step
from gateway.payments.states import BatchState
from gateway.payments.transitions import complete_if_final
from gateway.profiles import BankProfile
from gateway.reconciliation.service import reconcile
from gateway.selfcheck.service import selfcheck_step
from gateway.upstream.service import upstream_step

log = get_logger(__name__)
_T = TypeVar("_T")


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# a step's calls that may fail in one cycle before the step gives up until the next: a
# failing batch or file keeps its lease (or backs off), so the next call takes another one
MAX_ERRORS_PER_STEP = 3
NONCE_PURGE_SECONDS = 600.0


@dataclass
class CycleReport:
    planned: int = 0
    delivered: int = 0
    results: int = 0
    completed: int = 0
    # the steps that failed this cycle (each logged as ``worker.step_failed``)
    failed_steps: list[str] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return bool(self.planned or self.delivered or self.results or self.completed)


def _log_step_failure(step: str, exc: Exception) -> None:
    """Structured and free of personal data: the exception's type, a message that carries
    no statement parameters, and the code path (file, line, function: no values)."""
    extra: dict[str, object] = {}
    if isinstance(exc, DeferredError) and isinstance(exc.__cause__, Exception):
        extra[f"{exc.what}_id"] = exc.ident
        exc = exc.__cause__
    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        message = f"{type(orig).__name__}: {orig}" if orig is not None else type(exc).__name__
    else:
        message = str(exc)
    frames = traceback.extract_tb(exc.__traceback__)[-6:]
    log.error(
        "worker.step_failed",
        step=step,
        error_type=type(exc).__name__,
        error=message[:500],
        transient=is_transient(exc),
        where=[f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}:{f.name}" for f in frames],
        **extra,
    )


def _failed(report: CycleReport, name: str, exc: Exception) -> None:
    _log_step_failure(name, exc)
    if name not in report.failed_steps:
        report.failed_steps.append(name)


def _step(
    report: CycleReport, name: str, fn: Callable[[], _T], **bind: str
) -> tuple[bool, _T | None]:
    """Run one step on its own: any error is logged and the cycle goes on with the next
    step. ``(True, result)``, or ``(False, None)`` when it failed. Never swallows
    KeyboardInterrupt or SystemExit."""
    with correlation(name.split(":", 1)[0], **bind):
        try:
            return True, fn()
        except Exception as exc:
            _failed(report, name, exc)
            return False, None


def _repeat(report: CycleReport, name: str, one: Callable[[], bool]) -> int:
    """Call ``one`` until it has nothing more to do. An error with one batch or file does
    not end the step: that work keeps its lease (or backs off), so the next call takes
    other work — unless errors keep coming. Database trouble before anything was claimed
    (locked, unreachable) ends the step: the next cycle tries again."""
    done = errors = 0
    with correlation(name):
        while errors < MAX_ERRORS_PER_STEP:
            try:
                if not one():
                    break
            except Exception as exc:
                _failed(report, name, exc)
                if is_transient(exc):
                    break
                errors += 1
            else:
                done += 1
    return done


def run_cycle(ctx: Context, owner: str) -> CycleReport:
    """One pass over every kind of work; returns what was done. Each step runs on its own:
    one that fails is logged and the others still run."""
    report = CycleReport()
    _step(report, "settle_days", lambda: settle_dispatch_days(ctx))
    report.planned = _repeat(report, "plan", lambda: plan_one(ctx, owner))
    report.delivered = _repeat(report, "deliver", lambda: deliver_one(ctx, owner))
    for profile in ctx.profiles.values():

        def poll(profile: BankProfile = profile) -> None:
            if profile.is_api:
                report.results += poll_api_profile(ctx, profile, owner)
            else:
                outcome = poll_profile(ctx, profile, owner)
                report.results += outcome.results_applied + outcome.files_rejected

        _step(report, f"poll:{profile.name}", poll, profile=profile.name)
        if reads_movements(profile):
            # the API bank's account movements (issue 12): a step of its own

            def movements(profile: BankProfile = profile) -> None:
                report.results += poll_api_movements(ctx, profile, owner)

            _step(report, f"movements:{profile.name}", movements, profile=profile.name)

    def complete() -> None:
        report.completed += complete_batches(ctx, owner)

    _step(report, "complete", complete)
    if ctx.settings.reconcile_in_worker:

        def reconciliation() -> None:
            recon = reconcile(ctx, owner)
            report.completed += len(recon.reconciled) + sum(recon.opened.values())

        _step(report, "reconcile", reconciliation)

    def sms() -> None:
        report.results += sms_step(ctx, owner)

    def upstream() -> None:
        report.results += upstream_step(ctx, owner)

    _step(report, "sms", sms)
    _step(report, "upstream", upstream)
    # the quarterly self-check, once a quarter
    _step(report, "selfcheck", lambda: selfcheck_step(ctx, owner))
    return report


def purge_old_nonces(ctx: Context) -> int:
    """Forget request nonces older than twice the signature window."""
    with session_scope(ctx.sessions) as session:
        return purge_nonces(session, 2 * ctx.settings.signature_window_seconds)


def complete_batches(ctx: Context, owner: str) -> int:
    """Complete batches whose items are all final (e.g. after a crash between steps)."""
    done = 0
    with session_scope(ctx.sessions) as session:
        for batch in session.scalars(
            select(Batch).where(Batch.state.in_([BatchState.SENT, BatchState.DISPATCHING]))
        ):
            if complete_if_final(session, batch, owner):
                done += 1
    return done


def run_worker(
    ctx: Context,
    *,
    stop: threading.Event | None = None,
    owner: str | None = None,
    max_seconds: float | None = None,
) -> None:
    """Run cycles until ``stop`` is set (or ``max_seconds`` pass)."""
    owner = owner or ctx.settings.worker_id or default_worker_id()
    stop = stop or threading.Event()
    started = time.monotonic()
    last_purge: float | None = None
    log.info("worker.start", owner=owner, settings=ctx.settings.describe())
    while not stop.is_set():
        try:
            report = run_cycle(ctx, owner)
        except Exception as exc:  # run_cycle isolates its steps; this is the last resort
            _log_step_failure("cycle", exc)
            report = CycleReport(failed_steps=["cycle"])
        if last_purge is None or time.monotonic() - last_purge > NONCE_PURGE_SECONDS:
            # like every step: a failure (the database locked by a long intake…) is
            # logged, and the purge is tried again next cycle
            purged, _ = _step(report, "purge_nonces", lambda: purge_old_nonces(ctx))
            if purged:
                last_purge = time.monotonic()
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            break
        if not report.busy:
            stop.wait(ctx.settings.poll_interval_seconds)
    log.info("worker.stop", owner=owner)
