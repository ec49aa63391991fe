"""Batches (批次), payment items (明细) and their append-only event trails."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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

from gateway.kit.clock import utcnow
from gateway.kit.db import Base

# BigInteger primary keys on PostgreSQL, INTEGER PRIMARY KEY (rowid) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Batch(Base):
    """One approved disbursement instruction from upstream (批次)."""

    __tablename__ = "batches"
    __table_args__ = (
        UniqueConstraint("client_id", "batch_no"),
        Index("ix_batches_state_lease", "state", "lease_until"),
        # the dashboard's batch list: newest first, optionally within a region
        Index("ix_batches_received_at", "received_at"),
        Index("ix_batches_region_received", "region_code", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    batch_no: Mapped[str] = mapped_column(String(64))
    content_sha256: Mapped[str] = mapped_column(String(64))  # of the raw body
    # SHA-256 of the canonical content (parsed, normalised; docs/intake.md): the idempotency
    # key. None for batches received before it existed (they compare content_sha256).
    content_key: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20))
    serial: Mapped[str | None] = mapped_column(String(16), unique=True)
    region_code: Mapped[str] = mapped_column(String(12))
    subsidy_code: Mapped[str] = mapped_column(String(12))
    subsidy_name: Mapped[str] = mapped_column(String(100))
    period: Mapped[str] = mapped_column(String(8))
    fiscal_year: Mapped[int] = mapped_column(Integer)
    payer_account: Mapped[str] = mapped_column(String(32))
    payer_name: Mapped[str] = mapped_column(String(100))
    bank_profile: Mapped[str] = mapped_column(String(32))
    declared_count: Mapped[int] = mapped_column(Integer)
    declared_total_fen: Mapped[int] = mapped_column(BigInteger)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    total_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    warning_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # the business day the batch goes to the bank (cut-off and working-day calendar); None
    # while the calendar does not know the year
    dispatch_on: Mapped[dt.date | None] = mapped_column(Date)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime)


class BatchError(Base):
    """One reason a batch was rejected; all of them are kept (machine-readable)."""

    __tablename__ = "batch_errors"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    seq: Mapped[int | None] = mapped_column(Integer)
    field: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))
    message_zh: Mapped[str] = mapped_column(Text)
    message_en: Mapped[str] = mapped_column(Text)
    # the limit the value exceeded, where there is one (e.g. 60 gb18030_bytes)
    limit_value: Mapped[int | None] = mapped_column(BigInteger)
    limit_unit: Mapped[str | None] = mapped_column(String(16))


class BatchWarning(Base):
    """Something about an accepted (or rejected) batch worth a look that did not refuse it,
    e.g. an ID number's address code unknown to GB/T 2260. At most
    ``gateway.batches.service.MAX_WARNINGS`` are kept; ``Batch.warning_count`` counts all."""

    __tablename__ = "batch_warnings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    seq: Mapped[int | None] = mapped_column(Integer)
    field: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))
    message_zh: Mapped[str] = mapped_column(Text)
    message_en: Mapped[str] = mapped_column(Text)


class PaymentItem(Base):
    """One payment to one person (明细). Personal data only encrypted, indexed or masked."""

    __tablename__ = "payment_items"
    __table_args__ = (
        UniqueConstraint("batch_id", "seq"),
        Index("ix_payment_items_batch_state", "batch_id", "state"),
        Index("ix_payment_items_id_bidx", "id_number_bidx"),
        Index("ix_payment_items_account_bidx", "account_bidx"),
        # the dashboard's failed-payment queue: items of a state, newest first
        Index("ix_payment_items_state_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"))
    seq: Mapped[int] = mapped_column(Integer)
    serial: Mapped[str] = mapped_column(String(24), unique=True)
    state: Mapped[str] = mapped_column(String(20))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    name_enc: Mapped[str] = mapped_column(Text)
    name_masked: Mapped[str] = mapped_column(String(64))
    id_number_enc: Mapped[str] = mapped_column(Text)
    id_number_bidx: Mapped[str] = mapped_column(String(64))
    id_number_masked: Mapped[str] = mapped_column(String(18))
    account_enc: Mapped[str] = mapped_column(Text)
    account_bidx: Mapped[str] = mapped_column(String(64))
    account_masked: Mapped[str] = mapped_column(String(32))
    phone_enc: Mapped[str | None] = mapped_column(Text)
    phone_masked: Mapped[str | None] = mapped_column(String(16))
    remark: Mapped[str | None] = mapped_column(String(200))
    # (person, subsidy item, period) claim: unique while the item stands; released when a
    # re-issue replaces it. The database refuses a second payment to the same person.
    claim_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    reissue_of_id: Mapped[int | None] = mapped_column(ForeignKey("payment_items.id"))
    outbound_file_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    bank_code: Mapped[str | None] = mapped_column(String(16))
    bank_message: Mapped[str | None] = mapped_column(String(200))
    bank_ref: Mapped[str | None] = mapped_column(String(64))
    reason_code: Mapped[str | None] = mapped_column(String(40))
    paid_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ItemEventRecord(Base):
    """Append-only: every item state transition, who or what caused it, and when."""

    __tablename__ = "item_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    item_id: Mapped[int] = mapped_column(BigInteger, index=True)
    event: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class BatchEventRecord(Base):
    """Append-only: every batch state transition."""

    __tablename__ = "batch_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(BigInteger, index=True)
    event: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
