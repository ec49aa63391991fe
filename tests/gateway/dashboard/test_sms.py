"""The SMS log page: notices staged by the real staging code and sent to the mock SMS
centre; scoped to the viewer's regions, phones masked, filters, the provider's refusals for
configuration called out, and the view audited."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

import pytest
from sqlalchemy import select

from gateway.batches.models import Batch, PaymentItem
from gateway.context import Context
from gateway.demo.data import Person
from gateway.demo.sms import SIGN_NAME
from gateway.kit.clock import china_today
from gateway.notifications import service as sms_service
from gateway.notifications.models import SmsNotice
from gateway.notifications.service import apply_receipts, sms_step, stage_notices
from gateway.ports import SmsReceipt, SmsStatus
from gateway.rework.models import AuditRecord
from tests.gateway.dashboard.support import DashClient
from tests.gateway.helpers import persons
from tests.gateway.notifications.test_sms import centre, centre_extra  # noqa: F401 (fixtures)
from tests.gateway.rework.support import batch, pay

PEOPLE = persons(6, seed=53)
TOWN_101 = PEOPLE[:3]
TOWN_102 = PEOPLE[3:]


def serials(ctx: Context, batch_no: str) -> list[str]:
    with ctx.sessions() as s:
        return list(
            s.scalars(
                select(PaymentItem.serial)
                .join(Batch, Batch.id == PaymentItem.batch_id)
                .where(Batch.batch_no == batch_no)
                .order_by(PaymentItem.seq)
            )
        )


def paid_with_notices(ctx: Context, batch_no: str, people: list[Person], region: str) -> list[str]:
    """A batch through the real intake, paid, with its SMS notices staged as the result
    intake stages them; returns the items' serials."""
    batch(ctx, batch_no, people, region=region)
    pay(ctx, batch_no, list(range(1, len(people) + 1)))
    with ctx.sessions.begin() as s:
        ids = list(
            s.scalars(
                select(PaymentItem.id)
                .join(Batch, Batch.id == PaymentItem.batch_id)
                .where(Batch.batch_no == batch_no)
            )
        )
        stage_notices(s, ids, "paid")
    return serials(ctx, batch_no)


@pytest.fixture
def sent(ctx: Context, request: pytest.FixtureRequest) -> dict[str, list[str]]:
    """Three paid notices per township sent to the mock SMS centre, which does not know the
    sign name township 102's messages carry (a configuration error); one of 101's
    delivered."""
    request.getfixturevalue("centre")  # the notification tests' centre, set up for ctx
    ctx.sms_config = dataclasses.replace(
        ctx.sms_config, sign_names={"430621": SIGN_NAME, "430621102": "未备案的签名"}
    )
    sms_service.reset_sms(ctx)
    got = {
        "101": paid_with_notices(ctx, "SMS-101", TOWN_101, "430621101"),
        "102": paid_with_notices(ctx, "SMS-102", TOWN_102, "430621102"),
    }
    for _ in range(10):
        sms_step(ctx, "t")
        with ctx.sessions() as s:
            if not s.scalar(select(SmsNotice.id).where(SmsNotice.state == "pending")):
                break
    with ctx.sessions() as s:
        first = s.scalar(select(SmsNotice).where(SmsNotice.out_id == got["101"][0] + "P"))
    assert first is not None and first.state == "sent" and first.provider_ref
    apply_receipts(
        ctx,
        [
            SmsReceipt(
                out_id=first.out_id,
                provider_ref=first.provider_ref,
                status=SmsStatus.DELIVERED,
                code="DELIVERED",
                message="用户接收成功",
                at=dt.datetime.now(dt.UTC),
                phone_masked="138****0000",
            )
        ],
        source="push",
    )
    return got


def states(ctx: Context) -> dict[str, int]:
    with ctx.sessions() as s:
        out: dict[str, int] = {}
        for n in s.scalars(select(SmsNotice)):
            out[n.state] = out.get(n.state, 0) + 1
        return out


def test_township_sees_its_own_messages_masked(
    ctx: Context, sent: dict[str, list[str]], dash: Callable[[str], DashClient]
) -> None:
    assert states(ctx) == {"delivered": 1, "sent": 2, "rejected": 3}
    op101 = dash("op101")
    page = op101.get("/sms")
    assert page.status_code == 200
    for serial in sent["101"]:
        assert serial in page.text
    for serial in sent["102"]:
        assert serial not in page.text
    for p in PEOPLE:
        assert p.phone not in page.text
        assert p.name not in page.text
    assert TOWN_101[0].phone[:3] + "****" + TOWN_101[0].phone[-4:] in page.text
    assert "已送达" in page.text
    # no configuration problem in this township
    assert "sms-config-alert" not in page.text
    with ctx.sessions() as s:
        audited = s.scalar(
            select(AuditRecord).where(
                AuditRecord.action == "view.sms", AuditRecord.actor == "op101"
            )
        )
    assert audited is not None and audited.detail is not None and audited.detail["rows"] == 3


def test_refusals_for_configuration_are_called_out(
    sent: dict[str, list[str]], dash: Callable[[str], DashClient]
) -> None:
    op102 = dash("op102")
    page = op102.get("/sms")
    assert "sms-config-alert" in page.text
    assert "短信平台因配置问题拒绝了 3 条短信" in page.text
    assert "isv.SMS_SIGNATURE_ILLEGAL" in page.text
    assert page.text.count('class="badge sms-config"') == 3
    only = op102.get("/sms?status=config_rejected")
    assert all(serial in only.text for serial in sent["102"])
    # the county supervisor sees both townships, and the alert
    sup = dash("sup").get("/sms")
    assert all(serial in sup.text for serial in sent["101"] + sent["102"])
    assert "sms-config-alert" in sup.text


def test_filters(sent: dict[str, list[str]], dash: Callable[[str], DashClient]) -> None:
    sup = dash("sup")

    def shown(query: str) -> set[str]:
        text = sup.get("/sms" + query).text
        return {s for s in sent["101"] + sent["102"] if s in text}

    assert shown("?status=delivered") == {sent["101"][0]}
    assert shown("?status=rejected") == set(sent["102"])
    assert shown("?kind=failed") == set()
    assert shown("?kind=paid") == set(sent["101"] + sent["102"])
    assert shown("?batch=SMS-102") == set(sent["102"])
    assert shown(f"?date={china_today().isoformat()}") == set(sent["101"] + sent["102"])
    yesterday = china_today() - dt.timedelta(days=1)
    assert shown(f"?date={yesterday.isoformat()}") == set()


def test_pending_notices_without_a_provider_and_who_may_look(
    ctx: Context, dash: Callable[[str], DashClient]
) -> None:
    got = paid_with_notices(ctx, "SMS-P", TOWN_101, "430621101")
    auditor = dash("aud").get("/sms?status=pending")
    assert auditor.status_code == 200
    assert all(s in auditor.text for s in got)
    assert "待发送" in auditor.text
    assert dash("op102").get("/sms").text.count(got[0]) == 0
    assert dash("admin").get("/sms").status_code == 403
