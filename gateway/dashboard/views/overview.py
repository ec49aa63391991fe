"""The overview (总览): this month's and today's batches, items paid / failed / pending,
failure reasons, banks' health, open discrepancies and cases, SMS — within the viewer's
regions, every figure an aggregate computed by the database."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from gateway.dashboard import queries_overview as q
from gateway.dashboard.web import Viewer, audit, ctx_of, payments_viewer, render, unit_of_work
from gateway.kit.clock import utcnow

router = APIRouter()


@router.get("/overview", response_class=HTMLResponse)
def overview_page(
    request: Request,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    ctx = ctx_of(request)
    with unit_of_work(request) as s:
        data = q.overview(s, ctx, viewer, utcnow())
        audit(s, viewer, "view.overview", target_type="overview", detail={"day": str(data.today)})
    return render(request, "overview.html", viewer, data=data, **q.template_helpers(viewer.lang))
