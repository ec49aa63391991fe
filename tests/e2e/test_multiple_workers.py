"""Several worker processes at once against one PostgreSQL database: every item is paid
exactly once, every file delivered once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.context import Context
from gateway.demo.banks import write_profiles
from gateway.dispatch.models import OutboundFile
from gateway.payments.states import FileState, ItemState
from tests.conftest import make_settings
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import states, submit
from tests.waits import wait_until

pytestmark = pytest.mark.slow


def test_three_workers_on_postgresql(
    pg_url: str, bank: Any, tmp_path: Path, dev_keys: Path
) -> None:
    profiles = write_profiles(tmp_path, dev_keys, bank.sftp_port)
    ctx = Context.build(make_settings(pg_url, profiles))  # type: ignore[arg-type]
    ps = persons(60, seed=3)
    for i in range(6):
        submit(ctx, payload(f"W-{i}", ps[i * 10 : (i + 1) * 10]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_ENVIRONMENT": "test",
            "GATEWAY_DATABASE_URL": pg_url,
            "GATEWAY_BANK_PROFILES_FILE": str(profiles),
            "GATEWAY_POLL_INTERVAL_SECONDS": "0.05",
        }
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "worker", "--max-seconds", "90"],
            env={**env, "GATEWAY_WORKER_ID": f"w{n}"},
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"w{n}.err").open("wb"),
        )
        for n in range(3)
    ]

    def all_final() -> bool:
        now = states(ctx)
        return bool(now) and all(ItemState(s).is_final() for s in now)

    try:
        try:
            wait_until(
                all_final,
                timeout=90,
                max_interval=0.2,
                what=lambda: f"every item final (items now: {states(ctx)})",
            )
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(timeout=30)
        assert states(ctx) == {"paid": 60}
        with ctx.sessions() as s:
            files = s.scalars(select(OutboundFile)).all()
            assert s.scalar(select(func.count()).select_from(OutboundFile)) == 6
        assert all(f.state == FileState.DELIVERED for f in files)
        summary = bank.ledger.summary()
        assert summary["credits"] == 60
        assert summary["double_credits"] == 0
        assert summary["files_processed"] == 6
    finally:
        ctx.close()
