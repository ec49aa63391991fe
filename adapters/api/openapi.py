"""Bank open API over HTTPS with mutual TLS (implements ``gateway.ports.BankApi``).

The contract is ``docs/formats/openapi-v1.md``; where this module and the page disagree,
the page wins.

What it does
    ``render_submission`` fixes the exact body bytes once, at planning time (the
    ``SM4-CBC-HMAC-SM3`` envelope, with a fresh random IV, when the profile says
    ``encrypt = "SM4-CBC"``; see :class:`Sm4Encryption`); the gateway stores
    them and every ``submit`` re-sends those bytes unchanged under the same ``X-Request-Id``
    (batch serial + 2-digit file number), with a fresh timestamp, nonce and signature per
    attempt. Every response (errors included) must carry the bank's valid signature over
    ``RESPONSE / status / path / timestamp / nonce / sha256(body)`` within ±300 s of our
    clock, or it is not believed. ``inquire`` reads the bank's status; ``verify_callback``
    checks a callback's signature, time window and body (the caller checks the nonce).

One ``httpx.Client`` per ``OpenApiBank``, reused (keep-alive connections expire after
:data:`KEEPALIVE_EXPIRY` seconds, below common server idle timeouts, so that a request is
rarely written into a connection the server is just closing), HTTP/1.1 only, no redirects,
no proxies or environment settings (``trust_env=False``), ``Accept-Encoding: identity`` (the
signature covers the body bytes as sent), and **no retries inside the adapter**: httpcore's
connect retries are 0 and nothing here loops. The gateway decides about retries (tenacity
for ``NeverSentError``, persisted back-off with ``retry_after``).

Error classification of ``submit`` (the heart of it: only this module sees the wire)
    =============================================  =========================================
    what happened                                  raised
    =============================================  =========================================
    ``httpx.ConnectError``: connection refused,    NeverSentError — httpcore raises it only
    DNS failure, unreachable, TLS handshake        from ``connect_tcp``/``start_tls``, before
    failure (bad/unknown server certificate,       a byte of the request is written
    wrong host name, our client certificate
    refused under TLS 1.2, no common protocol)
    ``httpx.ConnectTimeout`` (TCP connect or TLS   NeverSentError (same reason)
    handshake took longer than connect_timeout)
    ``httpx.PoolTimeout`` (no free connection)     NeverSentError (no connection, no bytes)
    ``httpx.UnsupportedProtocol``                  NeverSentError (refused before connecting)
    a TLS alert that refuses our client            NeverSentError — under TLS 1.3 the client
    certificate (``certificate_required``,         finishes its side of the handshake and
    ``bad_certificate``, ``unknown_ca``,           writes the request before the server's
    ``certificate_unknown/expired/revoked``,       verdict on its certificate arrives, so
    ``unsupported_certificate``,                   httpx reports a ReadError (or WriteError).
    ``access_denied``, ``handshake_failure``)      The alert proves the server's TLS layer
    found in the cause chain of a Read/Write/      never completed the handshake, so no HTTP
    RemoteProtocol error                           layer ever saw the request. (Post-
                                                   handshake auth and renegotiation are off,
                                                   so these alerts cannot come later.)
    ``httpx.WriteTimeout``                         OutcomeUnknownError — part (or all) of the
                                                   body may be at the bank
    ``httpx.WriteError`` (httpcore swallows it     OutcomeUnknownError (it surfaces as the
    and reads the response; the read then fails)   read failure below; either way unknown)
    ``httpx.ReadTimeout`` (request written, no     OutcomeUnknownError
    answer within read_timeout)
    ``httpx.ReadError`` (connection reset while    OutcomeUnknownError
    awaiting or reading the response)
    ``httpx.RemoteProtocolError`` ("server         OutcomeUnknownError — also what a reused
    disconnected without sending a response",      keep-alive connection closed by the server
    malformed response)                            looks like: we cannot tell, so we inquire
    ``httpx.LocalProtocolError``, ``CloseError``,  OutcomeUnknownError (conservative: not
    ``ProxyError``, ``DecodingError``, any other   provably before sending)
    ``httpx.HTTPError``/``OSError``
    response larger than max_response_bytes,       OutcomeUnknownError
    compressed (``Content-Encoding``)
    response signature missing/invalid, key id     OutcomeUnknownError (cause: SignatureError)
    not the pinned one, timestamp outside ±300 s
    202 with a valid ack body                      ApiAck
    200 with a valid ack body                      ApiAck(replayed=True): nothing new happened
    202/200 whose body is not an ack for this      OutcomeUnknownError
    request (malformed, other serial/file no)
    409                                            RejectedError(code="IDEMPOTENCY_CONFLICT")
                                                   — *this* body was not taken, but another
                                                   one under the same request id was: never
                                                   a reason to give up on the items
    401 with code ``REPLAYED``                     OutcomeUnknownError — we send a fresh
                                                   nonce on every attempt, so the bank saw
                                                   these very bytes before: a copy of this
                                                   request (retransmitted by something on
                                                   the way) reached it earlier and may have
                                                   been taken. Inquire; never re-issue.
    400, 401, 422                                  RejectedError(code=<body code>, or
                                                   ``HTTP_<status>`` without one)
    429                                            RateLimitedError(retry_after=<Retry-After>)
                                                   — a NeverSentError: not taken
    500, 502, 503, 504 and every other status      OutcomeUnknownError
    (3xx, 403, 404, 413 …: not in the contract)
    =============================================  =========================================

Error classification of ``inquire`` (a read: it changes nothing at the bank)
    200 with a valid signature and a valid document → ``ApiStatus`` (``raw`` = the exact
    body bytes); 404 with a valid signature and code ``NOT_FOUND`` → None (the bank never
    took the submission); 200 with a valid signature but a body that breaks the contract →
    ``FormatError``; everything else — any transport failure, an invalid signature, 429
    (``retry_after`` set), 5xx, a 404 without ``NOT_FOUND`` (a router's 404 is no proof) —
    → ``InquiryFailedError`` (ask again later; see :mod:`adapters.api.errors`), and when
    the inquiry itself provably never reached the bank (the ``never_sent`` rows of the
    submit table: refused, DNS, TLS handshake) → ``InquiryNotSentError``, which is also a
    ``NeverSentError``: an attempt that reached nothing is no unknown outcome.

``verify_callback``: a missing/repeated/malformed signature header, a key id other than
the pinned one, a timestamp outside ±300 s of our clock, or an invalid signature →
``SignatureError``; a signed body that is not a callback document → ``FormatError``.

Logging: request ids (batch serial + file number), HTTP statuses, bank codes and error
classes only. Bodies are never logged; bank messages are cut to 200 characters with long
digit runs (card and ID numbers) masked before they go into an exception.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import re
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

import httpx
import structlog

from adapters.api.documents import (
    ENVELOPE_MAC_KEY_INFO,
    Envelope,
    check_account,
    check_batch_serial,
    check_cursor,
    check_file_no,
    decode_envelope,
    parse_ack,
    parse_callback,
    parse_error_code,
    parse_movements,
    parse_status,
    render_disbursement,
    render_envelope,
)
from adapters.api.errors import InquiryFailedError, InquiryNotSentError, RateLimitedError
from adapters.api.signing import (
    HEADER_CLIENT_ID,
    HEADER_REQUEST_ID,
    TIMESTAMP_WINDOW_SECONDS,
    MessageSigner,
    MessageVerifier,
    check_window,
    headers_getter,
    read_signed_headers,
    request_string_to_sign,
    response_string_to_sign,
    sign_headers,
)
from adapters.crypto.sm4 import (
    SM4_KEY_BYTES,
    Sm4DecryptionError,
    new_iv,
    sm4_cbc_hmac_sm3_decrypt,
    sm4_cbc_hmac_sm3_encrypt,
)
from gateway.ports import (
    ApiAck,
    ApiStatus,
    CallbackHint,
    FormatError,
    MovementsPage,
    NeverSentError,
    OutcomeUnknownError,
    RejectedError,
    RequestHeader,
    RequestItem,
    SignatureError,
)

log = structlog.get_logger(__name__)

NAME: Final = "openapi-v1"
BASE_PATH: Final = "/openapi/v1"
DISBURSEMENTS_PATH: Final = f"{BASE_PATH}/disbursements"
ACCOUNTS_PATH: Final = f"{BASE_PATH}/accounts"
#: A page of account movements holds at most 1000 entries of a few hundred bytes each.
MAX_MOVEMENTS_RESPONSE_BYTES: Final = 2 * 1024 * 1024
#: Seconds an idle keep-alive connection is kept (uvicorn closes idle ones after 5 s).
KEEPALIVE_EXPIRY: Final = 2.0
DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
MAX_CALLBACK_BYTES: Final = 64 * 1024
MAX_RETRY_AFTER: Final = 86_400.0
USER_AGENT: Final = "subsidy-bank-gateway (openapi-v1)"

_REQUEST_ID_RE: Final = re.compile(r"([0-9A-Z]{16})([0-9]{2})")
_DIGIT_RUN_RE: Final = re.compile(r"[0-9]{10,}[0-9Xx]?")

#: OpenSSL reasons of TLS alerts a server sends when it refuses the handshake because of
#: our client certificate (or refuses us during the handshake at all).
HANDSHAKE_REFUSED_REASONS: Final = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_ACCESS_DENIED",
    }
)

Classification = Literal["never_sent", "unknown"]


def mask(text: str, limit: int = 200) -> str:
    """A bank message fit for exceptions and logs: digit runs masked, cut to ``limit``."""
    masked = _DIGIT_RUN_RE.sub(lambda m: "*" * (len(m.group()) - 4) + m.group()[-4:], text)
    return masked if len(masked) <= limit else masked[: limit - 1] + "…"


def _handshake_refused(exc: BaseException) -> bool:
    """True when a TLS alert refusing the handshake is somewhere in the cause chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError) and current.reason in HANDSHAKE_REFUSED_REASONS:
            return True
        current = current.__cause__ or current.__context__
    return False


def classify(exc: BaseException) -> Classification:
    """Whether a failed exchange provably never reached the bank's HTTP layer."""
    if isinstance(
        exc,
        httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.UnsupportedProtocol,
    ):
        return "never_sent"
    if isinstance(
        exc, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError
    ) and _handshake_refused(exc):
        return "never_sent"
    return "unknown"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class Sm4Encryption:
    """The pre-shared SM4 key for ``encrypt = "SM4-CBC"`` and the id the bank knows it by.

    Bodies are sealed as the contract's ``SM4-CBC-HMAC-SM3`` envelope: SM4-CBC under the
    key, then HMAC-SM3 over ``IV ‖ ciphertext`` under a key derived by HKDF-SM3.
    """

    key_id: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != SM4_KEY_BYTES:
            raise ValueError(f"the SM4 key must be {SM4_KEY_BYTES} bytes, got {len(self.key)}")
        if not self.key_id or not self.key_id.isascii() or not self.key_id.isprintable():
            raise ValueError("sm4_key_id must be non-empty printable ASCII")

    def seal(self, plain: bytes, iv: bytes | None = None) -> bytes:
        """The envelope of ``plain`` under a fresh random IV (``iv`` only for known-answer
        tests: an IV must never repeat under one key)."""
        iv = new_iv() if iv is None else iv
        ciphertext, mac = sm4_cbc_hmac_sm3_encrypt(self.key, iv, plain, info=ENVELOPE_MAC_KEY_INFO)
        return render_envelope(Envelope(self.key_id, iv, ciphertext, mac))

    def open(self, body: bytes) -> bytes:
        """The plain body of an envelope, after the receiver's checks of the contract, in
        its order: form (``FormatError``), key id, MAC, padding (``Sm4DecryptionError``;
        ``Sm4IntegrityError`` for a MAC that does not verify, before any decryption).

        The gateway never receives an envelope (answers and callbacks are not encrypted);
        this is for tests and diagnostics, and the rule any reader must follow."""
        envelope = decode_envelope(body)
        if envelope.key_id != self.key_id:
            raise Sm4DecryptionError(f"the envelope names key {envelope.key_id!r}, not ours")
        return sm4_cbc_hmac_sm3_decrypt(
            self.key, envelope.iv, envelope.ciphertext, envelope.mac, info=ENVELOPE_MAC_KEY_INFO
        )


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: httpx.Headers
    body: bytes


class _UnusableResponseError(Exception):
    """A response we will not read: too large, or compressed although we asked for none."""


class OpenApiBank:
    """A bank reached through ``openapi-v1`` (``gateway.ports.BankApi``).

    ``signer`` signs our requests (``X-Key-Id`` = its ``key_id``); ``verifier`` checks the
    bank's responses and callbacks. ``clock`` returns Unix seconds (injectable for tests).
    Close it (or use it as a context manager) to release its connections.
    """

    name = NAME

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        ssl_context: ssl.SSLContext,
        signer: MessageSigner,
        verifier: MessageVerifier,
        payer_name: str | None = None,
        encryption: Sm4Encryption | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        write_timeout: float = 60.0,
        max_items_per_request: int = 50_000,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.time,
        timestamp_window: int = TIMESTAMP_WINDOW_SECONDS,
    ) -> None:
        self.origin = _origin(base_url)
        if not client_id or not client_id.isascii() or not client_id.isprintable():
            raise ValueError("client_id must be non-empty printable ASCII")
        for label, value in (
            ("connect_timeout", connect_timeout),
            ("read_timeout", read_timeout),
            ("write_timeout", write_timeout),
        ):
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{label} must be a positive number of seconds")
        if max_items_per_request < 1:
            raise ValueError("max_items_per_request must be at least 1")
        if max_response_bytes < 1024:
            raise ValueError("max_response_bytes must be at least 1024")
        if ssl_context.verify_mode != ssl.CERT_REQUIRED or not ssl_context.check_hostname:
            raise ValueError("the TLS context must verify the bank's certificate and host name")
        # the classification relies on client authentication happening only in the initial
        # handshake (see adapters.api.tls)
        ssl_context.post_handshake_auth = False
        ssl_context.options |= ssl.OP_NO_RENEGOTIATION
        self.client_id = client_id
        self.payer_name = payer_name
        self.encryption = encryption
        self.max_items_per_request = max_items_per_request
        self.max_response_bytes = max_response_bytes
        self.timestamp_window = timestamp_window
        self._signer = signer
        self._verifier = verifier
        self._clock = clock
        transport = httpx.HTTPTransport(
            verify=ssl_context,
            http1=True,
            http2=False,
            retries=0,
            trust_env=False,
            limits=httpx.Limits(
                max_connections=10, max_keepalive_connections=5, keepalive_expiry=KEEPALIVE_EXPIRY
            ),
        )
        self._client = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(
                connect=connect_timeout,
                read=read_timeout,
                write=write_timeout,
                pool=connect_timeout,
            ),
            follow_redirects=False,
            trust_env=False,
            headers={
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
                "Accept-Encoding": "identity",
            },
        )

    # --- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenApiBank:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenApiBank(origin={self.origin!r}, client_id={self.client_id!r})"

    # --- planning ----------------------------------------------------------------------

    def render_submission(self, header: RequestHeader, items: Iterable[RequestItem]) -> bytes:
        """The exact body of the submission, fixed now and re-sent unchanged on retries.

        Plain JSON (deterministic for the same input) or, with SM4-CBC, the encrypted
        envelope under a fresh random IV (so not deterministic: render once, store, resend).
        Raises FieldError/FormatError for items the request cannot carry.
        """
        plain = render_disbursement(
            header, items, payer_name=self.payer_name, max_items=self.max_items_per_request
        )
        if self.encryption is None:
            return plain
        return self.encryption.seal(plain)

    def request_id(self, batch_serial: str, file_no: int) -> str:
        """``X-Request-Id``: the 16-character batch serial and the 2-digit file number."""
        check_batch_serial(batch_serial)
        check_file_no(file_no)
        return f"{batch_serial}{file_no:02d}"

    # --- submit ------------------------------------------------------------------------

    def submit(self, request_id: str, body: bytes) -> ApiAck:
        """Send the stored body; see the classification table in the module docstring."""
        match = _REQUEST_ID_RE.fullmatch(request_id)
        if match is None or int(match.group(2)) < 1:
            raise ValueError(f"request id {request_id!r} is not a batch serial + file number")
        batch_serial, file_no = match.group(1), int(match.group(2))
        path = DISBURSEMENTS_PATH
        headers = {
            "Content-Type": "application/json",
            HEADER_CLIENT_ID: self.client_id,
            HEADER_REQUEST_ID: request_id,
            **sign_headers(self._signer, "POST", path, body, int(self._clock())),
        }
        try:
            answer = self._exchange("POST", path, headers, body)
        except (httpx.HTTPError, OSError, _UnusableResponseError) as exc:
            kind = classify(exc)
            log.warning(
                "openapi.submit_failed",
                request_id=request_id,
                outcome=kind,
                error=type(exc).__name__,
            )
            cls = NeverSentError if kind == "never_sent" else OutcomeUnknownError
            raise cls(f"submit {request_id}: {_describe(exc)}") from exc
        try:
            self._verify_response(answer, path)
        except SignatureError as exc:
            log.warning(
                "openapi.response_unverified", request_id=request_id, http_status=answer.status
            )
            raise OutcomeUnknownError(
                f"submit {request_id}: HTTP {answer.status} answer refused: {exc}"
            ) from exc
        log.info("openapi.submit_answer", request_id=request_id, http_status=answer.status)
        return self._map_submit_answer(answer, request_id, batch_serial, file_no)

    def _map_submit_answer(
        self, answer: _Answer, request_id: str, batch_serial: str, file_no: int
    ) -> ApiAck:
        status = answer.status
        if status in (200, 202):
            try:
                ack = parse_ack(answer.body)
            except FormatError as exc:
                raise OutcomeUnknownError(
                    f"submit {request_id}: HTTP {status} but not an acknowledgement: {exc}"
                ) from exc
            if (ack.batch_serial, ack.file_no) != (batch_serial, file_no):
                raise OutcomeUnknownError(
                    f"submit {request_id}: HTTP {status} acknowledges "
                    f"{ack.batch_serial}/{ack.file_no}, not this request"
                )
            return ApiAck(
                batch_serial=ack.batch_serial,
                file_no=ack.file_no,
                accepted_at=ack.accepted_at,
                replayed=status == 200,
            )
        code, message = parse_error_code(answer.body)
        words = f": {mask(message)}" if message else ""
        if status == 409:
            raise RejectedError(
                f"submit {request_id}: HTTP 409 {code or 'IDEMPOTENCY_CONFLICT'}{words}",
                code="IDEMPOTENCY_CONFLICT",
            )
        if status == 401 and code == "REPLAYED":
            log.warning("openapi.submit_replayed_nonce", request_id=request_id)
            raise OutcomeUnknownError(
                f"submit {request_id}: HTTP 401 REPLAYED: the bank saw this very request "
                "before (a copy may have been taken); inquire"
            )
        if status in (400, 401, 422):
            final = code or f"HTTP_{status}"
            log.warning("openapi.submit_rejected", request_id=request_id, code=final)
            raise RejectedError(f"submit {request_id}: HTTP {status} {final}{words}", code=final)
        if status == 429:
            retry_after = self._retry_after(answer.headers)
            raise RateLimitedError(
                f"submit {request_id}: HTTP 429 {code or 'RATE_LIMITED'}, retry after "
                f"{retry_after if retry_after is not None else '?'} s",
                retry_after=retry_after,
                code=code or "RATE_LIMITED",
            )
        raise OutcomeUnknownError(
            f"submit {request_id}: HTTP {status} {code or ''}{words}".rstrip()
            + " — the bank may have taken it; inquire"
        )

    # --- inquire -----------------------------------------------------------------------

    def inquire(self, batch_serial: str, file_no: int) -> ApiStatus | None:
        """The bank's status of a submission; None when it says it never took it."""
        request_id = self.request_id(batch_serial, file_no)
        path = f"{DISBURSEMENTS_PATH}/{batch_serial}/{file_no}"
        headers = {
            HEADER_CLIENT_ID: self.client_id,
            HEADER_REQUEST_ID: request_id,
            **sign_headers(self._signer, "GET", path, b"", int(self._clock())),
        }
        try:
            answer = self._exchange("GET", path, headers, None)
        except (httpx.HTTPError, OSError, _UnusableResponseError) as exc:
            kind = classify(exc)
            log.warning(
                "openapi.inquiry_failed",
                request_id=request_id,
                outcome=kind,
                error=type(exc).__name__,
            )
            # never reached the bank (refused, DNS, handshake): a NeverSentError as well
            cls = InquiryNotSentError if kind == "never_sent" else InquiryFailedError
            raise cls(f"inquire {request_id}: {_describe(exc)}") from exc
        try:
            self._verify_response(answer, path)
        except SignatureError as exc:
            log.warning(
                "openapi.response_unverified", request_id=request_id, http_status=answer.status
            )
            raise InquiryFailedError(
                f"inquire {request_id}: HTTP {answer.status} answer refused: {exc}",
                status=answer.status,
            ) from exc
        if answer.status == 200:
            try:
                return parse_status(answer.body, batch_serial, file_no)
            except FormatError as exc:
                log.error("openapi.status_malformed", request_id=request_id)
                raise FormatError(f"inquire {request_id}: {exc}") from exc
        code, message = parse_error_code(answer.body)
        if answer.status == 404 and code == "NOT_FOUND":
            log.info("openapi.inquiry_not_found", request_id=request_id)
            return None
        words = f": {mask(message)}" if message else ""
        retry_after = self._retry_after(answer.headers) if answer.status == 429 else None
        raise InquiryFailedError(
            f"inquire {request_id}: HTTP {answer.status} {code or ''}{words}".rstrip(),
            status=answer.status,
            code=code,
            retry_after=retry_after,
        )

    # --- account movements -------------------------------------------------------------

    def movements(self, account: str, day: dt.date, cursor: str | None = None) -> MovementsPage:
        """One page of the payer account's booked movements on ``day`` (``cursor``: a
        ``next_cursor`` of an earlier page). A read like ``inquire``: any transport failure,
        an answer whose signature does not verify, any status but 200, or an answer larger
        than :data:`MAX_MOVEMENTS_RESPONSE_BYTES` → ``InquiryFailedError``; a signed 200
        that breaks the contract → ``FormatError``."""
        check_account(account)
        if cursor is not None:
            check_cursor(cursor)
        query = f"date={day.isoformat()}" + (f"&cursor={cursor}" if cursor else "")
        path = f"{ACCOUNTS_PATH}/{account}/movements?{query}"
        request_id = f"MV{day:%Y%m%d}"
        headers = {
            HEADER_CLIENT_ID: self.client_id,
            HEADER_REQUEST_ID: request_id,
            **sign_headers(self._signer, "GET", path, b"", int(self._clock())),
        }
        try:
            answer = self._read_bounded(path, headers, MAX_MOVEMENTS_RESPONSE_BYTES)
        except (httpx.HTTPError, OSError, _UnusableResponseError) as exc:
            log.warning("openapi.movements_failed", day=day.isoformat(), error=type(exc).__name__)
            raise InquiryFailedError(f"movements {request_id}: {_describe(exc)}") from exc
        try:
            self._verify_response(answer, path)
        except SignatureError as exc:
            log.warning(
                "openapi.response_unverified", request_id=request_id, http_status=answer.status
            )
            raise InquiryFailedError(
                f"movements {request_id}: HTTP {answer.status} answer refused: {exc}",
                status=answer.status,
            ) from exc
        if answer.status == 200:
            try:
                return parse_movements(answer.body, account, day)
            except FormatError as exc:
                log.error("openapi.movements_malformed", request_id=request_id)
                raise FormatError(f"movements {request_id}: {exc}") from exc
        code, message = parse_error_code(answer.body)
        words = f": {mask(message)}" if message else ""
        retry_after = self._retry_after(answer.headers) if answer.status == 429 else None
        raise InquiryFailedError(
            f"movements {request_id}: HTTP {answer.status} {code or ''}{words}".rstrip(),
            status=answer.status,
            code=code,
            retry_after=retry_after,
        )

    def _read_bounded(self, path: str, headers: dict[str, str], limit: int) -> _Answer:
        """A GET and its whole response, refused beyond ``limit`` bytes (declared or read)."""
        request = self._client.build_request("GET", self.origin + path, headers=headers)
        response = self._client.send(request, stream=True)
        try:
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding != "identity":
                raise _UnusableResponseError(f"response is {encoding}-encoded")
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise _UnusableResponseError(f"response of {declared} bytes is too large")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > limit:
                    raise _UnusableResponseError(f"response larger than {limit} bytes")
                chunks.append(chunk)
        finally:
            response.close()
        return _Answer(response.status_code, response.headers, b"".join(chunks))

    # --- callbacks ---------------------------------------------------------------------

    def verify_callback(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> CallbackHint:
        """A verified callback (a hint to inquire). The caller checks the nonce for replay.

        ``path`` is the path (and query) the bank posted to, as it signed it.
        """
        if method.upper() != "POST":
            raise FormatError(f"callbacks are POST, not {method!r}")
        if len(body) > MAX_CALLBACK_BYTES:
            raise FormatError(f"callback body of {len(body)} bytes is too large")
        signed = read_signed_headers(headers_getter(headers))
        self._verifier.check_key_id(signed.key_id)
        check_window(signed.timestamp, self._clock(), self.timestamp_window)
        message = request_string_to_sign("POST", path, signed.timestamp, signed.nonce, body)
        self._verifier.verify(message, signed.signature)
        event = parse_callback(body)
        return CallbackHint(
            event_id=event.event_id,
            event=event.event,
            batch_serial=event.batch_serial,
            file_no=event.file_no,
            nonce=signed.nonce,
            timestamp=signed.timestamp,
        )

    # --- the wire ----------------------------------------------------------------------

    def _exchange(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> _Answer:
        """One request and its whole response (raw bytes, at most max_response_bytes)."""
        request = self._client.build_request(
            method, self.origin + path, headers=headers, content=body
        )
        response = self._client.send(request, stream=True)
        try:
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding != "identity":
                raise _UnusableResponseError(
                    f"response is {encoding}-encoded; we asked for identity"
                )
            declared = response.headers.get("Content-Length")
            if (
                declared is not None
                and declared.isdigit()
                and int(declared) > self.max_response_bytes
            ):
                raise _UnusableResponseError(f"response of {declared} bytes is too large")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise _UnusableResponseError(
                        f"response larger than {self.max_response_bytes} bytes"
                    )
                chunks.append(chunk)
        finally:
            response.close()
        return _Answer(response.status_code, response.headers, b"".join(chunks))

    def _verify_response(self, answer: _Answer, path: str) -> None:
        signed = read_signed_headers(answer.headers.get_list)
        self._verifier.check_key_id(signed.key_id)
        check_window(signed.timestamp, self._clock(), self.timestamp_window)
        message = response_string_to_sign(
            answer.status, path, signed.timestamp, signed.nonce, answer.body
        )
        self._verifier.verify(message, signed.signature)

    def _retry_after(self, headers: httpx.Headers) -> float | None:
        """``Retry-After`` in seconds (delta-seconds or an HTTP date); None when absent/bad."""
        value = headers.get("Retry-After")
        if value is None:
            return None
        value = value.strip()
        if value.isdigit():
            return min(float(value), MAX_RETRY_AFTER)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        return min(max(0.0, when.timestamp() - self._clock()), MAX_RETRY_AFTER)


def _origin(base_url: str) -> str:
    """``https://host[:port]`` of the bank; refuses anything else (paths are the contract's)."""
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"base_url {base_url!r} is not a URL: {exc}") from None
    if url.scheme != "https":
        raise ValueError(f"base_url {base_url!r} must be https")
    if not url.host:
        raise ValueError(f"base_url {base_url!r} has no host")
    if url.userinfo or url.query or url.fragment or url.path not in ("", "/"):
        raise ValueError(
            f"base_url {base_url!r} must be just https://host[:port] "
            f"(the contract fixes the path {BASE_PATH})"
        )
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"https://{host}" + (f":{url.port}" if url.port is not None else "")
