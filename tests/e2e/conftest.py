"""One ``gateway demo --json`` run shared by the end-to-end modules that read its results
(the demo summary and PII scan, the dashboard's browser tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SEED = 20261128


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], Path]:
    """The demo's JSON summary and its working directory (``<tmp>/run``).

    The modules that use it are one ``xdist_group``: under pytest-xdist they run on one
    worker, in order, and the demo runs once. If grouping stopped working (it silently did
    with pytest 9.2, pytest-xdist#1386), a second worker would run the demo again and race
    the first one's browser tests; this refuses that instead."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is not None:
        run_dir = tmp_path_factory.getbasetemp().parent  # shared by this run's workers
        ran = sorted(p.name for p in run_dir.glob("demo-ran-by-*"))
        assert not ran, f"the demo already ran on another worker ({ran}): xdist_group ignored"
        (run_dir / f"demo-ran-by-{worker}").touch()
    cwd = tmp_path_factory.mktemp("demo")
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "demo", "--json", "--workdir", "run",
         "--seed", str(SEED)],
        cwd=cwd,
        capture_output=True,
        check=False,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    return json.loads(out.stdout), cwd / "run"
