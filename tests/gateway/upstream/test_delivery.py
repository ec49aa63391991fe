"""Webhook delivery from the outbox: retries with backoff that honour Retry-After, the same
webhook-id on every attempt, a delivery log, give-up after N attempts, leases shared by
several workers, and a dead endpoint that does not hold up the others."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import socket
import threading
from typing import Any

from sqlalchemy import select

from gateway.context import Context
from gateway.upstream.delivery import deliver_webhooks, parse_retry_after, requeue_failed
from gateway.upstream.feed import stage_changes
from gateway.upstream.models import UpstreamChange, WebhookAttempt, WebhookMessage
from gateway.upstream.service import summary, upstream_step
from gateway.upstream.signing import verify
from tests.gateway.upstream.support import (
    OTHER_SECRET,
    SECRET,
    Api,
    Receiver,
    Reply,
    configure,
    endpoint,
    produce,
)
from tests.waits import wait_until


def _until(ctx: Context, done: Any, timeout: float = 30.0, owner: str = "w1") -> None:
    """Upstream steps until ``done()``."""

    def step() -> bool:
        upstream_step(ctx, owner)
        return bool(done())

    wait_until(step, timeout=timeout, max_interval=0.02, what=lambda: f"done: {summary(ctx)}")


def _messages(ctx: Context) -> list[WebhookMessage]:
    with ctx.sessions() as s:
        return list(s.scalars(select(WebhookMessage).order_by(WebhookMessage.id)))


def _attempts(ctx: Context, message_id: int) -> list[WebhookAttempt]:
    with ctx.sessions() as s:
        return list(
            s.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.message_id == message_id)
                .order_by(WebhookAttempt.id)
            )
        )


def test_failing_receiver_gets_the_same_message_until_it_accepts(
    uctx: Context, receiver: Receiver, api: Api
) -> None:
    """500, then a timeout, then 429 with Retry-After, then accepted: delivered once, with
    the same webhook-id and body on every attempt, each freshly signed, all of it logged."""
    script = {
        1: Reply(500),
        2: Reply(200, delay=0.6),  # answers after the client's 0.25 s timeout
        3: Reply(429, {"Retry-After": "1"}),
    }
    receiver.plan = lambda _wid, n: script.get(n, Reply(204))
    people = produce(uctx, "W-1", 1)
    _until(uctx, lambda: summary(uctx) == {"delivered": 2, "pending": 0, "failed": 0})
    # the item's outcome and the batch's completion: 4 requests each, one webhook-id each
    assert len(receiver.requests) == 8
    assert set(receiver.counts.values()) == {4}
    for wid in receiver.counts:
        got = receiver.by_id(wid)
        assert len({r.body for r in got}) == 1  # byte-identical body on every attempt
        for r in got:
            assert verify(SECRET, r.headers, r.body) == wid
            assert r.headers["content-type"] == "application/json"
        payload = json.loads(got[0].body)
        assert payload["id"] == wid
    # the delivery log: every attempt with its answer
    for m in _messages(uctx):
        assert m.state == "delivered" and m.attempts == 4 and m.lease_owner is None
        log = _attempts(uctx, m.id)
        assert [a.status_code for a in log] == [500, None, 429, 204]
        assert [a.outcome for a in log] == ["retry", "retry", "retry", "delivered"]
        assert log[0].error == "HTTP 500" and log[1].error and "timeout" in log[1].error
        assert log[1].duration_ms >= 200
        assert log[2].retry_after_seconds == 1
        # Retry-After honoured: not asked again for at least a second
        assert (log[3].started_at - log[2].started_at).total_seconds() >= 1.0
        assert all(a.url.endswith("/hooks/gateway") for a in log)  # no query (token) kept
    # what the receiver got is masked, like the pull API
    text = b"".join(r.body for r in receiver.requests).decode()
    assert people[0].name not in text and people[0].id_number not in text
    # and is exactly what the pull API serves for the same changes
    pulled, _ = api.all_changes(limit=1)
    assert len(pulled) == 2
    for entry in pulled:
        entry.pop("cursor")
        assert json.loads(receiver.by_id(entry["id"])[-1].body) == entry


def test_gives_up_after_n_attempts_and_stays_visible(uctx: Context, receiver: Receiver) -> None:
    configure(uctx, webhook_max_attempts=3)
    receiver.plan = lambda _wid, _n: Reply(503)
    produce(uctx, "W-2", 1)
    _until(uctx, lambda: summary(uctx)["failed"] == 2)
    assert summary(uctx) == {"delivered": 0, "pending": 0, "failed": 2}
    assert set(receiver.counts.values()) == {3}
    for m in _messages(uctx):
        assert m.state == "failed" and m.attempts == 3 and m.last_status == 503
        assert [a.outcome for a in _attempts(uctx, m.id)] == ["retry", "retry", "failed"]
    # nothing more is attempted …
    assert deliver_webhooks(uctx, "w1") == 0
    # … until an operator replays them; the receiver is back
    receiver.plan = lambda _wid, _n: Reply(200)
    assert requeue_failed(uctx) == 2
    _until(uctx, lambda: summary(uctx)["delivered"] == 2)
    assert set(receiver.counts.values()) == {4}


def test_gone_gives_up_at_once_and_redirects_are_not_followed(
    uctx: Context, receiver: Receiver
) -> None:
    produce(uctx, "W-3", 1)
    stage_changes(uctx)
    item_msg, batch_msg = _messages(uctx)
    with uctx.sessions() as s:
        item_wid = s.get(UpstreamChange, item_msg.change_id).public_id  # type: ignore[union-attr]

    def plan(wid: str, n: int) -> Reply:
        if wid == item_wid:
            return Reply(410)
        return Reply(302, {"Location": "http://127.0.0.1:9/elsewhere"}) if n == 1 else Reply()

    receiver.plan = plan
    _until(uctx, lambda: summary(uctx) == {"delivered": 1, "pending": 0, "failed": 1})
    assert receiver.counts[item_wid] == 1
    assert [a.status_code for a in _attempts(uctx, item_msg.id)] == [410]
    assert [a.status_code for a in _attempts(uctx, batch_msg.id)] == [302, 204]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_dead_endpoint_does_not_hold_up_other_clients(uctx: Context, receiver: Receiver) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}/hooks"
    configure(
        uctx,
        webhooks={"county-finance": endpoint(dead), "other-county": endpoint(receiver.url)},
        webhook_retry_initial_seconds=30.0,
        webhook_retry_max_seconds=60.0,
    )
    produce(uctx, "D-1", 4)
    produce(uctx, "D-2", 4, client="other-county", seed=8)
    stage_changes(uctx)
    attempts = deliver_webhooks(uctx, "w1")
    # one probe of the dead endpoint, then every message of the other client
    assert attempts == 1 + 5
    assert len(receiver.requests) == 5
    by_client: dict[str, list[str]] = {}
    for m in _messages(uctx):
        by_client.setdefault(m.client_id, []).append(m.state)
    assert by_client["other-county"] == ["delivered"] * 5
    assert by_client["county-finance"] == ["pending"] * 5
    tried = [m for m in _messages(uctx) if m.attempts and m.client_id == "county-finance"]
    assert len(tried) == 1 and tried[0].last_error and "Connect" in tried[0].last_error
    assert tried[0].next_attempt_at > dt.datetime.now(dt.UTC).replace(tzinfo=None)
    # the untried ones are free for the next step (no lease left behind)
    assert all(m.lease_owner is None for m in _messages(uctx))


def test_several_workers_deliver_each_message_once(uctx: Context, receiver: Receiver) -> None:
    receiver.plan = lambda _wid, _n: Reply(200, delay=0.01)
    for i in range(3):
        produce(uctx, f"P-{i}", 5, seed=30 + i)
    stage_changes(uctx)
    total = 3 * 6
    errors: list[BaseException] = []

    def work(owner: str) -> None:
        def delivered() -> bool:  # steps back to back: the workers contend for leases
            if summary(uctx)["delivered"] >= total:
                return True
            upstream_step(uctx, owner)
            return False

        try:
            wait_until(delivered, interval=0, max_interval=0, what=f"{total} delivered")
        except BaseException as exc:  # pragma: no cover (reported below)
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    assert summary(uctx) == {"delivered": total, "pending": 0, "failed": 0}
    assert len(receiver.counts) == total and set(receiver.counts.values()) == {1}
    with uctx.sessions() as s:
        owners = set(s.scalars(select(WebhookAttempt.owner)))
    assert owners <= {"w0", "w1", "w2"}


def test_retry_after_forms() -> None:
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("999999999") == 86400.0  # capped at a day
    later = email.utils.format_datetime(
        dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90), usegmt=True
    )
    got = parse_retry_after(later)
    assert got is not None and 80 <= got <= 90
    past = email.utils.format_datetime(dt.datetime(2000, 1, 1, tzinfo=dt.UTC), usegmt=True)
    assert parse_retry_after(past) == 0.0


def test_the_demo_receiver_checks_signatures_independently(uctx: Context) -> None:
    """The stand-in upstream endpoint (for the demo) verifies with its own code, makes the
    gateway retry, and counts no duplicate; with the wrong secret it refuses everything."""
    from gateway.upstream.demo_receiver import UpstreamReceiver

    produce(uctx, "R-1", 2, failed={1: "account_frozen"})
    with UpstreamReceiver(SECRET, fail_first=1) as good:
        configure(uctx, webhooks={"county-finance": endpoint(good.url)})
        _until(uctx, lambda: summary(uctx)["delivered"] == 3)
        assert good.stats() == {
            "received": 6,
            "accepted": 3,
            "duplicates": 0,
            "invalid": 0,
            "by_type": {"item.failed": 1, "item.paid": 1, "batch.completed": 1},
        }
    produce(uctx, "R-2", 1, seed=9)
    with UpstreamReceiver(OTHER_SECRET) as wrong:
        configure(uctx, webhooks={"county-finance": endpoint(wrong.url)})
        upstream_step(uctx, "w1")
        assert wrong.stats()["invalid"] == 1 and wrong.stats()["accepted"] == 0
    assert summary(uctx)["pending"] == 2
