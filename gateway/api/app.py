"""The gateway's HTTP application (upstream API)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.api.errors import (
    ApiError,
    api_error_handler,
    http_error_handler,
    operational_error_handler,
    unexpected_error_handler,
    validation_error_handler,
)
from gateway.api.limits import BodyLimit
from gateway.api.schema import install_openapi
from gateway.batches.endpoints import router as batches_router
from gateway.context import Context
from gateway.feedback.endpoints import router as callbacks_router
from gateway.kit.logging import correlation, get_logger
from gateway.notifications.endpoints import router as sms_router
from gateway.upstream.endpoints import router as upstream_router

log = get_logger(__name__)
_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def create_app(ctx: Context) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        log.info("api.start", settings=ctx.settings.describe())
        yield
        ctx.close()

    app = FastAPI(
        title="Subsidy bank gateway (一卡通代发网关)",
        version="0.1.0",
        description="The upstream API of the gateway: submit approved batches, follow "
        "them, read every outcome. Every refusal answers the `ErrorBody` shape.",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(OperationalError, operational_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
    app.include_router(batches_router)
    app.include_router(callbacks_router)
    app.include_router(upstream_router)
    app.include_router(sms_router)
    if ctx.settings.dashboard_enabled:
        from gateway.dashboard.app import create_dashboard  # noqa: PLC0415

        app.mount("/dashboard", create_dashboard(ctx))
    install_openapi(app)

    # inner: every body within its route's limit, counted while it is read
    app.add_middleware(BodyLimit)

    # outer: a correlation id for every request, its log lines and its answer (also the
    # 413 of the body limit and the 500 of an unexpected error)
    @app.middleware("http")
    async def bind_correlation(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        incoming = request.headers.get("x-correlation-id")
        cid = incoming if incoming and _CORRELATION_ID.fullmatch(incoming) else None
        with correlation("http", cid, method=request.method, path=request.url.path) as cid:
            try:
                response = await call_next(request)
            except Exception as exc:
                response = await unexpected_error_handler(request, exc)
            response.headers["X-Correlation-Id"] = cid
            log.info("http.request", status=response.status_code)
            return response

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    return app
