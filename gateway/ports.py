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
    """A value cannot be written in the bank format (too long, not encodable)."""

    def __init__(self, message: str, *, field_name: str, code: str) -> None:
        super().__init__(message)
        self.field_name = field_name
        self.code = code


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


@dataclass(frozen=True, slots=True)
class AccountNotice:
    """A debit/credit notification (camt.054) or statement for the payer account."""

    message_id: str
    entries: Sequence[AccountEntry] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class RemoteFile:
    name: str
    size: int


# --- the ports ---------------------------------------------------------------------------


class BankFormat(Protocol):
    """Renders request files and parses result files for one bank format."""

    name: str
    max_items_per_file: int

    def check_item(self, item: RequestItem) -> list[FieldError]:
        """Problems that would stop ``item`` from being written (empty when it fits)."""
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
        """The bank's status of a submission; None when the bank says it never took it."""
        ...

    def verify_callback(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> CallbackHint:
        """Check the bank's signature over the raw body and the timestamp window; raise
        SignatureError otherwise. The caller checks the nonce against its replay store."""
        ...
