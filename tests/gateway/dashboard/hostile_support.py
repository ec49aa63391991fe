"""Records of every kind a dashboard URL names, planted in township 430621101 (through the
real intake, the real transitions and the dashboard's own forms where it has one), for the
tests that attack the dashboard's routes (``test_hostile_input``, ``test_routes_properties``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.routing import RouteContext, iter_route_contexts
from sqlalchemy import func, select
from starlette.routing import Mount, Route

from gateway.batches.models import PaymentItem
from gateway.context import Context
from gateway.dashboard.accounts import create_account
from gateway.feedback.models import ManualConfirmation, OperatorCase
from gateway.kit.db import session_scope
from gateway.payments.states import ItemEvent
from gateway.payments.transitions import move_items
from gateway.reconciliation.models import Discrepancy
from gateway.reconciliation.service import reconcile
from gateway.rework.models import CorrectionList
from tests.gateway.dashboard.support import PASSWORD, DashClient
from tests.gateway.helpers import persons
from tests.gateway.rework.support import batch, bounce, fail, item

PEOPLE = persons(4, seed=111)
TOWNSHIP = "430621101"
OTHER_TOWNSHIP = "430621102"


@dataclass(frozen=True)
class Records:
    """Ids of one planted record of each kind, by the name of the path parameter."""

    ids: dict[str, int]


def plant(ctx: Context, op: DashClient) -> Records:
    """Batch H-101 (township 101): item 1 in operator_case with an open case and a manual
    confirmation awaiting its checker, items 2 and 3 failed (2 proposed for a treasury
    refund, 3 exported on a correction list), item 4 bounced (a discrepancy); and a
    self-check report. ``op`` is a logged-in operator of township 101."""
    ctx.settings.refund_cutoff = "01-01"  # this year's items may be refunded already
    batch(ctx, "H-101", PEOPLE, region=TOWNSHIP)
    first = item(ctx, "H-101", 1)
    with ctx.sessions.begin() as s:
        for event in (ItemEvent.PLAN, ItemEvent.UPLOAD_UNKNOWN, ItemEvent.ESCALATE):
            move_items(s, PaymentItem.id == first.id, event, "test")
        case = OperatorCase(
            kind="outcome_unknown",
            item_id=first.id,
            batch_id=first.batch_id,
            summary="多次查询后仍无法确认文件是否送达银行",
            evidence="TransportError: timed out",
        )
        s.add(case)
        s.flush()
        case_id = case.id
    fail(ctx, "H-101", [2, 3])
    bounce(ctx, "H-101", [4])
    reconcile(ctx, "recon")
    second, third = item(ctx, "H-101", 2), item(ctx, "H-101", 3)
    refund = op.post(
        "/failed/actions",
        {"action": "refund", "scope": "checked", "item": [second.id], "refund_reason": "已销户"},
    )
    assert refund.status_code == 303, refund.text
    refund_id = int(refund.headers["location"].split("/refunds/")[1].split("?")[0])
    exported = op.post(
        "/failed/actions", {"action": "export", "scope": "checked", "item": [third.id]}
    )
    assert exported.status_code == 200, exported.text
    confirmed = op.post(
        f"/cases/confirm/{first.id}",
        {"outcome": "paid", "bank_ref": "BR-1", "note": "银行回单", "case": str(case_id)},
    )
    assert confirmed.status_code == 303, confirmed.text
    ran = op.post("/selfcheck/run", {"since": "", "until": ""})
    assert ran.status_code == 303, ran.text
    found = re.search(r"/selfcheck/(\d+)", ran.headers["location"])
    assert found
    with ctx.sessions() as s:
        discrepancy_id = s.scalar(select(func.min(Discrepancy.id)))
        confirmation_id = s.scalar(select(func.max(ManualConfirmation.id)))
        list_id = s.scalar(select(func.max(CorrectionList.id)))
    assert discrepancy_id and confirmation_id and list_id
    return Records(
        {
            "batch_id": first.batch_id,
            "item_id": first.id,
            "case_id": case_id,
            "discrepancy_id": discrepancy_id,
            "confirmation_id": confirmation_id,
            "refund_id": refund_id,
            "list_id": list_id,
            "report_id": int(found.group(1)),
        }
    )


def add_account(ctx: Context, username: str, role: str, regions: list[str]) -> None:
    with session_scope(ctx.sessions) as s:
        create_account(
            s, ctx.settings, username=username, real_name="测试用户", role=role, regions=regions,
            password=PASSWORD, created_by="test", must_change_password=False,
        )  # fmt: skip


def dashboard_app(client: DashClient) -> FastAPI:
    """The dashboard mounted in ``client``'s application."""
    for mount in client.http.app.routes:  # type: ignore[attr-defined]
        if isinstance(mount, Mount) and mount.path == "/dashboard":
            app: FastAPI = mount.app  # type: ignore[assignment]
            return app
    raise AssertionError("no dashboard mounted")


def dashboard_routes(client: DashClient) -> list[RouteContext]:
    """Every route of the dashboard (not the static files), as FastAPI resolves included
    routers: the list the route tests walk, so that a new route is attacked too."""
    return [
        r
        for r in iter_route_contexts(dashboard_app(client).routes)
        if isinstance(r.original_route, Route)
    ]


def convertor_names(route: RouteContext) -> dict[str, str]:
    """Path parameter → the name of its converter (``{item_id:id}`` → ``id``)."""
    return dict(re.findall(r"{(\w+):(\w+)}", str(route.path)))


def fill(route: RouteContext, values: dict[str, str]) -> str:
    """The route's path with each parameter replaced by its (percent-encoded) value."""
    return re.sub(r"{(\w+):\w+}", lambda m: quote(values[m.group(1)], safe=""), str(route.path))


def methods(route: RouteContext) -> list[str]:
    return sorted((route.methods or {"GET"}) - {"HEAD"})
