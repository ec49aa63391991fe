"""Inquiries of the open-API bank and the callbacks that hint at them: news a callback
announces while an inquiry is already on its way is never lost (against the mock bank's own
HTTPS implementation)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from gateway.context import Context
from gateway.dispatch.models import OutboundFile
from gateway.ports import ApiItemStatus, ApiStatus
from gateway.worker import run_cycle
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import drive, states, submit
from tests.waits import wait_until

PEOPLE = persons(2, seed=61)


def test_a_bounce_announced_during_an_inquiry_is_still_seen(
    ctx: Context, api_bank: Any, gateway_http: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race, made to happen: the bank answers "all paid"; before that answer is applied
    the bank reverses a credit (退票) and its ``item.returned`` callback is accepted by the
    gateway. The stale answer must not cancel the inquiry the callback asked for."""
    bank = api_bank.api.bank
    api = ctx.profiles["abc"].api
    real_inquire = api.inquire
    raced: list[str] = []

    def returned_callback_delivered() -> bool:
        events = bank.store.events()
        return any(e.event == "item.returned" and e.delivered_at for e in events)

    def inquire(serial: str, file_no: int) -> ApiStatus | None:
        status = real_inquire(serial, file_no)
        if status is not None and status.completed and not raced:
            assert all(i.status == ApiItemStatus.PAID for i in status.items)
            request_id = f"{serial}{file_no:02d}"
            raced.append(request_id)
            assert bank.bounce(request_id)  # the bank reverses the first credit now
            wait_until(returned_callback_delivered, what="the gateway to take the 退票 callback")
        return status

    monkeypatch.setattr(api, "inquire", inquire)
    body = payload("HINT-1", PEOPLE)
    body["header"]["bank_profile"] = "abc"
    submit(ctx, body)
    drive(ctx)
    assert raced

    def bounced() -> bool:
        run_cycle(ctx, "t")
        return states(ctx) == {"paid": 1, "bounced": 1}

    wait_until(bounced, what=lambda: f"the 退票 to reach the item (items: {states(ctx)})")
    with ctx.sessions() as s:
        f = s.scalar(select(OutboundFile))
    assert f is not None and f.poll_hints >= 1
    assert api_bank.ledger.summary()["double_credits"] == 0
