"""Errors the bank-API adapter adds below ``gateway.ports``.

Tree (ports classes in brackets)::

    [TransportError]
    ├── [NeverSentError]
    │   └── RateLimitedError       429: the bank did not take the request and said when to
    │                              come back (``retry_after`` seconds, None when it did not
    │                              say). A NeverSentError because nothing happened at the
    │                              bank, so sending the same request again is safe; the
    │                              caller should wait ``retry_after`` rather than retry at
    │                              once.
    ├── [OutcomeUnknownError]      (raised as is: 5xx, timeouts after sending, responses
    │                              whose signature does not verify …)
    └── InquiryFailedError         a status inquiry (GET) got no usable answer: transport
        │                          failure, a status other than 200/404, a response whose
        │                          signature does not verify, 429 (with ``retry_after``).
        │                          A read changes nothing at the bank, so this says nothing
        │                          about the submission itself: neither "never sent" nor
        │                          "unknown outcome" applies. Ask again later; never treat
        │                          it as the bank's "not found".
        └── InquiryNotSentError    …and the inquiry itself never reached the bank (connect
                                   refused, DNS, TLS handshake: ``classify`` says
                                   never_sent). Also a [NeverSentError], so that the
                                   gateway knows nothing reached the bank in that attempt:
                                   the bank being down is not an unknown outcome
                                   (docs/delivery-errors.md).

A 200 inquiry answer whose signature verifies but whose body breaks the contract is a
``gateway.ports.FormatError`` (the bank said something we cannot read: an operator case,
not a retry).
"""

from __future__ import annotations

from gateway.ports import NeverSentError, TransportError


class RateLimitedError(NeverSentError):
    """The bank answered 429: not taken; send again after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float | None, code: str = "RATE_LIMITED"):
        super().__init__(message, retry_after=retry_after)
        self.code = code


class InquiryFailedError(TransportError):
    """A status inquiry got no usable answer; nothing changed at the bank, ask again later.

    ``status`` is the HTTP status when the bank answered (None for a transport failure) and
    ``code`` the ``code`` of its error body when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        self.code = code


class InquiryNotSentError(InquiryFailedError, NeverSentError):
    """A status inquiry that never reached the bank (connect refused, DNS, TLS handshake):
    nothing was asked, and nothing of any attempt was sent by it."""
