"""Bank callbacks (银行回调): verified, recorded as hints, answered 204.

The body is at most ``CALLBACK_BODY_MAX`` (1 MiB, counted while it is read by the API's
body limit); the adapter refuses one over its own, smaller limit before it parses it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from gateway.api.errors import BadRequest, NotFound, Unauthenticated
from gateway.api.limits import is_json_content, not_json
from gateway.api.schema import error_responses
from gateway.batches.endpoints import ctx_of
from gateway.feedback.api_poll import take_callback
from gateway.kit.logging import get_logger
from gateway.ports import AdapterError, FormatError
from gateway.profiles import BankProfile

router = APIRouter(prefix="/v1")
log = get_logger(__name__)

ProfileName = Annotated[
    str, Path(min_length=1, max_length=64, description="the API bank's profile name")
]


def _refusal(profile_name: str, exc: AdapterError) -> BadRequest | Unauthenticated:
    log.warning("feedback.callback_refused", profile=profile_name, error=str(exc))
    if isinstance(exc, FormatError):
        return BadRequest("callback_malformed", str(exc), "回调内容格式错误", "body")
    return Unauthenticated("callback_signature", str(exc), "回调签名验证失败", "X-Signature")


def _verify_only(
    profile: BankProfile, path: str, headers: dict[str, str], body: bytes
) -> AdapterError | None:
    try:
        profile.api.verify_callback("POST", path, headers, body)
    except AdapterError as exc:
        return exc
    return None


@router.post(
    "/bank-callbacks/{profile_name}",
    status_code=204,
    responses=error_responses(400, 401, 404, 415),
)
async def bank_callback(profile_name: ProfileName, request: Request) -> Response:
    """A bank says something changed. Nothing changes until an inquiry confirms it."""
    ctx = ctx_of(request)
    profile = ctx.profiles.get(profile_name)
    if profile is None or not profile.is_api:
        raise NotFound("unknown_bank", "no such API bank profile", "未配置的银行", "profile_name")
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    path = request.url.path
    if not is_json_content(request):
        # the signature first: an unauthenticated sender learns nothing more than 401
        refused = await run_in_threadpool(_verify_only, profile, path, headers, body)
        if refused is not None:
            raise _refusal(profile_name, refused)
        raise not_json()
    try:
        await run_in_threadpool(take_callback, ctx, profile, "POST", path, headers, body)
    except AdapterError as exc:
        raise _refusal(profile_name, exc) from None
    except ValueError:
        log.warning("feedback.callback_replayed", profile=profile_name)
        raise Unauthenticated(
            "callback_replayed", "nonce already used", "重复的回调", "X-Nonce"
        ) from None
    return Response(status_code=204)
