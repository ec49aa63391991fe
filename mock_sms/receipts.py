"""Pushes signed delivery receipts to the configured callback URLs, from a background
thread, each at its due time; retries a push that did not get a 2xx answer.

Signature (docs/formats/sms-v1.md, "Receipt pushes"): ``X-Sms-Timestamp``, ``X-Sms-Nonce``
and ``X-Sms-Signature`` = hex HMAC-SHA256(account secret, "SMS-RECEIPT\\n<provider>\\n<ts>\\n
<nonce>\\n<hex sha256(body)>")."""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

log = logging.getLogger("mock_sms.receipts")


def receipt_signature(secret: str, provider: str, timestamp: str, nonce: str, body: bytes) -> str:
    text = f"SMS-RECEIPT\n{provider}\n{timestamp}\n{nonce}\n{hashlib.sha256(body).hexdigest()}"
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(order=True)
class _Push:
    due: float
    seq: int
    provider: str = field(compare=False)
    body: bytes = field(compare=False)
    label: str = field(compare=False)  # what the log says (out_id; never a number)
    forged: bool = field(compare=False, default=False)
    attempt: int = field(compare=False, default=1)


@dataclass
class PushStats:
    delivered: int = 0  # pushes answered 2xx
    refused: int = 0  # pushes answered otherwise (after the last attempt)
    unsent: int = 0  # no callback URL configured, or the connection failed every time
    forged: int = 0  # forged copies pushed (their answer is not checked)


class ReceiptPusher:
    """Due times are read on ``clock`` (the centre's clock, Unix seconds). A test that
    injects a clock and moves it forward calls ``wake()`` so that receipts now due go out
    at once rather than when the pusher would next have looked."""

    def __init__(
        self,
        *,
        callback_for: Callable[[str], str | None],
        secret_for: Callable[[str], str],
        attempts: int,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._callback_for = callback_for
        self._secret_for = secret_for
        self._attempts = attempts
        self._client = httpx.Client(timeout=timeout)
        self._heap: list[_Push] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.stats = PushStats()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mock-sms-receipts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._client.close()

    def schedule(
        self, due: float, provider: str, body: bytes, label: str, *, forged: bool = False
    ) -> None:
        with self._cond:
            heapq.heappush(
                self._heap, _Push(due, next(self._seq), provider, body, label, forged=forged)
            )
            self._cond.notify_all()

    def wake(self) -> None:
        """Look at the clock again now (it was moved)."""
        with self._cond:
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is scheduled or in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._in_flight

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._heap or self._heap[0].due > self._clock()):
                    wait = self._heap[0].due - self._clock() if self._heap else None
                    self._cond.wait(wait)
                if self._stopping:
                    return
                push = heapq.heappop(self._heap)
                self._in_flight += 1
            try:
                self._push(push)
            except Exception:  # a pusher must survive anything one push does
                log.exception("receipt_push_crashed label=%s", push.label)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _push(self, push: _Push) -> None:
        url = self._callback_for(push.provider)
        if url is None:
            self.stats.unsent += 1
            log.info(
                "receipt_not_pushed provider=%s %s reason=no_callback_url",
                push.provider,
                push.label,
            )
            return
        secret = self._secret_for(push.provider)
        if push.forged:
            secret = "forged-" + secrets.token_hex(8)
        timestamp = str(int(self._clock()))
        nonce = secrets.token_urlsafe(24)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Sms-Timestamp": timestamp,
            "X-Sms-Nonce": nonce,
            "X-Sms-Signature": receipt_signature(
                secret, push.provider, timestamp, nonce, push.body
            ),
        }
        try:
            response = self._client.post(url, content=push.body, headers=headers)
            status: int | None = response.status_code
        except httpx.HTTPError as exc:
            status = None
            log.info(
                "receipt_push_failed provider=%s %s attempt=%d error=%s",
                push.provider,
                push.label,
                push.attempt,
                type(exc).__name__,
            )
        if push.forged:
            self.stats.forged += 1
            log.info(
                "forged_receipt_pushed provider=%s %s status=%s", push.provider, push.label, status
            )
            return
        if status is not None and 200 <= status < 300:
            self.stats.delivered += 1
            log.info("receipt_pushed provider=%s %s status=%d", push.provider, push.label, status)
            return
        if push.attempt < self._attempts:
            push.attempt += 1
            push.due = self._clock() + 0.2 * push.attempt
            with self._cond:
                heapq.heappush(self._heap, push)
                self._cond.notify_all()
            return
        if status is None:
            self.stats.unsent += 1
        else:
            self.stats.refused += 1
        log.info("receipt_given_up provider=%s %s status=%s", push.provider, push.label, status)
