"""The self-check pages (自查): the reports (run quarterly by the worker or on demand here),
a report's findings grouped by kind — each with its explanation, the recommended action and
links to the payments behind it — and the report as XLSX. A viewer sees only the findings
of their regions (in the counts, the pages and the export), and of a finding that spans
other regions only their own payments' ids and region codes (the rest are counted).
Running and exporting are audited by the self-check service, viewing here
(``view.selfcheck``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from gateway.context import Context
from gateway.dashboard.web import (
    DONE_MESSAGES,
    FIRST_DAY,
    LAST_DAY,
    NO_STORE,
    FormRejected,
    NotFound,
    Page,
    Viewer,
    acting_viewer,
    audit,
    checked_form,
    ctx_of,
    form_text,
    page_number,
    parse_day,
    payments_viewer,
    redirect,
    render,
    unit_of_work,
)
from gateway.kit.clock import china_today
from gateway.selfcheck.export import export_xlsx
from gateway.selfcheck.service import (
    KIND_LABELS,
    FindingView,
    ReportNotFoundError,
    ReportView,
    count_findings,
    get_report,
    list_findings,
    list_reports,
    run_selfcheck,
)

router = APIRouter()

DONE_MESSAGES.update({"selfcheck_run": ("自查已完成", "Self-check done")})
REPORTS_SHOWN = 20
FINDINGS_PER_KIND = 10  # on the report's overview; one kind at a time pages by PAGE_SIZE
KIND_PAGE_SIZE = 25
ITEM_LINKS = 30  # item links shown per finding; the rest are counted
TRIGGERS = {"manual": ("人工发起", "on demand"), "quarterly": ("按季度自动", "quarterly")}


@dataclass(frozen=True, slots=True)
class KindSection:
    kind: str
    title_zh: str
    title_en: str
    action_zh: str
    page: Page

    @property
    def findings(self) -> list[FindingView]:
        return list(self.page.rows)


def _report(ctx: Context, report_id: int) -> ReportView:
    try:
        return get_report(ctx, report_id)
    except ReportNotFoundError:
        raise NotFound from None


@router.get("/selfcheck", response_class=HTMLResponse)
def report_list(
    request: Request,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    ctx = ctx_of(request)
    reports = list_reports(ctx, limit=REPORTS_SHOWN)
    regions = viewer.principal.region_filter()
    counts = (
        {r.id: dict(r.counts) for r in reports}
        if regions is None
        else count_findings(ctx, [r.id for r in reports], regions=regions)
    )
    with unit_of_work(request) as s:
        audit(s, viewer, "view.selfcheck", target_type="selfcheck_report",
              detail={"reports": len(reports)})  # fmt: skip
    today = china_today()
    return render(
        request, "selfcheck_list.html", viewer, active="selfcheck", reports=reports,
        counts=counts, labels=KIND_LABELS, triggers=TRIGGERS,
        default_since=(today - dt.timedelta(days=90)).isoformat(), default_until=today.isoformat(),
    )  # fmt: skip


def _day(form: FormData, name: str) -> dt.date | None:
    text = form_text(form, name, max_len=10)
    day = parse_day(text)
    if text and day is None:
        years = f"{FIRST_DAY.year}-{LAST_DAY.year}"
        raise FormRejected(
            "bad_date", f"日期无效：{text}（格式 YYYY-MM-DD，年份 {years}）",
            f"invalid date {text!r} (YYYY-MM-DD, years {years})", back="/selfcheck", field=name,
        )  # fmt: skip
    return day


@router.post("/selfcheck/run")
def run(
    request: Request,
    viewer: Viewer = Depends(acting_viewer),  # noqa: B008
    form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    since, until = _day(form, "since"), _day(form, "until")
    report_id = run_selfcheck(
        ctx_of(request), requested_by=viewer.actor, trigger="manual", since=since, until=until
    )
    return redirect(request, f"/selfcheck/{report_id}", done="selfcheck_run")


@router.get("/selfcheck/{report_id:id}", response_class=HTMLResponse)
def report_page(
    request: Request,
    report_id: int,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    ctx = ctx_of(request)
    report = _report(ctx, report_id)
    regions = viewer.principal.region_filter()
    kind = request.query_params.get("kind")
    one_kind = kind if kind in KIND_LABELS else None
    sections: list[KindSection] = []
    for k, (title_zh, title_en, action_zh) in KIND_LABELS.items():
        if one_kind is not None and k != one_kind:
            continue
        size = KIND_PAGE_SIZE if one_kind else FINDINGS_PER_KIND
        number = page_number(request) if one_kind else 1
        found, total = list_findings(
            ctx, report.id, regions=regions, kind=k, offset=(number - 1) * size, limit=size
        )
        page = Page(number=number, size=size, total=total, rows=found)
        sections.append(KindSection(k, title_zh, title_en, action_zh, page))
    with unit_of_work(request) as s:
        audit(
            s, viewer, "view.selfcheck_report", target_type="selfcheck_report",
            target_id=report.id,
            detail={"kind": one_kind, "page": sections[0].page.number if one_kind else 1,
                    "findings": sum(len(x.page.rows) for x in sections)},
        )  # fmt: skip
    return render(
        request, "selfcheck_report.html", viewer, active="selfcheck", report=report,
        sections=sections, one_kind=one_kind, triggers=TRIGGERS, item_links=ITEM_LINKS,
        scoped=regions is not None,
    )  # fmt: skip


@router.get("/selfcheck/{report_id:id}/export.xlsx")
def export(
    request: Request,
    report_id: int,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    ctx = ctx_of(request)
    _report(ctx, report_id)
    file_name, content = export_xlsx(
        ctx, report_id, regions=viewer.principal.region_filter(), actor=viewer.actor
    )
    return Response(
        content,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{file_name}"', **NO_STORE},
    )
