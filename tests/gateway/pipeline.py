"""Helpers for tests that run the gateway against the in-process mock bank."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

from sqlalchemy import func, select

from gateway.batches.models import PaymentItem
from gateway.batches.service import IntakeService
from gateway.context import Context
from gateway.dispatch.models import OutboundFile
from gateway.payments.states import FileState, ItemState
from gateway.worker import run_cycle
from tests.waits import wait_until


def submit(ctx: Context, body: dict[str, Any], client: str = "county-finance") -> Any:
    raw = json.dumps(body, ensure_ascii=False).encode()
    service = IntakeService(ctx.sessions, ctx.pii, ctx.profiles)
    answer = service.submit(client, io.BytesIO(raw), hashlib.sha256(raw).hexdigest())
    assert answer.status_code == 201, answer.body
    return answer


def states(ctx: Context) -> dict[str, int]:
    with ctx.sessions() as s:
        return {
            st: int(n)
            for st, n in s.execute(
                select(PaymentItem.state, func.count()).group_by(PaymentItem.state)
            )
        }


def files_settled(ctx: Context) -> bool:
    """No outbound file still waits for delivery or an inquiry."""
    with ctx.sessions() as s:
        waiting = s.scalar(
            select(func.count())
            .select_from(OutboundFile)
            .where(OutboundFile.state.in_([FileState.PLANNED, FileState.UNKNOWN]))
        )
    return not waiting


def drive(ctx: Context, owner: str = "test-worker", timeout: float = 30.0) -> dict[str, int]:
    """Run worker cycles until every item is final and every file settled (or raise)."""

    def one_cycle() -> dict[str, int] | None:
        run_cycle(ctx, owner)
        now = states(ctx)
        if now and all(ItemState(s).is_final() for s in now) and files_settled(ctx):
            return now
        return None

    return wait_until(
        one_cycle,
        timeout=timeout,
        max_interval=0.05,
        what=lambda: f"every item final and every file settled (items now: {states(ctx)})",
    )
