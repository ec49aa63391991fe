"""SMS delivery receipts pushed by the provider (短信回执).

The body is at most ``CALLBACK_BODY_MAX`` (1 MiB, counted while it is read by the API's
body limit). The provider's signature is checked before the Content-Type, so that an
unauthenticated sender learns nothing more than 401.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from gateway.api.errors import BadRequest, NotFound, Unauthenticated
from gateway.api.limits import require_json_content
from gateway.api.schema import error_responses
from gateway.batches.endpoints import ctx_of
from gateway.kit.logging import get_logger
from gateway.notifications.service import apply_receipts, sms_of
from gateway.ports import FormatError, SignatureError

router = APIRouter(prefix="/v1")
log = get_logger(__name__)

ProviderName = Annotated[
    str, Path(min_length=1, max_length=64, description="the SMS provider's name")
]


@router.post(
    "/sms-receipts/{provider}",
    status_code=204,
    responses=error_responses(400, 401, 404, 415),
)
async def sms_receipts(provider: ProviderName, request: Request) -> Response:
    ctx = ctx_of(request)
    sms = sms_of(ctx)
    if sms.provider is None or sms.provider.name != provider:
        raise NotFound(
            "unknown_sms_provider", "no such SMS provider", "未配置的短信服务商", "provider"
        )
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        receipts = sms.provider.parse_receipts(headers, body)
    except SignatureError as exc:
        log.warning("sms.receipt_refused", error=str(exc))
        raise Unauthenticated(
            "receipt_signature", str(exc), "回执签名验证失败", "X-Sms-Signature"
        ) from None
    except FormatError as exc:
        require_json_content(request)
        raise BadRequest("receipt_malformed", str(exc), "回执格式错误", "body") from None
    require_json_content(request)
    await run_in_threadpool(apply_receipts, ctx, receipts, source="push")
    return Response(status_code=204)
