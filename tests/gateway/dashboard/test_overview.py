"""The overview: this month's batches and items, failure reasons, banks, discrepancies,
cases and SMS — each figure within the viewer's regions."""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import select, update

from gateway.batches.models import Batch, PaymentItem
from gateway.context import Context
from gateway.feedback.models import OperatorCase
from gateway.notifications.models import SmsNotice
from gateway.notifications.service import stage_notices
from gateway.reconciliation.models import Discrepancy
from tests.gateway.dashboard.support import DashClient
from tests.gateway.dashboard.test_batches import (
    OURS,
    THEIRS,
    assert_masked,
    audits,
    batch_id,
    english,
    three_batches,
)

Dash = Callable[[str], DashClient]


def card(html: str, label: str) -> str:
    """The figure of the overview card labelled ``label`` (tags stripped)."""
    found = re.search(
        r'<div class="k">' + re.escape(label) + r'</div>\s*<div class="v[^"]*">(.*?)</div>'
        r'(?:\s*<div class="sub">(.*?)</div>)?',
        html,
        re.S,
    )
    assert found, label
    value = re.sub(r"<[^>]+>", "", found.group(1)).strip()
    return value + (" | " + found.group(2).strip() if found.group(2) else "")


def _item_ids(ctx: Context, batch_no: str) -> list[int]:
    with ctx.sessions() as s:
        return list(
            s.scalars(
                select(PaymentItem.id)
                .join(Batch, Batch.id == PaymentItem.batch_id)
                .where(Batch.batch_no == batch_no)
                .order_by(PaymentItem.seq)
            )
        )


def plant(ctx: Context) -> None:
    """Three batches, their SMS notices (one delivered, one failed), and a discrepancy and
    an operator case in each township plus one belonging to no batch."""
    three_batches(ctx)
    ours, theirs = _item_ids(ctx, "B-1"), _item_ids(ctx, "B-2")
    b1, b2 = batch_id(ctx, "B-1"), batch_id(ctx, "B-2")
    with ctx.sessions.begin() as s:
        stage_notices(s, [ours[0]], "paid")
        stage_notices(s, [ours[1]], "failed")
        stage_notices(s, theirs, "paid")
        # what the SMS centre reported back
        s.execute(update(SmsNotice).where(SmsNotice.item_id == ours[0]).values(state="delivered"))
        s.execute(update(SmsNotice).where(SmsNotice.item_id == ours[1]).values(state="failed"))
        for key, bid in (("a", b1), ("b", b2), ("c", None)):
            s.add(
                Discrepancy(
                    key=f"missing_result:test:{key}", type="missing_result", state="open",
                    batch_id=bid, summary="发送后未收到结果", evidence={}, detected_by="test",
                )
            )  # fmt: skip
        s.add(OperatorCase(kind="conflicting_result", item_id=ours[1], batch_id=b1, summary="x"))
        s.add(OperatorCase(kind="calendar_unknown_year", batch_id=b2, summary="y"))
        s.add(OperatorCase(kind="result_file_invalid", summary="z"))


def test_overview_of_a_township(ctx: Context, dash: Dash) -> None:
    plant(ctx)
    page = dash("op101").get("/overview")
    assert page.status_code == 200
    html = page.text
    assert card(html, "今日批次") == "2" and card(html, "本月批次") == "2"  # B-1, R-1
    # fen added up exactly: 10001 paid, 10002 failed, 10003 pending
    assert card(html, "本月明细 · 已支付") == "1 | 100.01 元"
    assert card(html, "本月明细 · 失败") == "1 | 100.02 元"
    assert card(html, "本月明细 · 处理中") == "1 | 100.03 元"
    assert card(html, "未解决差异") == "1"
    assert card(html, "待处理事项") == "1"
    assert card(html, "本月短信 送达/失败") == "1 / 1"
    # the failure reasons chart: Chinese label, an SVG bar (no inline style anywhere)
    reasons = html.split("本月失败原因")[1].split("</table>")[0]
    assert "户名不符" in reasons and "name_mismatch" in reasons
    assert '<rect class="fill" width="100"' in reasons
    assert "style=" not in html
    # banks: the profile, its cut-off today (whatever the hour)
    banks = html.split("代发银行状况")[1].split("</table>")[0]
    assert "湖南农信" in banks
    assert any(s in banks for s in ("还有", "（已过）", "今日非营业日", "不设截止时间"))
    assert "结果前后矛盾" in html  # the case's kind, in Chinese
    assert_masked(html, OURS + THEIRS)
    (seen,) = audits(ctx, "view.overview")
    assert seen.actor == "op101" and seen.target_type == "overview"


def test_county_and_auditor_see_more(ctx: Context, dash: Dash) -> None:
    plant(ctx)
    county = dash("op").get("/overview").text
    assert card(county, "本月批次") == "3"
    assert card(county, "本月明细 · 处理中") == "3 | 300.06 元"  # 100.03 + 100.01 + 100.02
    assert card(county, "未解决差异") == "2" and card(county, "待处理事项") == "2"
    auditor = dash("aud").get("/overview").text
    assert card(auditor, "本月批次") == "3"
    # what belongs to no batch is counted for those who see every region
    assert card(auditor, "未解决差异") == "3" and card(auditor, "待处理事项") == "3"
    other = dash("op102").get("/overview").text
    assert card(other, "本月批次") == "1" and card(other, "本月明细 · 失败") == "0 | 0.00 元"
    assert "户名不符" not in other
    assert card(other, "本月短信 送达/失败") == "0 / 0"


def test_overview_in_english_and_refused_to_admin(ctx: Context, dash: Dash) -> None:
    plant(ctx)
    en = english(dash("op101")).get("/overview").text
    assert "Failure reasons this month" in en and "account name does not match" in en
    assert card(en, "Items this month · paid") == "1 | 100.01 CNY"
    assert dash("admin").get("/overview").status_code == 403
    assert [a.actor for a in audits(ctx, "view.overview")] == ["op101"]


def test_empty_overview(ctx: Context, dash: Dash) -> None:
    html = dash("op101").get("/overview").text
    assert card(html, "本月批次") == "0"
    assert "本月没有失败的明细" in html and "本月尚无批次" in html
