"""The delivery rule (``docs/delivery-errors.md``) for the HTTPS API client, with real
sockets: an error that proves nothing reached the bank — a closed port, a server that
accepts and resets before the TLS handshake completes, a TLS server whose certificate we do
not trust — is a ``NeverSentError``, for a submission *and* for a status inquiry (the
inquiry that the gateway makes before re-sending: when it is refused, nothing of that
attempt left either). Anything after the request may have left — a reset after the request
was read, a silence past the read timeout, a 5xx — is not."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from adapters.api.errors import InquiryFailedError, InquiryNotSentError
from adapters.api.openapi import OpenApiBank
from gateway.ports import NeverSentError, OutcomeUnknownError
from tests.adapters.api.bank_server import Reset, Stall, TestBankServer, closed_port
from tests.adapters.api.test_openapi import REQUEST_ID, SERIAL, always, error

MakeApi = Callable[..., OpenApiBank]
StartBank = Callable[..., TestBankServer]


@pytest.fixture
def resetting_port() -> Iterator[int]:
    """A server that accepts every TCP connection and resets it at once (RST), before a
    byte of TLS: what a bank's overloaded front end or a refusing firewall does."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        with contextlib.suppress(OSError):
            listener.close()


# --- provably never reached the bank: NeverSentError, submit and inquire ---------------------


def test_a_closed_port(make_api: MakeApi) -> None:
    api = make_api(f"https://127.0.0.1:{closed_port()}")
    with pytest.raises(NeverSentError) as submitted:
        api.submit(REQUEST_ID, b"{}")
    assert isinstance(submitted.value.__cause__, httpx.ConnectError)
    with pytest.raises(InquiryNotSentError) as inquired:
        api.inquire(SERIAL, 1)
    assert isinstance(inquired.value, NeverSentError)  # what the gateway acts on
    assert isinstance(inquired.value, InquiryFailedError) and inquired.value.status is None
    assert isinstance(inquired.value.__cause__, httpx.ConnectError)


def test_a_server_that_accepts_then_resets_before_tls(
    make_api: MakeApi, resetting_port: int
) -> None:
    api = make_api(f"https://127.0.0.1:{resetting_port}")
    with pytest.raises(NeverSentError) as submitted:
        api.submit(REQUEST_ID, b"{}")
    assert isinstance(submitted.value.__cause__, httpx.ConnectError)  # raised in start_tls
    with pytest.raises(InquiryNotSentError):
        api.inquire(SERIAL, 1)


def test_a_tls_server_whose_certificate_we_do_not_trust(
    start_bank: StartBank, make_api: MakeApi
) -> None:
    bank = start_bank(always(error(503, "UNAVAILABLE")))
    api = make_api(bank.base_url, server_ca="rogue_ca")
    with pytest.raises(NeverSentError, match="CERTIFICATE_VERIFY_FAILED"):
        api.submit(REQUEST_ID, b"{}")
    with pytest.raises(InquiryNotSentError, match="CERTIFICATE_VERIFY_FAILED"):
        api.inquire(SERIAL, 1)
    assert bank.requests == []  # no HTTP request was ever read


def test_a_tls_server_with_a_certificate_for_another_host(
    start_bank: StartBank, make_api: MakeApi
) -> None:
    bank = start_bank(always(error(503, "UNAVAILABLE")), cert="server_wrong_name")
    with pytest.raises(InquiryNotSentError, match=r"IP address mismatch|hostname"):
        make_api(bank.base_url).inquire(SERIAL, 1)
    assert bank.requests == []


# --- may have reached the bank: never a NeverSentError -------------------------------------


def test_a_reset_after_the_request_was_read(start_bank: StartBank, make_api: MakeApi) -> None:
    bank = start_bank(always(Reset()))
    api = make_api(bank.base_url)
    with pytest.raises(OutcomeUnknownError) as submitted:
        api.submit(REQUEST_ID, b'{"x":1}')
    assert not isinstance(submitted.value, NeverSentError)
    with pytest.raises(InquiryFailedError) as inquired:
        api.inquire(SERIAL, 1)
    assert not isinstance(inquired.value, NeverSentError)
    assert len(bank.requests) == 2  # the bank read both


def test_silence_after_the_request_and_a_5xx(start_bank: StartBank, make_api: MakeApi) -> None:
    stalled = start_bank(always(Stall(5.0)))
    api = make_api(stalled.base_url, read_timeout=0.3)
    with pytest.raises(OutcomeUnknownError) as timed_out:
        api.submit(REQUEST_ID, b'{"x":1}')
    assert isinstance(timed_out.value.__cause__, httpx.ReadTimeout)
    with pytest.raises(InquiryFailedError) as inquiry_timed_out:
        api.inquire(SERIAL, 1)
    assert not isinstance(inquiry_timed_out.value, NeverSentError)
    failing = start_bank(always(error(503, "UNAVAILABLE")))
    api = make_api(failing.base_url)
    with pytest.raises(OutcomeUnknownError) as unavailable:
        api.submit(REQUEST_ID, b'{"x":1}')
    assert not isinstance(unavailable.value, NeverSentError)
    with pytest.raises(InquiryFailedError) as inquiry_unavailable:
        api.inquire(SERIAL, 1)
    assert not isinstance(inquiry_unavailable.value, NeverSentError)
    assert inquiry_unavailable.value.status == 503
