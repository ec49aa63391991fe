"""Ports: what the gateway needs from the outside world, implemented in ``adapters/``.

The gateway core speaks only to these Protocols and data classes. Adapters implement them,
never touch the database, and report failures through the error tree below, decided in the
adapter (it is the only place that knows whether a request could have reached the bank).

Error tree::

    AdapterError
    ├── TransportError                 talking to the bank failed
    │   ├── NeverSentError             provably never left: connect refused, DNS, handshake,
    │   │                              authentication; safe to retry blindly
    │   ├── OutcomeUnknownError        may or may not have taken effect: read timeout,
    │   │                              connection dropped mid-transfer, lost rename; the next
    │   │                              step is an inquiry, never a resend
    │   └── HostKeyError               the server's host key is unknown or changed; a
    │                                  configuration/security problem, never retried
    ├── RejectedError                  the bank refused the request; final, with its code
    ├── SignatureError                 a signature or digest did not verify
    └── FormatError                    bytes that do not follow the bank format
        └── FieldError                 one value cannot be written in the format (too long,
                                       not encodable); carries the field name
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable


class AdapterError(Exception):
    """Base of every error an adapter raises."""


class TransportError(AdapterError):
    """Talking to the bank failed; ``retry_after`` (seconds) when the bank said so."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NeverSentError(TransportError):
    """The request provably never reached the bank; retrying blindly is safe."""


class OutcomeUnknownError(TransportError):
    """The request may have taken effect; inquire before doing anything else."""


class HostKeyError(TransportError):
    """The server presented an unknown or changed host key; refuse to talk to it."""


class RejectedError(AdapterError):
    """The bank refused the request; final. ``code`` is the bank's own code."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class SignatureError(AdapterError):
    """A signature or digest did not verify."""


class FormatError(AdapterError):
    """Bytes that do not follow the bank format."""


class FieldError(FormatError):
    """A value cannot be written in the bank format (too long, not encodable). ``limit`` and
    ``unit`` (``"gb18030_bytes"``, ``"characters"``, ``"digits"``…) name the limit a value
    exceeded, where there is one."""

    def __init__(
        self,
        message: str,
        *,
        field_name: str,
        code: str,
        limit: int | None = None,
        unit: str | None = None,
    ) -> None:
        super().__init__(message)
        self.field_name = field_name
        self.code = code
        self.limit = limit
        self.unit = unit


# --- data crossing the port -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """Header of one request file sent to the bank."""

    batch_serial: str
    file_no: int
    payer_account: str
    subsidy_code: str
    subsidy_name: str
    period: str
    item_count: int
    total_fen: int
    created_on: dt.date
    payer_name: str = ""


@dataclass(frozen=True, slots=True)
class RequestItem:
    """One payment line in a request file (plaintext PII: lives only in memory)."""

    seq: int
    serial: str
    account_no: str
    name: str
    id_number: str
    amount_fen: int
    remark: str = ""


class ResultStatus(StrEnum):
    PAID = "paid"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ResultItem:
    """One per-item result reported by the bank."""

    seq: int
    serial: str
    account_no: str
    amount_fen: int
    status: ResultStatus
    bank_code: str
    bank_message: str
    bank_ref: str
    processed_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ResultFile:
    """A parsed result file (回盘). ``rejected_code`` is set when the bank refused the file."""

    batch_serial: str
    file_no: int
    accepted: bool
    rejected_code: str
    items: Sequence[ResultItem] = field(default_factory=tuple)
    paid_count: int = 0
    paid_fen: int = 0
    failed_count: int = 0
    failed_fen: int = 0


@dataclass(frozen=True, slots=True)
class AccountEntry:
    """One booked entry on the payer account (camt.054 ``Ntry``, a statement line)."""

    account: str
    amount_fen: int
    direction: Literal["debit", "credit"]
    booked_on: dt.date
    bank_ref: str
    batch_serial: str | None = None
    file_no: int | None = None
    details: Sequence[tuple[str, int]] = field(default_factory=tuple)  # (item serial, fen)
    # the bank's own id of the entry, unique for the account (API movements): recorded once
    entry_id: str | None = None
    reason_code: str = ""  # a credit that returns items (退票): the bank's return code


@dataclass(frozen=True, slots=True)
class AccountNotice:
    """A debit/credit notification (camt.054) or statement for the payer account."""

    message_id: str
    entries: Sequence[AccountEntry] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class RemoteFile:
    name: str
    size: int
    # modification time (whole seconds since the epoch) when the server gives one; a hint
    # of change only (a file is known by its content), so not part of equality
    mtime: int | None = field(default=None, compare=False)


# --- the ports ---------------------------------------------------------------------------


class BankFormat(Protocol):
    """Renders request files and parses result files for one bank format."""

    name: str
    max_items_per_file: int

    def check_item(self, item: RequestItem) -> list[FieldError]:
        """Problems that would stop ``item`` from being written (empty when it fits)."""
        ...

    def check_header(self, header: RequestHeader) -> list[FieldError]:
        """Problems that would stop ``header`` from being written (empty when it fits);
        ``render_request`` raises the first of them."""
        ...

    def render_request(self, header: RequestHeader, items: Iterable[RequestItem]) -> bytes:
        """The exact bytes of the request file; deterministic for the same input."""
        ...

    def parse_result(self, data: bytes) -> ResultFile:
        """Parse a result file; raises FormatError when it does not follow the format."""
        ...

    def request_file_name(self, batch_serial: str, file_no: int) -> str: ...

    def is_result_file_name(self, name: str) -> bool: ...

    def parse_result_file_name(self, name: str) -> tuple[str, int] | None:
        """``(batch serial, file number)`` a result file's name claims, or None."""
        ...

    def signature_name(self, file_name: str) -> str: ...


@runtime_checkable
class AccountNoticeFormat(Protocol):
    """A format whose bank also sends account notifications (e.g. ISO 20022 camt.054)."""

    def is_account_notice_name(self, name: str) -> bool: ...

    def parse_account_notice(self, data: bytes) -> AccountNotice:
        """Parse a notification; raises FormatError when it does not follow the format."""
        ...


class Signer(Protocol):
    """Signs our outgoing files and verifies the bank's (detached signatures)."""

    def sign(self, data: bytes) -> bytes:
        """The detached signature file's bytes for ``data``."""
        ...

    def verify(self, data: bytes, signature_file: bytes) -> None:
        """Raise SignatureError unless ``signature_file`` is the bank's valid signature."""
        ...


class FileTransport(Protocol):
    """A session with the bank's file server (SFTP). Used as a context manager."""

    def __enter__(self) -> FileTransport: ...

    def __exit__(self, *exc: object) -> None: ...

    def put_atomic(self, directory: str, name: str, data: bytes) -> None:
        """Write ``data`` under a temporary dot-name, then rename it to ``name``."""
        ...

    def stat(self, directory: str, name: str) -> RemoteFile | None: ...

    def get(self, directory: str, name: str) -> bytes: ...

    def list(self, directory: str) -> list[RemoteFile]: ...

    def remove(self, directory: str, name: str) -> None: ...


# --- bank APIs (HTTPS) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiAck:
    """The bank took a submission (or had taken it: ``replayed``)."""

    batch_serial: str
    file_no: int
    accepted_at: str
    replayed: bool = False


class ApiItemStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    RETURNED = "returned"  # 退票: paid, then the money came back


@dataclass(frozen=True, slots=True)
class ApiItemResult:
    serial: str
    status: ApiItemStatus
    bank_code: str
    bank_message: str
    amount_fen: int
    bank_ref: str
    processed_at: dt.datetime | None
    returned_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiStatus:
    """The bank's answer to a status inquiry (verified, parsed)."""

    batch_serial: str
    file_no: int
    completed: bool
    items: Sequence[ApiItemResult] = field(default_factory=tuple)
    raw: bytes = b""  # the exact signed response body, kept as evidence


@dataclass(frozen=True, slots=True)
class CallbackHint:
    """A verified callback: only a reason to inquire, never a result in itself."""

    event_id: str
    event: str
    batch_serial: str
    file_no: int
    nonce: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class MovementsPage:
    """One page of a payer account's booked movements on one day (verified, parsed).
    ``next_cursor`` continues after this page ("" when the day has no entries yet);
    ``has_more``: the bank holds more entries than the page did."""

    account: str
    day: dt.date
    entries: Sequence[AccountEntry] = field(default_factory=tuple)
    next_cursor: str = ""
    has_more: bool = False
    raw: bytes = b""  # the exact signed response body, kept as evidence


@runtime_checkable
class AccountMovementsApi(Protocol):
    """A bank API that also shows the payer account's movements (openapi-v1 ``GET
    /accounts/{account}/movements``)."""

    def movements(self, account: str, day: dt.date, cursor: str | None = None) -> MovementsPage:
        """One page; raises InquiryFailedError-like TransportErrors (ask again later) or
        FormatError (a signed answer that breaks the contract)."""
        ...


class BankApi(Protocol):
    """A bank reached through an HTTPS API (mutual TLS, signed requests and responses).

    ``render_submission`` fixes the exact body bytes at planning time (encrypted where the
    profile says so); ``submit`` sends those bytes with a fresh timestamp, nonce and
    signature under the same idempotency key on every attempt."""

    def render_submission(self, header: RequestHeader, items: Iterable[RequestItem]) -> bytes: ...

    def request_id(self, batch_serial: str, file_no: int) -> str: ...

    def submit(self, request_id: str, body: bytes) -> ApiAck:
        """Raises NeverSentError, OutcomeUnknownError (5xx, timeout after sending, bad
        response signature) or RejectedError (4xx other than 429, which is a
        TransportError with ``retry_after``)."""
        ...

    def inquire(self, batch_serial: str, file_no: int) -> ApiStatus | None:
        """The bank's status of a submission; None when the bank says it never took it.
        Without a usable answer, a TransportError (ask again later) — a NeverSentError when
        the inquiry itself never reached the bank (refused, DNS, TLS handshake)."""
        ...

    def verify_callback(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> CallbackHint:
        """Check the bank's signature over the raw body and the timestamp window; raise
        SignatureError otherwise. The caller checks the nonce against its replay store."""
        ...


# --- SMS providers (短信服务商) --------------------------------------------------------------
#
# Contract: docs/formats/sms-v1.md. One message goes to one phone number. The gateway fixes
# ``out_id`` (its send-ledger key) before the first attempt and reuses it on every attempt;
# the provider echoes it back in its answer, its receipts and its status query.
#
# Errors, decided in the adapter:
#   NeverSentError       connect refused, DNS, TLS handshake, pool timeout: nothing left us;
#                        safe to resend with the same out_id
#   OutcomeUnknownError  read timeout, connection reset after the request was written, 5xx,
#                        an unreadable answer: the message may be on its way; resolve with
#                        ``query`` (and receipts), never by resending
#   TransportError       the provider refused for now (throttled, system busy) before taking
#                        the message; retry later, honour ``retry_after`` (seconds)
#   SmsRejectedError     final refusal (a RejectedError, ``code`` = the provider's code);
#                        ``scope`` says whether the recipient is at fault (invalid or blocked
#                        number: never retry this message) or our configuration is (sign,
#                        template, parameters, credentials: every message will fail the same
#                        way until an operator fixes the configuration)
#   SignatureError       a receipt push whose signature or timestamp does not verify
#   FormatError          a receipt push or query answer that does not follow the contract

# Imported here, not at the top, so that this section stays one self-contained addition.
from collections.abc import Mapping  # noqa: E402


class SmsRejectedError(RejectedError):
    """The SMS provider refused the message for good. ``code`` is the provider's code;
    ``scope`` is ``"recipient"`` (the number: invalid, blacklisted, unsubscribed) or
    ``"configuration"`` (sign name, template, parameters, credentials, account)."""

    def __init__(
        self, message: str, *, code: str, scope: Literal["recipient", "configuration"]
    ) -> None:
        super().__init__(message, code=code)
        self.scope = scope


@dataclass(frozen=True, slots=True)
class SmsMessage:
    """One templated SMS to one phone (plaintext phone: lives only in memory)."""

    out_id: str  # ours, ≤ 64 chars [A-Za-z0-9_-]; fixed before the first attempt
    phone: str  # 11-digit mainland mobile number, no "+86"
    sign_name: str  # 签名, e.g. "岳阳县财政局"
    template_id: str  # the provider's approved template (Aliyun TemplateCode / Tencent TemplateId)
    params: Mapping[str, str]  # template variables by name; Tencent-style sends them in
    #                            the order given here (keep the mapping's order stable)


@dataclass(frozen=True, slots=True)
class SmsSendResult:
    """The provider took the message for delivery. ``send`` never returns an unaccepted
    result (refusals raise), so ``accepted`` is always True; it is there for readability at
    the call site and for fakes."""

    out_id: str
    provider_ref: str  # Aliyun BizId / Tencent SerialNo
    accepted: bool = True


class SmsStatus(StrEnum):
    PENDING = "pending"  # the provider holds the message; no delivery report yet
    DELIVERED = "delivered"  # the handset received it
    FAILED = "failed"  # the carrier/handset did not receive it; final for this message


@dataclass(frozen=True, slots=True)
class SmsReceipt:
    """A delivery report (回执), pushed by the provider or returned by ``query``."""

    out_id: str  # empty when a provider's push omits it: match by provider_ref then
    provider_ref: str
    status: SmsStatus
    code: str  # the provider's report code ("DELIVERED", "MK:0001", "" while pending)
    message: str  # the provider's description, may be empty
    at: dt.datetime | None  # when the handset received it / the report was made (aware)
    phone_masked: str  # e.g. "138****5678"; never the full number

    @property
    def delivered(self) -> bool:
        return self.status is SmsStatus.DELIVERED

    @property
    def final(self) -> bool:
        return self.status is not SmsStatus.PENDING


class SmsProvider(Protocol):
    """An SMS provider's HTTP API (Aliyun-style or Tencent-style, docs/formats/sms-v1.md)."""

    name: str  # "aliyun-style" | "tencent-style"

    def send(self, msg: SmsMessage) -> SmsSendResult:
        """Submit one message. Raises NeverSentError, OutcomeUnknownError, TransportError
        (throttled/busy, with ``retry_after``) or SmsRejectedError."""
        ...

    def query(self, out_id: str, sent_on: dt.date, *, phone: str) -> list[SmsReceipt]:
        """What the provider knows of ``out_id`` sent to ``phone`` on ``sent_on`` (its
        Asia/Shanghai date; both real query APIs look up by number and day, then we filter
        by out_id): an empty list means it never took the message (then, and only then, a
        resend with the same out_id is safe); otherwise one entry per accepted submission
        (more than one means it was sent twice). Raises the TransportError family (an
        answer that does not follow the contract: OutcomeUnknownError — ask again later)
        and SmsRejectedError (configuration) like ``send``."""
        ...

    def parse_receipts(self, headers: Mapping[str, str], body: bytes) -> list[SmsReceipt]:
        """Verify a receipt push (signature over the raw body, timestamp window) and parse
        it; raise SignatureError or FormatError. Receipts may arrive late or twice: apply
        them idempotently (by out_id and status)."""
        ...

    def close(self) -> None:
        """Release the HTTP connection pool."""
        ...
