"""The openapi-v1 adapter against a real HTTPS server on loopback (mutual TLS, signatures
both ways, scripted faults). See ``bank_server.py`` for the server and the module docstring
of ``adapters.api.openapi`` for the classification these tests pin down."""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from adapters.api.errors import InquiryFailedError, RateLimitedError
from adapters.api.openapi import OpenApiBank, Sm4Encryption, classify, mask
from adapters.api.signing import request_string_to_sign
from adapters.api.tls import build_client_ssl_context
from adapters.crypto.sm4 import Sm4DecryptionError, Sm4IntegrityError
from gateway.ports import (
    ApiItemStatus,
    FieldError,
    FormatError,
    NeverSentError,
    OutcomeUnknownError,
    RejectedError,
    RequestHeader,
    RequestItem,
    SignatureError,
)
from tests.adapters.api.bank_server import (
    Received,
    Reply,
    Reset,
    Stall,
    TestBankServer,
    closed_port,
)
from tests.adapters.api.conftest import CRYPTO_PROFILES, Keys, Pki
from tests.waits import wait_until

SERIAL = "26112896XZZYYPH7"
REQUEST_ID = f"{SERIAL}01"
ACCEPTED_AT = "2026-11-28T10:00:00+08:00"
SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")

StartBank = Callable[..., TestBankServer]
MakeApi = Callable[..., OpenApiBank]


def header(**changes: Any) -> RequestHeader:
    values: dict[str, Any] = {
        "batch_serial": SERIAL,
        "file_no": 1,
        "payer_account": "43001700062050500001",
        "subsidy_code": "GDBH",
        "subsidy_name": "耕地地力保护补贴",
        "period": "2026",
        "item_count": 2,
        "total_fen": 70003,
        "created_on": dt.date(2026, 11, 28),
        "payer_name": "岳阳县财政局惠民惠农资金专户",
        **changes,
    }
    return RequestHeader(**values)


def items() -> list[RequestItem]:
    return [
        RequestItem(1, f"{SERIAL}00000001", "6217996529894513637", "刘䶮", "430621199302033015",
                    35001, "耕地地力保护补贴2026"),
        RequestItem(2, f"{SERIAL}00000002", "6217996529894513645", "王𬎆", "43062119580712301X",
                    35002),
    ]  # fmt: skip


def ack(status: int = 202, serial: str = SERIAL, file_no: int = 1) -> Reply:
    body = {"batch_serial": serial, "file_no": file_no, "status": "accepted",
            "accepted_at": ACCEPTED_AT}  # fmt: skip
    return Reply(status, json.dumps(body).encode())


def error(status: int, code: str, message: str = "", **kwargs: Any) -> Reply:
    return Reply(status, json.dumps({"code": code, "message": message}).encode(), **kwargs)


def status_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "batch_serial": SERIAL,
        "file_no": 1,
        "status": "completed",
        "paid_count": 1,
        "paid_fen": 35001,
        "failed_count": 1,
        "failed_fen": 35002,
        "items": [
            {"serial": f"{SERIAL}00000001", "status": "paid", "code": "0000", "message": "成功",
             "amount_fen": 35001, "bank_ref": "MB2026112800000001",
             "processed_at": "2026-11-28T10:00:00+08:00"},
            {"serial": f"{SERIAL}00000002", "status": "failed", "code": "E104",
             "message": "账户已销户", "amount_fen": 35002, "bank_ref": "",
             "processed_at": "2026-11-28T10:00:00+08:00"},
        ],
        **changes,
    }  # fmt: skip
    return doc


def always(action: Reply | Stall | Reset) -> Callable[[Received], Reply | Stall | Reset]:
    return lambda _request: action


# --- submit: answers -------------------------------------------------------------------


@pytest.mark.parametrize("profile", CRYPTO_PROFILES)
def test_submit_happy_path_signed_both_ways(
    profile: str, key_sets: dict[str, Keys], start_bank: StartBank, make_api: MakeApi
) -> None:
    keyset = key_sets[profile]
    bank = start_bank(always(ack(202)), keyset=keyset)
    api = make_api(bank.base_url, keyset=keyset)
    body = api.render_submission(header(), items())

    result = api.submit(REQUEST_ID, body)

    assert (result.batch_serial, result.file_no, result.replayed) == (SERIAL, 1, False)
    assert result.accepted_at == ACCEPTED_AT
    [seen] = bank.requests
    assert seen.signature_ok, seen.signature_error
    assert (seen.method, seen.path, seen.body) == ("POST", "/openapi/v1/disbursements", body)
    h = {k.lower(): v for k, v in seen.headers.items()}
    assert h["x-client-id"] == "subsidy-gateway"
    assert h["x-request-id"] == REQUEST_ID
    assert h["x-key-id"] == "gw-2026"
    assert h["content-type"] == "application/json"
    assert h["accept-encoding"] == "identity"


def test_request_signature_checks_with_plain_cryptography(
    keys: Keys, start_bank: StartBank, make_api: MakeApi
) -> None:
    """The string to sign, independently of the crypto adapter: ECDSA P-256, DER."""
    bank = start_bank(always(ack(202)))
    api = make_api(bank.base_url)
    body = api.render_submission(header(), items())
    api.submit(REQUEST_ID, body)
    [seen] = bank.requests
    h = {k.lower(): v for k, v in seen.headers.items()}
    import hashlib

    expected = "\n".join(
        ["POST", "/openapi/v1/disbursements", h["x-timestamp"], h["x-nonce"],
         hashlib.sha256(body).hexdigest()]
    ).encode()  # fmt: skip
    public = serialization.load_pem_public_key((keys.dir / "gateway.pub").read_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(base64.b64decode(h["x-signature"]), expected, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(
            base64.b64decode(h["x-signature"]), expected + b"x", ec.ECDSA(hashes.SHA256())
        )


def test_every_attempt_has_a_fresh_nonce_and_the_same_body(
    start_bank: StartBank, make_api: MakeApi
) -> None:
    bank = start_bank(always(ack(202)))
    api = make_api(bank.base_url)
    body = api.render_submission(header(), items())
    api.submit(REQUEST_ID, body)
    api.submit(REQUEST_ID, body)
    first, second = ({k.lower(): v for k, v in r.headers.items()} for r in bank.requests)
    assert first["x-nonce"] != second["x-nonce"]
    assert first["x-request-id"] == second["x-request-id"] == REQUEST_ID
    assert bank.requests[0].body == bank.requests[1].body == body
    assert all(r.signature_ok for r in bank.requests)


def test_200_is_a_replay(start_bank: StartBank, make_api: MakeApi) -> None:
    bank = start_bank(always(ack(200)))
    result = make_api(bank.base_url).submit(REQUEST_ID, b"{}")
    assert result.replayed is True


def test_409_is_an_idempotency_conflict(start_bank: StartBank, make_api: MakeApi) -> None:
    bank = start_bank(always(error(409, "IDEMPOTENCY_CONFLICT", "different body")))
    with pytest.raises(RejectedError) as info:
        make_api(bank.base_url).submit(REQUEST_ID, b"{}")
    assert info.value.code == "IDEMPOTENCY_CONFLICT"


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "INVALID_REQUEST"), (422, "TOTALS_MISMATCH"), (422, "PAYER_ACCOUNT_INVALID"),
     (400, "DECRYPTION_FAILED"), (401, "SIGNATURE_INVALID"), (401, "CLIENT_UNKNOWN")],
)  # fmt: skip
def test_4xx_is_rejected_with_the_bank_code(
    status: int, code: str, start_bank: StartBank, make_api: MakeApi
) -> None:
    bank = start_bank(always(error(status, code, "账号 6217996529894513637 有误")))
    with pytest.raises(RejectedError) as info:
        make_api(bank.base_url).submit(REQUEST_ID, b"{}")
    assert info.value.code == code
    assert not isinstance(info.value, OutcomeUnknownError)
    assert "6217996529894513637" not in str(info.value)  # card numbers are masked
    assert "***************3637" in str(info.value)


def test_401_replayed_means_a_copy_arrived_before(start_bank: StartBank, make_api: MakeApi) -> None:
    """Our nonce is fresh per attempt: REPLAYED proves these bytes reached the bank already."""
    bank = start_bank(always(error(401, "REPLAYED")))
    with pytest.raises(OutcomeUnknownError) as info:
        make_api(bank.base_url).submit(REQUEST_ID, b"{}")
    assert not isinstance(info.value, NeverSentError)


def test_4xx_without_a_code_gets_one_from_the_status(
    start_bank: StartBank, make_api: MakeApi
) -> None:
    bank = start_bank(always(Reply(400, b"<html>bad</html>")))
    with pytest.raises(RejectedError) as info:
        make_api(bank.base_url).submit(REQUEST_ID, b"{}")
    assert info.value.code == "HTTP_400"


@pytest.mark.parametrize(("retry_after", "expected"), [("7", 7.0), (None, None), ("soon", None)])
def test_429_is_rate_limited_never_sent(
    retry_after: str | None, expected: float | None, start_bank: StartBank, make_api: MakeApi
) -> None:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    bank = start_bank(always(error(429, "RATE_LIMITED", headers=headers)))
    with pytest.raises(RateLimitedError) as info:
        make_api(bank.base_url).submit(REQUEST_ID, b"{}")
    assert isinstance(info.value, NeverSentError)
    assert info.value.retry_after == expected
    assert info.value.code == "RATE_LIMITED"


def test_429_retry_after_as_an_http_date(start_bank: StartBank, make_api: MakeApi) -> None:
    bank = start_bank(
        always(error(429, "RATE_LIMITED", headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    )
    clock = dt.datetime(2015, 10, 21, 7, 27, 30, tzinfo=dt.UTC).timestamp()
    api = make_api(bank.base_url, clock=lambda: clock, timestamp_window=10**10)
    with pytest.raises(RateLimitedError) as info:
        api.submit(REQUEST_ID, b"{}")
    assert info.value.retry_after == 30.0


@pytest.mark.parametrize("status", [500, 502, 503, 504, 302, 403, 404, 413])
def test_5xx_and_unexpected_statuses_are_unknown(
    status: int, start_bank: StartBank, make_api: MakeApi
) -> None:
    bank = start_bank(always(error(status, "SERVICE_UNAVAILABLE")))
    with pytest.raises(OutcomeUnknownError) as info:
        make_api(bank.base_url).submit(REQUEST_ID, b"{}")
    assert not isinstance(info.value, NeverSentError)
    assert f"HTTP {status}" in str(info.value)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(202, b"", signed=False), id="unsigned"),
        pytest.param(Reply(202, ack().body, sign_body=b'{"other":1}'), id="tampered"),
        pytest.param(Reply(202, ack().body, clock_skew=-400), id="stale"),
        pytest.param(Reply(503, b"{}", signed=False), id="unsigned-503"),
        pytest.param(error(400, "INVALID_REQUEST", signed=False), id="unsigned-400"),
        pytest.param(error(429, "RATE_LIMITED", signed=False), id="unsigned-429"),
    ],
)
def test_response_without_a_valid_signature_is_unknown(
    reply: Reply, start_bank: StartBank, make_api: MakeApi
) -> None:
    bank = start_bank(always(reply))
    with pytest.raises(OutcomeUnknownError) as info:
        make_api(bank.base_url).submit(REQUEST_ID, b"{}")
    assert isinstance(info.value.__cause__, SignatureError)


def test_response_signed_by_another_key_is_unknown(
    keys: Keys, start_bank: StartBank, make_api: MakeApi
) -> None:
    bank = start_bank(always(Reply(202, ack().body, signer=keys.rogue_signer())))
    with pytest.raises(OutcomeUnknownError) as info:
        make_api(bank.base_url).submit(REQUEST_ID, b"{}")
    assert "does not verify" in str(info.value)


def test_response_with_another_key_id_is_unknown(
    keys: Keys, start_bank: StartBank, make_api: MakeApi
) -> None:
    from adapters.crypto.raw import build_raw_signer

    other_id = build_raw_signer({**keys.bank_config(), "own_key_id": "bank-old"})
    bank = start_bank(always(Reply(202, ack().body, signer=other_id)))
    with pytest.raises(OutcomeUnknownError, match="bank-old"):
        make_api(bank.base_url).submit(REQUEST_ID, b"{}")


def test_response_outside_our_clock_window_is_unknown(
    start_bank: StartBank, make_api: MakeApi
) -> None:
    bank = start_bank(always(ack(202)))
    api = make_api(bank.base_url, clock=lambda: time.time() + 400)
    with pytest.raises(OutcomeUnknownError, match="window"):
        api.submit(REQUEST_ID, b"{}")


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(ack(202, serial="26112896AAAAAAA1"), id="other-batch"),
        pytest.param(ack(202, file_no=2), id="other-file"),
        pytest.param(Reply(202, b'{"status":"accepted"}'), id="incomplete"),
        pytest.param(Reply(202, b"not json"), id="not-json"),
    ],
)
def test_2xx_that_is_not_our_ack_is_unknown(
    reply: Reply, start_bank: StartBank, make_api: MakeApi
) -> None:
    bank = start_bank(always(reply))
    with pytest.raises(OutcomeUnknownError):
        make_api(bank.base_url).submit(REQUEST_ID, b"{}")


# --- submit: transport failures ----------------------------------------------------------


def test_stall_after_reading_the_request_is_unknown(
    start_bank: StartBank, make_api: MakeApi
) -> None:
    bank = start_bank(always(Stall(5.0)))
    api = make_api(bank.base_url, read_timeout=0.4)
    with pytest.raises(OutcomeUnknownError) as info:
        api.submit(REQUEST_ID, b'{"x":1}')
    assert not isinstance(info.value, NeverSentError)
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert [r.body for r in bank.requests] == [b'{"x":1}']  # the bank did get it


def test_reset_after_reading_the_request_is_unknown(
    start_bank: StartBank, make_api: MakeApi
) -> None:
    bank = start_bank(always(Reset()))
    with pytest.raises(OutcomeUnknownError) as info:
        make_api(bank.base_url).submit(REQUEST_ID, b'{"x":1}')
    assert not isinstance(info.value, NeverSentError)
    assert isinstance(info.value.__cause__, httpx.ReadError | httpx.RemoteProtocolError)
    assert len(bank.requests) == 1


def test_write_timeout_mid_body_is_unknown(start_bank: StartBank, make_api: MakeApi) -> None:
    bank = start_bank()
    bank.hold_before_body = True  # reads the headers, never the body
    api = make_api(bank.base_url, write_timeout=0.3)
    with pytest.raises(OutcomeUnknownError) as info:
        api.submit(REQUEST_ID, b"x" * (48 * 1024 * 1024))
    assert not isinstance(info.value, NeverSentError)
    assert isinstance(info.value.__cause__, httpx.WriteTimeout)


def test_connection_refused_is_never_sent(make_api: MakeApi) -> None:
    api = make_api(f"https://127.0.0.1:{closed_port()}")
    with pytest.raises(NeverSentError) as info:
        api.submit(REQUEST_ID, b"{}")
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_dns_failure_is_never_sent(make_api: MakeApi) -> None:
    api = make_api("https://bank.invalid:8443")  # RFC 2606: never resolves
    with pytest.raises(NeverSentError):
        api.submit(REQUEST_ID, b"{}")


def test_unknown_server_ca_is_never_sent(start_bank: StartBank, make_api: MakeApi) -> None:
    bank = start_bank(always(ack(202)))
    api = make_api(bank.base_url, server_ca="rogue_ca")
    with pytest.raises(NeverSentError, match="CERTIFICATE_VERIFY_FAILED"):
        api.submit(REQUEST_ID, b"{}")
    assert bank.requests == []


def test_wrong_host_name_is_never_sent(start_bank: StartBank, make_api: MakeApi) -> None:
    bank = start_bank(always(ack(202)), cert="server_wrong_name")
    api = make_api(bank.base_url)
    with pytest.raises(NeverSentError, match=r"IP address mismatch|hostname"):
        api.submit(REQUEST_ID, b"{}")
    assert bank.requests == []


def test_system_trust_store_is_not_used(pki: Pki) -> None:
    context = build_client_ssl_context(
        client_cert=pki["client.pem"],
        client_key=pki["client.key.pem"],
        server_ca_pem=pki["bank_ca.pem"].read_bytes(),
    )
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "bank CA"),),)]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert context.post_handshake_auth is False


@pytest.mark.parametrize("max_version", ["TLSv1_2", "TLSv1_3"])
@pytest.mark.parametrize("client", ["missing", "untrusted"])
def test_client_certificate_refused_is_never_sent(
    client: str, max_version: str, pki: Pki, start_bank: StartBank, make_api: MakeApi
) -> None:
    """Under TLS 1.3 the server's verdict arrives after our request is written; its alert
    still proves the handshake never completed (see the classification table)."""
    bank = start_bank(always(ack(202)), max_version=max_version)
    if client == "missing":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=pki["bank_ca.pem"])
        api = make_api(bank.base_url, ssl_context=context)
    else:
        api = make_api(bank.base_url, client_cert="rogue_client")
    with pytest.raises(NeverSentError) as info:
        api.submit(REQUEST_ID, b"{}")
    assert not isinstance(info.value, OutcomeUnknownError)
    assert bank.requests == []
    wait_until(lambda: bank.handshake_failures, what="the server to see the handshake fail")


# --- classification, unit level ----------------------------------------------------------


def _chained(outer: Exception, cause: BaseException) -> Exception:
    outer.__cause__ = cause
    return outer


def _alert(reason: str) -> ssl.SSLError:
    exc = ssl.SSLError(1, f"[SSL: {reason}] alert")
    exc.reason = reason
    return exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("refused"), "never_sent"),
        (httpx.ConnectTimeout("slow handshake"), "never_sent"),
        (httpx.PoolTimeout("no connection"), "never_sent"),
        (httpx.UnsupportedProtocol("ftp"), "never_sent"),
        (httpx.ReadTimeout("no answer"), "unknown"),
        (httpx.WriteTimeout("half a body"), "unknown"),
        (httpx.WriteError("broken pipe"), "unknown"),
        (httpx.ReadError("reset"), "unknown"),
        (httpx.RemoteProtocolError("disconnected"), "unknown"),
        (httpx.LocalProtocolError("?"), "unknown"),
        (httpx.CloseError("?"), "unknown"),
        (httpx.ProxyError("?"), "unknown"),
        (OSError("?"), "unknown"),
        (_chained(httpx.ReadError("x"), _alert("TLSV13_ALERT_CERTIFICATE_REQUIRED")), "never_sent"),
        (_chained(httpx.WriteError("x"), _alert("TLSV1_ALERT_UNKNOWN_CA")), "never_sent"),
        (_chained(httpx.ReadError("x"), _alert("SSLV3_ALERT_BAD_RECORD_MAC")), "unknown"),
        (_chained(httpx.ReadTimeout("x"), _alert("TLSV1_ALERT_UNKNOWN_CA")), "unknown"),
    ],
    ids=lambda v: v if isinstance(v, str) else f"{type(v).__name__}",
)  # fmt: skip
def test_classify(exc: BaseException, expected: str) -> None:
    assert classify(exc) == expected


# --- inquiry -----------------------------------------------------------------------------


def test_inquiry_200_is_parsed_and_kept_raw(start_bank: StartBank, make_api: MakeApi) -> None:
    body = json.dumps(status_doc(), ensure_ascii=False).encode()
    bank = start_bank(always(Reply(200, body)))
    status = make_api(bank.base_url).inquire(SERIAL, 1)
    assert status is not None
    assert status.raw == body
    assert (status.batch_serial, status.file_no, status.completed) == (SERIAL, 1, True)
    paid, failed = status.items
    assert (paid.status, paid.bank_code, paid.amount_fen) == (ApiItemStatus.PAID, "0000", 35001)
    assert paid.processed_at == dt.datetime(
        2026, 11, 28, 10, tzinfo=dt.timezone(dt.timedelta(hours=8))
    )
    assert (failed.status, failed.bank_code, failed.bank_message) == (
        ApiItemStatus.FAILED, "E104", "账户已销户"
    )  # fmt: skip
    [seen] = bank.requests
    assert (seen.method, seen.path, seen.body) == (
        "GET",
        f"/openapi/v1/disbursements/{SERIAL}/1",
        b"",
    )
    assert seen.signature_ok, seen.signature_error


def test_inquiry_processing_with_pending_and_returned_items(
    start_bank: StartBank, make_api: MakeApi
) -> None:
    doc = status_doc(status="processing", paid_count=0, paid_fen=0, failed_count=0, failed_fen=0)
    doc["items"] = [
        {"serial": f"{SERIAL}00000001", "status": "returned", "code": "R001",
         "message": "退票：账户已销户", "amount_fen": 35001, "bank_ref": "MB1",
         "processed_at": "2026-11-28T10:00:00+08:00", "returned_at": "2026-11-29T09:00:00+08:00"},
        {"serial": f"{SERIAL}00000002", "status": "pending", "code": "", "message": "",
         "amount_fen": 35002, "bank_ref": "", "processed_at": None},
    ]  # fmt: skip
    bank = start_bank(always(Reply(200, json.dumps(doc).encode())))
    status = make_api(bank.base_url).inquire(SERIAL, 1)
    assert status is not None and not status.completed
    returned, pending = status.items
    assert returned.status == ApiItemStatus.RETURNED and returned.returned_at is not None
    assert pending.status == ApiItemStatus.PENDING and pending.processed_at is None


def test_inquiry_404_not_found_is_none(start_bank: StartBank, make_api: MakeApi) -> None:
    bank = start_bank(always(error(404, "NOT_FOUND")))
    assert make_api(bank.base_url).inquire(SERIAL, 1) is None


def test_inquiry_404_of_a_router_is_no_proof(start_bank: StartBank, make_api: MakeApi) -> None:
    bank = start_bank(always(error(404, "ROUTE_NOT_FOUND")))
    with pytest.raises(InquiryFailedError) as info:
        make_api(bank.base_url).inquire(SERIAL, 1)
    assert (info.value.status, info.value.code) == (404, "ROUTE_NOT_FOUND")


def _broken(mutate: Callable[[dict[str, Any]], object]) -> bytes:
    doc = status_doc()
    mutate(doc)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"[]", id="not-object"),
        pytest.param(_broken(lambda d: d["items"][0].update(amount_fen=350.01)), id="float-amount"),
        pytest.param(_broken(lambda d: d["items"][0].update(amount_fen=True)), id="bool-amount"),
        pytest.param(_broken(lambda d: d["items"][0].update(amount_fen="35001")), id="text-amount"),
        pytest.param(_broken(lambda d: d["items"][0].update(status="ok")), id="bad-status"),
        pytest.param(_broken(lambda d: d["items"][0].update(serial="X" * 24)), id="foreign-serial"),
        pytest.param(_broken(lambda d: d["items"][1].update(serial=f"{SERIAL}00000001")),
                     id="repeated-serial"),
        pytest.param(_broken(lambda d: d.update(paid_fen=1)), id="totals"),
        pytest.param(_broken(lambda d: d.update(batch_serial="26112896AAAAAAA1")),
                     id="other-batch"),
        pytest.param(_broken(lambda d: d.update(extra=1)), id="unknown-key"),
        pytest.param(_broken(lambda d: d["items"][0].pop("processed_at")), id="missing-time"),
        pytest.param(_broken(lambda d: d["items"][0].update(processed_at="2026-11-28 10:00")),
                     id="bad-time"),
        pytest.param(_broken(lambda d: d["items"][0].update(status="pending", code="")),
                     id="pending-in-completed"),
        pytest.param(b'{"batch_serial":"a","batch_serial":"b"}', id="duplicate-key"),
        pytest.param(b'{"paid_fen": NaN}', id="nan"),
    ],
)  # fmt: skip
def test_inquiry_malformed_200_is_a_format_error(
    body: bytes, start_bank: StartBank, make_api: MakeApi
) -> None:
    bank = start_bank(always(Reply(200, body)))
    with pytest.raises(FormatError):
        make_api(bank.base_url).inquire(SERIAL, 1)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(200, json.dumps(status_doc()).encode(), signed=False), id="unsigned"),
        pytest.param(Reply(200, json.dumps(status_doc()).encode(), sign_body=b"{}"), id="tampered"),
        pytest.param(error(404, "NOT_FOUND", signed=False), id="unsigned-404"),
    ],
)
def test_inquiry_with_a_bad_signature_failed(
    reply: Reply, start_bank: StartBank, make_api: MakeApi
) -> None:
    bank = start_bank(always(reply))
    with pytest.raises(InquiryFailedError) as info:
        make_api(bank.base_url).inquire(SERIAL, 1)
    assert isinstance(info.value.__cause__, SignatureError)
    assert not isinstance(info.value, NeverSentError | OutcomeUnknownError)


def test_inquiry_transport_failures_and_429(start_bank: StartBank, make_api: MakeApi) -> None:
    with pytest.raises(InquiryFailedError) as refused:
        make_api(f"https://127.0.0.1:{closed_port()}").inquire(SERIAL, 1)
    assert refused.value.status is None
    bank = start_bank(always(error(429, "RATE_LIMITED", headers={"Retry-After": "3"})))
    with pytest.raises(InquiryFailedError) as limited:
        make_api(bank.base_url).inquire(SERIAL, 1)
    assert (limited.value.status, limited.value.retry_after) == (429, 3.0)
    stalled = start_bank(always(Stall(5.0)))
    with pytest.raises(InquiryFailedError):
        make_api(stalled.base_url, read_timeout=0.3).inquire(SERIAL, 1)


def test_inquiry_refuses_path_injection(make_api: MakeApi) -> None:
    api = make_api("https://127.0.0.1:9")
    with pytest.raises(ValueError, match="batch serial"):
        api.inquire("../../admin/xxxxx", 1)


# --- rendering and SM4 ---------------------------------------------------------------------


def test_render_submission_is_the_contract_json(make_api: MakeApi) -> None:
    api = make_api("https://127.0.0.1:9")
    body = api.render_submission(header(), items())
    assert body == api.render_submission(header(), items())  # deterministic
    assert "刘䶮".encode() in body and "王𬎆".encode() in body  # UTF-8, not \\u escapes
    doc = json.loads(body)
    assert list(doc) == ["batch_serial", "file_no", "payer_account", "payer_name",
                         "subsidy_code", "subsidy_name", "period", "item_count", "total_fen",
                         "items"]  # fmt: skip
    assert list(doc["items"][0]) == ["seq", "serial", "name", "id_number", "account_no",
                                     "amount_fen", "remark"]  # fmt: skip
    assert doc["payer_name"] == "岳阳县财政局惠民惠农资金专户"
    assert (doc["item_count"], doc["total_fen"]) == (2, 70003)
    assert doc["items"][1]["remark"] == ""
    assert api.request_id(SERIAL, 1) == REQUEST_ID


def test_render_uses_the_profile_payer_name_when_the_header_has_none(make_api: MakeApi) -> None:
    api = make_api("https://127.0.0.1:9", payer_name="某县财政局")
    doc = json.loads(api.render_submission(header(payer_name=""), items()))
    assert doc["payer_name"] == "某县财政局"
    with pytest.raises(FieldError) as info:
        make_api("https://127.0.0.1:9").render_submission(header(payer_name=""), items())
    assert info.value.field_name == "payer_name"


@pytest.mark.parametrize(
    ("changes", "error_type"),
    [
        ({"item_count": 3}, FormatError),
        ({"total_fen": 1}, FormatError),
        ({"batch_serial": "short"}, FormatError),
    ],
)
def test_render_refuses_inconsistent_headers(
    changes: dict[str, Any], error_type: type[Exception], make_api: MakeApi
) -> None:
    with pytest.raises(error_type):
        make_api("https://127.0.0.1:9").render_submission(header(**changes), items())


def test_render_refuses_unwritable_items(make_api: MakeApi) -> None:
    api = make_api("https://127.0.0.1:9")
    bad = items()
    bad[0] = RequestItem(1, bad[0].serial, bad[0].account_no, "刘\ud800", bad[0].id_number, 35001)
    with pytest.raises(FieldError) as info:
        api.render_submission(header(), bad)
    assert info.value.field_name == "name"
    bad[0] = RequestItem(1, bad[0].serial, bad[0].account_no, "刘", bad[0].id_number, 0)
    with pytest.raises(FieldError, match="amount_fen"):
        api.render_submission(header(total_fen=35002), bad)
    with pytest.raises(FormatError, match="sequence"):
        api.render_submission(header(), list(reversed(items())))


MAC_KEY_INFO = b"openapi-v1 SM4-CBC-HMAC-SM3 mac key"


def _envelope_mac(key: bytes, iv: bytes, data: bytes) -> bytes:
    """From the contract: HMAC-SM3 over IV ‖ ciphertext, key HKDF-SM3(K, no salt, info)."""
    mac_key = HKDF(algorithm=hashes.SM3(), length=32, salt=None, info=MAC_KEY_INFO).derive(key)
    tag = hmac.HMAC(mac_key, hashes.SM3())
    tag.update(iv + data)
    return tag.finalize()


def _sm4_cbc_decrypt_raw(key: bytes, iv: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithms.SM4(key), modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def _open_envelope(key: bytes, envelope: dict[str, str]) -> bytes:
    """The receiver's steps of the contract, written here from it (not the adapter's code):
    the MAC first, then SM4-CBC and the PKCS#7 padding."""
    assert envelope["alg"] == "SM4-CBC-HMAC-SM3"
    iv, data, mac = (base64.b64decode(envelope[k], validate=True) for k in ("iv", "data", "mac"))
    assert len(iv) == 16 and len(mac) == 32 and data and len(data) % 16 == 0
    assert _envelope_mac(key, iv, data) == mac, "the MAC does not verify"
    unpadder = sym_padding.PKCS7(128).unpadder()
    return unpadder.update(_sm4_cbc_decrypt_raw(key, iv, data)) + unpadder.finalize()


def _padding_passes(key: bytes, iv: bytes, data: bytes) -> bool:
    unpadder = sym_padding.PKCS7(128).unpadder()
    try:
        unpadder.update(_sm4_cbc_decrypt_raw(key, iv, data))
        unpadder.finalize()
    except ValueError:
        return False
    return True


def test_sm4_envelope_decrypts_to_the_plain_body(start_bank: StartBank, make_api: MakeApi) -> None:
    plain = make_api("https://127.0.0.1:9").render_submission(header(), items())
    bank = start_bank(always(ack(202)))
    api = make_api(bank.base_url, encryption=Sm4Encryption("k2026", SM4_KEY))
    body = api.render_submission(header(), items())
    envelope = json.loads(body)
    assert list(envelope) == ["encrypted"]
    assert list(envelope["encrypted"]) == ["alg", "key_id", "iv", "data", "mac"]
    assert envelope["encrypted"]["alg"] == "SM4-CBC-HMAC-SM3"
    assert envelope["encrypted"]["key_id"] == "k2026"
    iv = base64.b64decode(envelope["encrypted"]["iv"], validate=True)
    assert len(iv) == 16
    assert len(base64.b64decode(envelope["encrypted"]["mac"], validate=True)) == 32
    assert _open_envelope(SM4_KEY, envelope["encrypted"]) == plain
    assert "刘䶮".encode() not in body
    # a fresh IV each rendering; the stored bytes are what submit sends, as they are
    assert (
        json.loads(api.render_submission(header(), items()))["encrypted"]["iv"]
        != (envelope["encrypted"]["iv"])
    )
    api.submit(REQUEST_ID, body)
    [seen] = bank.requests
    assert seen.body == body and seen.signature_ok  # encrypt, then sign


#: The example of docs/formats/openapi-v1.md, "Optional body encryption (SM4)".
SPEC_PLAIN = b'{"batch_serial":"26112896XZZYYPH7","file_no":1}'
SPEC_ENVELOPE = {
    "alg": "SM4-CBC-HMAC-SM3",
    "key_id": "k2026",
    "iv": "AAECAwQFBgcICQoLDA0ODw==",
    "data": "hIdZ8KW3VKjWrqfSVgredAYIgWBosMQ1ZcsQI40i/vA53VYSsVE5fYIhROoWWW1b",
    "mac": "1gAT8dZxINMoMX2xznmpdtiUkbILMygzBW9oya7H5Qo=",
}


def test_sm4_envelope_known_answer() -> None:
    encryption = Sm4Encryption("k2026", SM4_KEY)
    sealed = encryption.seal(SPEC_PLAIN, iv=bytes(range(16)))
    assert json.loads(sealed) == {"encrypted": SPEC_ENVELOPE}
    assert _open_envelope(SM4_KEY, SPEC_ENVELOPE) == SPEC_PLAIN  # this file's reading
    assert encryption.open(json.dumps({"encrypted": SPEC_ENVELOPE}).encode()) == SPEC_PLAIN


def _sealed(key: bytes, iv: bytes, blocks: bytes, key_id: str = "k2026") -> bytes:
    """An envelope (written here from the contract) of already padded blocks, MAC valid."""
    encryptor = Cipher(algorithms.SM4(key), modes.CBC(iv)).encryptor()
    data = encryptor.update(blocks) + encryptor.finalize()
    mac = _envelope_mac(key, iv, data)
    return json.dumps(
        {"encrypted": {"alg": "SM4-CBC-HMAC-SM3", "key_id": key_id,
                       "iv": base64.b64encode(iv).decode(), "data": base64.b64encode(data).decode(),
                       "mac": base64.b64encode(mac).decode()}}
    ).encode()  # fmt: skip


def _pkcs7(data: bytes) -> bytes:
    padder = sym_padding.PKCS7(128).padder()
    return padder.update(data) + padder.finalize()


def test_sm4_open_refuses_a_wrong_key_with_certainty(rng: random.Random) -> None:
    """Another key under our key id fails the MAC, before anything is decrypted: also the
    wrong keys whose garbage would pass the padding check (searched for with ``rng``)."""
    ours = Sm4Encryption("k2026", SM4_KEY)
    plain = make_plain()
    lucky = 0
    tried = 0
    while lucky < 3:  # about 255 tries per lucky key
        tried += 1
        assert tried < 100_000, "no wrong key with valid padding found"
        key = rng.randbytes(16)
        if key == SM4_KEY:
            continue
        body = Sm4Encryption("k2026", key).seal(plain, iv=rng.randbytes(16))
        inner = json.loads(body)["encrypted"]
        passes = _padding_passes(
            SM4_KEY, base64.b64decode(inner["iv"]), base64.b64decode(inner["data"])
        )
        if passes or tried <= 64:  # every lucky one, and the first 64 of the others
            with pytest.raises(Sm4IntegrityError):
                ours.open(body)
        lucky += passes


def make_plain() -> bytes:
    return json.dumps({"batch_serial": SERIAL, "file_no": 1}).encode()


def test_sm4_open_checks_in_the_contract_order(rng: random.Random) -> None:
    ours = Sm4Encryption("k2026", SM4_KEY)
    plain = make_plain()
    body = ours.seal(plain, iv=rng.randbytes(16))
    assert ours.open(body) == plain
    inner = json.loads(body)["encrypted"]

    def changed(**parts: str) -> bytes:
        return json.dumps({"encrypted": {**inner, **parts}}).encode()

    def flipped(name: str, index: int) -> str:
        raw = bytearray(base64.b64decode(inner[name]))
        raw[index] ^= 0x80
        return base64.b64encode(bytes(raw)).decode()

    # altered tag, ciphertext or IV: the MAC, not the padding, says so
    for name, index in (("mac", 0), ("mac", 31), ("data", 0), ("data", -1), ("iv", 5)):
        with pytest.raises(Sm4IntegrityError):
            ours.open(changed(**{name: flipped(name, index)}))
    # form, before any key is used
    for bad in (
        changed(alg="SM4-CBC"),
        json.dumps({"encrypted": {k: v for k, v in inner.items() if k != "mac"}}).encode(),
        changed(mac=base64.b64encode(bytes(16)).decode()),
        changed(iv=base64.b64encode(bytes(15)).decode()),
        changed(data=inner["data"][:-4]),
        changed(mac="not base64!"),
    ):
        with pytest.raises(FormatError):
            ours.open(bad)
    # another key id
    with pytest.raises(Sm4DecryptionError):
        Sm4Encryption("k2027", SM4_KEY).open(body)
    # a valid MAC over blocks without valid padding: a decryption error, not an integrity one
    unpadded = _sealed(SM4_KEY, rng.randbytes(16), plain[:16] + bytes(16))
    with pytest.raises(Sm4DecryptionError) as info:
        ours.open(unpadded)
    assert not isinstance(info.value, Sm4IntegrityError)
    # a valid MAC over a plaintext that is not JSON: opened; what it is, is the reader's
    # business (the bank answers INVALID_REQUEST)
    garbage = rng.randbytes(37)
    assert ours.open(_sealed(SM4_KEY, rng.randbytes(16), _pkcs7(garbage))) == garbage


# --- callbacks -----------------------------------------------------------------------------

CALLBACK_PATH = "/v1/bank-callbacks/abc"
CALLBACK = json.dumps(
    {"event_id": "EV2026112800000001", "event": "disbursement.completed",
     "batch_serial": SERIAL, "file_no": 1, "sent_at": "2026-11-28T10:00:01+08:00"}
).encode()  # fmt: skip


def signed_callback(
    keys: Keys, body: bytes = CALLBACK, *, at: int = 1_790_000_000, signer: Any = None,
    signed_body: bytes | None = None, nonce: str = "nonce-0123456789abcdef",
) -> dict[str, str]:  # fmt: skip
    signer = signer or keys.bank_signer()
    message = request_string_to_sign("POST", CALLBACK_PATH, at, nonce, signed_body or body)
    return {
        "x-timestamp": str(at),
        "x-nonce": nonce,
        "x-key-id": signer.key_id,
        "x-signature": base64.b64encode(signer.sign(message)).decode(),
        "content-type": "application/json",
    }


def test_callback_valid(keys: Keys, make_api: MakeApi) -> None:
    api = make_api("https://127.0.0.1:9", clock=lambda: 1_790_000_100.0)
    hint = api.verify_callback("POST", CALLBACK_PATH, signed_callback(keys), CALLBACK)
    assert (hint.event_id, hint.event, hint.batch_serial, hint.file_no) == (
        "EV2026112800000001", "disbursement.completed", SERIAL, 1
    )  # fmt: skip
    assert (hint.nonce, hint.timestamp) == ("nonce-0123456789abcdef", 1_790_000_000)
    # header names in any case
    upper = {k.upper(): v for k, v in signed_callback(keys).items()}
    assert api.verify_callback("POST", CALLBACK_PATH, upper, CALLBACK) == hint


@pytest.mark.parametrize(
    "case", ["forged", "stale", "future", "tampered", "other-path", "no-signature", "key-id"]
)
def test_callback_refused(case: str, keys: Keys, make_api: MakeApi) -> None:
    api = make_api("https://127.0.0.1:9", clock=lambda: 1_790_000_000.0)
    headers = signed_callback(keys)
    body, path = CALLBACK, CALLBACK_PATH
    if case == "forged":
        headers = signed_callback(keys, signer=keys.rogue_signer())
    elif case == "stale":
        headers = signed_callback(keys, at=1_790_000_000 - 301)
    elif case == "future":
        headers = signed_callback(keys, at=1_790_000_000 + 301)
    elif case == "tampered":
        body = CALLBACK.replace(b'"file_no": 1', b'"file_no": 2')
        assert body != CALLBACK
    elif case == "other-path":
        path = "/v1/bank-callbacks/hnrcu"
    elif case == "no-signature":
        del headers["x-signature"]
    elif case == "key-id":
        from adapters.crypto.raw import build_raw_signer

        headers = signed_callback(
            keys, signer=build_raw_signer({**keys.bank_config(), "own_key_id": "bank-old"})
        )
    with pytest.raises(SignatureError):
        api.verify_callback("POST", path, headers, body)


def test_callback_window_edge(keys: Keys, make_api: MakeApi) -> None:
    api = make_api("https://127.0.0.1:9", clock=lambda: 1_790_000_300.0)
    api.verify_callback("POST", CALLBACK_PATH, signed_callback(keys), CALLBACK)  # exactly 300 s


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        json.dumps({"event_id": "E1", "event": "payment.stolen", "batch_serial": SERIAL,
                    "file_no": 1, "sent_at": "2026-11-28T10:00:01+08:00"}).encode(),
        json.dumps({"event_id": "E1", "event": "item.returned", "batch_serial": SERIAL,
                    "file_no": "1", "sent_at": "2026-11-28T10:00:01+08:00"}).encode(),
        json.dumps({"event_id": "E1", "event": "item.returned", "batch_serial": SERIAL,
                    "file_no": 1}).encode(),
    ],
)  # fmt: skip
def test_callback_signed_but_malformed_is_a_format_error(
    body: bytes, keys: Keys, make_api: MakeApi
) -> None:
    api = make_api("https://127.0.0.1:9", clock=lambda: 1_790_000_000.0)
    with pytest.raises(FormatError):
        api.verify_callback("POST", CALLBACK_PATH, signed_callback(keys, body), body)


def test_callback_duplicate_signature_headers_are_refused(keys: Keys, make_api: MakeApi) -> None:
    api = make_api("https://127.0.0.1:9", clock=lambda: 1_790_000_000.0)
    headers = signed_callback(keys)
    headers["X-Signature"] = headers["x-signature"]
    with pytest.raises(SignatureError, match="repeated"):
        api.verify_callback("POST", CALLBACK_PATH, headers, CALLBACK)


# --- small things ------------------------------------------------------------------------


def test_mask_hides_card_and_id_numbers() -> None:
    assert mask("卡号6217996529894513637错误") == "卡号***************3637错误"
    assert mask("身份证43062119580712301X不符") == "身份证**************301X不符"
    assert mask("x" * 300).endswith("…") and len(mask("x" * 300)) == 200


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:1", "https://127.0.0.1:1/openapi/v1", "https://u:p@127.0.0.1", "bank"],
)
def test_base_url_must_be_an_https_origin(base_url: str, make_api: MakeApi) -> None:
    with pytest.raises(ValueError, match="base_url"):
        make_api(base_url)


def test_a_tls_context_that_does_not_verify_is_refused(pki: Pki, make_api: MakeApi) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="must verify"):
        make_api("https://127.0.0.1:9", ssl_context=context)
