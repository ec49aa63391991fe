"""The dashboard's pages, one module per business area; each exposes ``router``."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.dashboard.views import (
    accounts_admin,
    audit_log,
    batches,
    cases,
    failed,
    items,
    overview,
    refunds,
    selfcheck,
    sms,
)

ROUTERS: list[APIRouter] = [
    overview.router,
    batches.router,
    items.router,
    failed.router,
    cases.router,
    refunds.router,
    sms.router,
    audit_log.router,
    selfcheck.router,
    accounts_admin.router,
]
