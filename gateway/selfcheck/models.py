"""Self-check tables: one row per run (自查报告) and its findings (疑点). Findings hold no
raw personal data: masks, blind indexes, internal item ids, region codes and counts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.batches.models import BigId
from gateway.kit.clock import utcnow
from gateway.kit.db import Base


class SelfCheckReport(Base):
    """One self-check run over the payments of batches received from ``period_from`` to
    ``period_to`` (Asia/Shanghai days, both included)."""

    __tablename__ = "selfcheck_reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    trigger: Mapped[str] = mapped_column(String(12))  # manual | quarterly
    requested_by: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    period_from: Mapped[dt.date] = mapped_column(Date)
    period_to: Mapped[dt.date] = mapped_column(Date)
    counts: Mapped[dict[str, int]] = mapped_column(JSON)  # kind → findings
    total_findings: Mapped[int] = mapped_column(Integer, default=0)


class SelfCheckFinding(Base):
    """One finding of a report: what kind, about whom (masked), which payment items."""

    __tablename__ = "selfcheck_findings"
    __table_args__ = (Index("ix_selfcheck_findings_report_kind", "report_id", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("selfcheck_reports.id"))
    kind: Mapped[str] = mapped_column(String(32))
    subject_masked: Mapped[str] = mapped_column(String(64))
    subject_bidx: Mapped[str] = mapped_column(String(64))
    item_ids: Mapped[list[int]] = mapped_column(JSON)
    region_codes: Mapped[list[str]] = mapped_column(JSON)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
