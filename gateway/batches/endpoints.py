"""Upstream API for batches: submit, status, items."""

from __future__ import annotations

import hashlib
import hmac
import tempfile
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import select

from gateway.api.errors import ApiError, BadRequest, NotFound, Unauthenticated, body_too_large
from gateway.api.limits import (
    BATCH_BODY_MAX,
    UNDECLARED_BATCH_BODY_MAX,
    require_json_content,
)
from gateway.api.schema import (
    SUBMIT_OPENAPI,
    BatchStatus,
    ConflictAnswer,
    IntakeAnswer,
    InvalidAnswer,
    ItemsPage,
    error_responses,
)
from gateway.auth.hmac_auth import (
    EMPTY_SHA256,
    H_CONTENT_SHA256,
    AuthError,
    content_mismatch,
    declared_sha256,
    verify_request,
)
from gateway.batches.models import Batch, PaymentItem
from gateway.batches.service import (
    IntakeService,
    MalformedRequestError,
    configured_age_rules,
    count_by_state,
)
from gateway.batches.validation import BATCH_NO_MAX, SEQ_MAX
from gateway.context import Context
from gateway.feedback.reasons import reason
from gateway.kit.logging import get_logger
from gateway.payments.states import ItemState

router = APIRouter(prefix="/v1")
log = get_logger(__name__)
SPOOL_IN_MEMORY = 4 * 1024 * 1024
MAX_BODY = BATCH_BODY_MAX
BATCH_NO_PATTERN = r"^[0-9A-Za-z_.-]{1,64}$"


def ctx_of(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def _target(request: Request) -> str:
    """What the client signs: the path as the server decodes it (percent-decoded, as
    ``gateway.auth.client.signed_target`` does), then the query string exactly as sent."""
    path = str(request.scope.get("path", ""))
    query = request.scope.get("query_string", b"").decode("latin-1")
    return path + (f"?{query}" if query else "")


def _headers(request: Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def _refused(request: Request, exc: AuthError) -> Unauthenticated:
    log.warning("auth.refused", code=exc.code, path=request.url.path)
    return Unauthenticated(exc.code, exc.message_en, exc.message_zh, exc.field)


def _authenticate(request: Request, body_sha256: str | None) -> str:
    """The client id, or Unauthenticated. ``body_sha256`` None: before the body is read,
    against the digest the request declares."""
    ctx = ctx_of(request)
    secrets = {cid: s.get_secret_value().encode() for cid, s in ctx.settings.api_clients.items()}
    try:
        return verify_request(
            headers=_headers(request),
            method=request.method,
            target=_target(request),
            body_sha256=body_sha256,
            secret_for=secrets,
            window_seconds=ctx.settings.signature_window_seconds,
            session_factory=ctx.sessions,
        )
    except AuthError as exc:
        raise _refused(request, exc) from None


async def authenticated_get(request: Request) -> str:
    return await run_in_threadpool(_authenticate, request, EMPTY_SHA256)


Client = Annotated[str, Depends(authenticated_get)]


def _declared(request: Request) -> str | None:
    try:
        return declared_sha256(_headers(request))
    except AuthError as exc:
        raise _refused(request, exc) from None


async def _spool(request: Request, spool: IO[bytes], cap: int, hint: tuple[str, str]) -> str:
    """Stream the body into ``spool`` while hashing it; 413 as soon as it passes ``cap``."""
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise body_too_large(cap, *hint)
        digest.update(chunk)
        spool.write(chunk)
    return digest.hexdigest()


_UNDECLARED_HINT = (
    f"; send X-Gateway-Content-SHA256 (signed) to send up to {BATCH_BODY_MAX} bytes",
    f"；如需提交更大的批次（最多{BATCH_BODY_MAX}字节），请提供 X-Gateway-Content-SHA256",
)


@router.post(
    "/batches",
    status_code=201,
    openapi_extra=SUBMIT_OPENAPI,
    response_model=None,
    responses={
        201: {
            "model": IntakeAnswer,
            "description": "accepted (or the same batch again: Idempotent-Replayed: true)",
            "headers": {
                "Idempotent-Replayed": {
                    "description": "true when this is the answer to an earlier submission",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            },
        },
        409: {"model": ConflictAnswer, "description": "batch number reused, other content"},
        422: {
            "model": IntakeAnswer | InvalidAnswer,
            "description": "rejected, with every reason (stored, unless the body has no "
            "usable batch number)",
            "headers": {
                "Idempotent-Replayed": {
                    "description": "true when this is the answer to an earlier submission",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            },
        },
        **error_responses(400, 401, 413, 415, 503),
    },
)
async def submit_batch(request: Request) -> JSONResponse:
    """Submit an approved batch.

    With ``X-Gateway-Content-SHA256`` the signature is checked before a byte of the body is
    read; the body (at most 512 MiB) is then spooled to disk while it is hashed, and
    refused unless it is the declared one. Without it, at most 1 MiB is read before the
    signature is checked. The body is then read with the limits of the bounded JSON reader
    (depth, sizes, UTF-8) before anything is stored; nothing is stored unless all holds."""
    ctx = ctx_of(request)
    declared = _declared(request)
    client_id: str | None = None
    if declared is not None:
        try:
            client_id = await run_in_threadpool(_authenticate, request, None)
            require_json_content(request)
        except ApiError as exc:
            # refused before a byte of the body is read: no reason to receive it
            exc.headers.setdefault("Connection", "close")
            raise
        cap, hint = BATCH_BODY_MAX, ("", "")
    else:
        cap, hint = UNDECLARED_BATCH_BODY_MAX, _UNDECLARED_HINT
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    try:
        sha = await _spool(request, spool, cap, hint)
        if declared is None:
            client_id = await run_in_threadpool(_authenticate, request, sha)
            require_json_content(request)
        elif not hmac.compare_digest(sha, declared):
            log.warning("auth.refused", code="auth_content_digest", path=request.url.path)
            mismatch = content_mismatch()
            raise Unauthenticated(
                mismatch.code, mismatch.message_en, mismatch.message_zh, H_CONTENT_SHA256
            )
        assert client_id is not None  # noqa: S101 (authenticated on either path)
        service = IntakeService(
            ctx.sessions,
            ctx.pii,
            ctx.profiles,
            ctx.calendar,
            age_rules=configured_age_rules(ctx.settings.selfcheck_file),
        )
        try:
            answer = await run_in_threadpool(service.submit, client_id, spool, sha)
        except MalformedRequestError as exc:
            raise BadRequest(
                exc.code, exc.message_en, exc.message_zh, exc.field, limit=exc.limit, unit=exc.unit
            ) from None
    finally:
        spool.close()
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return JSONResponse(answer.body, status_code=answer.status_code, headers=headers)


BatchNo = Annotated[
    str,
    Path(
        min_length=1,
        max_length=BATCH_NO_MAX,
        pattern=BATCH_NO_PATTERN,
        description="the batch number given in the header",
    ),
]


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


@router.get(
    "/batches/{batch_no}",
    response_model=None,
    responses={200: {"model": BatchStatus}, **error_responses(404)},
)
async def get_batch(batch_no: BatchNo, request: Request, client_id: Client) -> dict[str, Any]:
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


@router.get(
    "/batches/{batch_no}/items",
    response_model=None,
    responses={200: {"model": ItemsPage}, **error_responses(404)},
)
async def get_batch_items(
    batch_no: BatchNo,
    request: Request,
    client_id: Client,
    state: Annotated[ItemState | None, Query(description="only items in this state")] = None,
    after_seq: Annotated[
        int, Query(ge=0, le=SEQ_MAX, description="items after this sequence number")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="items per page")] = 200,
) -> dict[str, Any]:
    return await run_in_threadpool(
        batch_items, ctx_of(request), client_id, batch_no, state, after_seq, limit
    )
