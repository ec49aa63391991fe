"""Webhook delivery from the outbox (``webhook_messages``), with a delivery log.

One step, ``deliver_webhooks``, safe to run in several workers at once:

1. **Claim** due messages by lease: a short transaction (``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL, then a conditional UPDATE of ``lease_owner``/``lease_until``), committed.
2. **Send** each one, outside any transaction: POST the body (byte-identical on every
   attempt) with the Standard Webhooks headers: the ``webhook-id`` fixed when the message
   was staged, a fresh ``webhook-timestamp`` and signature per attempt.
3. **Record** the attempt in a new transaction: a ``webhook_attempts`` row (status code,
   duration, error), and the message delivered, rescheduled or given up.

Answers (as the specification suggests): 2xx delivered; ``410 Gone`` given up at once;
anything else — 3xx (redirects are not followed), 4xx, 5xx, a timeout, a refused or reset
connection — is retried with exponential backoff and jitter (``kit.retry.next_attempt_at``),
never sooner than a ``Retry-After`` asks (capped at a day), until ``webhook_max_attempts``,
after which the message is ``failed`` and stays visible (``summary``, ``requeue_failed``).

Resending after a timeout is safe here, unlike a bank upload: the receiver deduplicates on
``webhook-id``, which never changes. A client whose endpoint fails is not tried again in the
same step (its other messages wait for the next), and each step has a time budget, so a
dead endpoint cannot hold up the rest of the worker's cycle.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from sqlalchemy import func, or_, select, update

from gateway.context import Context
from gateway.kit.clock import utcnow
from gateway.kit.db import session_scope
from gateway.kit.logging import get_logger
from gateway.kit.retry import next_attempt_at
from gateway.upstream.feed import envelope
from gateway.upstream.models import MessageState, UpstreamChange, WebhookAttempt, WebhookMessage
from gateway.upstream.signing import webhook_headers

log = get_logger(__name__)

CLAIM_BATCH = 50
RETRY_AFTER_CAP_SECONDS = 86400.0
USER_AGENT = "subsidy-bank-gateway-webhooks/1"


@dataclass(frozen=True)
class _Claimed:
    id: int
    client_id: str
    webhook_id: str
    body: bytes


@dataclass(frozen=True)
class _Answer:
    status: int | None
    error: str | None
    retry_after: float | None
    started_at: dt.datetime
    duration_ms: int


def body_bytes(change: UpstreamChange) -> bytes:
    """The webhook body: the change's envelope as compact, key-sorted JSON (the same bytes on
    every attempt)."""
    return json.dumps(
        envelope(change), ensure_ascii=False, sort_keys=True, separators=(",", ":")
    ).encode()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


def _lease_free(now: dt.datetime) -> object:
    return or_(WebhookMessage.lease_until.is_(None), WebhookMessage.lease_until < now)


def _claim(ctx: Context, owner: str, exclude: set[str]) -> list[_Claimed]:
    now = utcnow()
    with session_scope(ctx.sessions) as session:
        query = (
            select(WebhookMessage.id)
            .where(
                WebhookMessage.state == MessageState.PENDING,
                WebhookMessage.next_attempt_at <= now,
                _lease_free(now),  # type: ignore[arg-type]
            )
            .order_by(WebhookMessage.next_attempt_at, WebhookMessage.id)
            .limit(CLAIM_BATCH)
        )
        if exclude:
            query = query.where(WebhookMessage.client_id.not_in(exclude))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        candidates = list(session.scalars(query))
        if not candidates:
            return []
        claimed = list(
            session.scalars(
                update(WebhookMessage)
                .where(
                    WebhookMessage.id.in_(candidates),
                    WebhookMessage.state == MessageState.PENDING,
                    _lease_free(now),  # type: ignore[arg-type]
                )
                .values(
                    lease_owner=owner,
                    lease_until=now + dt.timedelta(seconds=ctx.settings.lease_seconds),
                )
                .returning(WebhookMessage.id)
                .execution_options(synchronize_session=False)
            )
        )
        rows = session.execute(
            select(WebhookMessage.id, WebhookMessage.client_id, UpstreamChange)
            .join(UpstreamChange, UpstreamChange.id == WebhookMessage.change_id)
            .where(WebhookMessage.id.in_(claimed))
            .order_by(WebhookMessage.next_attempt_at, WebhookMessage.id)
        ).all()
    return [
        _Claimed(mid, client, change.public_id, body_bytes(change)) for mid, client, change in rows
    ]


def _release(ctx: Context, ids: Sequence[int], owner: str) -> None:
    if not ids:
        return
    with session_scope(ctx.sessions) as session:
        session.execute(
            update(WebhookMessage)
            .where(WebhookMessage.id.in_(ids), WebhookMessage.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


def _post(http: httpx.Client, url: str, keys: list[bytes], m: _Claimed) -> _Answer:
    headers = {
        **webhook_headers(keys, m.webhook_id, m.body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    started_at = utcnow()
    t0 = time.monotonic()
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    try:
        response = http.post(url, content=m.body, headers=headers)
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("retry-after"))
    except httpx.TimeoutException as exc:
        error = f"timeout ({type(exc).__name__})"
    except httpx.HTTPError as exc:
        # the URL's query may hold a token: keep it out of the log and the delivery log
        error = f"{type(exc).__name__}: {exc}".replace(url, url.split("?", 1)[0])[:200]
    duration_ms = int((time.monotonic() - t0) * 1000)
    return _Answer(status, error, retry_after, started_at, duration_ms)


def _record(ctx: Context, m: _Claimed, owner: str, url: str, answer: _Answer) -> str:
    """Log the attempt and move the message on; returns the outcome."""
    settings = ctx.settings
    delivered = answer.status is not None and 200 <= answer.status < 300
    with session_scope(ctx.sessions) as session:
        msg = session.get(WebhookMessage, m.id, with_for_update=True)
        if msg is None:  # pragma: no cover (messages are never deleted)
            return "lost"
        msg.attempts += 1
        now = utcnow()
        ours = msg.lease_owner == owner and msg.state == MessageState.PENDING
        if delivered:
            outcome = "delivered"
        elif answer.status == 410:
            outcome = "failed"  # the receiver says it wants no more webhooks
        elif msg.attempts >= settings.webhook_max_attempts:
            outcome = "failed"
        else:
            outcome = "retry"
        error = answer.error or (
            None if delivered or answer.status is None else f"HTTP {answer.status}"
        )
        session.add(
            WebhookAttempt(
                message_id=msg.id,
                attempt=msg.attempts,
                owner=owner,
                url=url.split("?", 1)[0][:300],
                started_at=answer.started_at,
                duration_ms=answer.duration_ms,
                status_code=answer.status,
                error=error,
                retry_after_seconds=None if answer.retry_after is None else int(answer.retry_after),
                outcome=outcome,
            )
        )
        msg.last_status = answer.status
        msg.last_error = error
        msg.updated_at = now
        if delivered and msg.state != MessageState.DELIVERED:
            # a fact, whoever holds the lease now
            msg.state = MessageState.DELIVERED
            msg.delivered_at = now
        elif ours and outcome == "failed":
            msg.state = MessageState.FAILED
        elif ours:
            msg.next_attempt_at = next_attempt_at(
                msg.attempts,
                initial=settings.webhook_retry_initial_seconds,
                maximum=settings.webhook_retry_max_seconds,
                retry_after=answer.retry_after,
            )
        if ours:
            msg.lease_owner = None
            msg.lease_until = None
    event = {
        "delivered": "upstream.webhook_delivered",
        "retry": "upstream.webhook_retry",
        "failed": "upstream.webhook_failed",
    }[outcome]
    (log.warning if outcome == "failed" else log.info)(
        event,
        webhook_id=m.webhook_id,
        client=m.client_id,
        status=answer.status,
        error=error,
        duration_ms=answer.duration_ms,
    )
    return outcome


def _give_up_unconfigured(ctx: Context, m: _Claimed, owner: str) -> None:
    """The client's endpoint was removed from the settings: nothing to send it to."""
    with session_scope(ctx.sessions) as session:
        msg = session.get(WebhookMessage, m.id, with_for_update=True)
        if msg is not None and msg.lease_owner == owner:
            msg.state = MessageState.FAILED
            msg.last_error = "no webhook endpoint configured"
            msg.updated_at = utcnow()
            msg.lease_owner = None
            msg.lease_until = None
    log.warning("upstream.webhook_unconfigured", webhook_id=m.webhook_id, client=m.client_id)


def _client(ctx: Context) -> httpx.Client:
    """No redirects followed; proxies only as configured (``GATEWAY_WEBHOOK_PROXY``), never
    from the environment, like the bank adapters."""
    settings = ctx.settings
    return httpx.Client(
        timeout=httpx.Timeout(
            settings.webhook_timeout_seconds, connect=min(5.0, settings.webhook_timeout_seconds)
        ),
        follow_redirects=False,
        trust_env=False,
        proxy=settings.webhook_proxy,
    )


def deliver_webhooks(ctx: Context, owner: str) -> int:
    """Deliver due webhooks (within the step's time budget); returns the attempts made."""
    settings = ctx.settings
    deadline = time.monotonic() + settings.webhook_step_seconds
    attempts = 0
    skip: set[str] = set()  # clients whose endpoint failed in this step
    http: httpx.Client | None = None
    try:
        while time.monotonic() < deadline:
            claimed = _claim(ctx, owner, skip)
            if not claimed:
                break
            unsent: list[int] = []
            for m in claimed:
                endpoint = settings.webhooks.get(m.client_id)
                if m.client_id in skip or time.monotonic() >= deadline:
                    unsent.append(m.id)
                    continue
                if endpoint is None:
                    _give_up_unconfigured(ctx, m, owner)
                    continue
                if http is None:
                    http = _client(ctx)
                answer = _post(http, endpoint.url, endpoint.keys(), m)
                attempts += 1
                if _record(ctx, m, owner, endpoint.url, answer) != "delivered":
                    skip.add(m.client_id)
            _release(ctx, unsent, owner)
    finally:
        if http is not None:
            http.close()
    return attempts


def summary(ctx: Context) -> dict[str, int]:
    """Webhook messages by state: ``{"delivered", "pending", "failed"}``."""
    with ctx.sessions() as session:
        counts = dict(
            session.execute(
                select(WebhookMessage.state, func.count()).group_by(WebhookMessage.state)
            ).all()
        )
    return {s.value: int(counts.get(s.value, 0)) for s in MessageState}


def requeue_failed(ctx: Context, client_id: str | None = None) -> int:
    """Give failed messages a fresh round of attempts (an operator's manual replay, e.g.
    after the upstream endpoint was repaired); returns how many."""
    now = utcnow()
    with session_scope(ctx.sessions) as session:
        query = (
            update(WebhookMessage)
            .where(WebhookMessage.state == MessageState.FAILED)
            .values(
                state=MessageState.PENDING,
                attempts=0,
                next_attempt_at=now,
                updated_at=now,
                lease_owner=None,
                lease_until=None,
            )
            .execution_options(synchronize_session=False)
        )
        if client_id is not None:
            query = query.where(WebhookMessage.client_id == client_id)
        result = session.execute(query)
        return int(result.rowcount)  # type: ignore[attr-defined]
