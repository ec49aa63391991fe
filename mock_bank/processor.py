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

A fixed-width request file accepted also gets its account movements file
``ACT_<serial>_<nn>.txt`` (the debit of every item it credited, kept in
:mod:`mock_bank.outbound`), written right **before** the result file; a 退票 later writes
``ACT_<serial>_<nn>_R<k>.txt`` (a credit naming the item).

With ``format = "iso20022-v1"`` the same steps take ``P001_<serial>_<nn>.xml`` (pain.001) and
answer with ``P002_…xml`` (pain.002) and, when anything was credited, ``C054_…xml``
(camt.054, kept in :mod:`mock_bank.outbound` and written right after the pain.002).

Fault hook points (:mod:`mock_bank.faults`): ``delay_results`` and ``restart`` once per
request file taken, ``malformed_result_file`` and ``partial_result_file`` once per file the
bank writes to ``/outbox``, ``bounce_after_paid`` once per credit made; fixed-width only:
``movement_missing_debit`` and then (if it did not fire) ``movement_double_debit`` once per
credit booked in an ``ACT_…`` file; ``tampered_result_file`` and then (if it did not fire)
``republish_result_file`` once per accepted result file with a paid line (the later version
is kept in :mod:`mock_bank.outbound`; :meth:`Processor.republish_now` writes it at once).
"""

from __future__ import annotations

import dataclasses
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

from mock_bank import codes, outbound
from mock_bank import iso20022 as iso
from mock_bank.accounts import AccountRegistry
from mock_bank.faults import FaultSchedule, malformed_file, truncated_file
from mock_bank.fileformat import (
    PAYMENT_DEBIT_CODE,
    PAYMENT_DEBIT_TEXT,
    FileRejectedError,
    ItemStatus,
    Movement,
    RequestFile,
    RequestItem,
    ResultItem,
    SignatureError,
    movements_name,
    parse_request,
    parse_request_name,
    render_movements,
    render_rejected_result,
    render_result,
    result_name,
    signature_name,
    temp_name,
)
from mock_bank.ledger import Ledger, LedgerTxn, PendingResult
from mock_bank.masking import mask_tail
from mock_bank.outbound import OutboundFile, Republish
from mock_bank.rules import Rule, decide
from mock_bank.signing import PrivateKey, PublicKey, sign_file, verify_file

log = structlog.get_logger("mock_bank.processor")

#: Asia/Shanghai as a fixed UTC+08:00 offset: China has had no daylight saving time since
#: 1991, and a fixed offset needs no tz database on the host (slim images lack one).
SHANGHAI: Final = timezone(timedelta(hours=8), "Asia/Shanghai")

#: After this many unexpected errors on the same file the processor stops retrying it (an
#: operator has to look); format and signature problems are not errors but rejections.
_MAX_ATTEMPTS: Final = 3

FW_FORMAT: Final = "fw-gb18030-v1"
#: The ledger's reversal entry of a bounced item (fault ``bounce_after_paid``).
RETURN_CODE: Final = "R001"
RETURN_REASON: Final = "退票"

Clock = Callable[[], datetime]


def shanghai_now() -> datetime:
    return datetime.now(SHANGHAI)


@dataclass(frozen=True, slots=True)
class _ReturnJob:
    """Bounce a paid item now (fault ``bounce_after_paid``): ``file_returns.id``."""

    return_id: int


@dataclass(frozen=True, slots=True)
class _RepublishJob:
    """Publish a result file again (faults ``republish_result_file``,
    ``tampered_result_file``): ``file_republishes.id``."""

    republish_id: int


#: What the heap holds: a result file, an extra file (camt.054), a return to perform, or a
#: result file to publish again.
_Job = PendingResult | OutboundFile | _ReturnJob | _RepublishJob


@dataclass(order=True)
class _Due:
    due: float
    seq: int
    pending: _Job = field(compare=False)


class Processor:
    """Scans the inbox, decides, records, and writes signed result files."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        inbox: Path,
        outbox: Path,
        bank_key: PrivateKey,
        bank_key_id: str,
        gateway_public_key: PublicKey,
        gateway_key_id: str | None = None,
        registry: AccountRegistry | None = None,
        rules: Sequence[Rule] = (),
        dedupe_by_serial: bool = True,
        result_delay_seconds: float = 1.0,
        poll_interval_seconds: float = 0.2,
        clock: Clock = shanghai_now,
        monotonic: Callable[[], float] = time.monotonic,
        file_format: str = FW_FORMAT,
        faults: FaultSchedule | None = None,
    ) -> None:
        if file_format not in (FW_FORMAT, iso.FORMAT):
            raise ValueError(f"unknown file format {file_format!r}")
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
        self.file_format = file_format
        self._iso = file_format == iso.FORMAT
        self._parse_name = iso.parse_request_name if self._iso else parse_request_name
        self._suffix = ".xml" if self._iso else ".txt"
        self.faults = faults if faults is not None else FaultSchedule.never()
        outbound.ensure_schema(ledger)

        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = itertools.count()
        self._due: list[_Due] = []
        self._processed: set[str] = set()
        self._ignored: set[str] = set()
        self._attempts: dict[str, int] = {}
        self._load_state()

    def _load_state(self) -> None:
        """What a (re)started bank knows: the files it processed and what it still owes —
        results decided but never written, and the extra files and returns of results
        already written."""
        now = self._monotonic()
        self._processed = self._ledger.processed_names()
        for pending in self._ledger.pending_results():  # decided before a stop, never written
            self._push(now, pending)
        for extra in outbound.pending_files(self._ledger):
            self._push(now, extra)
        for scheduled in outbound.scheduled_returns(self._ledger):
            self._push(now + scheduled.delay_seconds, _ReturnJob(scheduled.id))
        for again in outbound.pending_republishes(self._ledger):
            self._push(now + again.delay_seconds, _RepublishJob(again.id))

    def _push(self, due: float, job: _Job) -> None:
        heapq.heappush(self._due, _Due(due, next(self._seq), job))

    def simulate_restart(self) -> None:
        """Drop everything held in memory and reload it from the ledger, as a restarted bank
        process would (fault ``restart``)."""
        with self._lock:
            self._due.clear()
            self._processed = set()
            self._ignored.clear()
            self._attempts.clear()
            self._load_state()
            pending = len(self._due)
        log.warning("fault_restart", pending=pending)

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
            if name.startswith(".") or name in self._processed or not name.endswith(self._suffix):
                continue
            if self._parse_name(name) is None:
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
                done = self._run_job(entry.pending)
            except Exception:
                log.exception("result_write_failed", file=_job_name(entry.pending))
                entry.due = self._monotonic() + self._poll
                heapq.heappush(self._due, entry)
                break
            if done is not None:
                written.append(done)
        return written

    def _run_job(self, job: _Job) -> str | None:
        """Write a result or extra file (returns its name), or perform a return."""
        if isinstance(job, PendingResult):
            self._write_result(job)
            return job.result_name
        if isinstance(job, OutboundFile):
            self._write_extra(job)
            return job.name
        if isinstance(job, _RepublishJob):
            return self._do_republish(job.republish_id)
        self._do_return(job.return_id)
        return None

    # --- taking a request file ----------------------------------------------------------------

    def _take(self, name: str) -> bool:
        if self._iso:
            return self._take_iso(name)
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
                result = self._faulty(result, out_name)
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
                paid_fresh: list[tuple[str, int]] = []
                items = [
                    self._settle(txn, request, item, name, now, paid_fresh)
                    for item in request.items
                ]
                paid = [i for i in items if i.status == "S"]
                failed = [i for i in items if i.status == "F"]
                result = render_result(
                    batch_serial=serial,
                    file_no=file_no,
                    items=items,
                    processing_date=now.date(),
                )
                result = self._faulty(result, out_name)
                result, result_sig = self._plan_republish(
                    txn,
                    name,
                    out_name,
                    result,
                    _fw_corrected(
                        items,
                        lambda changed: render_result(
                            batch_serial=serial,
                            file_no=file_no,
                            items=changed,
                            processing_date=now.date(),
                        ),
                    ),
                )
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
                self._add_movements(txn, request, name, now, paid_fresh)
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
        self._schedule_result(pending, took)
        return True

    def _add_movements(
        self,
        txn: LedgerTxn,
        request: RequestFile,
        request_name: str,
        now: datetime,
        paid_fresh: Sequence[tuple[str, int]],
    ) -> None:
        """The account movements file of an accepted fixed-width request: one booking (one
        reference) debiting the payer account for every item credited by this file — none
        when nothing was (the file then says nothing was booked). Hook points
        ``movement_missing_debit`` (the item's debit is not booked) and
        ``movement_double_debit`` (booked a second time, under its own reference), once per
        credit."""
        header = request.header
        booked_on = now.date()
        ref = txn.next_bank_ref(booked_on)
        movements: list[Movement] = []
        doubled: list[Movement] = []
        for item_serial, amount_fen in paid_fresh:
            debit = Movement(
                direction="D",
                amount_fen=amount_fen,
                booking_date=booked_on,
                bank_ref=ref,
                item_serial=item_serial,
                reason_code=PAYMENT_DEBIT_CODE,
                description=PAYMENT_DEBIT_TEXT,
            )
            if self.faults.should("movement_missing_debit"):
                log.warning(
                    "fault_movement_missing_debit", file=request_name, item_serial=item_serial
                )
                continue
            movements.append(debit)
            if self.faults.should("movement_double_debit"):
                log.warning(
                    "fault_movement_double_debit", file=request_name, item_serial=item_serial
                )
                doubled.append(
                    Movement(
                        direction="D",
                        amount_fen=amount_fen,
                        booking_date=booked_on,
                        bank_ref=txn.next_bank_ref(booked_on),
                        item_serial=item_serial,
                        reason_code=PAYMENT_DEBIT_CODE,
                        description=PAYMENT_DEBIT_TEXT,
                    )
                )
        notice_name = movements_name(header.batch_serial, header.file_no)
        data = render_movements(
            notice_id=f"ACT{header.batch_serial}{header.file_no:02d}",
            batch_serial=header.batch_serial,
            file_no=header.file_no,
            payer_account=header.payer_account,
            created_at=now,
            movements=movements + doubled,
        )
        data = self._faulty(data, notice_name)
        outbound.add_file(
            txn,
            name=notice_name,
            request_name=request_name,
            data=data,
            sig=sign_file(data, self._bank_key, self._bank_key_id),
            created_at=now.isoformat(),
        )

    def _schedule_result(self, pending: PendingResult, took: float) -> None:
        """Hold a decided result for ``result_delay_seconds`` (hook points ``delay_results``
        and ``restart``: the ledger already has it, so a restart loses nothing)."""
        delay = self._delay
        if self.faults.should("delay_results"):
            delay = self.faults.delay_results_seconds
            log.warning("fault_delay_results", file=pending.result_name, delay_seconds=delay)
        if self.faults.should("restart"):
            self.simulate_restart()  # reloads this result from the ledger (due at once)
            return
        self._push(took + delay, pending)

    def _faulty(self, data: bytes, name: str) -> bytes:
        """Hook points ``malformed_result_file`` and ``partial_result_file``, reached once
        each per file the bank writes to ``/outbox``; the bytes returned are signed and
        recorded as they are. If both fire, the file is malformed."""
        malformed = self.faults.should("malformed_result_file")
        partial = self.faults.should("partial_result_file")
        if malformed:
            log.warning("fault_malformed_result_file", file=name)
            return malformed_file(data)
        if partial:
            log.warning("fault_partial_result_file", file=name)
            return truncated_file(data)
        return data

    # --- iso20022-v1 ----------------------------------------------------------------------------

    def _take_iso(self, name: str) -> bool:
        """Take one ``P001_<serial>_<nn>.xml``: signature (``DS0B``), structure (``FF01``,
        ``AM10``, ``DU05``), then decide, record and answer like a fixed-width file."""
        parsed = iso.parse_request_name(name)
        if parsed is None:  # pragma: no cover - filtered by _candidates
            return False
        serial, file_no = parsed
        took = self._monotonic()
        now = self._clock()
        try:
            data = (self.inbox / name).read_bytes()
            sig = (self.inbox / signature_name(name)).read_bytes()
        except FileNotFoundError:
            return False
        sha256 = hashlib.sha256(data).hexdigest()
        log.info("request_taken", file=name, sha256=sha256, size=len(data))

        expected_id = iso.message_id(serial, file_no)
        request: iso.Pain001 | None = None
        reject_code = reject_reason = ""
        echo_count: int | None = None
        echo_sum: str | None = None
        try:
            verify_file(data, sig, self._gateway_key, expected_key_id=self._gateway_key_id)
        except SignatureError as exc:
            reject_code, reject_reason = iso.SIGNATURE_INVALID, exc.reason
        else:
            try:
                request = iso.parse_pain001(data, expected_msg_id=expected_id)
            except iso.MessageRejectedError as exc:
                reject_code, reject_reason = exc.code, exc.reason
                echo_count, echo_sum = exc.nb_of_txs, exc.ctrl_sum

        out_name = iso.status_report_name(serial, file_no)
        report_id = f"P002{expected_id}"
        paid_fresh: list[tuple[str, int]] = []
        statuses: list[iso.TransactionStatus] = []
        with self._ledger.begin() as txn:
            if txn.is_processed(name):
                self._processed.add(name)
                return False
            if request is None:
                report = iso.render_rejected_report(
                    msg_id=report_id,
                    created=now,
                    original_msg_id=expected_id,
                    reason=reject_code,
                    nb_of_txs=echo_count,
                    ctrl_sum=echo_sum,
                )
                report = self._faulty(report, out_name)
                report_sig = sign_file(report, self._bank_key, self._bank_key_id)
                txn.add_request_file(
                    name=name,
                    sha256=sha256,
                    batch_serial=serial,
                    file_no=file_no,
                    status="rejected",
                    reject_code=reject_code,
                    reject_reason=reject_reason,
                    processed_at=now.isoformat(),
                    result_name=out_name,
                    result_bytes=report,
                    result_sig=report_sig,
                )
            else:
                for tx in request.transactions:
                    statuses.append(
                        self._settle_iso(txn, request, tx, name, serial, file_no, now, paid_fresh)
                    )
                report = iso.render_status_report(
                    msg_id=report_id, created=now, request=request, statuses=statuses
                )
                report = self._faulty(report, out_name)
                report, report_sig = self._plan_republish(
                    txn,
                    name,
                    out_name,
                    report,
                    _iso_corrected(
                        statuses,
                        lambda changed: iso.render_status_report(
                            msg_id=report_id, created=now, request=request, statuses=changed
                        ),
                    ),
                )
                paid = [s for s in statuses if s.status == iso.ACSC]
                failed = [s for s in statuses if s.status == iso.RJCT]
                txn.add_request_file(
                    name=name,
                    sha256=sha256,
                    batch_serial=serial,
                    file_no=file_no,
                    status="accepted",
                    processed_at=now.isoformat(),
                    result_name=out_name,
                    result_bytes=report,
                    result_sig=report_sig,
                    item_count=len(statuses),
                    paid_count=len(paid),
                    paid_amount_fen=sum(s.amount_fen for s in paid),
                    failed_count=len(failed),
                    failed_amount_fen=sum(s.amount_fen for s in failed),
                )
                if paid_fresh:  # the batch debit covers the credits made for this file
                    notice_name = iso.notification_name(serial, file_no)
                    notice = iso.render_debit_notification(
                        msg_id=f"C054{expected_id}",
                        created=now,
                        payer_account=request.debtor_account,
                        booking_date=now.date(),
                        bank_ref=txn.next_bank_ref(now.date()),
                        request=request,
                        paid=paid_fresh,
                    )
                    notice = self._faulty(notice, notice_name)
                    outbound.add_file(
                        txn,
                        name=notice_name,
                        request_name=name,
                        data=notice,
                        sig=sign_file(notice, self._bank_key, self._bank_key_id),
                        created_at=now.isoformat(),
                    )
        self._processed.add(name)

        if request is None:
            log.warning("request_rejected", file=name, code=reject_code, reason=reject_reason)
        else:
            log.info(
                "request_accepted",
                file=name,
                items=len(statuses),
                paid=sum(1 for s in statuses if s.status == iso.ACSC),
                failed=sum(1 for s in statuses if s.status == iso.RJCT),
                credited_amount_fen=sum(amount for _, amount in paid_fresh),
            )
        pending = PendingResult(
            request_name=name, result_name=out_name, result_bytes=report, result_sig=report_sig
        )
        self._schedule_result(pending, took)
        return True

    def _settle_iso(
        self,
        txn: LedgerTxn,
        request: iso.Pain001,
        tx: iso.CreditTransfer,
        file_name: str,
        batch_serial: str,
        file_no: int,
        now: datetime,
        paid_fresh: list[tuple[str, int]],
    ) -> iso.TransactionStatus:
        """Decide one transaction, record its credit (if paid) and its result; a fresh
        credit is appended to ``paid_fresh`` (it goes into the camt.054 debit)."""
        code, message, bank_ref, repeated = self._decide_item(
            txn,
            item_serial=tx.end_to_end_id,
            account_no=tx.account_no,
            name=tx.creditor_name,
            id_number=tx.creditor_id,
            amount_fen=tx.amount_fen,
            subsidy_code=tx.subsidy_code,
            period=tx.period,
            batch_serial=batch_serial,
            file_no=file_no,
            payer_account=request.debtor_account,
            file_name=file_name,
            now=now,
        )
        paid = code == codes.PAID
        reason = None if paid else iso.REASON_CODES.get(code, iso.REASON_CODES[codes.OTHER_FAILURE])
        txn.add_item_result(
            file_name=file_name,
            sequence=tx.instr_id,
            item_serial=tx.end_to_end_id,
            account_no=tx.account_no,
            amount_fen=tx.amount_fen,
            status="S" if paid else "F",
            code=iso.ACSC if reason is None else reason,
            message=message,
            bank_ref=bank_ref,
            repeated=repeated,
            processed_at=now.isoformat(),
        )
        if paid and not repeated:
            paid_fresh.append((tx.end_to_end_id, tx.amount_fen))
        if not paid or repeated:
            log.info(
                "item_not_credited",
                file=file_name,
                sequence=tx.instr_id,
                item_serial=tx.end_to_end_id,
                account_no=mask_tail(tx.account_no),
                code=reason or iso.ACSC,
                repeated=repeated,
            )
        return iso.TransactionStatus(
            instr_id=tx.instr_id,
            end_to_end_id=tx.end_to_end_id,
            status=iso.ACSC if paid else iso.RJCT,
            reason=reason,
            accepted_at=now,
            bank_ref=bank_ref if paid else None,
            amount_fen=tx.amount_fen,
            account_no=tx.account_no,
        )

    # --- deciding one item (both formats) -------------------------------------------------------

    def _decide_item(
        self,
        txn: LedgerTxn,
        *,
        item_serial: str,
        account_no: str,
        name: str,
        id_number: str,
        amount_fen: int,
        subsidy_code: str,
        period: str,
        batch_serial: str,
        file_no: int,
        payer_account: str,
        file_name: str,
        now: datetime,
    ) -> tuple[str, str, str | None, bool]:
        """Dedupe, rules, registry; credit when paid. Returns ``(code, message, bank_ref,
        repeated)`` with the bank's own item codes (``mock_bank.codes``). Hook point
        ``bounce_after_paid``: once per credit made."""
        earlier = txn.credit_for_serial(item_serial) if self._dedupe else None
        if earlier is not None:
            # A bank pays an item serial once: repeat the earlier outcome, same reference.
            return codes.PAID, codes.item_message(codes.PAID), earlier.bank_ref, True
        outcome = decide(
            account_no=account_no,
            name=name,
            id_number=id_number,
            amount_fen=amount_fen,
            registry=self._registry,
            rules=self._rules,
        )
        if not outcome.paid:
            return outcome.code, outcome.message, None, False
        bank_ref = txn.next_bank_ref(now.date())
        txn.add_credit(
            item_serial=item_serial,
            account_no=account_no,
            amount_fen=amount_fen,
            subsidy_code=subsidy_code,
            period=period,
            batch_serial=batch_serial,
            file_name=file_name,
            bank_ref=bank_ref,
            credited_at=now.isoformat(),
        )
        if self.faults.should("bounce_after_paid"):
            outbound.schedule_return(
                txn,
                credit_id=outbound.credit_id_for_ref(txn, bank_ref),
                request_name=file_name,
                batch_serial=batch_serial,
                file_no=file_no,
                item_serial=item_serial,
                amount_fen=amount_fen,
                payer_account=payer_account,
                delay_seconds=self.faults.bounce_after_seconds,
                scheduled_at=now.isoformat(),
            )
            log.warning(
                "fault_bounce_after_paid_scheduled", file=file_name, item_serial=item_serial
            )
        return outcome.code, outcome.message, bank_ref, False

    def _settle(
        self,
        txn: LedgerTxn,
        request: RequestFile,
        item: RequestItem,
        file_name: str,
        now: datetime,
        paid_fresh: list[tuple[str, int]],
    ) -> ResultItem:
        """Decide one item, record its credit (if paid) and its result; a fresh credit is
        appended to ``paid_fresh`` (it is debited in the ``ACT_…`` file)."""
        header = request.header
        code, message, bank_ref, repeated = self._decide_item(
            txn,
            item_serial=item.item_serial,
            account_no=item.account_no,
            name=item.account_name,
            id_number=item.id_number,
            amount_fen=item.amount_fen,
            subsidy_code=header.subsidy_code,
            period=header.period,
            batch_serial=header.batch_serial,
            file_no=header.file_no,
            payer_account=header.payer_account,
            file_name=file_name,
            now=now,
        )
        status: ItemStatus = "S" if code == codes.PAID else "F"
        if status == "S" and not repeated:
            paid_fresh.append((item.item_serial, item.amount_fen))
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
        if not self._iso:
            # fixed-width: the account movements go out before the result file, so a reader
            # that has the result has (in the same or an earlier listing) the movements
            for extra in outbound.pending_files(self._ledger, pending.request_name):
                self._write_extra(extra)
        again = outbound.republish_of(self._ledger, pending.request_name)
        first = again.first_data if again is not None else None
        self._publish(signature_name(pending.result_name), pending.result_sig)
        self._publish(pending.result_name, pending.result_bytes if first is None else first)
        self._ledger.mark_result_written(pending.request_name, self._clock().isoformat())
        log.info("result_written", file=pending.result_name, request=pending.request_name)
        if first is not None:
            log.warning("fault_tampered_result_file", file=pending.result_name)
        # What follows the result: the camt.054 at once, returns after their delay.
        now = self._monotonic()
        for extra in outbound.pending_files(self._ledger, pending.request_name):
            self._push(now, extra)
        for scheduled in outbound.scheduled_returns(self._ledger, pending.request_name):
            self._push(now + scheduled.delay_seconds, _ReturnJob(scheduled.id))
        if again is not None and again.written_at is None:
            self._push(now + again.delay_seconds, _RepublishJob(again.id))

    def _plan_republish(
        self,
        txn: LedgerTxn,
        request_name: str,
        result_name: str,
        result: bytes,
        corrected: bytes | None,
    ) -> tuple[bytes, bytes]:
        """Sign the result file; hook points ``tampered_result_file``, then (if it did not
        fire) ``republish_result_file``, once per accepted result file with a paid line
        (``corrected``: the file with its first paid line failed). Both versions get the
        same size (:func:`_same_size`). Tampered: ``corrected`` is written first under the
        genuine ``.sig`` (it does not verify), the genuine file later. Republished: the
        genuine file first, later ``corrected``, signed. The ledger is not changed: the
        credit stands. Returns the result file and its signature."""
        kind = ""
        if corrected is not None:
            if self.faults.should("tampered_result_file"):
                kind = "tampered_first"
            elif self.faults.should("republish_result_file"):
                kind = "changed"
        if corrected is None or not kind:
            return result, sign_file(result, self._bank_key, self._bank_key_id)
        result, corrected = _same_size(result, corrected)
        result_sig = sign_file(result, self._bank_key, self._bank_key_id)
        if kind == "tampered_first":
            first, data, sig = corrected, result, result_sig
        else:
            first, data = None, corrected
            sig = sign_file(corrected, self._bank_key, self._bank_key_id)
        outbound.add_republish(
            txn,
            request_name=request_name,
            name=result_name,
            kind=kind,
            first_data=first,
            data=data,
            sig=sig,
            delay_seconds=self.faults.republish_after_seconds,
            created_at=self._clock().isoformat(),
        )
        return result, result_sig

    def _do_republish(self, republish_id: int) -> str | None:
        """Publish a result file's later version (signature first, as for any result)."""
        again = outbound.get_republish(self._ledger, republish_id)
        if again.written_at is not None:
            return None
        self._publish(signature_name(again.name), again.sig)
        self._publish(again.name, again.data)
        outbound.mark_republished(self._ledger, again.id, self._clock().isoformat())
        event = "fault_republish_result_file" if again.kind == "changed" else "genuine_republished"
        log.warning(event, file=again.name, request=again.request_name, size=len(again.data))
        return again.name

    def republish_now(self) -> list[str]:
        """Write at once every later version owed (a control for tests and demos: the
        faults ``republish_result_file`` and ``tampered_result_file`` otherwise wait
        ``republish_after_seconds``). Returns the names written."""
        with self._lock:
            owed: list[Republish] = outbound.pending_republishes(self._ledger)
            return [name for again in owed if (name := self._do_republish(again.id))]

    def _write_extra(self, extra: OutboundFile) -> None:
        self.outbox.mkdir(parents=True, exist_ok=True)
        self._publish(signature_name(extra.name), extra.sig)
        self._publish(extra.name, extra.data)
        outbound.mark_file_written(self._ledger, extra.name, self._clock().isoformat())
        log.info("result_written", file=extra.name, request=extra.request_name)

    def _do_return(self, return_id: int) -> None:
        """Fault ``bounce_after_paid``: the item's money comes back (退票). A reversal entry
        in the ledger and a credit notice: for ``iso20022-v1`` a camt.054 ``C054_…_R<k>``,
        for ``fw-gb18030-v1`` an account movements file ``ACT_…_R<k>.txt``."""
        now = self._clock()
        with self._ledger.begin() as txn:
            scheduled = outbound.get_return(txn, return_id)
            if scheduled.reversal_id is not None:
                return
            reversal = txn.add_reversal(
                credit_id=scheduled.credit_id,
                code=RETURN_CODE,
                reason=RETURN_REASON,
                reversed_at=now.isoformat(),
            )
            k = outbound.returns_done(txn, scheduled.request_name) + 1
            if not self._iso:
                name = movements_name(scheduled.batch_serial, scheduled.file_no, k)
                data = render_movements(
                    notice_id=f"ACT{scheduled.batch_serial}{scheduled.file_no:02d}R{k}",
                    batch_serial=scheduled.batch_serial,
                    file_no=scheduled.file_no,
                    payer_account=scheduled.payer_account,
                    created_at=now,
                    movements=[
                        Movement(
                            direction="C",
                            amount_fen=scheduled.amount_fen,
                            booking_date=now.date(),
                            bank_ref=txn.next_bank_ref(now.date()),
                            item_serial=scheduled.item_serial,
                            reason_code=RETURN_CODE,
                            description=RETURN_REASON,
                        )
                    ],
                )
            else:
                name = iso.notification_name(scheduled.batch_serial, scheduled.file_no, k)
                data = iso.render_return_notification(
                    msg_id=f"C054{iso.message_id(scheduled.batch_serial, scheduled.file_no)}R{k}",
                    created=now,
                    payer_account=scheduled.payer_account,
                    booking_date=now.date(),
                    bank_ref=txn.next_bank_ref(now.date()),
                    end_to_end_id=scheduled.item_serial,
                    amount_fen=scheduled.amount_fen,
                )
            data = self._faulty(data, name)
            extra = OutboundFile(
                name=name,
                request_name=scheduled.request_name,
                data=data,
                sig=sign_file(data, self._bank_key, self._bank_key_id),
            )
            outbound.add_file(
                txn,
                name=extra.name,
                request_name=extra.request_name,
                data=extra.data,
                sig=extra.sig,
                created_at=now.isoformat(),
            )
            outbound.mark_returned(txn, return_id, reversal_id=reversal.id, notice_name=extra.name)
        log.warning(
            "item_returned",
            request=scheduled.request_name,
            item_serial=scheduled.item_serial,
            amount_fen=scheduled.amount_fen,
            notice=extra.name,
        )
        self._push(self._monotonic(), extra)


def _job_name(job: _Job) -> str:
    if isinstance(job, PendingResult):
        return job.result_name
    if isinstance(job, OutboundFile):
        return job.name
    if isinstance(job, _RepublishJob):
        return f"republish #{job.republish_id}"
    return f"return #{job.return_id}"


def _same_size(a: bytes, b: bytes) -> tuple[bytes, bytes]:
    """Two versions of a result file made the same size: fixed-width records already are;
    XML (the pretty-printed pain.002) — the shorter gets spaces before its closing
    ``</Document>`` (whitespace the schema ignores)."""
    if len(a) == len(b) or not a.startswith(b"<?xml"):
        return a, b
    closing = b"</Document>"

    def padded(data: bytes, size: int) -> bytes:
        at = data.rfind(closing)
        at = len(data) if at < 0 else at
        return data[:at] + b" " * (size - len(data)) + data[at:]

    size = max(len(a), len(b))
    return padded(a, size), padded(b, size)


def _fw_corrected(
    items: Sequence[ResultItem], render: Callable[[list[ResultItem]], bytes]
) -> bytes | None:
    """The result file again with its first paid line failed (``E104`` 账户已销户, no bank
    reference): fixed-width records, so the same size. None when nothing was paid."""
    index = next((n for n, item in enumerate(items) if item.status == "S"), None)
    if index is None:
        return None
    changed = list(items)
    changed[index] = dataclasses.replace(
        items[index],
        status="F",
        code=codes.ACCOUNT_CLOSED,
        message=codes.item_message(codes.ACCOUNT_CLOSED),
        bank_ref="",
    )
    return render(changed)


def _iso_corrected(
    statuses: Sequence[iso.TransactionStatus],
    render: Callable[[list[iso.TransactionStatus]], bytes],
) -> bytes | None:
    """The pain.002 again with its first ``ACSC`` now ``RJCT`` ``AC04``: the same size, since
    ``<StsRsnInf><Rsn><Cd>AC04</Cd></Rsn></StsRsnInf>`` and ``<AcctSvcrRef>`` with a
    20-character bank reference are both 47 bytes. None when nothing was paid."""
    index = next((n for n, st in enumerate(statuses) if st.status == iso.ACSC), None)
    if index is None:
        return None
    changed = list(statuses)
    changed[index] = dataclasses.replace(
        statuses[index],
        status=iso.RJCT,
        reason=iso.REASON_CODES[codes.ACCOUNT_CLOSED],
        bank_ref=None,
    )
    return render(changed)
