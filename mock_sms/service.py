"""The centre's core, shared by both provider APIs: replay protection, the decision what
happens to a message (faults, delivery), the record, and the receipt schedule."""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from mock_sms.config import SmsCentreConfig
from mock_sms.faults import FaultSchedule
from mock_sms.masking import mask_phone, phone_hash
from mock_sms.receipts import ReceiptPusher
from mock_sms.store import MessageRecord, MessageStore

log = logging.getLogger("mock_sms")

ALIYUN: Final = "aliyun-style"
TENCENT: Final = "tencent-style"
MOBILE: Final = re.compile(r"1[3-9]\d{9}")
NONCE: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")


@dataclass
class Answer:
    """What the HTTP layer writes back. ``hold``: keep it past the client's timeout first."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False


class NonceCache:
    """Nonces seen within ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def seen_before(self, nonce: str, now: float) -> bool:
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {n: t for n, t in self._seen.items() if t > now}
            expiry = self._seen.get(nonce)
            if expiry is not None and expiry > now:
                return True
            self._seen[nonce] = now + self._ttl
            return False


class Centre:
    """State and behaviour behind both APIs."""

    def __init__(self, config: SmsCentreConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.store = MessageStore(config.db_path)
        self.faults = FaultSchedule(config.faults)
        self.nonces = {ALIYUN: NonceCache(900.0), TENCENT: NonceCache(300.0)}
        self._callbacks: dict[str, str | None] = {
            ALIYUN: config.aliyun.callback_url if config.aliyun else None,
            TENCENT: config.tencent.callback_url if config.tencent else None,
        }
        self._seq = itertools.count(len(self.store.messages()) + 1)
        self._seq_lock = threading.Lock()
        self.pusher = ReceiptPusher(
            callback_for=self.callback_url,
            secret_for=self.secret,
            attempts=config.push_attempts,
            timeout=config.push_timeout_seconds,
            clock=clock,
        )
        self.stopping = threading.Event()

    def callback_url(self, provider: str) -> str | None:
        return self._callbacks.get(provider)

    def set_callback_url(self, provider: str, url: str | None) -> None:
        if provider not in self._callbacks:
            raise ValueError(f"unknown provider {provider!r}")
        self._callbacks[provider] = url

    def secret(self, provider: str) -> str:
        if provider == ALIYUN and self.config.aliyun is not None:
            return self.config.aliyun.access_key_secret
        if provider == TENCENT and self.config.tencent is not None:
            return self.config.tencent.secret_key
        raise ValueError(f"provider {provider!r} is not configured")

    def next_seq(self) -> int:
        with self._seq_lock:
            return next(self._seq)

    def hash_phone(self, phone: str) -> str:
        return phone_hash(self.store.salt, phone)

    def refuse(self, provider: str, out_id: str, phone: str, code: str, *, permanent: bool) -> None:
        masked = mask_phone(phone)
        self.store.add_refusal(
            provider=provider, out_id=out_id, phone_masked=masked, code=code, permanent=permanent
        )
        log.info("refused provider=%s out_id=%s phone=%s code=%s", provider, out_id, masked, code)

    def accept(
        self,
        *,
        provider: str,
        provider_ref: str,
        out_id: str,
        phone: str,
        sign_name: str,
        template: str,
        params: str,
        codes: tuple[str, str],
        receipt_body: Callable[[MessageRecord], bytes],
    ) -> MessageRecord:
        """Record an accepted message and schedule its receipt(s). ``codes``: the report
        codes for (delivered, undelivered). Every receipt hook is reached exactly once per
        accepted message, so the fault streams stay aligned with the message sequence."""
        now = self.clock()
        late = self.faults.should("receipt_late", provider)
        lost = self.faults.should("receipt_lost", provider)
        forged = self.faults.should("forged_receipt", provider)
        twice = self.faults.should("receipt_twice", provider)
        delivered = not self.config.faults.undeliverable(phone)
        due = now + self.config.receipt_delay_seconds
        if late:
            due += self.config.late_receipt_seconds
        record = self.store.add_message(
            provider=provider,
            out_id=out_id,
            provider_ref=provider_ref,
            phone_masked=mask_phone(phone),
            phone_hash=self.hash_phone(phone),
            sign_name=sign_name,
            template=template,
            params=params,
            accepted_epoch=now,
            report_due=due,
            delivered=delivered,
            report_code=codes[0] if delivered else codes[1],
        )
        log.info(
            "accepted provider=%s out_id=%s ref=%s phone=%s template=%s late=%s lost=%s "
            "twice=%s forged=%s",
            provider,
            out_id,
            provider_ref,
            record.phone_masked,
            template,
            late,
            lost,
            twice,
            forged,
        )
        if not lost:
            body = receipt_body(record)
            label = f"out_id={out_id}"
            if forged:
                self.pusher.schedule(due, provider, body, label, forged=True)
            self.pusher.schedule(due, provider, body, label)
            if twice:
                self.pusher.schedule(due + 0.05, provider, body, label)
        return record
