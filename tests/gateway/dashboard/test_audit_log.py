"""The audit log viewer: who may read which rows, the filters, newest first, paginated, and
reading it is itself audited."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from sqlalchemy import select, update

from gateway.context import Context
from gateway.kit.clock import china_today, utcnow
from gateway.kit.db import session_scope
from gateway.rework.audit import record
from gateway.rework.models import AuditRecord
from tests.gateway.dashboard.support import DashClient

_ACTION = re.compile(r"<td><code>([a-z_.]+)</code>")


def actions(html: str) -> list[str]:
    """The action of each row shown, top to bottom."""
    return _ACTION.findall(html)


def plant(ctx: Context) -> None:
    """Rows of other areas, as they record them."""
    with session_scope(ctx.sessions) as s:
        record(
            s,
            actor="op101",
            action="refund.propose",
            target_type="treasury_refund",
            target_id=7,
            reason="跨年未更正",
            detail={"items": [11, 12], "amount_fen": 20000},
        )
        record(
            s,
            actor="op102",
            action="pii.unmask",
            target_type="item",
            target_id=42,
            reason="核对身份证号",
            detail={"fields": ["id_number"]},
        )
        old = record(
            s, actor="sup", action="refund.approve", target_type="treasury_refund", target_id=5
        )
        s.flush()
        s.execute(
            update(AuditRecord)
            .where(AuditRecord.id == old.id)
            .values(at=utcnow() - dt.timedelta(days=3))
        )


def test_operators_may_not_read_it(dash: Callable[[str], DashClient]) -> None:
    for who in ("op", "op101"):
        response = dash(who).get("/audit")
        assert response.status_code == 403
        assert "审计日志" in response.text


def test_auditor_reads_everything_newest_first_and_is_audited(
    ctx: Context, dash: Callable[[str], DashClient]
) -> None:
    aud = dash("aud")
    plant(ctx)
    page = aud.get("/audit")
    assert page.status_code == 200
    shown = actions(page.text)
    assert {"refund.propose", "pii.unmask", "refund.approve", "login.ok"} <= set(shown)
    # newest first: the row moved three days back comes last
    assert shown[-1] == "refund.approve"
    # reason and a compact detail
    assert "跨年未更正" in page.text
    assert "items=[11,12]" in page.text and "amount_fen=20000" in page.text
    assert "查看明文个人信息" in page.text
    with ctx.sessions() as s:
        seen = s.scalar(
            select(AuditRecord).where(
                AuditRecord.action == "view.audit", AuditRecord.actor == "aud"
            )
        )
    assert seen is not None and seen.target_type == "audit_log"
    # the next look shows the previous one
    assert "view.audit" in actions(aud.get("/audit?actor=aud").text)


def test_filters(ctx: Context, dash: Callable[[str], DashClient]) -> None:
    sup = dash("sup")
    plant(ctx)

    def shown(query: str) -> list[str]:
        return actions(sup.get("/audit" + query).text)

    assert set(shown("?actor=op101")) == {"refund.propose"}
    assert set(shown("?action=refund.")) == {"refund.propose", "refund.approve"}
    assert set(shown("?action=pii")) == {"pii.unmask"}
    assert set(shown("?target_type=treasury_refund&target_id=7")) == {"refund.propose"}
    assert set(shown("?target_type=item")) == {"pii.unmask"}
    today = china_today()
    three_days_ago = (today - dt.timedelta(days=3)).isoformat()
    assert shown(f"?action=refund.&from={today.isoformat()}") == ["refund.propose"]
    assert shown(f"?action=refund.&to={three_days_ago}") == ["refund.approve"]
    assert set(shown(f"?action=refund.&from={three_days_ago}&to={today.isoformat()}")) == {
        "refund.propose",
        "refund.approve",
    }
    # a LIKE wildcard in the prefix is taken literally
    assert shown("?action=%25") == []
    # the filters are kept in the audit row of the look
    with ctx.sessions() as s:
        looks = list(
            s.scalars(
                select(AuditRecord).where(
                    AuditRecord.action == "view.audit", AuditRecord.actor == "sup"
                )
            )
        )
    assert any((r.detail or {}).get("filters") == {"actor": "op101"} for r in looks), [
        r.detail for r in looks
    ]


def test_administrator_reads_only_account_rows(
    ctx: Context, dash: Callable[[str], DashClient]
) -> None:
    dash("op101")  # a login to read
    admin = dash("admin")
    plant(ctx)
    dash("aud").get("/audit")
    shown = set(actions(admin.get("/audit").text))
    assert "login.ok" in shown
    assert "account.create" in shown
    assert not shown & {"refund.propose", "pii.unmask", "refund.approve", "view.audit"}
    assert actions(admin.get("/audit?action=refund.").text) == []
    assert actions(admin.get("/audit?actor=op101").text) == ["login.ok"]


def test_pages_of_fifty(ctx: Context, dash: Callable[[str], DashClient]) -> None:
    aud = dash("aud")
    with session_scope(ctx.sessions) as s:
        for i in range(60):
            record(
                s,
                actor="batchjob",
                action="refund.list",
                target_type="treasury_refund",
                detail={"n": i},
            )
    first = aud.get("/audit?actor=batchjob")
    second = aud.get("/audit?actor=batchjob&page=2")
    assert len(actions(first.text)) == 50
    assert len(actions(second.text)) == 10
    assert "n=59" in first.text and "n=0" in second.text
    assert "共2页" in first.text.replace(" ", "")
