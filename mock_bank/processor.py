"""The bank's back office: takes request files from ``/inbox``, pays, answers in ``/outbox``.

Every ``poll_interval_seconds`` the processor lists ``/inbox`` and takes each final-named
``PAY_<serial>_<nn>.txt`` whose ``.sig`` exists under its final name too and which it has not
processed before (names starting with a dot are ignored). For each file taken:

1. verify the detached signature with the gateway's public key (``F001`` on failure);
2. parse and validate the file (``F002`` on failure);
3. in **one** ledger transaction: decide each item (dedupe by item serial when configured,
   else rules, then the account registry), record the credits and item results, render and
   sign the result file, and record the request file as processed together with that result;
4. ``result_delay_seconds`` after taking the file, write ``RET_<serial>_<nn>.txt.sig`` and
   then ``RET_<serial>_<nn>.txt`` to ``/outbox``, each as ``.<name>.part`` renamed to its
   final name, and mark the result written. Waiting results are kept in a heap, so a delay
   never blocks other files; results decided but not yet written when the bank stopped are
   written on the next start.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Final

import structlog
from cryptography.hazmat.primitives.asymmetric import rsa

from mock_bank import codes
from mock_bank.accounts import AccountRegistry
from mock_bank.fileformat import (
    FileRejectedError,
    ItemStatus,
    RequestFile,
    RequestItem,
    ResultItem,
    parse_request,
    parse_request_name,
    render_rejected_result,
    render_result,
    result_name,
    signature_name,
    temp_name,
)
from mock_bank.ledger import Ledger, LedgerTxn, PendingResult
from mock_bank.masking import mask_tail
from mock_bank.rules import Rule, decide
from mock_bank.signing import sign_file, verify_file

log = structlog.get_logger("mock_bank.processor")

#: Asia/Shanghai as a fixed UTC+08:00 offset: China has had no daylight saving time since
#: 1991, and a fixed offset needs no tz database on the host (slim images lack one).
SHANGHAI: Final = timezone(timedelta(hours=8), "Asia/Shanghai")

#: After this many unexpected errors on the same file the processor stops retrying it (an
#: operator has to look); format and signature problems are not errors but rejections.
_MAX_ATTEMPTS: Final = 3

Clock = Callable[[], datetime]


def shanghai_now() -> datetime:
    return datetime.now(SHANGHAI)


@dataclass(order=True)
class _Due:
    due: float
    seq: int
    pending: PendingResult = field(compare=False)


class Processor:
    """Scans the inbox, decides, records, and writes signed result files."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        inbox: Path,
        outbox: Path,
        bank_key: rsa.RSAPrivateKey,
        bank_key_id: str,
        gateway_public_key: rsa.RSAPublicKey,
        gateway_key_id: str | None = None,
        registry: AccountRegistry | None = None,
        rules: Sequence[Rule] = (),
        dedupe_by_serial: bool = True,
        result_delay_seconds: float = 1.0,
        poll_interval_seconds: float = 0.2,
        clock: Clock = shanghai_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ledger = ledger
        self.inbox = inbox
        self.outbox = outbox
        self._bank_key = bank_key
        self._bank_key_id = bank_key_id
        self._gateway_key = gateway_public_key
        self._gateway_key_id = gateway_key_id
        self._registry = registry
        self._rules = tuple(rules)
        self._dedupe = dedupe_by_serial
        self._delay = result_delay_seconds
        self._poll = poll_interval_seconds
        self._clock = clock
        self._monotonic = monotonic

        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = itertools.count()
        self._due: list[_Due] = []
        self._processed: set[str] = ledger.processed_names()
        self._ignored: set[str] = set()
        self._attempts: dict[str, int] = {}
        for pending in ledger.pending_results():  # decided before a stop, never written
            heapq.heappush(self._due, _Due(self._monotonic(), next(self._seq), pending))

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("already started")
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.outbox.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mock-bank-processor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("processor_tick_failed")
            self._stop.wait(self._next_wait())

    def _next_wait(self) -> float:
        with self._lock:
            if not self._due:
                return self._poll
            return max(0.0, min(self._poll, self._due[0].due - self._monotonic()))

    # --- one round ----------------------------------------------------------------------------

    def tick(self) -> list[str]:
        """Write due results, take new request files, write results already due (delay 0).
        Returns the names of the request files taken."""
        with self._lock:
            self.write_due()
            taken = self.scan()
            self.write_due()
            return taken

    @property
    def pending_count(self) -> int:
        with self._lock:
            return len(self._due)

    def _candidates(self) -> list[str]:
        try:
            names = os.listdir(self.inbox)
        except FileNotFoundError:
            return []
        present = set(names)
        out: list[str] = []
        for name in sorted(names):
            if name.startswith(".") or name in self._processed or not name.endswith(".txt"):
                continue
            if parse_request_name(name) is None:
                if name not in self._ignored:
                    self._ignored.add(name)
                    log.warning("inbox_name_ignored", file=name)
                continue
            if signature_name(name) in present and self._attempts.get(name, 0) < _MAX_ATTEMPTS:
                out.append(name)
        return out

    def scan(self) -> list[str]:
        taken: list[str] = []
        for name in self._candidates():
            try:
                if self._take(name):
                    taken.append(name)
            except Exception:
                attempts = self._attempts[name] = self._attempts.get(name, 0) + 1
                log.exception(
                    "request_processing_failed",
                    file=name,
                    attempt=attempts,
                    gives_up=attempts >= _MAX_ATTEMPTS,
                )
        return taken

    def write_due(self) -> list[str]:
        written: list[str] = []
        while self._due and self._due[0].due <= self._monotonic():
            entry = heapq.heappop(self._due)
            try:
                self._write_result(entry.pending)
            except Exception:
                log.exception("result_write_failed", file=entry.pending.result_name)
                entry.due = self._monotonic() + self._poll
                heapq.heappush(self._due, entry)
                break
            written.append(entry.pending.result_name)
        return written

    # --- taking a request file ----------------------------------------------------------------

    def _take(self, name: str) -> bool:
        parsed = parse_request_name(name)
        if parsed is None:  # pragma: no cover - filtered by _candidates
            return False
        serial, file_no = parsed
        took = self._monotonic()
        now = self._clock()
        try:
            data = (self.inbox / name).read_bytes()
            sig = (self.inbox / signature_name(name)).read_bytes()
        except FileNotFoundError:
            return False  # removed by the sender meanwhile; look again next round
        sha256 = hashlib.sha256(data).hexdigest()
        log.info("request_taken", file=name, sha256=sha256, size=len(data))

        request: RequestFile | None = None
        rejection: FileRejectedError | None = None
        try:
            verify_file(data, sig, self._gateway_key, expected_key_id=self._gateway_key_id)
            request = parse_request(data, expected_serial=serial, expected_file_no=file_no)
        except FileRejectedError as exc:
            rejection = exc

        out_name = result_name(serial, file_no)
        with self._ledger.begin() as txn:
            if txn.is_processed(name):
                self._processed.add(name)
                return False
            if request is None:
                assert rejection is not None  # noqa: S101 - one of the two is set
                result = render_rejected_result(
                    batch_serial=serial,
                    file_no=file_no,
                    reject_code=rejection.code,
                    processing_date=now.date(),
                )
                result_sig = sign_file(result, self._bank_key, self._bank_key_id)
                txn.add_request_file(
                    name=name,
                    sha256=sha256,
                    batch_serial=serial,
                    file_no=file_no,
                    status="rejected",
                    reject_code=rejection.code,
                    reject_reason=str(rejection),
                    processed_at=now.isoformat(),
                    result_name=out_name,
                    result_bytes=result,
                    result_sig=result_sig,
                )
            else:
                items = [self._settle(txn, request, item, name, now) for item in request.items]
                paid = [i for i in items if i.status == "S"]
                failed = [i for i in items if i.status == "F"]
                result = render_result(
                    batch_serial=serial,
                    file_no=file_no,
                    items=items,
                    processing_date=now.date(),
                )
                result_sig = sign_file(result, self._bank_key, self._bank_key_id)
                txn.add_request_file(
                    name=name,
                    sha256=sha256,
                    batch_serial=serial,
                    file_no=file_no,
                    status="accepted",
                    processed_at=now.isoformat(),
                    result_name=out_name,
                    result_bytes=result,
                    result_sig=result_sig,
                    item_count=len(items),
                    paid_count=len(paid),
                    paid_amount_fen=sum(i.amount_fen for i in paid),
                    failed_count=len(failed),
                    failed_amount_fen=sum(i.amount_fen for i in failed),
                )
        self._processed.add(name)

        if rejection is not None:
            log.warning(
                "request_rejected",
                file=name,
                code=rejection.code,
                reason=rejection.reason,
                line=rejection.line,
            )
        else:
            log.info(
                "request_accepted",
                file=name,
                items=len(items),
                paid=len(paid),
                failed=len(failed),
                paid_amount_fen=sum(i.amount_fen for i in paid),
            )
        pending = PendingResult(
            request_name=name, result_name=out_name, result_bytes=result, result_sig=result_sig
        )
        heapq.heappush(self._due, _Due(took + self._delay, next(self._seq), pending))
        return True

    def _settle(
        self,
        txn: LedgerTxn,
        request: RequestFile,
        item: RequestItem,
        file_name: str,
        now: datetime,
    ) -> ResultItem:
        """Decide one item, record its credit (if paid) and its result."""
        header = request.header
        repeated = False
        bank_ref: str | None = None
        earlier = txn.credit_for_serial(item.item_serial) if self._dedupe else None
        if earlier is not None:
            # A bank pays an item serial once: repeat the earlier outcome, same reference.
            code, bank_ref, repeated = codes.PAID, earlier.bank_ref, True
            message = codes.item_message(code)
        else:
            outcome = decide(
                account_no=item.account_no,
                name=item.account_name,
                id_number=item.id_number,
                amount_fen=item.amount_fen,
                registry=self._registry,
                rules=self._rules,
            )
            code, message = outcome.code, outcome.message
            if outcome.paid:
                bank_ref = txn.next_bank_ref(now.date())
                txn.add_credit(
                    item_serial=item.item_serial,
                    account_no=item.account_no,
                    amount_fen=item.amount_fen,
                    subsidy_code=header.subsidy_code,
                    period=header.period,
                    batch_serial=header.batch_serial,
                    file_name=file_name,
                    bank_ref=bank_ref,
                    credited_at=now.isoformat(),
                )
        status: ItemStatus = "S" if code == codes.PAID else "F"
        txn.add_item_result(
            file_name=file_name,
            sequence=item.sequence,
            item_serial=item.item_serial,
            account_no=item.account_no,
            amount_fen=item.amount_fen,
            status=status,
            code=code,
            message=message,
            bank_ref=bank_ref,
            repeated=repeated,
            processed_at=now.isoformat(),
        )
        if status == "F" or repeated:
            log.info(
                "item_not_credited",
                file=file_name,
                sequence=item.sequence,
                item_serial=item.item_serial,
                account_no=mask_tail(item.account_no),
                code=code,
                repeated=repeated,
            )
        return ResultItem(
            sequence=item.sequence,
            item_serial=item.item_serial,
            account_no=item.account_no,
            amount_fen=item.amount_fen,
            status=status,
            code=code,
            message=message,
            bank_ref=bank_ref or "",
            processed_at=now,
        )

    # --- writing a result ---------------------------------------------------------------------

    def _publish(self, name: str, data: bytes) -> None:
        """Write ``data`` as ``.<name>.part``, fsync, then rename to ``name``."""
        tmp = self.outbox / temp_name(name)
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.outbox / name)

    def _write_result(self, pending: PendingResult) -> None:
        self.outbox.mkdir(parents=True, exist_ok=True)
        self._publish(signature_name(pending.result_name), pending.result_sig)
        self._publish(pending.result_name, pending.result_bytes)
        self._ledger.mark_result_written(pending.request_name, self._clock().isoformat())
        log.info("result_written", file=pending.result_name, request=pending.request_name)
