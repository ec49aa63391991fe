"""End to end: a batch through the mock bank (SFTP, signed files, real result files); every
outcome reaches upstream by webhook and by the pull API, signed, masked, exactly once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.context import Context
from gateway.upstream.service import summary, upstream_step
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import drive, submit
from tests.gateway.upstream.support import SECRET, Api, Receiver
from tests.waits import wait_until

PEOPLE = persons(6, seed=41)


@pytest.fixture
def accounts() -> list[dict[str, str]]:
    registry = [
        {"account_no": p.account_no, "name": p.name, "id_number": p.id_number, "status": "active"}
        for p in PEOPLE
    ]
    registry[1]["status"] = "closed"
    del registry[4]  # unknown account
    return registry


def test_bank_outcomes_reach_upstream(
    uctx: Context, bank: Any, receiver: Receiver, api: Api
) -> None:
    standardwebhooks = pytest.importorskip("standardwebhooks")
    submit(uctx, payload("E-1", PEOPLE))
    assert drive(uctx) == {"paid": 4, "failed": 2}

    # 6 item outcomes, the batch completed, then reconciled (the worker reconciles)
    def delivered() -> bool:
        if summary(uctx)["delivered"] >= 8:
            return True
        upstream_step(uctx, "w1")
        return False

    wait_until(delivered, max_interval=0.02, what=lambda: f"8 delivered: {summary(uctx)}")
    assert summary(uctx) == {"delivered": 8, "pending": 0, "failed": 0}
    verifier = standardwebhooks.Webhook(SECRET)
    pushed = [verifier.verify(r.body, r.headers) for r in receiver.requests]
    assert len({p["id"] for p in pushed}) == 8
    failed = {
        p["data"]["seq"]: p["data"]["reason_code"] for p in pushed if p["type"] == "item.failed"
    }
    assert failed == {2: "account_closed", 5: "account_not_found"}
    assert [p["type"] for p in pushed][-2:] == ["batch.completed", "batch.reconciled"]
    assert pushed[-2]["data"]["paid"]["count"] == 4
    assert all(p["data"]["bank_ref"] for p in pushed if p["type"] == "item.paid")
    pulled, _ = api.all_changes(limit=4)
    assert [c["id"] for c in pulled] == [p["id"] for p in pushed]
    text = json.dumps(pulled, ensure_ascii=False)
    assert not any(p.name in text or p.id_number in text or p.account_no in text for p in PEOPLE)
