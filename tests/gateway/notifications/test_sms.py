"""SMS to beneficiaries against the mock SMS centre (Aliyun-style API, signed receipts):
exactly one SMS per paid item under provider timeouts and duplicate receipts, invalid
numbers not retried, quiet hours respected, failure notices for people who must act."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.context import Context
from gateway.demo.sms import point_gateway_at, write_sms_configs
from gateway.kit.clock import CHINA
from gateway.notifications import service as sms_service
from gateway.notifications.config import SmsConfig
from gateway.notifications.models import SmsNotice
from gateway.notifications.service import sms_step
from gateway.worker import run_cycle
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import drive, submit
from tests.waits import wait_until

PEOPLE = persons(6, seed=41)


@pytest.fixture
def centre_extra() -> str:
    return ""


@pytest.fixture
def accounts() -> list[dict[str, str]]:
    return [
        {
            "account_no": p.account_no,
            "name": p.name,
            "id_number": p.id_number,
            "status": "closed" if i == 5 else "active",
        }
        for i, p in enumerate(PEOPLE)
    ]


@pytest.fixture
def centre(tmp_path: Path, callback_port: int, centre_extra: str, ctx: Context) -> Iterator[Any]:
    from mock_sms.config import load_config
    from mock_sms.server import MockSmsCentre

    centre_file, gateway_file = write_sms_configs(
        tmp_path, gateway_port=callback_port, centre_extra=centre_extra
    )
    c = MockSmsCentre(load_config(centre_file))
    c.start()
    point_gateway_at(gateway_file, c.port)
    ctx.sms_config = SmsConfig.load(gateway_file)
    sms_service.reset_sms(ctx)
    try:
        yield c
    finally:
        c.stop()
        sms_service.reset_sms(ctx)


def notices(ctx: Context) -> dict[str, int]:
    with ctx.sessions() as s:
        out: dict[str, int] = {}
        for n in s.scalars(select(SmsNotice)):
            key = f"{n.notice_type}:{n.state}"
            out[key] = out.get(key, 0) + 1
        return out


def settle(ctx: Context, until: dict[str, int], timeout: float = 30.0) -> dict[str, int]:
    """Worker cycles until the notices are ``until`` (AssertionError with them if not)."""

    def cycle() -> dict[str, int] | None:
        run_cycle(ctx, "t")
        return until if notices(ctx) == until else None

    return wait_until(cycle, timeout=timeout, what=lambda: f"notices {until} (now: {notices(ctx)})")


def test_one_sms_per_paid_item_and_a_notice_for_the_failed(
    ctx: Context, bank: Any, centre: Any, gateway_http: str
) -> None:
    submit(ctx, payload("S-1", PEOPLE))
    assert drive(ctx) == {"paid": 5, "failed": 1}
    got = settle(ctx, {"paid:delivered": 5, "failed:delivered": 1})
    assert got == {"paid:delivered": 5, "failed:delivered": 1}
    summary = centre.summary()
    assert summary["sent"] == 6 and summary["duplicates"] == 0
    # nothing more happens however often the worker runs
    for _ in range(5):
        run_cycle(ctx, "t")
    assert centre.summary()["sent"] == 6


class TestProviderTimeout:
    @pytest.fixture
    def centre_extra(self) -> str:
        return (
            "\n[faults]\nseed = 5\n"
            '[[faults.rules]]\nkind = "timeout_after_accept"\nnth = [1, 2]\n'
            '[[faults.rules]]\nkind = "receipt_twice"\nnth = [1, 2, 3]\n'
        )

    def test_unknown_outcome_resolved_by_query_not_resend(
        self, ctx: Context, bank: Any, centre: Any, gateway_http: str
    ) -> None:
        submit(ctx, payload("S-2", PEOPLE[:3]))
        drive(ctx)
        got = settle(ctx, {"paid:delivered": 3}, timeout=30)
        assert got == {"paid:delivered": 3}
        summary = centre.summary()
        assert summary["sent"] == 3 and summary["duplicates"] == 0


class TestInvalidNumber:
    @pytest.fixture
    def centre_extra(self) -> str:
        return f'\n[faults]\nseed = 1\ninvalid_number_pattern = "^{PEOPLE[0].phone}$"\n'

    def test_invalid_number_is_rejected_once(
        self, ctx: Context, bank: Any, centre: Any, gateway_http: str
    ) -> None:
        submit(ctx, payload("S-3", PEOPLE[:2]))
        drive(ctx)
        got = settle(ctx, {"paid:delivered": 1, "paid:rejected": 1})
        assert got == {"paid:delivered": 1, "paid:rejected": 1}
        for _ in range(5):
            run_cycle(ctx, "t")
        with ctx.sessions() as s:
            rejected = s.scalar(select(SmsNotice).where(SmsNotice.state == "rejected"))
        assert rejected is not None and rejected.attempts == 1


def test_quiet_hours_hold_messages_until_they_end(
    ctx: Context, bank: Any, centre: Any, gateway_http: str
) -> None:
    # a quiet period around "now" (whatever the hour the test runs at)
    local = dt.datetime.now(CHINA)
    start = (local - dt.timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (local + dt.timedelta(hours=1)).time().replace(second=0, microsecond=0)
    ctx.sms_config = dataclasses.replace(ctx.sms_config, quiet_start=start, quiet_end=end)
    sms_service.reset_sms(ctx)
    submit(ctx, payload("S-4", PEOPLE[:2]))
    drive(ctx)
    for _ in range(3):
        run_cycle(ctx, "t")
    assert notices(ctx) == {"paid:pending": 2}
    assert centre.summary()["sent"] == 0
    after = (local + dt.timedelta(hours=1, minutes=1)).astimezone(dt.UTC).replace(tzinfo=None)
    sms_step(ctx, "t", now=after)
    assert centre.summary()["sent"] == 2
