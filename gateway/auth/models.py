"""Upstream authentication records."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.batches.models import BigId
from gateway.kit.clock import utcnow
from gateway.kit.db import Base


class RequestNonce(Base):
    """Nonces of authenticated upstream requests, so a captured request cannot be replayed."""

    __tablename__ = "request_nonces"
    __table_args__ = (UniqueConstraint("client_id", "nonce"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
