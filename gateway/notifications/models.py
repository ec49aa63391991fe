"""The SMS send ledger (短信发送台账): one row per item and notice type, ever."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.batches.models import BigId
from gateway.kit.clock import utcnow
from gateway.kit.db import Base


class SmsNotice(Base):
    """An SMS a beneficiary is owed. The row (and its ``out_id``) exists before any attempt
    and is unique per (item, notice type): the database refuses a second one."""

    __tablename__ = "sms_notices"
    __table_args__ = (
        UniqueConstraint("item_id", "notice_type"),
        Index("ix_sms_notices_state_next", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    item_id: Mapped[int] = mapped_column(BigInteger)
    notice_type: Mapped[str] = mapped_column(String(16))  # paid | failed
    out_id: Mapped[str] = mapped_column(String(64), unique=True)
    # pending → sending → sent → delivered | failed; unknown (inquire) → sent | pending;
    # skipped (SMS off for this notice), rejected (permanent), gave_up (never resolved)
    state: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str | None] = mapped_column(String(32))
    template_id: Mapped[str | None] = mapped_column(String(64))
    provider_ref: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    queries: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_code: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    # the dashboard's SMS log filters by day
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    final_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class SmsReceiptRecord(Base):
    """A delivery report as received (push or query): append-only."""

    __tablename__ = "sms_receipts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    out_id: Mapped[str] = mapped_column(String(64), index=True)
    provider_ref: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(8))  # push | query
    reported_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
