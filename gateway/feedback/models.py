"""Result files from the bank (回盘) and the per-item results they carry: append-only facts."""

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


class InboundFile(Base):
    """A result file taken from the bank, recorded by content hash (once, ever): one row per
    version, however many times and under whatever name the bank publishes it."""

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
    # a batch's page lists the result and notice files that name it
    batch_serial: Mapped[str | None] = mapped_column(String(16), index=True)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    applied_count: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # issue 12: the hash of the detached .sig this version was judged with; a version
    # rejected under one signature is judged again when another signature comes with it
    signature_sha256: Mapped[str | None] = mapped_column(String(64))


class OutboxEntry(Base):
    """What the gateway last saw of one name in a bank's outbox (issue 12: a file is known
    by its content, the listing only says when to look again). ``size``/``mtime`` and
    ``sig_size``/``sig_mtime`` are the listing's attributes of the file and of its ``.sig``
    when they were last read; ``sha256``/``signature_sha256`` the hashes of the bytes then
    read, ``inbound_file_id`` the version (``InboundFile``) they are. ``settled``: the
    ``.sig`` was read once more at least ``SETTLE_SECONDS`` after ``read_at`` (SFTP times
    are whole seconds: a rewrite within the second of the first read shows only in the
    bytes)."""

    __tablename__ = "outbox_entries"
    __table_args__ = (UniqueConstraint("bank_profile", "file_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bank_profile: Mapped[str] = mapped_column(String(32))
    file_name: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime: Mapped[int | None] = mapped_column(BigInteger)
    sig_size: Mapped[int] = mapped_column(BigInteger)
    sig_mtime: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # None when the .sig read with the file was not the one of its version (written between
    # the two reads): the next check reads both again
    signature_sha256: Mapped[str | None] = mapped_column(String(64))
    inbound_file_id: Mapped[int | None] = mapped_column(BigInteger)
    read_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    settled: Mapped[bool] = mapped_column(Boolean, default=False)


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
    # the dashboard's case list: open (or closed) cases, newest first
    __table_args__ = (Index("ix_operator_cases_state_id", "state", "id"),)

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
    # why a person closed it (the dashboard requires a reason)
    close_reason: Mapped[str | None] = mapped_column(Text)


class ManualConfirmation(Base):
    """A bank's manual confirmation of one item's outcome (银行人工确认), recorded by one
    operator and approved or rejected by a different supervisor (maker-checker). Only the
    approval moves the item (``operator_paid`` / ``operator_failed``). ``active_item_id``
    equals ``item_id`` while the confirmation is proposed or approved and is cleared when it
    is rejected: its uniqueness keeps one standing confirmation per item."""

    __tablename__ = "manual_confirmations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("payment_items.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    outcome: Mapped[str] = mapped_column(String(8))  # paid | failed
    bank_ref: Mapped[str | None] = mapped_column(String(64))
    reason_code: Mapped[str | None] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(Text)
    # proposed | approved | rejected
    state: Mapped[str] = mapped_column(String(12), index=True)
    item_state: Mapped[str] = mapped_column(String(20))  # the item's state when recorded
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)
    active_item_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)


class AccountEntryRecord(Base):
    """A booked entry on the payer account as the bank notified it (camt.054, statement,
    an API bank's account movements): an append-only fact for reconciliation. ``entry_id``
    is the bank's own id of an entry where it gives one (API movements): recorded once."""

    __tablename__ = "account_entries"
    # issue 12 (account movements): one row per bank entry id
    __table_args__ = (UniqueConstraint("bank_profile", "entry_id"),)

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
    entry_id: Mapped[str | None] = mapped_column(String(64))


class AccountMovementPoll(Base):
    """Where the gateway stands in reading an API bank's account movements for one payer
    account and day (issue 12): the bank's cursor to continue from, whether the last page
    was read (``exhausted``), and when. A past day read to the end after it was over is
    not asked again."""

    __tablename__ = "account_movement_polls"
    __table_args__ = (UniqueConstraint("bank_profile", "account", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bank_profile: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(32))
    day: Mapped[dt.date] = mapped_column(Date)
    cursor: Mapped[str | None] = mapped_column(String(64))
    exhausted: Mapped[bool] = mapped_column(Boolean, default=False)
    entries: Mapped[int] = mapped_column(Integer, default=0)
    polled_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
