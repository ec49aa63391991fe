"""Outbound bank files: the intent is persisted (name, serial, exact bytes, hash) before
any upload, so every retry sends the same bytes under the same name."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.batches.models import BigId
from gateway.kit.clock import utcnow
from gateway.kit.db import Base


class OutboundFile(Base):
    """A request file for the bank (and its detached signature)."""

    __tablename__ = "outbound_files"
    __table_args__ = (
        UniqueConstraint("bank_profile", "file_name"),
        UniqueConstraint("batch_id", "file_no"),
        Index("ix_outbound_files_state_next", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"))
    bank_profile: Mapped[str] = mapped_column(String(32))
    file_no: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str] = mapped_column(String(128))
    signature_name: Mapped[str] = mapped_column(String(128))
    item_count: Mapped[int] = mapped_column(Integer)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    content_enc: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    inquiries: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # API banks: when to ask the bank for this submission's status next (None: nothing to ask)
    next_poll_at: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)
    polls: Mapped[int] = mapped_column(Integer, default=0)
    # API banks: how many times a callback (or an operator) asked for an early inquiry. An
    # inquiry that was already on its way when one came keeps the next one due now, instead
    # of scheduling it from an answer that may predate the news (a 退票 callback, say).
    poll_hints: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # attempts in a row, up to the latest, that provably reached nothing at the bank
    # (refused, DNS, handshake): the operator is told once a streak reaches
    # delivery_max_attempts, and a send needs no inquiry first while every earlier attempt
    # is in the streak (docs/delivery-errors.md)
    never_sent_streak: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
