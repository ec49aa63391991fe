"""Bank callbacks (银行回调): verified, recorded as hints, answered 204."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from gateway.api.errors import BadRequest, NotFound, Unauthenticated
from gateway.batches.endpoints import ctx_of
from gateway.feedback.api_poll import take_callback
from gateway.kit.logging import get_logger
from gateway.ports import AdapterError, FormatError

router = APIRouter(prefix="/v1")
log = get_logger(__name__)


@router.post("/bank-callbacks/{profile_name}", status_code=204)
async def bank_callback(profile_name: str, request: Request) -> Response:
    """A bank says something changed. Nothing changes until an inquiry confirms it."""
    ctx = ctx_of(request)
    profile = ctx.profiles.get(profile_name)
    if profile is None or not profile.is_api:
        raise NotFound("unknown_bank", "no such API bank profile", "未配置的银行", "profile")
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        await run_in_threadpool(
            take_callback, ctx, profile, "POST", request.url.path, headers, body
        )
    except FormatError as exc:
        log.warning("feedback.callback_refused", profile=profile_name, error=str(exc))
        raise BadRequest("callback_malformed", str(exc), "回调内容格式错误") from None
    except AdapterError as exc:
        log.warning("feedback.callback_refused", profile=profile_name, error=str(exc))
        raise Unauthenticated("callback_signature", str(exc), "回调签名验证失败") from None
    except ValueError:
        log.warning("feedback.callback_replayed", profile=profile_name)
        raise Unauthenticated("callback_replayed", "nonce already used", "重复的回调") from None
    return Response(status_code=204)
