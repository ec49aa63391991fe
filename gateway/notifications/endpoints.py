"""SMS delivery receipts pushed by the provider (短信回执)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from gateway.api.errors import BadRequest, NotFound, Unauthenticated
from gateway.batches.endpoints import ctx_of
from gateway.kit.logging import get_logger
from gateway.notifications.service import apply_receipts, sms_of
from gateway.ports import FormatError, SignatureError

router = APIRouter(prefix="/v1")
log = get_logger(__name__)


@router.post("/sms-receipts/{provider}", status_code=204)
async def sms_receipts(provider: str, request: Request) -> Response:
    ctx = ctx_of(request)
    sms = sms_of(ctx)
    if sms.provider is None or sms.provider.name != provider:
        raise NotFound("unknown_sms_provider", "no such SMS provider", "未配置的短信服务商")
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        receipts = sms.provider.parse_receipts(headers, body)
    except SignatureError as exc:
        log.warning("sms.receipt_refused", error=str(exc))
        raise Unauthenticated("receipt_signature", str(exc), "回执签名验证失败") from None
    except FormatError as exc:
        raise BadRequest("receipt_malformed", str(exc), "回执格式错误") from None
    await run_in_threadpool(apply_receipts, ctx, receipts, source="push")
    return Response(status_code=204)
