"""One ``gateway demo --json`` run shared by the end-to-end modules that read its results
(the demo summary and PII scan, the dashboard's browser tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SEED = 20261128


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], Path]:
    """The demo's JSON summary and its working directory (``<tmp>/run``)."""
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
