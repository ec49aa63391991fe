"""Limits on what the HTTP API reads, enforced while reading (``docs/api-limits.md``).

``BodyLimit`` is an ASGI middleware around the whole application (the upstream API, the
bank callbacks, the SMS receipts, the dashboard): it refuses a request whose
``Content-Length`` is over its route's limit before the route runs, and counts the bytes
of a body as the route reads it, answering 413 the moment the count passes the limit.
No route ever holds more of a body than its limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.errors import UnsupportedMediaType, body_too_large

MiB: Final = 1024 * 1024
KiB: Final = 1024

#: ``POST /v1/batches`` whose signature is checked before the body is read (the client
#: declares the body's digest in ``X-Gateway-Content-SHA256``)
BATCH_BODY_MAX: Final = 512 * MiB
#: ``POST /v1/batches`` without ``X-Gateway-Content-SHA256``: read before the signature
#: can be checked, so kept small
UNDECLARED_BATCH_BODY_MAX: Final = 1 * MiB
#: bank callbacks and SMS delivery receipts (their senders' own signatures)
CALLBACK_BODY_MAX: Final = 1 * MiB
#: the operators' dashboard: a backstop only. The dashboard refuses a body over its own
#: limit first (``gateway.dashboard.app.MAX_BODY_BYTES``, 1 MiB, with its HTML 413 page)
DASHBOARD_BODY_MAX: Final = 2 * MiB
#: everything else (GET requests, unknown routes)
DEFAULT_BODY_MAX: Final = 16 * KiB


def body_limit_for(path: str) -> int:
    """The body limit of a route, by its path."""
    if path == "/v1/batches":
        return BATCH_BODY_MAX
    if path.startswith(("/v1/bank-callbacks/", "/v1/sms-receipts/")):
        return CALLBACK_BODY_MAX
    if path == "/dashboard" or path.startswith("/dashboard/"):
        return DASHBOARD_BODY_MAX
    return DEFAULT_BODY_MAX


class _BodyTooLargeError(Exception):
    """Raised into the route from ``receive`` once its 413 is sent; swallowed here."""


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            # the server has refused a malformed Content-Length already; be safe anyway
            return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None
    return None


class BodyLimit:
    """ASGI middleware: every request body within its route's limit, checked while read."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int] = body_limit_for) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _answer_413(send, limit)
            return
        received = 0
        answered = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started and not answered:
                        answered = True
                        await _answer_413(send, limit)
                    raise _BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the route's own answer, after our 413: dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLargeError:
            if not answered:
                raise
        except Exception:
            # e.g. a mounted application's error handler re-raising once it has answered
            # (its answer dropped): the 413 stands
            if not answered:
                raise


async def _answer_413(send: Send, limit: int) -> None:
    body = json.dumps(body_too_large(limit).body(), ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --- Content-Type ---------------------------------------------------------------------------


def is_json_content(request: Request) -> bool:
    """``application/json``, optionally with ``charset=utf-8`` (any case, quoted or not)
    and nothing else."""
    value = request.headers.get("content-type")
    if value is None or len(value) > 100:
        return False
    media, *params = (part.strip() for part in value.split(";"))
    if media.lower() != "application/json":
        return False
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() != "charset" or val.strip().strip('"').lower() != "utf-8":
            return False
    return True


def require_json_content(request: Request) -> None:
    if not is_json_content(request):
        raise not_json()


def not_json() -> UnsupportedMediaType:
    return UnsupportedMediaType(
        "unsupported_media_type",
        "the body must be JSON: Content-Type: application/json (charset utf-8, if given)",
        "请求体必须是JSON：Content-Type: application/json（如注明字符集，须为utf-8）",
        "Content-Type",
    )
