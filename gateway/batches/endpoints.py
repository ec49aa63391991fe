"""Upstream API for batches: submit, status, items."""

from __future__ import annotations

import hashlib
import tempfile
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import select

from gateway.api.errors import BadRequest, NotFound, Unauthenticated
from gateway.auth.hmac_auth import AuthError, verify_request
from gateway.batches.models import Batch, PaymentItem
from gateway.batches.service import IntakeService, MalformedRequestError, count_by_state
from gateway.context import Context
from gateway.feedback.reasons import reason
from gateway.kit.logging import get_logger
from gateway.payments.states import ItemState

router = APIRouter(prefix="/v1")
log = get_logger(__name__)
SPOOL_IN_MEMORY = 4 * 1024 * 1024
MAX_BODY = 512 * 1024 * 1024


def ctx_of(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def _target(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _authenticate(request: Request, body_sha256: str) -> str:
    ctx = ctx_of(request)
    secrets = {cid: s.get_secret_value().encode() for cid, s in ctx.settings.api_clients.items()}
    try:
        return verify_request(
            headers={k.lower(): v for k, v in request.headers.items()},
            method=request.method,
            target=_target(request),
            body_sha256=body_sha256,
            secret_for=secrets,
            window_seconds=ctx.settings.signature_window_seconds,
            session_factory=ctx.sessions,
        )
    except AuthError as exc:
        log.warning("auth.refused", code=exc.code, path=request.url.path)
        raise Unauthenticated(exc.code, exc.message_en, exc.message_zh) from None


async def authenticated_get(request: Request) -> str:
    return await run_in_threadpool(_authenticate, request, hashlib.sha256(b"").hexdigest())


Client = Annotated[str, Depends(authenticated_get)]


@router.post("/batches", status_code=201)
async def submit_batch(request: Request) -> JSONResponse:
    """Submit an approved batch. The body is spooled to disk while it is hashed, so memory
    stays bounded whatever its size; nothing is stored unless the signature verifies."""
    ctx = ctx_of(request)
    digest = hashlib.sha256()
    size = 0
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise BadRequest("body_too_large", "request body too large", "请求体过大")
            digest.update(chunk)
            spool.write(chunk)
        sha = digest.hexdigest()
        client_id = await run_in_threadpool(_authenticate, request, sha)
        service = IntakeService(ctx.sessions, ctx.pii, ctx.profiles, ctx.calendar)
        try:
            answer = await run_in_threadpool(service.submit, client_id, spool, sha)
        except MalformedRequestError as exc:
            raise BadRequest(
                "malformed_json", f"request body is not valid JSON: {exc}", "请求不是合法的JSON"
            ) from None
    finally:
        spool.close()
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return JSONResponse(answer.body, status_code=answer.status_code, headers=headers)


def _batch_or_404(ctx: Context, client_id: str, batch_no: str) -> Batch:
    with ctx.sessions() as session:
        batch = session.scalar(
            select(Batch).where(Batch.client_id == client_id, Batch.batch_no == batch_no)
        )
    if batch is None:
        raise NotFound("batch_not_found", "no such batch", "批次不存在", field="batch_no")
    return batch


def batch_status(ctx: Context, client_id: str, batch_no: str) -> dict[str, Any]:
    batch = _batch_or_404(ctx, client_id, batch_no)
    with ctx.sessions() as session:
        by_state = count_by_state(session, batch.id)
    paid = by_state.get(ItemState.PAID, (0, 0))
    failed = by_state.get(ItemState.FAILED, (0, 0))
    final = sum(n for s, (n, _) in by_state.items() if ItemState(s).is_final())
    return {
        "batch_no": batch.batch_no,
        "serial": batch.serial,
        "state": batch.state,
        "bank_profile": batch.bank_profile,
        "subsidy_code": batch.subsidy_code,
        "period": batch.period,
        "item_count": batch.item_count,
        "total_fen": batch.total_fen,
        "items_by_state": {s: {"count": n, "amount_fen": a} for s, (n, a) in by_state.items()},
        "paid": {"count": paid[0], "amount_fen": paid[1]},
        "failed": {"count": failed[0], "amount_fen": failed[1]},
        "pending": {
            "count": batch.item_count - final,
            "amount_fen": sum(a for s, (_, a) in by_state.items() if not ItemState(s).is_final()),
        },
        "received_at": batch.received_at.isoformat() + "Z",
        "completed_at": batch.completed_at.isoformat() + "Z" if batch.completed_at else None,
    }


@router.get("/batches/{batch_no}")
async def get_batch(batch_no: str, request: Request, client_id: Client) -> dict[str, Any]:
    return await run_in_threadpool(batch_status, ctx_of(request), client_id, batch_no)


def batch_items(
    ctx: Context, client_id: str, batch_no: str, state: str | None, after_seq: int, limit: int
) -> dict[str, Any]:
    batch = _batch_or_404(ctx, client_id, batch_no)
    query = (
        select(PaymentItem)
        .where(PaymentItem.batch_id == batch.id, PaymentItem.seq > after_seq)
        .order_by(PaymentItem.seq)
        .limit(limit)
    )
    if state:
        query = query.where(PaymentItem.state == state)
    with ctx.sessions() as session:
        items = session.scalars(query).all()
    out = []
    for it in items:
        r = reason(it.reason_code) if it.reason_code else None
        out.append(
            {
                "seq": it.seq,
                "serial": it.serial,
                "state": it.state,
                "state_zh": ItemState(it.state).label_zh,
                "amount_fen": it.amount_fen,
                "name": it.name_masked,
                "id_number": it.id_number_masked,
                "account_no": it.account_masked,
                "bank_code": it.bank_code,
                "bank_ref": it.bank_ref,
                "reason_code": it.reason_code,
                "reason_zh": r.zh if r else None,
                "action_zh": r.action_zh if r else None,
                "paid_at": it.paid_at.isoformat() + "Z" if it.paid_at else None,
            }
        )
    next_after = out[-1]["seq"] if len(out) == limit else None
    return {"batch_no": batch_no, "items": out, "next_after_seq": next_after}


@router.get("/batches/{batch_no}/items")
async def get_batch_items(
    batch_no: str,
    request: Request,
    client_id: Client,
    state: Annotated[ItemState | None, Query()] = None,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    return await run_in_threadpool(
        batch_items, ctx_of(request), client_id, batch_no, state, after_seq, limit
    )
