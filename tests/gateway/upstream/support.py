"""Helpers for the results-upstream tests: outcomes produced through the real state
machine (no bank needed), a tiny webhook receiver on loopback, and a signed API client."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.auth.hmac_auth import sign_headers
from gateway.batches.models import Batch, PaymentItem
from gateway.context import Context
from gateway.kit.clock import utcnow
from gateway.kit.db import session_scope
from gateway.payments.states import BatchEvent, ItemEvent
from gateway.payments.transitions import complete_if_final, move_batch, move_items
from gateway.upstream.config import WebhookEndpoint
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import submit

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes, base64
OTHER_SECRET = "whsec_" + base64.b64encode(b"second-secret-for-the-tests-0000").decode()
CLIENTS = {"county-finance": "dev-secret-county-finance", "other-county": "secret-other-county"}


def produce(
    ctx: Context,
    batch_no: str,
    n: int,
    *,
    failed: dict[int, str] | None = None,
    client: str = "county-finance",
    seed: int = 7,
) -> list[Any]:
    """Submit a batch of ``n`` people and take it to completed, as the pipeline would: every
    item paid except ``failed`` (seq → reason code). Returns the people (raw data)."""
    ps = persons(n, seed=seed)
    submit(ctx, payload(batch_no, ps), client=client)
    failed = failed or {}
    with session_scope(ctx.sessions) as s:
        batch = s.scalar(select(Batch).where(Batch.batch_no == batch_no, Batch.client_id == client))
        assert batch is not None
        mine = PaymentItem.batch_id == batch.id
        move_items(s, mine, ItemEvent.PLAN, "test")
        move_batch(s, batch, BatchEvent.PLAN, "test")
        move_items(s, mine, ItemEvent.DELIVER, "test")
        move_batch(s, batch, BatchEvent.ALL_DELIVERED, "test")
        for seq, code in failed.items():
            move_items(
                s,
                mine & (PaymentItem.seq == seq),
                ItemEvent.RESULT_FAILED,
                "test",
                values={"reason_code": code, "bank_code": "E42"},
                detail={"bank_code": "E42"},
            )
        move_items(
            s,
            mine,
            ItemEvent.RESULT_PAID,
            "test",
            values={"bank_ref": f"REF-{batch_no}", "bank_code": "0000", "paid_at": utcnow()},
            detail={"bank_code": "0000"},
        )
        complete_if_final(s, batch, "test")
    return ps


def endpoint(url: str, secret: str = SECRET) -> WebhookEndpoint:
    return WebhookEndpoint.model_validate({"url": url, "secret": secret})


def configure(ctx: Context, **update: Any) -> Context:
    """Replace settings of a test context (webhooks, retry timings…)."""
    values: dict[str, Any] = {
        "webhook_timeout_seconds": 0.25,
        "webhook_max_attempts": 5,
        "webhook_retry_initial_seconds": 0.01,
        "webhook_retry_max_seconds": 0.05,
        "webhook_step_seconds": 10.0,
    }
    values.update(update)
    ctx.settings = ctx.settings.model_copy(update=values)
    return ctx


# --- a webhook receiver --------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass(frozen=True)
class Reply:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # sleep before answering (longer than the client timeout: a timeout)


class Receiver:
    """A loopback HTTP server recording every webhook; ``plan(webhook_id, nth)`` decides the
    answer to the nth (1-based) request carrying that id."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.counts: dict[str, int] = defaultdict(int)
        self.plan: Callable[[str, int], Reply] = lambda _id, _n: Reply()
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    receiver.requests.append(Received(headers, body, time.time()))
                    wid = headers.get("webhook-id", "")
                    receiver.counts[wid] += 1
                    reply = receiver.plan(wid, receiver.counts[wid])
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/gateway?token=t0p"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.requests]

    def by_id(self, wid: str) -> list[Received]:
        return [r for r in self.requests if r.headers.get("webhook-id") == wid]


def running_receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


# --- the pull API --------------------------------------------------------------------------


class Api:
    def __init__(self, client: TestClient, client_id: str = "county-finance") -> None:
        self.client = client
        self.client_id = client_id

    def as_(self, client_id: str) -> Api:
        return Api(self.client, client_id)

    def get(self, target: str) -> Any:
        secret = CLIENTS[self.client_id].encode()
        return self.client.get(target, headers=sign_headers(self.client_id, secret, "GET", target))

    def changes(self, after: str | None = None, limit: int = 100) -> dict[str, Any]:
        target = f"/v1/changes?limit={limit}" + (f"&after={after}" if after else "")
        r = self.get(target)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def all_changes(self, limit: int = 3, after: str | None = None) -> tuple[list[Any], str]:
        out: list[Any] = []
        while True:
            page = self.changes(after, limit)
            out.extend(page["changes"])
            after = page["next_cursor"]
            if not page["has_more"]:
                return out, after
