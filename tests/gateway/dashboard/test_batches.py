"""The batch list (filters, pagination, progress) and a batch's page (header, timeline,
files exchanged, rejection errors, items, reconciliation), on data made by the real intake
and transitions; one test runs the real pipeline against the in-process mock bank."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from sqlalchemy import select

from gateway.batches.models import Batch
from gateway.batches.service import IntakeService
from gateway.context import Context
from gateway.demo.data import Person
from gateway.dispatch.models import OutboundFile
from gateway.feedback.models import InboundFile
from gateway.kit.clock import china_today
from gateway.rework.models import AuditRecord
from tests.gateway.dashboard.support import DashClient
from tests.gateway.helpers import persons
from tests.gateway.pipeline import drive
from tests.gateway.rework.support import batch, fail, pay

Dash = Callable[[str], DashClient]

OURS = persons(3, seed=501)  # 430621101 (op101's township)
THEIRS = persons(2, seed=502)  # 430621102 (op102's township)


# --- shared by the dashboard page tests of this area ------------------------------------------


def assert_masked(html: str, people: Iterable[Person]) -> None:
    """No raw name, ID number, account number or phone of these people in the page."""
    for p in people:
        for raw in (p.name, p.id_number, p.account_no, p.phone):
            assert raw not in html, f"raw personal data in the page: {raw[:3]}…"


def audits(ctx: Context, action: str) -> list[AuditRecord]:
    with ctx.sessions() as s:
        return list(
            s.scalars(
                select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.id)
            )
        )


def batch_id(ctx: Context, batch_no: str) -> int:
    with ctx.sessions() as s:
        found = s.scalar(select(Batch.id).where(Batch.batch_no == batch_no))
    assert found is not None
    return int(found)


def rows_of(html: str) -> list[str]:
    """The batch numbers listed, in page order."""
    return re.findall(r'<a href="/dashboard/batches/\d+">([^<]+)</a>', html)


def english(client: DashClient) -> DashClient:
    response = client.get("/lang/en", follow_redirects=False)
    assert response.status_code == 303
    return client


def rejected(ctx: Context, no: str, ps: list[Person]) -> None:
    """A batch refused by the real intake: the first item's ID number is wrong."""
    from gateway.demo.data import batch_payload

    body = batch_payload(
        no, subsidy_code="GDBH", subsidy_name="耕地地力保护补贴", period="2026",
        persons=ps, amount_fen=10000,
    )  # fmt: skip
    body["items"][0]["id_number"] = ps[0].id_number[:17] + (
        "0" if ps[0].id_number[17] != "0" else "1"
    )
    raw = json.dumps(body, ensure_ascii=False).encode()
    answer = IntakeService(ctx.sessions, ctx.pii, ctx.profiles).submit(
        "county-finance", io.BytesIO(raw), hashlib.sha256(raw).hexdigest()
    )
    assert answer.status_code == 422, answer.body


def three_batches(ctx: Context) -> None:
    batch(ctx, "B-1", OURS)
    pay(ctx, "B-1", [1])
    fail(ctx, "B-1", [2], "name_mismatch", ("E102", "户名不符"))
    batch(ctx, "B-2", THEIRS, region="430621102", subsidy="DBBZ", subsidy_name="最低生活保障金")
    rejected(ctx, "R-1", persons(2, seed=503))


# --- the list ------------------------------------------------------------------------------------


def test_list_is_scoped_filtered_and_shows_progress(ctx: Context, dash: Dash) -> None:
    three_batches(ctx)
    op101 = dash("op101")
    page = op101.get("/batches")
    assert page.status_code == 200
    assert sorted(rows_of(page.text)) == ["B-1", "R-1"]  # never the other township's
    assert "最低生活保障金" not in page.text
    # B-1: 1 paid / 1 failed / 1 pending; totals from fen: 100.01 + 100.02 + 100.03
    assert 'aria-label="1/1/1"' in page.text
    assert "300.06" in page.text and "100.01" in page.text
    assert "已拒绝" in page.text and "已受理" in page.text
    assert_masked(page.text, OURS + THEIRS)

    county = dash("op")
    assert sorted(rows_of(county.get("/batches").text)) == ["B-1", "B-2", "R-1"]
    cases = {
        "?state=rejected": ["R-1"],
        "?subsidy=DBBZ": ["B-2"],
        "?subsidy=%E4%BD%8E%E7%94%9F%E6%B4%BB": ["B-2"],  # 低生活: part of the name
        "?region=430621102": ["B-2"],
        "?region=4306211": ["B-1", "B-2", "R-1"],
        "?bank=hnrcu": ["B-1", "B-2", "R-1"],
        "?bank=psbc": [],
        f"?from={china_today().isoformat()}": ["B-1", "B-2", "R-1"],
        f"?to={china_today().replace(day=1).replace(year=2020).isoformat()}": [],
        "?state=nonsense": ["B-1", "B-2", "R-1"],  # not understood: ignored, and said so
    }
    for query, expected in cases.items():
        got = county.get("/batches" + query)
        assert got.status_code == 200, query
        assert sorted(rows_of(got.text)) == expected, query
    assert "已忽略" in county.get("/batches?state=nonsense").text
    # op101 filtering for the other township sees nothing
    assert rows_of(op101.get("/batches?region=430621102").text) == []

    listed = audits(ctx, "view.batches")
    assert listed and listed[-1].actor == "op101"
    assert listed[-1].detail is not None and listed[-1].detail["filters"] == {"region": "430621102"}
    assert any(a.detail and a.detail["filters"] == {"subsidy": "DBBZ"} for a in listed)


def test_list_pagination_newest_first(
    ctx: Context, dash: Dash, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.dashboard.views import batches as view

    monkeypatch.setattr(view, "PAGE_SIZE", 2)
    for n in range(1, 6):
        batch(ctx, f"P-{n}", persons(1, seed=600 + n))
    client = dash("op")
    first = client.get("/batches")
    assert rows_of(first.text) == ["P-5", "P-4"]
    assert "共3页" in first.text and "下一页" in first.text and "上一页" not in first.text
    assert rows_of(client.get("/batches?page=2").text) == ["P-3", "P-2"]
    last = client.get("/batches?page=3")
    assert rows_of(last.text) == ["P-1"] and "下一页" not in last.text
    # past the end: the last page
    assert rows_of(client.get("/batches?page=99").text) == ["P-1"]
    # filters survive paging
    assert "subsidy=GDBH" in client.get("/batches?subsidy=GDBH").text.split("下一页")[0]


def test_admin_sees_no_batches(ctx: Context, dash: Dash) -> None:
    three_batches(ctx)
    admin = dash("admin")
    assert admin.get("/batches").status_code == 403
    assert admin.get(f"/batches/{batch_id(ctx, 'B-1')}").status_code == 403


# --- one batch -----------------------------------------------------------------------------------


def test_batch_page(ctx: Context, dash: Dash) -> None:
    three_batches(ctx)
    b1 = batch_id(ctx, "B-1")
    op101 = dash("op101")
    page = op101.get(f"/batches/{b1}")
    assert page.status_code == 200
    text = page.text
    assert "B-1" in text and "耕地地力保护补贴" in text and "430621101" in text
    # timeline: the batch's events and the items' milestones summarised
    assert "受理" in text and "3 笔" in text and "银行回盘：失败" in text
    # items masked, with the reason in Chinese and the recommended action
    assert OURS[0].id_number[:4] + "*" * 10 + OURS[0].id_number[-4:] in text
    assert "户名不符" in text and "对照身份证核对姓名" in text
    assert "100.01" in text and "100.02" in text and "100.03" in text
    assert_masked(text, OURS)
    assert "本批次没有对账差异" in text and "全部明细有结果后进行对账" in text

    failed_only = op101.get(f"/batches/{b1}?state=failed").text
    assert "100.02" in failed_only and "100.01" not in failed_only.split('id="items"')[1]

    seen = audits(ctx, "view.batch")
    assert [(a.actor, a.target_id) for a in seen] == [("op101", str(b1)), ("op101", str(b1))]
    assert seen[-1].detail is not None and seen[-1].detail["state"] == "failed"

    en = english(dash("op101")).get(f"/batches/{b1}").text
    assert "Timeline" in en and "account name does not match" in en and "Files exchanged" in en


def test_items_of_a_batch_are_paginated(
    ctx: Context, dash: Dash, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.dashboard.views import batches as view

    monkeypatch.setattr(view, "PAGE_SIZE", 2)
    batch(ctx, "B-1", OURS)
    b1 = batch_id(ctx, "B-1")
    client = dash("op101")
    first = client.get(f"/batches/{b1}").text
    assert "100.01" in first and "100.02" in first and "100.03" not in first
    second = client.get(f"/batches/{b1}?page=2").text
    assert "100.03" in second and "100.01" not in second.split('id="items"')[1]


def test_other_regions_and_missing_batches_answer_404(ctx: Context, dash: Dash) -> None:
    three_batches(ctx)
    b2 = batch_id(ctx, "B-2")
    op101 = dash("op101")
    for path in (f"/batches/{b2}", "/batches/999999", f"/batches/{2**70}"):
        response = op101.get(path)
        assert response.status_code in {404, 422}, path
    assert op101.get(f"/batches/{b2}").status_code == 404
    assert "最低生活保障金" not in op101.get(f"/batches/{b2}").text
    # the county and the auditor see it
    assert dash("op").get(f"/batches/{b2}").status_code == 200
    assert dash("aud").get(f"/batches/{b2}").status_code == 200


def test_rejected_batch_shows_its_errors(ctx: Context, dash: Dash) -> None:
    three_batches(ctx)
    page = dash("op101").get(f"/batches/{batch_id(ctx, 'R-1')}")
    assert page.status_code == 200
    assert "拒绝原因" in page.text and "id_number" in page.text
    with ctx.sessions() as s:
        from gateway.batches.models import BatchError

        errors = s.scalars(select(BatchError)).all()
    assert errors
    for e in errors:
        assert e.code in page.text
        assert e.message_zh in page.text and e.message_en in page.text
    en = english(dash("op101")).get(f"/batches/{batch_id(ctx, 'R-1')}").text
    assert "Why it was rejected" in en


def test_files_exchanged_with_the_mock_bank(ctx: Context, bank: Any, dash: Dash) -> None:
    """The real pipeline: intake, plan, sign, SFTP upload, result file, apply."""
    ps = persons(3, seed=511)
    batch(ctx, "F-1", ps)
    drive(ctx)
    b = batch_id(ctx, "F-1")
    with ctx.sessions() as s:
        out = s.scalars(select(OutboundFile).where(OutboundFile.batch_id == b)).all()
        serial = s.scalar(select(Batch.serial).where(Batch.id == b))
        inbound = s.scalars(select(InboundFile).where(InboundFile.batch_serial == serial)).all()
        state = s.scalar(select(Batch.state).where(Batch.id == b))
    assert out and inbound
    page = dash("op101").get(f"/batches/{b}")
    text = page.text
    for f in out:
        assert f.file_name in text and f.sha256 in text and f"{f.size:,}" in text
        assert f.signature_name in text
    assert "rsa-pss-sha256" in text and "gateway-dev" in text  # the signature's own lines
    for i in inbound:
        assert i.file_name in text and i.sha256 in text
    assert "已送达" in text and "已处理" in text
    assert "明细 · 送达银行" in text
    if state == "reconciled":
        assert "已对账：资金与银行证据一致" in text
    assert_masked(text, ps)

    overview = dash("op101").get("/overview").text
    banks = overview.split("代发银行状况")[1].split("</table>")[0]
    assert "湖南农信" in banks
    assert banks.count("-</td>") == 0  # last delivery and last result both known
    assert dash("op102").get(f"/batches/{b}").status_code == 404
