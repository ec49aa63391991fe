"""Server-side dashboard sessions.

The browser holds a random token (256 bits) in an HttpOnly, SameSite=Strict, Secure
cookie; the database holds only its SHA-256. A session ends when the user logs out, when it
has been idle longer than ``dashboard_session_idle_minutes``, when it is older than
``dashboard_session_max_hours``, or when the account is disabled. Every session has its own
CSRF token, which every form carries back (synchronizer-token pattern, OWASP).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.dashboard.accounts import Principal, principal_of
from gateway.dashboard.models import DashboardSession, OperatorAccount
from gateway.kit.clock import utcnow
from gateway.settings import Settings

# refresh last_seen_at at most this often (one write per minute per user, not per click)
_TOUCH_EVERY = dt.timedelta(seconds=60)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class LiveSession:
    session_id: int
    principal: Principal
    csrf_token: str
    must_change_password: bool
    password_changed_at: dt.datetime


def start_session(
    session: Session, settings: Settings, account: OperatorAccount, *, client_ip: str | None
) -> str:
    """Open a session for a freshly authenticated account; returns the cookie's token."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        DashboardSession(
            token_sha256=_digest(token),
            account_id=account.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + dt.timedelta(hours=settings.dashboard_session_max_hours),
            client_ip=client_ip,
            language="zh",
        )
    )
    session.flush()
    return token


def resume_session(session: Session, settings: Settings, token: str | None) -> LiveSession | None:
    """The live session behind a cookie token, or None (unknown, ended, expired, disabled).
    An expired session is ended on the spot."""
    if not token or len(token) > 128:
        return None
    row = session.scalar(
        select(DashboardSession).where(DashboardSession.token_sha256 == _digest(token))
    )
    if row is None or row.ended_at is not None:
        return None
    now = utcnow()
    idle = dt.timedelta(minutes=settings.dashboard_session_idle_minutes)
    account = session.get(OperatorAccount, row.account_id)
    if (
        account is None
        or account.disabled
        or now >= row.expires_at
        or now - row.last_seen_at > idle
    ):
        row.ended_at = now
        return None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        row.last_seen_at = now
    return LiveSession(
        session_id=row.id,
        principal=principal_of(account),
        csrf_token=row.csrf_token,
        must_change_password=account.must_change_password,
        password_changed_at=account.password_changed_at,
    )


def end_session(session: Session, token: str | None) -> None:
    if not token:
        return
    session.execute(
        update(DashboardSession)
        .where(DashboardSession.token_sha256 == _digest(token), DashboardSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def end_sessions_of(session: Session, account_id: int, *, keep: int | None = None) -> None:
    """End every session of an account (password change, reset, disable), but ``keep``."""
    stmt = update(DashboardSession).where(
        DashboardSession.account_id == account_id, DashboardSession.ended_at.is_(None)
    )
    if keep is not None:
        stmt = stmt.where(DashboardSession.id != keep)
    session.execute(stmt.values(ended_at=utcnow()))


def csrf_matches(expected: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(expected.encode(), (presented or "").encode())
