"""Reconciliation tables: discrepancies (差异) with their recorded lifecycle, the stream
cursors of the incremental run, and which batch each payer-account entry belongs to."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.batches.models import BigId
from gateway.kit.clock import utcnow
from gateway.kit.db import Base


class Discrepancy(Base):
    """A mismatch found by reconciliation, with its evidence. ``key`` names the mismatch
    across runs, so detecting it again never adds a row; nothing deletes a row: a person
    explains it, then closes it (who, why, when), and every step is in
    ``discrepancy_events``. ``cleared_at`` says the condition is no longer observed — the
    discrepancy still waits for a person."""

    __tablename__ = "discrepancies"
    __table_args__ = (Index("ix_discrepancies_state_type", "state", "type"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    # re-evaluated every run (may clear), or a recorded fact that never goes away
    rechecked: Mapped[bool] = mapped_column(Boolean, default=False)
    bank_profile: Mapped[str | None] = mapped_column(String(32))
    payer_account: Mapped[str | None] = mapped_column(String(32))
    day: Mapped[dt.date | None] = mapped_column(Date, index=True)
    batch_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    item_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    item_result_id: Mapped[int | None] = mapped_column(BigInteger)
    account_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    outbound_file_id: Mapped[int | None] = mapped_column(BigInteger)
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    summary: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    detected_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    detected_by: Mapped[str] = mapped_column(String(64))
    cleared_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    explained_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    explained_by: Mapped[str | None] = mapped_column(String(64))
    explanation: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    closed_by: Mapped[str | None] = mapped_column(String(64))
    close_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class DiscrepancyEventRecord(Base):
    """Append-only: every step of a discrepancy (detect, explain, close, cleared, observed
    again), who took it, when and why."""

    __tablename__ = "discrepancy_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    discrepancy_id: Mapped[int] = mapped_column(BigInteger, index=True)
    event: Mapped[str] = mapped_column(String(20))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)


class ReconciliationCursor(Base):
    """How far reconciliation has read an append-only table (``item_results``,
    ``item_events``, ``account_entries``): rows with a larger id are read next run."""

    __tablename__ = "reconciliation_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class AccountEntryLink(Base):
    """Which sent batch a payer-account entry belongs to (``batch_id`` None: none — the
    entry is a discrepancy). Decided once, when the entry is first read."""

    __tablename__ = "reconciliation_entry_links"

    entry_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    linked_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
