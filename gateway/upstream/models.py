"""Tables of the results-upstream feed and its webhook outbox.

- ``upstream_feed``: one row, the feed's read position in the two append-only event
  tables (``item_events``, ``batch_events``). Staging locks it (``SELECT … FOR UPDATE``),
  so stagers run one at a time and ``upstream_changes`` ids are committed in id order.
- ``upstream_changes``: one row per outcome change (an item or batch reaching an outcome
  state), rendered once with personal data masked; the pull API pages through it.
- ``webhook_messages``: the outbox, one message per change for clients with a webhook; its
  ``webhook-id`` is the change's ``public_id``, fixed before the first attempt.
- ``webhook_attempts``: the delivery log, one row per HTTP attempt.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.batches.models import BigId
from gateway.kit.clock import utcnow
from gateway.kit.db import Base


class MessageState(StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    DELIVERED = "delivered"  # a 2xx answer was received
    FAILED = "failed"  # given up (attempts exhausted, 410 Gone, no endpoint): stays visible


class UpstreamFeed(Base):
    """The feed's position in the event tables (a single row, ``id = 1``)."""

    __tablename__ = "upstream_feed"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    batch_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class UpstreamChange(Base):
    """One batch or item outcome change, as reported upstream (masked; append-only)."""

    __tablename__ = "upstream_changes"
    __table_args__ = (
        UniqueConstraint("kind", "source_event_id"),
        Index("ix_upstream_changes_client_id", "client_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))  # "item" | "batch"
    source_event_id: Mapped[int] = mapped_column(BigInteger)
    batch_id: Mapped[int] = mapped_column(BigInteger)
    item_id: Mapped[int | None] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(40))  # "item.paid", "batch.completed", …
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime)
    staged_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class WebhookMessage(Base):
    """The outbox: one webhook per change for a client that has a webhook endpoint."""

    __tablename__ = "webhook_messages"
    __table_args__ = (Index("ix_webhook_messages_state_next", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("upstream_changes.id"), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(12), default=MessageState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(200))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class WebhookAttempt(Base):
    """The delivery log: every HTTP attempt, its answer or error, and how long it took."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("webhook_messages.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(300))  # without its query string
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(200))
    retry_after_seconds: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(12))  # delivered | retry | failed
