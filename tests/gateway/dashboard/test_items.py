"""One item's page (masked; events, bank results, SMS, cases, correction lists, refunds,
re-issue links) and unmasking its personal data with a stated reason."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from gateway.batches.models import Batch, PaymentItem
from gateway.context import Context
from gateway.feedback.models import InboundFile, ItemResult, OperatorCase
from gateway.notifications.service import stage_notices
from gateway.rework.corrections import export_correction_list
from gateway.rework.refunds import propose_refund
from tests.gateway.dashboard.support import DashClient
from tests.gateway.dashboard.test_batches import OURS, assert_masked, audits, english
from tests.gateway.helpers import persons
from tests.gateway.pipeline import drive
from tests.gateway.rework.support import batch, fail, item, pay

Dash = Callable[[str], DashClient]


def plant(ctx: Context) -> tuple[dict[str, int], dict[str, str]]:
    """I-1: #1 failed, put on a correction list and re-issued by I-2 #1; #2 paid with an SMS
    owed and a case; #3 failed and proposed for a treasury refund."""
    batch(ctx, "I-1", OURS)
    fail(ctx, "I-1", [1], "account_not_found", ("E101", "账户不存在"))
    pay(ctx, "I-1", [2])
    fail(ctx, "I-1", [3], "account_closed", ("E104", "账户已销户"))
    listed = export_correction_list(ctx, operator="op101", batch_nos=["I-1"])
    batch(ctx, "I-2", [OURS[0]], reissue_of={1: ("I-1", 1)})
    ids = {
        "failed": item(ctx, "I-1", 1).id,
        "paid": item(ctx, "I-1", 2).id,
        "refund": item(ctx, "I-1", 3).id,
        "reissue": item(ctx, "I-2", 1).id,
    }
    names = {"list": listed.file_name}
    propose_refund(
        ctx, proposer="op101", reason="当年无法更正", item_ids=[ids["refund"]],
        as_of=dt.date(2026, 12, 31),
    )  # fmt: skip
    with ctx.sessions.begin() as s:
        stage_notices(s, [ids["paid"]], "paid")
        s.add(
            OperatorCase(kind="conflicting_result", item_id=ids["paid"], summary="同一明细结果矛盾")
        )
    return ids, names


def test_item_page(ctx: Context, dash: Dash) -> None:
    ids, names = plant(ctx)
    client = dash("op101")
    page = client.get(f"/items/{ids['failed']}")
    assert page.status_code == 200
    text = page.text
    p = OURS[0]
    assert p.id_number[:4] + "*" * 10 + p.id_number[-4:] in text
    assert p.phone[:3] + "****" + p.phone[-4:] in text
    assert "账户不存在" in text and "核对一卡通账号" in text and "E101" in text
    assert "受理" in text and "银行回盘：失败" in text and "重新发放" in text
    assert names["list"] in text.split("更正清单")[1]
    assert f'href="/dashboard/items/{ids["reissue"]}"' in text  # re-issued by
    assert "100.01" in text
    assert_masked(text, OURS)

    back = client.get(f"/items/{ids['reissue']}").text
    assert f'href="/dashboard/items/{ids["failed"]}"' in back and "重发自" in back

    paid = client.get(f"/items/{ids['paid']}").text
    assert "待发送" in paid and "结果前后矛盾" in paid and "同一明细结果矛盾" in paid
    refund = client.get(f"/items/{ids['refund']}").text
    assert "待复核" in refund and "当年无法更正" not in refund.split("退回国库")[0]

    assert [a.target_id for a in audits(ctx, "view.item")] == [
        str(ids[k]) for k in ("failed", "reissue", "paid", "refund")
    ]
    en = english(dash("op101")).get(f"/items/{ids['failed']}").text
    assert "account does not exist" in en and "Events" in en and "Re-issue" in en
    assert_masked(en, OURS)


def test_unmask_needs_a_reason_and_is_audited(
    ctx: Context, dash: Dash, capsys: pytest.CaptureFixture[str]
) -> None:
    ids, _ = plant(ctx)
    p = OURS[0]
    client = dash("op101")
    client.get(f"/items/{ids['failed']}")
    for blank in ("", "   "):
        refused = client.post(f"/items/{ids['failed']}/unmask", {"reason": blank})
        assert refused.status_code == 400 and "reason_required" in refused.text
        assert "必须填写理由" in refused.text
        assert_masked(refused.text, OURS)
    assert audits(ctx, "pii.unmask") == []
    # no CSRF token: refused before anything is decrypted
    forged = client.post(f"/items/{ids['failed']}/unmask", {"reason": "看看"}, csrf=False)
    assert forged.status_code == 403 and p.id_number not in forged.text

    capsys.readouterr()
    shown = client.post(f"/items/{ids['failed']}/unmask", {"reason": "核对户名后更正账号"})
    assert shown.status_code == 200
    for raw in (p.name, p.id_number, p.account_no, p.phone):
        assert raw in shown.text
        assert raw not in str(shown.url)
    assert "核对户名后更正账号" in shown.text
    assert shown.headers["cache-control"] == "no-store"
    logged = capsys.readouterr()
    for raw in (p.name, p.id_number, p.account_no, p.phone):
        assert raw not in logged.out + logged.err

    (row,) = audits(ctx, "pii.unmask")
    assert (row.actor, row.target_type, row.target_id) == ("op101", "item", str(ids["failed"]))
    assert row.reason == "核对户名后更正账号"
    assert row.detail is not None
    assert row.detail["fields"] == ["name", "id_number", "account_no", "phone"]
    assert p.id_number not in str(row.detail) and p.account_no not in str(row.detail)

    # the next look is masked again
    assert_masked(client.get(f"/items/{ids['failed']}").text, OURS)


def test_item_scope_and_roles(ctx: Context, dash: Dash) -> None:
    ids, _ = plant(ctx)
    other = dash("op102")
    assert other.get(f"/items/{ids['failed']}").status_code == 404
    other.get("/overview")
    hidden = other.post(f"/items/{ids['failed']}/unmask", {"reason": "好奇"})
    assert hidden.status_code == 404
    assert_masked(hidden.text, OURS)
    assert dash("op101").get("/items/99999999").status_code == 404
    admin = dash("admin")
    assert admin.get(f"/items/{ids['failed']}").status_code == 403
    assert admin.post(f"/items/{ids['failed']}/unmask", {"reason": "x"}).status_code == 403
    assert audits(ctx, "pii.unmask") == []
    # an auditor reads every region and may unmask, with a reason
    auditor = dash("aud")
    auditor.get(f"/items/{ids['failed']}")
    shown = auditor.post(f"/items/{ids['failed']}/unmask", {"reason": "专项审计抽查"})
    assert shown.status_code == 200 and OURS[0].id_number in shown.text
    assert [(a.actor, a.reason) for a in audits(ctx, "pii.unmask")] == [("aud", "专项审计抽查")]


def test_bank_results_of_an_item(ctx: Context, bank: Any, dash: Dash) -> None:
    ps = persons(2, seed=521)
    batch(ctx, "K-1", ps)
    drive(ctx)
    with ctx.sessions() as s:
        item_id, result, file_name, state = s.execute(
            select(PaymentItem.id, ItemResult, InboundFile.file_name, PaymentItem.state)
            .join(ItemResult, ItemResult.item_id == PaymentItem.id)
            .join(InboundFile, InboundFile.id == ItemResult.inbound_file_id)
            .join(Batch, Batch.id == PaymentItem.batch_id)
            .where(Batch.batch_no == "K-1", PaymentItem.seq == 1)
        ).one()
    text = dash("op101").get(f"/items/{item_id}").text
    assert file_name in text and result.bank_ref in text and "已采纳" in text
    assert "银行回盘：成功" in text and state == "paid"
    assert_masked(text, ps)
