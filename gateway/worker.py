"""The worker: a loop of short job steps, safe to run as several processes at once.

Each step claims its work by lease, does its network call outside any transaction, and
records the outcome in a new transaction. Killing a worker at any point loses nothing: an
expired lease frees the work for the next worker, which inquires before acting again.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select

from gateway.auth.hmac_auth import purge_nonces
from gateway.batches.models import Batch
from gateway.context import Context
from gateway.dispatch.service import deliver_one, plan_one, settle_dispatch_days
from gateway.feedback.api_poll import poll_api_profile
from gateway.feedback.service import poll_profile
from gateway.kit.db import session_scope
from gateway.kit.logging import correlation, get_logger
from gateway.notifications.service import sms_step
from gateway.payments.states import BatchState
from gateway.payments.transitions import complete_if_final
from gateway.reconciliation.service import reconcile
from gateway.selfcheck.service import selfcheck_step
from gateway.upstream.service import upstream_step

log = get_logger(__name__)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class CycleReport:
    planned: int = 0
    delivered: int = 0
    results: int = 0
    completed: int = 0

    @property
    def busy(self) -> bool:
        return bool(self.planned or self.delivered or self.results or self.completed)


def run_cycle(ctx: Context, owner: str) -> CycleReport:
    """One pass over every kind of work; returns what was done."""
    report = CycleReport()
    with correlation("plan"):
        settle_dispatch_days(ctx)
        while plan_one(ctx, owner):
            report.planned += 1
    with correlation("deliver"):
        while deliver_one(ctx, owner):
            report.delivered += 1
    for profile in ctx.profiles.values():
        with correlation("poll", profile=profile.name):
            if profile.is_api:
                report.results += poll_api_profile(ctx, profile, owner)
            else:
                outcome = poll_profile(ctx, profile, owner)
                report.results += outcome.results_applied + outcome.files_rejected
    with correlation("complete"):
        report.completed = complete_batches(ctx, owner)
    if ctx.settings.reconcile_in_worker:
        with correlation("reconcile"):
            recon = reconcile(ctx, owner)
            report.completed += len(recon.reconciled) + sum(recon.opened.values())
    with correlation("sms"):
        report.results += sms_step(ctx, owner)
    with correlation("upstream"):
        report.results += upstream_step(ctx, owner)
    with correlation("selfcheck"):
        selfcheck_step(ctx, owner)  # the quarterly self-check, once a quarter
    return report


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
    last_purge = 0.0
    log.info("worker.start", owner=owner, settings=ctx.settings.describe())
    while not stop.is_set():
        try:
            report = run_cycle(ctx, owner)
        except Exception:
            log.exception("worker.cycle_failed")
            report = CycleReport()
        if time.monotonic() - last_purge > 600:
            with session_scope(ctx.sessions) as session:
                purge_nonces(session, 2 * ctx.settings.signature_window_seconds)
            last_purge = time.monotonic()
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            break
        if not report.busy:
            stop.wait(ctx.settings.poll_interval_seconds)
    log.info("worker.stop", owner=owner)
