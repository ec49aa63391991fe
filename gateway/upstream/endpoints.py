"""Upstream API: the change feed (``GET /v1/changes``).

Each change is the same object a webhook carries (``id`` = the ``webhook-id``), plus its
``cursor``. Upstream stores ``next_cursor`` and asks again with ``after=<next_cursor>``;
``has_more`` says another page is ready now. Only the authenticated client's batches are
visible; personal data is masked.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from gateway.api.errors import BadRequest
from gateway.batches.endpoints import Client, ctx_of
from gateway.context import Context
from gateway.kit.logging import get_logger
from gateway.upstream.feed import CursorError, changes_page

router = APIRouter(prefix="/v1")
log = get_logger(__name__)


def _page(ctx: Context, client_id: str, after: str | None, limit: int) -> dict[str, Any]:
    try:
        page = changes_page(ctx, client_id, after, limit)
    except CursorError:
        raise BadRequest(
            "invalid_cursor", "the cursor was not issued by this gateway", "游标无效", "after"
        ) from None
    # every query is logged (county measures, Article 11 (二)); no personal data in it
    log.info("upstream.changes_read", client=client_id, count=len(page.changes))
    return page.body()


@router.get("/changes")
async def get_changes(
    request: Request,
    client_id: Client,
    after: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    return await run_in_threadpool(_page, ctx_of(request), client_id, after, limit)
