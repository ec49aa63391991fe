"""Result files from the bank (回盘) and the per-item results they carry: append-only facts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.batches.models import BigId
from gateway.kit.clock import utcnow
from gateway.kit.db import Base


class InboundFile(Base):
    """A result file taken from the bank, recorded by content hash (once, ever)."""

    __tablename__ = "inbound_files"
    __table_args__ = (UniqueConstraint("bank_profile", "sha256"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bank_profile: Mapped[str] = mapped_column(String(32))
    file_name: Mapped[str] = mapped_column(String(128), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    # result | account_notice | api_status
    kind: Mapped[str] = mapped_column(String(20), default="result")
    state: Mapped[str] = mapped_column(String(20))  # applied | rejected
    error: Mapped[str | None] = mapped_column(Text)
    batch_serial: Mapped[str | None] = mapped_column(String(16))
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    applied_count: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ItemResult(Base):
    """One per-item result as the bank reported it; never updated, never deleted."""

    __tablename__ = "item_results"
    __table_args__ = (UniqueConstraint("inbound_file_id", "serial"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inbound_file_id: Mapped[int] = mapped_column(ForeignKey("inbound_files.id"))
    item_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    serial: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(10))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    bank_code: Mapped[str] = mapped_column(String(16))
    bank_message: Mapped[str] = mapped_column(String(200))
    bank_ref: Mapped[str] = mapped_column(String(64))
    processed_at: Mapped[dt.datetime] = mapped_column(DateTime)
    # what the gateway made of it: applied | duplicate | conflict | unknown_item | mismatch
    disposition: Mapped[str] = mapped_column(String(20))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class OperatorCase(Base):
    """Something a person must look at: an unknown outcome after inquiries, a conflicting
    result, a result for an item never sent. Resolved only by a recorded operator action."""

    __tablename__ = "operator_cases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(20), default="open")
    item_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    batch_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    outbound_file_id: Mapped[int | None] = mapped_column(BigInteger)
    inbound_file_id: Mapped[int | None] = mapped_column(BigInteger)
    summary: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str | None] = mapped_column(Text)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    closed_by: Mapped[str | None] = mapped_column(String(64))


class AccountEntryRecord(Base):
    """A booked entry on the payer account as the bank notified it (camt.054, statement):
    an append-only fact for reconciliation."""

    __tablename__ = "account_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bank_profile: Mapped[str] = mapped_column(String(32))
    inbound_file_id: Mapped[int] = mapped_column(ForeignKey("inbound_files.id"), index=True)
    account: Mapped[str] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    direction: Mapped[str] = mapped_column(String(6))  # debit | credit
    booked_on: Mapped[dt.date] = mapped_column(Date)
    bank_ref: Mapped[str] = mapped_column(String(64))
    batch_serial: Mapped[str | None] = mapped_column(String(16), index=True)
    file_no: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[list[Any] | None] = mapped_column(JSON)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
