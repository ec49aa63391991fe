"""The bank behind the open API: authenticate, take, decide, answer inquiries, bounce.

A submission (``POST /openapi/v1/disbursements``) goes through, in order:

1. :meth:`ApiBank.authenticate` — ``X-Client-Id`` (401 ``CLIENT_UNKNOWN``), the signing
   headers, ``X-Key-Id`` when ``gateway_key_id`` is configured, the timestamp window ±300 s,
   the signature over the exact raw body (401 ``SIGNATURE_INVALID``), then the nonce, new
   for this client within 15 minutes (401 ``REPLAYED``; remembered only once the signature
   verified, so nobody can burn the gateway's nonces);
2. fault ``rate_limit`` → 429 ``RATE_LIMITED`` with ``Retry-After``;
3. SM4 decryption of an ``{"encrypted": …}`` body and validation
   (:mod:`mock_bank.api.validation`) → 400 / 422;
4. fault ``error_5xx_before_apply`` → 503, nothing taken;
5. *apply*, in one ledger transaction: the idempotency record by ``X-Request-Id`` — the same
   plain body again → 200 with the first answer's exact bytes; a different body → 409
   ``IDEMPOTENCY_CONFLICT``; else the disbursement and its items are recorded ``pending``
   and 202 ``accepted`` answers;
6. fault ``error_5xx_after_apply`` → 500 although taken; fault ``timeout_after_apply`` → the
   answer is held ``hold_seconds`` (longer than the client's read timeout).

``result_delay_seconds`` after taking it, a worker decides every item in **one** ledger
transaction with the bank's rules (dedupe by serial → ``[[rules]]`` → accounts registry,
:func:`mock_bank.rules.decide`), records each credit in the ledger's ``credits`` (so
``double_credits`` covers API payments; ``file_name`` is ``API_<serial>_<nn>``), marks the
disbursement ``completed`` and stages a ``disbursement.completed`` callback event. Faults at
completion: ``out_of_order_callback`` stages an ``item.returned`` event *before* it (nothing
was returned: the inquiry says so); ``bounce_after_paid`` returns one paid item
``bounce_after_seconds`` later (status ``returned``, ``R001``, a reversal in the ledger, an
``item.returned`` event).

The payer account's movements (``GET /openapi/v1/accounts/{account}/movements``,
:meth:`ApiBank.movements`) come from the bank's own ``api_movements``: each credit books a
debit of the payer account in the same transaction, each return a credit (``R001``).
Faults on the account: ``movement_missing_debit`` (an item paid and reported paid, its debit
never booked), ``movement_double_debit`` (its debit booked twice), ``silent_return`` (like
``bounce_after_paid``, but the return shows only on the account: the inquiry still says
``paid`` and no callback is staged).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final, Literal
from urllib.parse import parse_qs

import structlog

from mock_bank import codes
from mock_bank.accounts import AccountRegistry
from mock_bank.api.crypto import (
    MAX_SIGNATURE_BYTES,
    Signer,
    Verifier,
    request_string_to_sign,
    response_string_to_sign,
)
from mock_bank.api.settings import ApiConfig
from mock_bank.api.store import (
    ApiStore,
    EventKind,
    EventRecord,
    ItemRecord,
    MovementRecord,
    RequestRecord,
)
from mock_bank.api.validation import (
    RequestRejectedError,
    decrypt_body,
    parse_disbursement,
)
from mock_bank.faults import FaultSchedule
from mock_bank.ledger import Ledger, LedgerTxn
from mock_bank.masking import mask_tail
from mock_bank.processor import Clock, shanghai_now
from mock_bank.rules import Rule, decide

log = structlog.get_logger("mock_bank.api")

BASE_PATH: Final = "/openapi/v1"
DISBURSEMENTS_PATH: Final = f"{BASE_PATH}/disbursements"
ACCOUNTS_PATH: Final = f"{BASE_PATH}/accounts"
TIMESTAMP_WINDOW_SECONDS: Final = 300
RETURN_CODE: Final = "R001"
RETURN_MESSAGE: Final = "退票：账户已销户"

_NONCE: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
_TIMESTAMP: Final = re.compile(r"[0-9]{1,12}")
_ACCOUNT: Final = re.compile(r"[0-9]{1,32}")
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CURSOR: Final = re.compile(r"M([0-9]{20})")

#: Called with each callback event once it is staged (the callback sender's ``enqueue``).
EventSink = Callable[[EventRecord], None]


def json_bytes(value: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the bank's only body encoding."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_body(code: str, message: str | None = None) -> bytes:
    return json_bytes({"code": code} if message is None else {"code": code, "message": message})


def new_nonce() -> str:
    """32 characters of ``[A-Za-z0-9_-]`` from a CSPRNG."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer, before signing. ``hold_seconds``: wait this long before answering
    (fault ``timeout_after_apply``)."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    hold_seconds: float = 0.0

    @classmethod
    def error(cls, status: int, code: str, message: str | None = None) -> Reply:
        return cls(status, error_body(code, message))


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    kind: Literal["decide", "bounce", "silent_return"] = field(compare=False)
    request_id: str = field(compare=False)


class ApiBank:
    """The open API's bank logic; the HTTP layer is :mod:`mock_bank.api.server`."""

    def __init__(
        self,
        *,
        config: ApiConfig,
        ledger: Ledger,
        signer: Signer,
        verifier: Verifier,
        registry: AccountRegistry | None = None,
        rules: Sequence[Rule] = (),
        dedupe_by_serial: bool = True,
        result_delay_seconds: float = 1.0,
        faults: FaultSchedule | None = None,
        clock: Clock = shanghai_now,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = ApiStore(ledger)
        self._ledger = ledger
        self._signer = signer
        self._verifier = verifier
        self._registry = registry
        self._rules = tuple(rules)
        self._dedupe = dedupe_by_serial
        self._delay = (
            config.result_delay_seconds
            if config.result_delay_seconds is not None
            else result_delay_seconds
        )
        self.faults = faults if faults is not None else FaultSchedule.never()
        self._clock = clock
        self._wall = wall_clock
        self._event_sinks: list[EventSink] = []

        self._cond = threading.Condition()
        self._jobs: list[_Job] = []
        self._seq = itertools.count()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def add_event_sink(self, sink: EventSink) -> None:
        self._event_sinks.append(sink)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._stopping = False
        for request in self.store.processing_requests():  # taken before a stop, not decided
            self._schedule("decide", request.request_id, 0.0)
        self._thread = threading.Thread(target=self._run, name="mock-bank-api-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._jobs.clear()  # a pending bounce is dropped; undecided requests resume
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _schedule(
        self, kind: Literal["decide", "bounce", "silent_return"], request_id: str, delay: float
    ) -> None:
        with self._cond:
            job = _Job(time.monotonic() + delay, next(self._seq), kind, request_id)
            heapq.heappush(self._jobs, job)
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (
                    not self._jobs or self._jobs[0].due > time.monotonic()
                ):
                    wait = self._jobs[0].due - time.monotonic() if self._jobs else None
                    self._cond.wait(wait)
                if self._stopping:
                    return
                job = heapq.heappop(self._jobs)
            try:
                if job.kind == "decide":
                    self.decide(job.request_id)
                else:
                    self.bounce(job.request_id, announce=job.kind == "bounce")
            except Exception:
                log.exception("api_job_failed", job=job.kind, request_id=job.request_id)

    # --- signatures ---------------------------------------------------------------------------

    def authenticate(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> RequestRejectedError | None:
        """None when the request is the configured client's, correctly signed and fresh;
        else the 401 to answer. ``headers`` has lower-case names."""
        if headers.get("x-client-id") != self.config.client_id:
            return RequestRejectedError(401, "CLIENT_UNKNOWN", "unknown X-Client-Id")
        timestamp = headers.get("x-timestamp", "")
        nonce = headers.get("x-nonce", "")
        key_id = headers.get("x-key-id", "")
        signature_b64 = headers.get("x-signature", "")
        if not (timestamp and nonce and key_id and signature_b64):
            return _bad_signature("X-Timestamp, X-Nonce, X-Key-Id and X-Signature are required")
        if _NONCE.fullmatch(nonce) is None:
            return _bad_signature("X-Nonce must be 16-64 characters [A-Za-z0-9_-]")
        if _TIMESTAMP.fullmatch(timestamp) is None:
            return _bad_signature("X-Timestamp must be Unix seconds")
        if abs(self._wall() - int(timestamp)) > TIMESTAMP_WINDOW_SECONDS:
            return _bad_signature("X-Timestamp is outside the ±300 s window")
        expected_key = self.config.gateway_key_id
        if expected_key is not None and key_id != expected_key:
            return _bad_signature("X-Key-Id is not the gateway's key")
        try:
            signature = base64.b64decode(signature_b64, validate=True)
        except (binascii.Error, ValueError):
            return _bad_signature("X-Signature is not base64")
        message = request_string_to_sign(method, path, timestamp, nonce, body)
        if (
            not signature
            or len(signature) > MAX_SIGNATURE_BYTES
            or not self._verifier.verify(signature, message)
        ):
            return _bad_signature("the signature does not verify")
        if not self.store.remember_nonce(self.config.client_id, nonce, self._wall()):
            return RequestRejectedError(401, "REPLAYED", "nonce seen before")
        return None

    def signature_headers(self, status: int, path: str, body: bytes) -> dict[str, str]:
        """``X-Timestamp``, ``X-Nonce``, ``X-Key-Id``, ``X-Signature`` of a response."""
        timestamp = str(int(self._wall()))
        nonce = new_nonce()
        message = response_string_to_sign(status, path, timestamp, nonce, body)
        return {
            "X-Timestamp": timestamp,
            "X-Nonce": nonce,
            "X-Key-Id": self._signer.key_id,
            "X-Signature": base64.b64encode(self._signer.sign(message)).decode("ascii"),
        }

    # --- POST /openapi/v1/disbursements -------------------------------------------------------

    def submit(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """Steps 2–6 of the module docstring (the caller authenticated the request)."""
        if self.faults.should("rate_limit"):
            retry_after = self.config.retry_after_seconds
            log.warning("fault_fired", fault="rate_limit", retry_after=retry_after)
            return Reply(429, error_body("RATE_LIMITED"), {"Retry-After": str(retry_after)})
        request_id = headers.get("x-request-id", "")
        try:
            plain, key_id = decrypt_body(body, self.config.sm4_keys)
            disbursement = parse_disbursement(
                plain, request_id=request_id, payer_accounts=self.config.payer_accounts
            )
        except RequestRejectedError as exc:
            log.warning("disbursement_rejected", request_id=request_id, code=exc.code)
            return Reply.error(exc.status, exc.code, exc.message)
        if self.faults.should("error_5xx_before_apply"):
            log.warning("fault_fired", fault="error_5xx_before_apply", request_id=request_id)
            return Reply.error(503, "SERVICE_UNAVAILABLE", "try again later")

        body_sha256 = hashlib.sha256(plain).hexdigest()
        now = self._clock().isoformat(timespec="seconds")
        with self._ledger.begin() as txn:
            earlier = self.store.request_in(txn, disbursement.request_id)
            if earlier is None:
                ack = json_bytes(
                    {
                        "batch_serial": disbursement.batch_serial,
                        "file_no": disbursement.file_no,
                        "status": "accepted",
                        "accepted_at": now,
                    }
                )
                self.store.insert_request(
                    txn,
                    request_id=disbursement.request_id,
                    batch_serial=disbursement.batch_serial,
                    file_no=disbursement.file_no,
                    body_sha256=body_sha256,
                    sm4_key_id=key_id,
                    payer_account=disbursement.payer_account,
                    subsidy_code=disbursement.subsidy_code,
                    period=disbursement.period,
                    item_count=disbursement.item_count,
                    total_fen=disbursement.total_fen,
                    accepted_at=now,
                    ack_body=ack,
                )
                for item in disbursement.items:
                    self.store.insert_item(
                        txn,
                        request_id=disbursement.request_id,
                        seq=item.seq,
                        serial=item.serial,
                        account_no=item.account_no,
                        name=item.name,
                        id_number=item.id_number,
                        amount_fen=item.amount_fen,
                    )
        if earlier is None:
            reply = Reply(202, ack)
            self._schedule("decide", disbursement.request_id, self._delay)
            log.info(
                "disbursement_taken",
                request_id=disbursement.request_id,
                items=disbursement.item_count,
                total_fen=disbursement.total_fen,
                encrypted=key_id is not None,
            )
        elif earlier.body_sha256 == body_sha256:
            reply = Reply(200, earlier.ack_body)
            log.info("disbursement_replayed", request_id=disbursement.request_id)
        else:
            log.warning("idempotency_conflict", request_id=disbursement.request_id)
            return Reply.error(
                409, "IDEMPOTENCY_CONFLICT", "this X-Request-Id was taken with another body"
            )

        if self.faults.should("error_5xx_after_apply"):
            log.warning("fault_fired", fault="error_5xx_after_apply", request_id=request_id)
            return Reply.error(500, "INTERNAL_ERROR", "internal error")
        if self.faults.should("timeout_after_apply"):
            log.warning(
                "fault_fired",
                fault="timeout_after_apply",
                request_id=request_id,
                hold_seconds=self.config.hold_seconds,
            )
            return Reply(reply.status, reply.body, hold_seconds=self.config.hold_seconds)
        return reply

    # --- GET /openapi/v1/disbursements/{batch_serial}/{file_no} -------------------------------

    def inquire(self, batch_serial: str, file_no: int) -> Reply:
        request = self.store.request(batch_serial, file_no)
        if request is None:
            return Reply.error(404, "NOT_FOUND")
        return Reply(200, json_bytes(self.status_document(request)))

    def status_document(self, request: RequestRecord) -> dict[str, Any]:
        items = self.store.items(request.request_id)
        paid = [i for i in items if i.status == "paid"]
        failed = [i for i in items if i.status == "failed"]
        return {
            "batch_serial": request.batch_serial,
            "file_no": request.file_no,
            "status": request.status,
            "paid_count": len(paid),
            "paid_fen": sum(i.amount_fen for i in paid),
            "failed_count": len(failed),
            "failed_fen": sum(i.amount_fen for i in failed),
            "items": [_item_document(i) for i in items],
        }

    # --- GET /openapi/v1/accounts/{payer_account}/movements?date=…&cursor=… ------------------

    def movements(self, account: str, query: str) -> Reply:
        """One page of the account's booked movements on a day (the contract's rules: known
        account, ``date`` required, ``cursor`` optional and one of ours, nothing else)."""
        if _ACCOUNT.fullmatch(account) is None or (
            self.config.payer_accounts and account not in self.config.payer_accounts
        ):
            return Reply.error(404, "ACCOUNT_UNKNOWN", "not an account of this client")
        try:
            params = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError:
            return Reply.error(400, "INVALID_REQUEST", "the query is malformed")
        if set(params) - {"date", "cursor"} or any(len(v) != 1 for v in params.values()):
            return Reply.error(400, "INVALID_REQUEST", "only date and cursor, each once")
        day = params.get("date", [""])[0]
        try:
            if _DATE.fullmatch(day) is None:
                raise ValueError(day)
            date.fromisoformat(day)
        except ValueError:
            return Reply.error(400, "INVALID_REQUEST", "date must be YYYY-MM-DD")
        after = 0
        if "cursor" in params:
            match = _CURSOR.fullmatch(params["cursor"][0])
            if match is None:
                return Reply.error(400, "INVALID_REQUEST", "not a cursor of this bank")
            after = int(match.group(1))
        size = self.config.movements_page_size
        rows = self.store.movements(account, day, after_id=after, limit=size + 1)
        page, more = rows[:size], len(rows) > size
        last = page[-1].id if page else after
        doc = {
            "account": account,
            "date": day,
            "entries": [_movement_document(m) for m in page],
            "next_cursor": f"M{last:020d}" if last else "",
            "has_more": more,
        }
        log.info("movements_served", entries=len(page), has_more=more, date=day)
        return Reply(200, json_bytes(doc))

    # --- deciding -----------------------------------------------------------------------------

    def decide(self, request_id: str) -> bool:
        """Decide every pending item of a disbursement and complete it (one transaction).
        False when it was not processing (decided already)."""
        now = self._clock()
        at = now.isoformat(timespec="seconds")
        with self._ledger.begin() as txn:
            request = self.store.request_in(txn, request_id)
            if request is None or request.status != "processing":
                return False
            items = self.store.items_in(txn, request_id)
            outcomes = [self._settle(txn, request, item, now) for item in items]
            self.store.complete_request(txn, request_id, at)
            events: list[EventRecord] = []
            out_of_order = self.faults.should("out_of_order_callback")
            if out_of_order:
                events.append(self._stage_event(txn, "item.returned", request, now))
            events.append(self._stage_event(txn, "disbursement.completed", request, now))
        paid = [item for item, code in outcomes if code == codes.PAID]
        log.info(
            "disbursement_completed",
            request_id=request_id,
            items=len(items),
            paid=len(paid),
            failed=len(items) - len(paid),
            paid_fen=sum(i.amount_fen for i in paid),
        )
        if out_of_order:
            log.warning("fault_fired", fault="out_of_order_callback", request_id=request_id)
        bounceable = [i for i in self.store.items(request_id) if i.credit_id is not None]
        if bounceable and self.faults.should("bounce_after_paid"):
            log.warning(
                "fault_fired",
                fault="bounce_after_paid",
                request_id=request_id,
                after_seconds=self.config.bounce_after_seconds,
            )
            self._schedule("bounce", request_id, self.config.bounce_after_seconds)
        elif bounceable and self.faults.should("silent_return"):
            log.warning(
                "fault_fired",
                fault="silent_return",
                request_id=request_id,
                after_seconds=self.config.bounce_after_seconds,
            )
            self._schedule("silent_return", request_id, self.config.bounce_after_seconds)
        self._publish(events)
        return True

    def _settle(
        self, txn: LedgerTxn, request: RequestRecord, item: ItemRecord, now: datetime
    ) -> tuple[ItemRecord, str]:
        """Decide one item, record its credit (if paid) and its result."""
        at = now.isoformat(timespec="seconds")
        earlier = txn.credit_for_serial(item.serial) if self._dedupe else None
        credit_id: int | None = None
        bank_ref = ""
        if earlier is not None:
            # A bank pays an item serial once: repeat the earlier outcome, same reference.
            code, message, bank_ref, repeated = (
                codes.PAID,
                codes.item_message(codes.PAID),
                earlier.bank_ref,
                True,
            )
        else:
            repeated = False
            outcome = decide(
                account_no=item.account_no,
                name=item.name,
                id_number=item.id_number,
                amount_fen=item.amount_fen,
                registry=self._registry,
                rules=self._rules,
            )
            code, message = outcome.code, outcome.message
            if outcome.paid:
                bank_ref = txn.next_bank_ref(now.date())
                txn.add_credit(
                    item_serial=item.serial,
                    account_no=item.account_no,
                    amount_fen=item.amount_fen,
                    subsidy_code=request.subsidy_code,
                    period=request.period,
                    batch_serial=request.batch_serial,
                    file_name=f"API_{request.batch_serial}_{request.file_no:02d}",
                    bank_ref=bank_ref,
                    credited_at=now.isoformat(),
                )
                (credit_id,) = txn.execute(
                    "SELECT id FROM credits WHERE bank_ref = ?", (bank_ref,)
                ).fetchone()
                self._book_debit(txn, request, item, bank_ref, now)
        self.store.decide_item(
            txn,
            request_id=request.request_id,
            seq=item.seq,
            status="paid" if code == codes.PAID else "failed",
            code=code,
            message=message,
            bank_ref=bank_ref,
            credit_id=credit_id,
            repeated=repeated,
            processed_at=at,
        )
        if code != codes.PAID or repeated:
            log.info(
                "item_not_credited",
                request_id=request.request_id,
                seq=item.seq,
                item_serial=item.serial,
                account_no=mask_tail(item.account_no),
                code=code,
                repeated=repeated,
            )
        return item, code

    def _book_debit(
        self,
        txn: LedgerTxn,
        request: RequestRecord,
        item: ItemRecord,
        bank_ref: str,
        now: datetime,
    ) -> None:
        """The payer account's debit for one credited item (faults may skip it or book it
        twice: the account then disagrees with what the bank reports)."""
        if self.faults.should("movement_missing_debit"):
            log.warning(
                "fault_fired", fault="movement_missing_debit", request_id=request.request_id
            )
            return
        times = 2 if self.faults.should("movement_double_debit") else 1
        if times == 2:
            log.warning("fault_fired", fault="movement_double_debit", request_id=request.request_id)
        account = self.store.payer_account_in(txn, request.request_id)
        for _ in range(times):
            self.store.add_movement(
                txn,
                payer_account=account,
                booked_at=now.isoformat(timespec="seconds"),
                direction="debit",
                amount_fen=item.amount_fen,
                bank_ref=bank_ref,
                batch_serial=request.batch_serial,
                file_no=request.file_no,
                item_serial=item.serial,
            )

    def bounce(self, request_id: str, *, announce: bool = True) -> bool:
        """退票: the first item paid by this disbursement comes back (``R001``), the credit is
        reversed in the ledger and credited back to the payer account (a movement), and an
        ``item.returned`` event is staged. ``announce=False`` (fault ``silent_return``): the
        return shows on the account only — the item stays ``paid`` in the inquiry and no
        event is staged."""
        now = self._clock()
        at = now.isoformat(timespec="seconds")
        with self._ledger.begin() as txn:
            request = self.store.request_in(txn, request_id)
            items = self.store.items_in(txn, request_id)
            item = next((i for i in items if i.status == "paid" and i.credit_id is not None), None)
            if request is None or item is None or item.credit_id is None:
                return False
            txn.add_reversal(
                credit_id=item.credit_id, code=RETURN_CODE, reason=RETURN_MESSAGE, reversed_at=at
            )
            self.store.add_movement(
                txn,
                payer_account=self.store.payer_account_in(txn, request_id),
                booked_at=at,
                direction="credit",
                amount_fen=item.amount_fen,
                bank_ref=item.bank_ref,
                batch_serial=request.batch_serial,
                file_no=request.file_no,
                item_serial=item.serial,
                reason_code=RETURN_CODE,
            )
            if not announce:
                # the item stays "paid" in the status document; a second return of the same
                # disbursement would pick the next paid item, not this one again
                txn.execute(
                    "UPDATE api_items SET credit_id = NULL WHERE request_id = ? AND seq = ?",
                    (request_id, item.seq),
                )
                events: list[EventRecord] = []
            else:
                self.store.return_item(
                    txn,
                    request_id=request_id,
                    seq=item.seq,
                    code=RETURN_CODE,
                    message=RETURN_MESSAGE,
                    returned_at=at,
                )
                events = [self._stage_event(txn, "item.returned", request, now)]
        log.info(
            "item_returned",
            request_id=request_id,
            seq=item.seq,
            item_serial=item.serial,
            account_no=mask_tail(item.account_no),
            amount_fen=item.amount_fen,
            code=RETURN_CODE,
            announced=announce,
        )
        self._publish(events)
        return True

    # --- callback events ----------------------------------------------------------------------

    def _stage_event(
        self, txn: LedgerTxn, event: EventKind, request: RequestRecord, now: datetime
    ) -> EventRecord:
        number = self.store.next_event_number(txn)
        event_id = f"EV{now:%Y%m%d}{number:08d}"
        body = json_bytes(
            {
                "event_id": event_id,
                "event": event,
                "batch_serial": request.batch_serial,
                "file_no": request.file_no,
                "sent_at": now.isoformat(timespec="seconds"),
            }
        )
        return self.store.add_event(
            txn,
            number=number,
            event_id=event_id,
            event=event,
            request_id=request.request_id,
            body=body,
            created_at=now.isoformat(timespec="seconds"),
        )

    def _publish(self, events: Sequence[EventRecord]) -> None:
        for event in events:
            for sink in self._event_sinks:
                sink(event)


def _bad_signature(message: str) -> RequestRejectedError:
    return RequestRejectedError(401, "SIGNATURE_INVALID", message)


def _movement_document(m: MovementRecord) -> dict[str, Any]:
    return {
        "entry_id": m.entry_id,
        "booked_at": m.booked_at,
        "direction": m.direction,
        "amount_fen": m.amount_fen,
        "bank_ref": m.bank_ref,
        "batch_serial": m.batch_serial,
        "file_no": m.file_no,
        "item_serial": m.item_serial,
        "reason_code": m.reason_code,
    }


def _item_document(item: ItemRecord) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "serial": item.serial,
        "status": item.status,
        "code": item.code,
        "message": item.message,
        "amount_fen": item.amount_fen,
        "bank_ref": item.bank_ref,
        "processed_at": item.processed_at,
    }
    if item.status == "returned":
        doc["returned_at"] = item.returned_at
    return doc
