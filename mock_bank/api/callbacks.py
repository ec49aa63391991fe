"""Signed callbacks to the gateway (``POST <callback_url>``), retried on non-2xx.

Each event (:mod:`mock_bank.api.store` ``api_events``) has a fixed JSON body; every attempt
carries a fresh ``X-Timestamp``, ``X-Nonce`` and ``X-Signature`` (the request string to sign
with method ``POST`` and the callback URL's path and query) and ``X-Key-Id``. An attempt that
does not get a 2xx (or cannot connect) is retried ``callback_retries`` times, after
``callback_retry_seconds``, doubling, at most 30 s apart; then the event is given up (logged).
Delivery state is kept in the ledger database, so undelivered events are sent after a restart.

Fault hook points, each reached once per event on its first attempt:

- ``forged_callback``: before the genuine attempt, a copy signed with a throwaway key of the
  same algorithm under the bank's key id is sent once (the gateway must refuse it);
- ``duplicate_callback``: after the first 2xx, the event is sent again (fresh headers);
- ``replayed_callback``: after the first 2xx, the delivered attempt is re-sent byte for byte,
  with its original timestamp, nonce and signature (the gateway must refuse the nonce).

Extra sends are never retried.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import structlog

from mock_bank.api.crypto import Signer, request_string_to_sign
from mock_bank.api.service import new_nonce
from mock_bank.api.settings import ApiConfig
from mock_bank.api.store import ApiStore, EventRecord
from mock_bank.faults import FaultSchedule
from mock_bank.processor import Clock, shanghai_now

log = structlog.get_logger("mock_bank.api.callbacks")

MAX_RETRY_DELAY_SECONDS = 30.0
TIMEOUT_SECONDS = 5.0


@dataclass(order=True)
class _Due:
    due: float
    seq: int
    event: EventRecord = field(compare=False)
    attempts: int = field(compare=False, default=0)


def callback_ssl_context(config: ApiConfig) -> ssl.SSLContext | None:
    """TLS for an https ``callback_url``: the gateway's server certificate is verified
    against ``callback_ca`` (never the system store); our client certificate when given."""
    if config.callback_url is None or urlsplit(config.callback_url).scheme != "https":
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(config.callback_ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.callback_client_cert is not None and config.callback_client_key is not None:
        context.load_cert_chain(str(config.callback_client_cert), str(config.callback_client_key))
    return context


class CallbackSender:
    """A thread that delivers staged events to ``callback_url``."""

    def __init__(
        self,
        *,
        url: str,
        signer: Signer,
        forger: Callable[[], Signer],
        store: ApiStore,
        faults: FaultSchedule,
        ssl_context: ssl.SSLContext | None = None,
        retries: int = 5,
        retry_seconds: float = 1.0,
        clock: Clock = shanghai_now,
    ) -> None:
        parts = urlsplit(url)
        self.url = url
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._signer = signer
        self._forger = forger
        self._store = store
        self._faults = faults
        self._retries = retries
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._client = httpx.Client(
            verify=ssl_context if ssl_context is not None else True,  # http: unused
            timeout=TIMEOUT_SECONDS,
            trust_env=False,
        )
        self._cond = threading.Condition()
        self._queue: list[_Due] = []
        self._seq = itertools.count()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("already started")
        for event in self._store.undelivered_events():  # staged before a stop
            self._push(event, event.attempts, 0.0)
        self._thread = threading.Thread(
            target=self._run, name="mock-bank-api-callbacks", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._client.close()

    def enqueue(self, event: EventRecord) -> None:
        """Send ``event`` as soon as possible (an ``ApiBank`` event sink)."""
        self._push(event, event.attempts, 0.0)

    def _push(self, event: EventRecord, attempts: int, delay: float) -> None:
        with self._cond:
            heapq.heappush(
                self._queue, _Due(time.monotonic() + delay, next(self._seq), event, attempts)
            )
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (
                    not self._queue or self._queue[0].due > time.monotonic()
                ):
                    wait = self._queue[0].due - time.monotonic() if self._queue else None
                    self._cond.wait(wait)
                if self._stopping:
                    return
                entry = heapq.heappop(self._queue)
            try:
                self._attempt(entry)
            except Exception:
                log.exception("callback_failed", event_id=entry.event.event_id)

    # --- one attempt -----------------------------------------------------------------------

    def _headers(self, body: bytes, signer: Signer) -> dict[str, str]:
        timestamp = str(int(time.time()))
        nonce = new_nonce()
        message = request_string_to_sign("POST", self.path, timestamp, nonce, body)
        return {
            "Content-Type": "application/json",
            "X-Timestamp": timestamp,
            "X-Nonce": nonce,
            "X-Key-Id": signer.key_id,
            "X-Signature": base64.b64encode(signer.sign(message)).decode("ascii"),
        }

    def _post(self, body: bytes, headers: Mapping[str, str]) -> int | None:
        """The response status, or None when no answer came (connect error, timeout)."""
        try:
            response = self._client.post(self.url, content=body, headers=dict(headers))
        except httpx.HTTPError as exc:
            log.warning("callback_not_answered", error=type(exc).__name__)
            return None
        return response.status_code

    def _attempt(self, entry: _Due) -> None:
        event = entry.event
        first = entry.attempts == 0
        if first and self._faults.should("forged_callback"):
            status = self._post(event.body, self._headers(event.body, self._forger()))
            log.warning(
                "fault_fired", fault="forged_callback", event_id=event.event_id, status=status
            )
        headers = self._headers(event.body, self._signer)
        status = self._post(event.body, headers)
        attempts = entry.attempts + 1
        now = self._clock().isoformat(timespec="seconds")
        delivered = status is not None and 200 <= status < 300
        give_up = not delivered and attempts > self._retries
        self._store.record_attempt(
            event.id,
            status=status,
            delivered_at=now if delivered else None,
            gave_up_at=now if give_up else None,
        )
        log.info(
            "callback_sent",
            event_id=event.event_id,
            callback_event=event.event,
            attempt=attempts,
            status=status,
            delivered=delivered,
            gave_up=give_up,
        )
        if delivered:
            self._after_delivery(event, headers)
        elif not give_up:
            delay = min(MAX_RETRY_DELAY_SECONDS, self._retry_seconds * 2 ** (attempts - 1))
            self._push(event, attempts, delay)

    def _after_delivery(self, event: EventRecord, headers: Mapping[str, str]) -> None:
        """Fault hooks reached once per delivered event."""
        if self._faults.should("duplicate_callback"):
            status = self._post(event.body, self._headers(event.body, self._signer))
            log.warning(
                "fault_fired", fault="duplicate_callback", event_id=event.event_id, status=status
            )
        if self._faults.should("replayed_callback"):
            status = self._post(event.body, headers)
            log.warning(
                "fault_fired", fault="replayed_callback", event_id=event.event_id, status=status
            )
