"""Tables of the failed-payment rework: correction lists (更正清单), treasury refunds
(退回国库) with maker-checker, and a generic audit log of queries and important operations
(Article 11 (二): every query and important operation logged)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.batches.models import BigId
from gateway.kit.clock import utcnow
from gateway.kit.db import Base


class AuditRecord(Base):
    """Append-only: who looked at or did what, when and why (审计日志).

    Generic on purpose (``action`` + ``target_type``/``target_id`` + ``detail``) so that
    other areas can record their queries and operations here too. ``detail`` never holds
    raw personal data: blind indexes, masks and internal ids only."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_target", "target_type", "target_id"),
        # the dashboard's audit-log viewer filters by person and by action
        Index("ix_audit_log_actor_at", "actor", "at"),
        Index("ix_audit_log_action_at", "action", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class CorrectionList(Base):
    """One exported correction list (更正清单): what was sent to the township stations."""

    __tablename__ = "correction_lists"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    # personal data in clear in the file (only with a stated reason, audited)
    unmasked: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    selection: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    file_name: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64))
    sheet_count: Mapped[int] = mapped_column(Integer)
    item_count: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    # "mark as returned for correction" (failed → returned) for the exported items
    returned_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    returned_by: Mapped[str | None] = mapped_column(String(64))
    returned_count: Mapped[int | None] = mapped_column(Integer)


class CorrectionListItem(Base):
    """An item exported on a correction list."""

    __tablename__ = "correction_list_items"
    __table_args__ = (UniqueConstraint("list_id", "item_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("correction_lists.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("payment_items.id"), index=True)


class TreasuryRefund(Base):
    """A treasury refund (退回国库): proposed by one operator, approved or rejected by
    another (maker-checker). Approval moves its items to ``refunded`` and mints the
    treasury reference number."""

    __tablename__ = "treasury_refunds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    state: Mapped[str] = mapped_column(String(12), index=True)  # proposed|approved|rejected
    fiscal_year: Mapped[int] = mapped_column(Integer)
    payer_account: Mapped[str] = mapped_column(String(32))
    cutoff: Mapped[dt.date] = mapped_column(Date)
    selection: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    item_count: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)
    treasury_ref: Mapped[str | None] = mapped_column(String(32), unique=True)


class TreasuryRefundItem(Base):
    """An item of a treasury refund. ``active_item_id`` equals ``item_id`` while the refund
    is proposed or approved and is cleared when it is rejected: its uniqueness keeps an item
    in at most one standing refund, on SQLite and PostgreSQL alike."""

    __tablename__ = "treasury_refund_items"
    __table_args__ = (UniqueConstraint("refund_id", "item_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    refund_id: Mapped[int] = mapped_column(ForeignKey("treasury_refunds.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("payment_items.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    from_state: Mapped[str] = mapped_column(String(20))
    active_item_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
