"""These tests decide when reconciliation runs: the worker cycles they drive do not
reconcile (as when operators schedule it as a separate job)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def reconcile_only_when_asked(request: pytest.FixtureRequest) -> None:
    if "ctx" in request.fixturenames:
        ctx: Any = request.getfixturevalue("ctx")
        ctx.settings.reconcile_in_worker = False
