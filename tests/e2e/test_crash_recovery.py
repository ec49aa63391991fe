"""Kill the worker between the upload and the recording of it: after a restart the bank has
the file once and pays everyone once. The worker is a real process; the kill is an abrupt
``os._exit`` at the injected point, with no cleanup and no commit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.context import Context
from gateway.dispatch.models import OutboundFile
from gateway.payments.states import FileState, ItemState
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import states, submit
from tests.waits import wait_until

pytestmark = pytest.mark.slow


def _worker_env(ctx: Context, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_ENVIRONMENT": "test",
            "GATEWAY_DATABASE_URL": ctx.settings.database_url,
            "GATEWAY_BANK_PROFILES_FILE": str(ctx.settings.bank_profiles_file),
            "GATEWAY_POLL_INTERVAL_SECONDS": "0.1",
            "GATEWAY_LEASE_SECONDS": "2",
            "GATEWAY_LOG_JSON": "true",
        }
    )
    env.update(extra)
    return env


def test_crash_between_upload_and_record(ctx: Context, bank: Any, tmp_path: Path) -> None:
    ps = persons(10)
    submit(ctx, payload("K-1", ps))
    crashed = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "worker", "--max-seconds", "30"],
        env=_worker_env(ctx, GATEWAY_CRASH_AT="after_upload"),
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert crashed.returncode == 137, crashed.stderr.decode()[-2000:]
    # the file reached the bank, but the gateway has no record of the delivery
    with ctx.sessions() as s:
        f = s.scalar(select(OutboundFile))
    assert f is not None and f.state == FileState.PLANNED and f.attempts == 1
    assert (bank.inbox / f.file_name).exists()
    assert states(ctx) == {ItemState.QUEUED.value: 10}

    worker = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "worker", "--max-seconds", "60"],
        env=_worker_env(ctx),
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.err").open("wb"),
    )

    def recovered() -> bool:
        now = states(ctx)
        with ctx.sessions() as s:
            file_state = s.scalar(select(OutboundFile.state))
        # done when every item is final and the inquiry has confirmed the delivery
        # (the first can happen before the second: the crashed worker's lease must
        # expire before the file is looked at again, while the bank's result arrives)
        return all(ItemState(s).is_final() for s in now) and file_state == FileState.DELIVERED

    try:
        wait_until(
            recovered,
            timeout=60,
            max_interval=0.2,
            what=lambda: f"every item final and the file delivered (items: {states(ctx)})",
        )
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    assert states(ctx) == {ItemState.PAID.value: 10}
    summary = bank.ledger.summary()
    assert summary["files_processed"] == 1
    assert summary["credits"] == 10
    assert summary["double_credits"] == 0
    with ctx.sessions() as s:
        f = s.scalar(select(OutboundFile))
    assert f is not None and f.state == FileState.DELIVERED and f.attempts == 2
    # the restarted worker found the file on the far side and did not upload it again
    log = (tmp_path / "worker.err").read_text()
    assert "dispatch.found_on_far_side" in log
    assert "sftp.put_atomic" not in log
    assert sorted(p.name for p in bank.inbox.iterdir()) == [f.file_name, f.signature_name]
