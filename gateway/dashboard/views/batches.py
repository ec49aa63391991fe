"""Batches (批次): the list with filters and progress, and one batch's page — header,
timeline, files exchanged with the bank, rejection errors, items (masked, paginated) and
reconciliation."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from gateway.batches.models import Batch
from gateway.batches.service import count_by_state
from gateway.dashboard import queries_overview as q
from gateway.dashboard.web import (
    PAGE_SIZE,
    NotFound,
    Viewer,
    audit,
    check_region,
    ctx_of,
    filters_of,
    page_number,
    payments_viewer,
    render,
    unit_of_work,
)
from gateway.payments.states import BatchState, ItemState
from gateway.reconciliation.matching import DiscrepancyState
from gateway.reconciliation.service import list_discrepancies

router = APIRouter()

# rejection errors shown on the batch page (a rejected batch of 20k bad items has 20k)
ERRORS_SHOWN = 200


@router.get("/batches", response_class=HTMLResponse)
def batch_list(
    request: Request,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    ctx = ctx_of(request)
    raw = filters_of(request, q.BATCH_FILTERS)
    filters = q.BatchFilters.parse(raw)
    with unit_of_work(request) as s:
        page = q.batch_page(s, viewer, filters, page_number(request), PAGE_SIZE)
        progress = q.progress_of(s, [b.id for b in page.rows])
        audit(
            s, viewer, "view.batches", target_type="batch",
            detail={"filters": raw, "page": page.number, "shown": len(page.rows)},
        )  # fmt: skip
    bank_names = {name: p.display_name for name, p in sorted(ctx.profiles.items())}
    return render(
        request, "batches_list.html", viewer, page=page, progress=progress, f=raw,
        filters=filters, bank_names=bank_names, **q.template_helpers(viewer.lang),
    )  # fmt: skip


@router.get("/batches/{batch_id:id}", response_class=HTMLResponse)
def batch_detail(
    request: Request,
    batch_id: int,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    ctx = ctx_of(request)
    state = request.query_params.get("state") or None
    if state is not None and state not in {s.value for s in ItemState}:
        state = None
    with unit_of_work(request) as s:
        batch = s.get(Batch, batch_id)
        if batch is None:
            raise NotFound
        check_region(viewer, batch.region_code)
        by_state = count_by_state(s, batch.id)
        total = by_state.get(state, (0, 0))[0] if state else sum(n for n, _ in by_state.values())
        items = q.batch_items(s, batch.id, state, page_number(request), PAGE_SIZE, total)
        timeline = q.batch_timeline(s, batch.id)
        files = q.batch_files(s, ctx, batch)
        error_total, errors = (
            q.batch_errors(s, batch.id, ERRORS_SHOWN)
            if batch.state == BatchState.REJECTED
            else (0, [])
        )
        audit(
            s, viewer, "view.batch", target_type="batch", target_id=batch.id,
            detail={"state": state, "page": items.number},
        )  # fmt: skip
    discrepancies = list_discrepancies(
        ctx, states=[st.value for st in DiscrepancyState], batch_id=batch.id, limit=200
    )
    groups = {g: q.Tally() for g in q.GROUPS}
    for st, (n, fen) in by_state.items():
        groups[q.item_group(st)].add(n, fen)
    profile = ctx.profiles.get(batch.bank_profile)
    return render(
        request, "batches_detail.html", viewer, batch=batch, by_state=by_state, tallies=groups,
        items=items, state=state, timeline=timeline, files=files, errors=errors,
        error_total=error_total, discrepancies=discrepancies,
        bank_name=profile.display_name if profile else batch.bank_profile,
        **q.template_helpers(viewer.lang),
    )  # fmt: skip
