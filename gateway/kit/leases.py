"""Leases: claim work with a short conditional UPDATE instead of a held lock.

A row is claimed when ``lease_until`` is empty or in the past; the claim sets
``lease_owner`` and ``lease_until``. It works the same on SQLite and PostgreSQL and no lock
or transaction is ever held across a network call: the claim is committed, the network call
made, and the outcome recorded in a new transaction that checks the lease is still ours.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, String, or_, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from gateway.kit.clock import utcnow
from gateway.kit.db import Base


class JobLease(Base):
    """A named singleton job (e.g. polling one bank's result folder) claimed with a lease."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64))
    until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


def claim_job(session: Session, name: str, owner: str, seconds: int) -> bool:
    """Claim the singleton job ``name`` for ``seconds``; True when it is ours now."""
    now = utcnow()
    if session.get(JobLease, name) is None:
        session.add(JobLease(name=name))
        session.flush()
    result = session.execute(
        update(JobLease)
        .where(
            JobLease.name == name,
            or_(JobLease.until.is_(None), JobLease.until < now, JobLease.owner == owner),
        )
        .values(owner=owner, until=now + dt.timedelta(seconds=seconds), last_run_at=now)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def release_job(session: Session, name: str, owner: str) -> None:
    session.execute(
        update(JobLease).where(JobLease.name == name, JobLease.owner == owner).values(until=None)
    )


__all__ = ["JobLease", "claim_job", "release_job"]
