"""What both SMS adapters share: local checks, masking, the HTTP call with its error
classification, receipt signatures and the provider code tables' shape.

The classification of transport failures (``docs/formats/sms-v1.md``, "Error
classification"):

- nothing left us (connect refused, DNS, TLS handshake, connect or pool timeout):
  ``NeverSentError``;
- the request may have reached the provider (read or write timeout, connection reset or
  closed after writing, an unreadable answer): ``OutcomeUnknownError``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal
from zoneinfo import ZoneInfo

import httpx

from gateway.ports import (
    AdapterError,
    FormatError,
    NeverSentError,
    OutcomeUnknownError,
    SignatureError,
    SmsMessage,
    SmsRejectedError,
    TransportError,
)

SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
PHONE_RE: Final = re.compile(r"1[3-9][0-9]{9}")
OUT_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
NONCE_RE: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
RECEIPT_WINDOW_SECONDS: Final = 300.0

Clock = Callable[[], float]


_MOBILE_ANYWHERE: Final = re.compile(r"(?<!\d)(?:\+?86)?1[3-9]\d{9}(?!\d)")


def scrub(text: str) -> str:
    """``text`` with every mainland mobile number in it masked (provider messages may echo
    the number; ours go into exceptions and logs)."""
    return _MOBILE_ANYWHERE.sub(lambda m: mask_phone(m.group(0)), text)


def new_nonce() -> str:
    """A fresh nonce, 32 characters ``[A-Za-z0-9_-]``."""
    return secrets.token_urlsafe(24)


def mask_phone(phone: str) -> str:
    """``138****5678`` for a mobile number (with or without ``+86``), already masked or not;
    never more than the first three and last four digits."""
    text = phone.strip()
    for prefix in ("+86", "0086"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if len(text) < 8:
        return "****"
    return f"{text[:3]}****{text[-4:]}"


def check_message(msg: SmsMessage) -> None:
    """Refuse locally what no provider would take (never calls the provider)."""
    if not PHONE_RE.fullmatch(msg.phone):
        raise SmsRejectedError(
            f"{mask_phone(msg.phone)} is not a mainland mobile number",
            code="LOCAL.INVALID_NUMBER",
            scope="recipient",
        )
    if not OUT_ID_RE.fullmatch(msg.out_id):
        raise SmsRejectedError(
            "out_id must be 1-64 characters [A-Za-z0-9_-]",
            code="LOCAL.INVALID_OUT_ID",
            scope="configuration",
        )
    if not msg.template_id:
        raise SmsRejectedError(
            "template_id is empty", code="LOCAL.INVALID_TEMPLATE", scope="configuration"
        )
    for key, value in msg.params.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SmsRejectedError(
                "template parameters must be strings",
                code="LOCAL.INVALID_PARAMS",
                scope="configuration",
            )


# --- provider codes ---------------------------------------------------------------------

CodeClass = Literal["recipient", "configuration", "technical"]


@dataclass(frozen=True, slots=True)
class CodeTable:
    """A provider's codes by class; technical codes carry their default ``retry_after``."""

    recipient: frozenset[str]
    configuration: frozenset[str]
    technical: Mapping[str, float]

    def error(self, code: str, message: str, *, retry_after: float | None) -> AdapterError:
        """The error for a provider's refusal ``code`` (unlisted codes: unknown outcome)."""
        message = scrub(message)[:200]
        text = f"provider answered {code}: {message}" if message else f"provider answered {code}"
        if code in self.recipient:
            return SmsRejectedError(text, code=code, scope="recipient")
        if code in self.configuration:
            return SmsRejectedError(text, code=code, scope="configuration")
        if code in self.technical:
            wait = retry_after if retry_after is not None else self.technical[code]
            return TransportError(text, retry_after=wait)
        return OutcomeUnknownError(f"{text} (an unlisted code: inquire)")


def retry_after_of(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86_400 else None


# --- HTTP ---------------------------------------------------------------------------------


def build_client(
    *,
    connect_timeout: float,
    read_timeout: float,
    write_timeout: float,
    verify: object = True,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    timeout = httpx.Timeout(
        connect=connect_timeout, read=read_timeout, write=write_timeout, pool=connect_timeout
    )
    if transport is not None:
        return httpx.Client(timeout=timeout, transport=transport)
    return httpx.Client(timeout=timeout, verify=verify)  # type: ignore[arg-type]


def post(
    client: httpx.Client, url: str, *, content: bytes, headers: Mapping[str, str], what: str
) -> httpx.Response:
    """POST and classify what can go wrong on the way (see the module docstring)."""
    try:
        return client.post(url, content=content, headers=dict(headers))
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise NeverSentError(f"{what}: could not connect: {type(exc).__name__}") from exc
    except (httpx.UnsupportedProtocol, httpx.ProxyError) as exc:
        raise NeverSentError(f"{what}: {type(exc).__name__}: {exc}") from exc
    except httpx.TimeoutException as exc:  # read or write timeout: it may have arrived
        raise OutcomeUnknownError(f"{what}: {type(exc).__name__} after sending") from exc
    except httpx.TransportError as exc:  # reset, closed, protocol error after writing
        raise OutcomeUnknownError(f"{what}: {type(exc).__name__} after sending") from exc


# --- receipts ---------------------------------------------------------------------------------


def receipt_string_to_sign(provider: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join(("SMS-RECEIPT", provider, timestamp, nonce, digest)).encode()


def sign_receipt(secret: str, provider: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The ``X-Sms-Signature`` of a receipt push (used by tests and fakes)."""
    message = receipt_string_to_sign(provider, timestamp, nonce, body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_receipt(
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: str,
    provider: str,
    clock: Clock = time.time,
    window: float = RECEIPT_WINDOW_SECONDS,
) -> None:
    """Raise SignatureError unless the push carries a valid, current signature."""
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get("x-sms-timestamp", "")
    nonce = lower.get("x-sms-nonce", "")
    signature = lower.get("x-sms-signature", "")
    if not (timestamp and nonce and signature):
        raise SignatureError("receipt push without its signature headers")
    if not timestamp.isdigit() or not NONCE_RE.fullmatch(nonce):
        raise SignatureError("receipt push with a malformed timestamp or nonce")
    expected = sign_receipt(secret, provider, timestamp, nonce, body)
    if not hmac.compare_digest(expected, signature.strip().lower()):
        raise SignatureError("receipt signature does not verify")
    if abs(clock() - int(timestamp)) > window:
        raise SignatureError("receipt timestamp outside the accepted window")


def parse_json_array(body: bytes, what: str) -> list[Mapping[str, object]]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"{what}: not UTF-8 JSON") from exc
    if not isinstance(data, list) or not all(isinstance(entry, dict) for entry in data):
        raise FormatError(f"{what}: not a JSON array of objects")
    return data


def text_field(entry: Mapping[str, object], key: str, what: str, *, required: bool = True) -> str:
    value = entry.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise FormatError(f"{what}: {key!r} must be a non-empty string")
    return value


def local_time(text: object, what: str) -> dt.datetime | None:
    """``YYYY-MM-DD hh:mm:ss`` Asia/Shanghai as an aware datetime; None for empty/null."""
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise FormatError(f"{what}: a time must be a string")
    try:
        naive = dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")  # noqa: DTZ007 (zone next)
    except ValueError as exc:
        raise FormatError(f"{what}: {text!r} is not YYYY-MM-DD hh:mm:ss") from exc
    return naive.replace(tzinfo=SHANGHAI)
