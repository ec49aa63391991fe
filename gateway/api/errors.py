"""API errors: one base class, one handler, one JSON shape.

    ApiError
    ├── Unauthenticated      401  bad/missing signature, unknown client, replay
    ├── NotFound             404
    ├── Conflict             409  batch number reused with different content
    └── BadRequest           400  body is not JSON of the expected shape

Every error answers ``{"errors": [{"field", "code", "message_zh", "message_en"}]}``.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse


class ApiError(Exception):
    status_code = 400

    def __init__(self, code: str, message_en: str, message_zh: str, field: str = "") -> None:
        super().__init__(message_en)
        self.code = code
        self.message_en = message_en
        self.message_zh = message_zh
        self.field = field

    def body(self) -> dict[str, object]:
        return {
            "errors": [
                {
                    "seq": None,
                    "field": self.field,
                    "code": self.code,
                    "message_zh": self.message_zh,
                    "message_en": self.message_en,
                }
            ]
        }


class Unauthenticated(ApiError):  # noqa: N818 (named for the HTTP status, like httpx)
    status_code = 401


class NotFound(ApiError):  # noqa: N818
    status_code = 404


class Conflict(ApiError):  # noqa: N818
    status_code = 409


class BadRequest(ApiError):  # noqa: N818
    status_code = 400


async def api_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # noqa: S101 (registered for ApiError only)
    return JSONResponse(exc.body(), status_code=exc.status_code)


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Anything unplanned: a JSON 500 that says nothing internal; the log has the rest."""
    from gateway.kit.logging import get_logger  # noqa: PLC0415

    get_logger(__name__).error("api.unexpected_error", path=request.url.path, exc_info=exc)
    error = ApiError(
        "internal_error", "internal error; the request may be retried", "系统内部错误，可稍后重试"
    )
    return JSONResponse(error.body(), status_code=500)
