"""The failed-payments queue: what it lists (failed and unknown items of the viewer's
regions, with the reason in Chinese and the recommended action), its filters, and its bulk
actions — the correction list as a real XLSX (masked, or unmasked with an audited reason),
marking a list returned for correction, the printable list — with region scope, CSRF and
roles enforced on every post."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from gateway.batches.models import PaymentItem
from gateway.context import Context
from gateway.payments.states import ItemEvent
from gateway.payments.transitions import move_items
from gateway.rework.corrections import COLUMNS, HEADER_ROW
from gateway.rework.models import AuditRecord, CorrectionList
from tests.gateway.dashboard.support import DashClient
from tests.gateway.helpers import persons
from tests.gateway.rework.support import batch, bounce, fail, item, item_state, pay, send

PEOPLE = persons(12, seed=41)
Dash = Callable[[str], DashClient]


def queue_data(ctx: Context) -> None:
    """F-101 (township 101): 1 account_not_found, 2 name_mismatch, 3 paid, 4 with the bank,
    5 unknown, 6 operator case. F-102 (township 102): 1 failed, 2 bounced."""
    batch(ctx, "F-101", PEOPLE[:6], region="430621101")
    fail(ctx, "F-101", [1])
    fail(ctx, "F-101", [2], code="name_mismatch", bank=("E102", "户名不符"))
    pay(ctx, "F-101", [3])
    send(ctx, "F-101", [4])
    with ctx.sessions.begin() as s:
        ids = [item(ctx, "F-101", n).id for n in (5, 6)]
        for event in (ItemEvent.PLAN, ItemEvent.UPLOAD_UNKNOWN):
            move_items(s, PaymentItem.id.in_(ids), event, "test")
        move_items(s, PaymentItem.id == ids[1], ItemEvent.ESCALATE, "test")
    batch(ctx, "F-102", PEOPLE[6:8], region="430621102", subsidy="DBJ", subsidy_name="低保金")
    fail(ctx, "F-102", [1])
    bounce(ctx, "F-102", [2])


def serials(html: str) -> set[str]:
    return set(re.findall(r'/items/\d+" class="mono">([0-9A-Z]{10,24})</a>', html))


def serial(ctx: Context, batch_no: str, seq: int) -> str:
    return item(ctx, batch_no, seq).serial


def lists(ctx: Context) -> int:
    with ctx.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(CorrectionList)) or 0)


def audits(ctx: Context, action: str) -> list[AuditRecord]:
    with ctx.sessions() as s:
        return list(s.scalars(select(AuditRecord).where(AuditRecord.action == action)))


def workbook_text(content: bytes) -> tuple[list[Any], str]:
    wb = load_workbook(io.BytesIO(content))
    ws = wb.worksheets[0]
    headers = [c.value for c in ws[HEADER_ROW]]
    everything = " ".join(
        str(v) for sheet in wb.worksheets for row in sheet.iter_rows(values_only=True) for v in row
    )
    return headers, everything


def test_queue_lists_failed_and_unknown_items_of_the_viewers_regions(
    ctx: Context, dash: Dash
) -> None:
    queue_data(ctx)
    page = dash("op101").get("/failed")
    assert page.status_code == 200
    expected = {serial(ctx, "F-101", n) for n in (1, 2, 5, 6)}
    assert serials(page.text) == expected
    # the reason in Chinese with what the bank said, and the recommended action
    assert "账户不存在" in page.text and "核对一卡通账号是否抄录错误" in page.text
    assert "户名不符" in page.text and "对照身份证核对姓名" in page.text
    assert "结果未知" in page.text and "待人工处理" in page.text
    failed = item(ctx, "F-101", 1)
    assert failed.name_masked in page.text and failed.id_number_masked in page.text
    assert PEOPLE[0].id_number not in page.text and PEOPLE[0].account_no not in page.text
    assert "F-102" not in page.text
    # the county sees both townships, bounced items too
    county = dash("op").get("/failed")
    assert serials(county.text) == expected | {serial(ctx, "F-102", n) for n in (1, 2)}
    assert "退票" in county.text
    assert audits(ctx, "view.failed")


def test_filters_narrow_the_queue(ctx: Context, dash: Dash) -> None:
    queue_data(ctx)
    op = dash("op")

    def shown(query: str) -> set[str]:
        response = op.get("/failed?" + query)
        assert response.status_code == 200
        return serials(response.text)

    assert shown("state=failed") == {
        serial(ctx, "F-101", 1),
        serial(ctx, "F-101", 2),
        serial(ctx, "F-102", 1),
    }
    assert shown("reason=name_mismatch") == {serial(ctx, "F-101", 2)}
    assert shown("subsidy=DBJ") == {serial(ctx, "F-102", 1), serial(ctx, "F-102", 2)}
    assert shown("region=430621102&state=bounced") == {serial(ctx, "F-102", 2)}
    assert shown("state=unknown") == {serial(ctx, "F-101", 5)}
    assert shown("bank=hnrcu&state=operator_case") == {serial(ctx, "F-101", 6)}
    assert shown("bank=psbc") == set()
    assert shown("date_to=2000-01-01") == set()
    assert len(shown("date_from=2000-01-01")) == 6
    # returned items only when asked for
    assert shown("state=returned") == set()
    assert shown("state=paid") == shown("")  # not a queue state: the default queue


def test_export_gives_a_masked_xlsx_of_the_checked_items(ctx: Context, dash: Dash) -> None:
    queue_data(ctx)
    op = dash("op101")
    ids = [item(ctx, "F-101", n).id for n in (1, 2)]
    response = op.post(
        "/failed/actions", {"action": "export", "scope": "checked", "item": ids, "filter": ""}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and ".xlsx" in disposition
    headers, text = workbook_text(response.content)
    assert headers == [c[0] for c in COLUMNS]
    for n in (1, 2):
        it = item(ctx, "F-101", n)
        assert it.name_masked in text and it.id_number_masked in text
        assert it.account_masked in text
    for p in PEOPLE[:2]:
        assert p.id_number not in text and p.account_no not in text and p.name not in text
    assert "账户不存在" in text and "户名不符" in text
    [export] = audits(ctx, "correction_list.export")
    assert export.actor == "op101"
    assert not audits(ctx, "pii.unmask")
    # exporting moves nothing
    assert item_state(ctx, "F-101", 1) == "failed"


def test_unmasked_export_needs_a_reason_and_is_audited(ctx: Context, dash: Dash) -> None:
    queue_data(ctx)
    op = dash("op101")
    ids = [item(ctx, "F-101", 1).id]
    body = {"action": "export", "scope": "checked", "item": ids, "unmask": "1"}
    refused = op.post("/failed/actions", body)
    assert refused.status_code == 400
    assert "理由" in refused.text
    assert lists(ctx) == 0
    response = op.post("/failed/actions", {**body, "unmask_reason": "乡镇站所核对户名需要明文"})
    assert response.status_code == 200
    _, text = workbook_text(response.content)
    assert PEOPLE[0].id_number in text and PEOPLE[0].account_no in text
    [unmask] = audits(ctx, "pii.unmask")
    assert unmask.actor == "op101" and unmask.reason == "乡镇站所核对户名需要明文"
    [export] = audits(ctx, "correction_list.export_unmasked")
    assert export.reason == "乡镇站所核对户名需要明文"


def test_all_items_matching_the_filter_stay_within_the_viewers_regions(
    ctx: Context, dash: Dash
) -> None:
    queue_data(ctx)
    op = dash("op101")
    response = op.post("/failed/actions", {"action": "export", "scope": "filter", "filter": ""})
    assert response.status_code == 200
    _, text = workbook_text(response.content)
    assert "F-101" in text and "F-102" not in text
    # a forged filter naming the other township selects nothing of it
    forged = op.post(
        "/failed/actions",
        {"action": "export", "scope": "filter", "filter": "region=430621102"},
    )
    assert forged.status_code == 400
    assert lists(ctx) == 1


def test_mark_returned_moves_the_lists_items_to_returned(ctx: Context, dash: Dash) -> None:
    queue_data(ctx)
    op = dash("op101")
    ids = [item(ctx, "F-101", n).id for n in (1, 2)]
    op.post("/failed/actions", {"action": "export", "scope": "checked", "item": ids})
    with ctx.sessions() as s:
        list_id = s.scalar(select(CorrectionList.id))
    page = op.get("/failed")
    assert f"/failed/corrections/{list_id}/returned" in page.text
    done = op.post(f"/failed/corrections/{list_id}/returned")
    assert done.status_code == 303
    assert "done=list_returned" in done.headers["location"]
    assert item_state(ctx, "F-101", 1) == item_state(ctx, "F-101", 2) == "returned"
    assert audits(ctx, "correction_list.mark_returned")[0].actor == "op101"
    # returned items leave the default queue and show under their state
    assert serials(op.get("/failed").text) == {serial(ctx, "F-101", n) for n in (5, 6)}
    assert len(serials(op.get("/failed?state=returned").text)) == 2
    again = op.post(f"/failed/corrections/{list_id}/returned")
    assert again.status_code == 400


def test_export_and_mark_returned_in_one_action(ctx: Context, dash: Dash) -> None:
    queue_data(ctx)
    op = dash("op")
    ids = [item(ctx, "F-102", n).id for n in (1, 2)]
    response = op.post(
        "/failed/actions", {"action": "export_return", "scope": "checked", "item": ids}
    )
    assert response.status_code == 200
    assert load_workbook(io.BytesIO(response.content)).worksheets
    assert item_state(ctx, "F-102", 1) == item_state(ctx, "F-102", 2) == "returned"


def test_printable_correction_list(ctx: Context, dash: Dash) -> None:
    queue_data(ctx)
    op = dash("op101")
    ids = [item(ctx, "F-101", n).id for n in (1, 2)]
    op.post("/failed/actions", {"action": "export", "scope": "checked", "item": ids})
    with ctx.sessions() as s:
        list_id = s.scalar(select(CorrectionList.id))
    page = op.get(f"/failed/corrections/{list_id}/print")
    assert page.status_code == 200
    assert "发放失败更正清单" in page.text and "处理建议" in page.text
    assert item(ctx, "F-101", 1).id_number_masked in page.text
    assert PEOPLE[0].id_number not in page.text
    assert audits(ctx, "view.correction_list")
    # another township's operator does not see the list at all
    other = dash("op102")
    assert other.get(f"/failed/corrections/{list_id}/print").status_code == 404
    assert f"#{list_id}" not in other.get("/failed/corrections").text


def test_items_outside_the_viewers_regions_are_refused_and_nothing_changes(
    ctx: Context, dash: Dash
) -> None:
    queue_data(ctx)
    own, other = item(ctx, "F-101", 1).id, item(ctx, "F-102", 1).id
    op = dash("op101")
    for action in ("export", "export_return", "refund"):
        response = op.post(
            "/failed/actions",
            {"action": action, "scope": "checked", "item": [own, other], "refund_reason": "x"},
        )
        assert response.status_code == 404
    assert lists(ctx) == 0
    assert item_state(ctx, "F-102", 1) == "failed" and item_state(ctx, "F-101", 1) == "failed"
    # a list made by the county holding the other township's items cannot be marked
    dash("op").post("/failed/actions", {"action": "export", "scope": "checked", "item": [other]})
    with ctx.sessions() as s:
        list_id = s.scalar(select(CorrectionList.id))
    assert op.post(f"/failed/corrections/{list_id}/returned").status_code == 404
    assert item_state(ctx, "F-102", 1) == "failed"


def test_a_post_without_csrf_token_is_refused(ctx: Context, dash: Dash) -> None:
    queue_data(ctx)
    op = dash("op101")
    ids = [item(ctx, "F-101", 1).id]
    response = op.post(
        "/failed/actions", {"action": "export_return", "scope": "checked", "item": ids}, csrf=False
    )
    assert response.status_code == 403
    assert lists(ctx) == 0 and item_state(ctx, "F-101", 1) == "failed"


@pytest.mark.parametrize("user", ["aud", "admin"])
def test_auditors_and_administrators_cannot_act(ctx: Context, dash: Dash, user: str) -> None:
    queue_data(ctx)
    client = dash(user)
    ids = [item(ctx, "F-101", 1).id]
    for action in ("export", "export_return", "refund"):
        response = client.post(
            "/failed/actions", {"action": action, "scope": "checked", "item": ids}
        )
        assert response.status_code == 403
    assert client.post("/failed/corrections/1/returned").status_code == 403
    assert lists(ctx) == 0
    page = client.get("/failed")
    if user == "aud":
        # the auditor reads everything, without the action form
        assert page.status_code == 200 and "/failed/actions" not in page.text
        assert len(serials(page.text)) == 6
    else:
        assert page.status_code == 403
