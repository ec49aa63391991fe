"""API errors: one base class, one set of handlers, one JSON shape.

    ApiError
    ├── BadRequest            400  body not JSON of the expected shape, a bad parameter
    ├── Unauthenticated       401  bad/missing signature, unknown client, replay
    ├── NotFound              404
    ├── Conflict              409  batch number reused with different content
    ├── PayloadTooLarge       413  body over the route's limit (``gateway.api.limits``)
    ├── UnsupportedMediaType  415  not ``application/json`` where JSON is expected
    └── ServiceBusy           503  the database stayed locked (SQLite, a long intake)

Every error answers ``{"errors": [{"seq", "field", "code", "message_zh", "message_en"}]}``
(``limit`` and ``unit`` too where a limit was exceeded). FastAPI's own refusals (a
parameter that does not validate, an unknown route or method) answer the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.kit.logging import get_logger

log = get_logger(__name__)
BUSY_RETRY_AFTER_SECONDS = 30


def error_body(
    code: str,
    message_en: str,
    message_zh: str,
    field: str = "",
    *,
    limit: int | None = None,
    unit: str | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "seq": None,
        "field": field,
        "code": code,
        "message_zh": message_zh,
        "message_en": message_en,
    }
    if limit is not None:
        entry["limit"] = limit
        entry["unit"] = unit
    return {"errors": [entry]}


class ApiError(Exception):
    status_code = 400

    def __init__(
        self,
        code: str,
        message_en: str,
        message_zh: str,
        field: str = "",
        *,
        limit: int | None = None,
        unit: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message_en)
        self.code = code
        self.message_en = message_en
        self.message_zh = message_zh
        self.field = field
        self.limit = limit
        self.unit = unit
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        return error_body(
            self.code,
            self.message_en,
            self.message_zh,
            self.field,
            limit=self.limit,
            unit=self.unit,
        )

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status_code, headers=self.headers)


class Unauthenticated(ApiError):  # noqa: N818 (named for the HTTP status, like httpx)
    status_code = 401


class NotFound(ApiError):  # noqa: N818
    status_code = 404


class Conflict(ApiError):  # noqa: N818
    status_code = 409


class BadRequest(ApiError):  # noqa: N818
    status_code = 400


class PayloadTooLarge(ApiError):  # noqa: N818
    status_code = 413


class UnsupportedMediaType(ApiError):  # noqa: N818
    status_code = 415


class ServiceBusy(ApiError):  # noqa: N818
    status_code = 503


def body_too_large(limit: int, hint_en: str = "", hint_zh: str = "") -> PayloadTooLarge:
    return PayloadTooLarge(
        "body_too_large",
        f"request body is larger than {limit} bytes{hint_en}",
        f"请求体超过{limit}字节{hint_zh}",
        "body",
        limit=limit,
        unit="bytes",
        # the rest of the body is not wanted: the connection closes after the answer
        headers={"Connection": "close"},
    )


async def api_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # noqa: S101 (registered for ApiError only)
    return exc.response()


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """A path or query parameter that does not validate: 400, the parameter named."""
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = []
    for e in exc.errors()[:20]:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("path", "query", "header", "body")]
        name = ".".join(loc)
        errors.append(
            {
                "seq": None,
                "field": name,
                "code": "invalid_parameter",
                "message_zh": f"参数 {name} 的值无效",
                "message_en": f"parameter {name}: {e.get('msg', 'invalid value')}",
            }
        )
    return JSONResponse({"errors": errors}, status_code=400)


_HTTP_CODES = {
    404: ("not_found", "no such resource", "未找到"),
    405: ("method_not_allowed", "method not allowed here", "不支持该请求方法"),
}


async def http_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own HTTP errors (no such route, method not allowed), in our shape."""
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    code, en, zh = _HTTP_CODES.get(exc.status_code, ("http_error", "request refused", "请求被拒绝"))
    return JSONResponse(error_body(code, en, zh), status_code=exc.status_code, headers=exc.headers)


def is_database_locked(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


async def operational_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """SQLite has one writer: while a long intake holds the lock, another write waits
    ``busy_timeout`` (30 s) and then fails. That is no fault of the request: 503 with
    ``Retry-After``; anything else is unexpected."""
    if not is_database_locked(exc):
        return await unexpected_error_handler(request, exc)
    log.warning("api.database_busy", path=request.url.path)
    return ServiceBusy(
        "service_busy",
        "the database is busy (another request holds its write lock); nothing was changed, "
        "send the request again later",
        "数据库繁忙（另一请求正在写入），本请求未作任何更改，请稍后重新发送",
        headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
    ).response()


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Anything unplanned: a JSON 500 that says nothing internal; the log has the rest,
    under the correlation id the answer carries (``X-Correlation-Id``)."""
    if is_database_locked(exc):
        return await operational_error_handler(request, exc)
    log.error("api.unexpected_error", path=request.url.path, exc_info=exc)
    error = ApiError(
        "internal_error",
        "internal error; it is logged under this answer's X-Correlation-Id",
        "系统内部错误，已记录（见应答头 X-Correlation-Id）",
    )
    return JSONResponse(error.body(), status_code=500)
