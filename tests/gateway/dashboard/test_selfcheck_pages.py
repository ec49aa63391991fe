"""The self-check pages: run from the dashboard, findings with links to their payments, only
the viewer's regions (in the page, the counts and the export), XLSX export, who may run."""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Callable

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from gateway.batches.models import Batch, PaymentItem
from gateway.context import Context
from gateway.rework.models import AuditRecord
from gateway.selfcheck.models import SelfCheckReport
from gateway.selfcheck.service import KIND_LABELS, SHARED_ACCOUNT
from tests.gateway.dashboard.support import DashClient
from tests.gateway.helpers import persons
from tests.gateway.rework.support import batch, item, pay

PEOPLE = persons(6, seed=61)
SHARED_TITLE = KIND_LABELS[SHARED_ACCOUNT][0]


@dataclasses.dataclass(frozen=True)
class Town:
    item_ids: list[int]  # the two items paid onto one account
    other_id: int  # a payment with nothing wrong
    account_masked: str


def _town(ctx: Context, no: str, region: str, first: int) -> Town:
    a, b, c = PEOPLE[first : first + 3]
    # two people paid onto the first one's card: a shared account
    batch(ctx, no, [a, dataclasses.replace(b, account_no=a.account_no), c], region=region)
    pay(ctx, no, [1, 2, 3])
    with ctx.sessions() as s:
        rows = s.execute(
            select(PaymentItem.id, PaymentItem.account_masked)
            .join(Batch, Batch.id == PaymentItem.batch_id)
            .where(Batch.batch_no == no)
            .order_by(PaymentItem.seq)
        ).all()
    return Town([rows[0][0], rows[1][0]], rows[2][0], rows[0][1])


@pytest.fixture
def towns(ctx: Context) -> dict[str, Town]:
    return {
        "101": _town(ctx, "SC-101", "430621101", 0),
        "102": _town(ctx, "SC-102", "430621102", 3),
    }


def run_from_dashboard(client: DashClient) -> int:
    page = client.get("/selfcheck")
    assert 'action="/dashboard/selfcheck/run"' in page.text
    response = client.post("/selfcheck/run", {"since": "", "until": ""})
    assert response.status_code == 303, response.text
    found = re.fullmatch(
        r"/dashboard/selfcheck/(\d+)\?done=selfcheck_run", response.headers["location"]
    )
    assert found, response.headers["location"]
    return int(found.group(1))


def links(html: str) -> set[int]:
    return {int(i) for i in re.findall(r'href="/dashboard/items/(\d+)"', html)}


def test_run_from_the_dashboard_and_read_the_findings(
    ctx: Context, towns: dict[str, Town], dash: Callable[[str], DashClient]
) -> None:
    op101 = dash("op101")
    report_id = run_from_dashboard(op101)
    page = op101.get(f"/selfcheck/{report_id}?done=selfcheck_run")
    assert page.status_code == 200
    assert "自查已完成" in page.text
    assert SHARED_TITLE in page.text
    assert KIND_LABELS[SHARED_ACCOUNT][2] in page.text  # the recommended action
    assert "收到 2 名不同领取人的 2 笔补贴" in page.text
    # the township's finding, with links to its two payments; nothing of the other township
    assert links(page.text) == set(towns["101"].item_ids)
    assert towns["101"].account_masked in page.text
    assert towns["102"].account_masked not in page.text
    assert "430621102" not in page.text
    for p in PEOPLE:
        assert p.account_no not in page.text and p.id_number not in page.text
    with ctx.sessions() as s:
        ran = s.scalar(select(AuditRecord).where(AuditRecord.action == "selfcheck.run"))
        viewed = s.scalar(
            select(AuditRecord).where(
                AuditRecord.action == "view.selfcheck_report", AuditRecord.actor == "op101"
            )
        )
    assert ran is not None and ran.actor == "op101" and ran.target_id == str(report_id)
    assert viewed is not None and viewed.target_id == str(report_id)
    # the list counts only what the township may see
    listing = op101.get("/selfcheck")
    assert f'href="/dashboard/selfcheck/{report_id}?kind={SHARED_ACCOUNT}">1<' in listing.text


def test_each_viewer_sees_the_findings_of_their_regions(
    ctx: Context, towns: dict[str, Town], dash: Callable[[str], DashClient]
) -> None:
    report_id = run_from_dashboard(dash("sup"))
    op102 = dash("op102").get(f"/selfcheck/{report_id}")
    assert links(op102.text) == set(towns["102"].item_ids)
    both = set(towns["101"].item_ids + towns["102"].item_ids)
    assert links(dash("sup").get(f"/selfcheck/{report_id}").text) == both
    auditor = dash("aud")
    assert links(auditor.get(f"/selfcheck/{report_id}").text) == both
    assert f'?kind={SHARED_ACCOUNT}">2<' in auditor.get("/selfcheck").text
    # one kind at a time, paginated
    one = auditor.get(f"/selfcheck/{report_id}?kind={SHARED_ACCOUNT}")
    assert links(one.text) == both and "共1页" in one.text.replace(" ", "")
    assert dash("op101").get("/selfcheck/999999").status_code == 404


def test_export_xlsx_holds_the_viewers_findings(
    ctx: Context, towns: dict[str, Town], dash: Callable[[str], DashClient]
) -> None:
    op101 = dash("op101")
    report_id = run_from_dashboard(op101)
    response = op101.get(f"/selfcheck/{report_id}/export.xlsx")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["cache-control"] == "no-store"
    wb = load_workbook(io.BytesIO(response.content))
    sheet = wb[SHARED_TITLE]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert len(rows) == 1
    assert rows[0][2] == towns["101"].account_masked
    assert rows[0][3] == "430621101"
    assert {int(i) for i in str(rows[0][5]).split("、")} == set(towns["101"].item_ids)
    # the auditor's export has both townships
    full = load_workbook(io.BytesIO(dash("aud").get(f"/selfcheck/{report_id}/export.xlsx").content))
    assert len(list(full[SHARED_TITLE].iter_rows(min_row=2, values_only=True))) == 2
    with ctx.sessions() as s:
        exports = list(
            s.scalars(select(AuditRecord).where(AuditRecord.action == "selfcheck.export"))
        )
    assert {e.actor for e in exports} == {"op101", "aud"}


def test_auditors_and_administrators_cannot_run(
    ctx: Context, towns: dict[str, Town], dash: Callable[[str], DashClient]
) -> None:
    auditor = dash("aud")
    page = auditor.get("/selfcheck")
    assert page.status_code == 200
    assert "/selfcheck/run" not in page.text
    refused = auditor.post("/selfcheck/run", {})
    assert refused.status_code == 403
    admin = dash("admin")
    assert admin.get("/selfcheck").status_code == 403
    assert admin.post("/selfcheck/run", {}).status_code == 403
    # an operator's post without the form's token is refused too
    assert dash("op101").post("/selfcheck/run", {}, csrf=False).status_code == 403
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(SelfCheckReport)) == 0


def test_a_bad_period_is_refused(
    ctx: Context, towns: dict[str, Town], dash: Callable[[str], DashClient]
) -> None:
    op = dash("op")
    bad = op.post("/selfcheck/run", {"since": "2026-13-01"})
    assert bad.status_code == 400 and "bad_date" in bad.text
    backwards = op.post("/selfcheck/run", {"since": "2026-03-01", "until": "2026-01-01"})
    assert backwards.status_code == 400
    assert "开始日期晚于结束日期" in backwards.text
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(SelfCheckReport)) == 0


def test_a_finding_across_townships_names_only_the_viewers_payments(
    ctx: Context, dash: Callable[[str], DashClient]
) -> None:
    """One card paid for a person of township 101 and one of township 102: the finding is
    both townships', and each sees it, but only with its own payment's id and region; the
    other township's payment is counted, not named (page and export alike)."""
    a, b = PEOPLE[0], dataclasses.replace(PEOPLE[1], account_no=PEOPLE[0].account_no)
    batch(ctx, "SC-X1", [a], region="430621101")
    batch(ctx, "SC-X2", [b], region="430621102")
    pay(ctx, "SC-X1", [1])
    pay(ctx, "SC-X2", [1])
    mine, theirs = item(ctx, "SC-X1", 1).id, item(ctx, "SC-X2", 1).id
    report_id = run_from_dashboard(dash("sup"))
    op101 = dash("op101")
    page = op101.get(f"/selfcheck/{report_id}")
    assert "收到 2 名不同领取人的 2 笔补贴" in page.text  # what the finding is about stays
    assert links(page.text) == {mine}
    assert f"#{theirs}<" not in page.text
    assert "430621102" not in page.text
    assert "另有 1 笔属于其他区划" in page.text
    wb = load_workbook(io.BytesIO(op101.get(f"/selfcheck/{report_id}/export.xlsx").content))
    [row] = list(wb[SHARED_TITLE].iter_rows(min_row=2, values_only=True))
    assert row[3] == "430621101"
    assert (row[4], str(row[5])) == (1, str(mine))
    assert row[10] == "另有1笔属于其他区划"
    assert "430621102" not in " ".join(str(v) for v in row)
    # the county sees both payments
    county = dash("sup").get(f"/selfcheck/{report_id}")
    assert links(county.text) == {mine, theirs} and "其他区划" not in county.text
