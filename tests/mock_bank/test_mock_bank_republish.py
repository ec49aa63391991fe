"""Faults ``republish_result_file`` and ``tampered_result_file``: the bank publishes a result
file again under the same name and with the same size, seen from a plain paramiko client
(result files read by the spec's byte offsets, signatures checked with cryptography)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import paramiko
import pytest

from mock_bank.config import load_config
from mock_bank.faults import KINDS, parse_faults_config
from mock_bank.server import MockBank

BankFactory = Callable[..., MockBank]
PAIN002 = "{urn:iso:std:iso:20022:tech:xsd:pain.002.001.10}"


class Clock:
    """The processor's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def make_bank(write_config: Any) -> Iterator[BankFactory]:
    banks: list[MockBank] = []

    def make(kind: str, *, clock: Clock | None = None, extra: str = "") -> MockBank:
        faults = (
            "[faults]\nseed = 1\nrepublish_after_seconds = 60.0\n"
            f'[[faults.rules]]\nkind = "{kind}"\nnth = [1]\n'
        )
        config = load_config(write_config(extra=extra + faults, poll=0.02))
        bank = MockBank(config, **({"monotonic": clock} if clock else {}))
        bank.start()
        banks.append(bank)
        return bank

    yield make
    for bank in banks:
        bank.stop()


@pytest.fixture
def sftp(keys: Any) -> Iterator[Callable[[MockBank], paramiko.SFTPClient]]:
    clients: list[paramiko.SSHClient] = []

    def open_for(bank: MockBank) -> paramiko.SFTPClient:
        client = paramiko.SSHClient()
        client.get_host_keys().add(f"[127.0.0.1]:{bank.sftp_port}", keys.host.get_name(), keys.host)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            "127.0.0.1",
            port=bank.sftp_port,
            username="gateway",
            pkey=keys.client,
            look_for_keys=False,
            allow_agent=False,
            timeout=5,
        )
        clients.append(client)
        return client.open_sftp()

    yield open_for
    for client in clients:
        client.close()


def _upload(sftp: paramiko.SFTPClient, name: str, data: bytes) -> None:
    with sftp.open(f"/inbox/.{name}.part", "wb") as fh:
        fh.write(data)
    sftp.rename(f"/inbox/.{name}.part", f"/inbox/{name}")


def _fetch(sftp: paramiko.SFTPClient, name: str) -> bytes:
    buf = io.BytesIO()
    sftp.getfo(f"/outbox/{name}", buf)
    return buf.getvalue()


def _send_fw(sftp: paramiko.SFTPClient, helpers: Any, keys: Any) -> str:
    items = [
        helpers.Item(f"S7{n:022d}", f"621700000000007{n}", "王䶮", "430621198001010011", 100 * n)
        for n in range(1, 4)
    ]
    data = helpers.build_request(items)
    name = helpers.request_name()
    _upload(sftp, f"{name}.sig", helpers.sign_detached(data, keys.gateway))
    _upload(sftp, name, data)
    return name.replace("PAY_", "RET_")


def test_the_kinds_and_their_setting_are_known() -> None:
    assert {"republish_result_file", "tampered_result_file"} <= KINDS
    assert parse_faults_config({"republish_after_seconds": 0.5}).republish_after_seconds == 0.5
    assert parse_faults_config(None).republish_after_seconds == 2.0


def test_republish_a_paid_line_now_failed_same_name_same_size(
    make_bank: BankFactory, sftp: Any, keys: Any, helpers: Any
) -> None:
    clock = Clock()
    bank = make_bank("republish_result_file", clock=clock)
    client = sftp(bank)
    ret = _send_fw(client, helpers, keys)
    helpers.wait_for(lambda: ret in client.listdir("/outbox"))
    first = _fetch(client, ret)
    helpers.check_detached(first, _fetch(client, f"{ret}.sig"), keys.bank.public_key())
    assert [i["status"] for i in helpers.parse_result(first)["items"]] == ["S", "S", "S"]
    assert bank.processor.tick() == [] and _fetch(client, ret) == first  # not due yet
    clock.now += 60.0  # republish_after_seconds later
    helpers.wait_for(lambda: _fetch(client, ret) != first)
    second = _fetch(client, ret)
    assert len(second) == len(first)  # same name, same size, other bytes
    helpers.check_detached(second, _fetch(client, f"{ret}.sig"), keys.bank.public_key())
    parsed = helpers.parse_result(second)
    head = parsed["items"][0]
    assert (head["status"], head["code"], head["bank_ref"]) == ("F", "E104", "")
    assert [i["status"] for i in parsed["items"]][1:] == ["S", "S"]
    assert (parsed["paid_count"], parsed["failed_count"], parsed["failed_amount"]) == (2, 1, 100)
    assert bank.faults.fired() == [("republish_result_file", 1)]
    summary = bank.ledger.summary()  # the ledger is not changed: the credit stands
    assert (summary["credits"], summary["returned"], summary["double_credits"]) == (3, 0, 0)
    assert bank.processor.republish_now() == []  # once


def test_tampered_first_then_the_genuine_file(
    make_bank: BankFactory, sftp: Any, keys: Any, helpers: Any
) -> None:
    bank = make_bank("tampered_result_file")
    client = sftp(bank)
    ret = _send_fw(client, helpers, keys)
    helpers.wait_for(lambda: ret in client.listdir("/outbox"))
    tampered, sig = _fetch(client, ret), _fetch(client, f"{ret}.sig")
    with pytest.raises(AssertionError):
        helpers.check_detached(tampered, sig, keys.bank.public_key())
    assert helpers.parse_result(tampered)["items"][0]["status"] == "F"
    assert bank.processor.republish_now() == [ret]  # the control: at once
    genuine = _fetch(client, ret)
    assert len(genuine) == len(tampered) and _fetch(client, f"{ret}.sig") == sig
    helpers.check_detached(genuine, sig, keys.bank.public_key())
    assert [i["status"] for i in helpers.parse_result(genuine)["items"]] == ["S", "S", "S"]
    assert bank.processor.republish_now() == []
    assert bank.faults.fired() == [("tampered_result_file", 1)]


def test_a_restarted_bank_still_republishes_once(
    make_bank: BankFactory, sftp: Any, keys: Any, helpers: Any
) -> None:
    clock = Clock()
    bank = make_bank("republish_result_file", clock=clock)
    client = sftp(bank)
    ret = _send_fw(client, helpers, keys)
    helpers.wait_for(lambda: ret in client.listdir("/outbox"))
    first = _fetch(client, ret)
    bank.processor.simulate_restart()
    clock.now += 60.0
    helpers.wait_for(lambda: _fetch(client, ret) != first)
    bank.processor.simulate_restart()
    clock.now += 60.0
    bank.processor.tick()
    assert bank.processor.pending_count == 0 and bank.processor.republish_now() == []


def test_iso_pain002_republished_with_the_same_size(
    make_bank: BankFactory, sftp: Any, keys: Any, helpers: Any
) -> None:
    from tests.mock_bank.test_mock_bank_faults import ISO_SERIAL, one_pain001

    bank = make_bank("republish_result_file", extra='format = "iso20022-v1"\n')
    client = sftp(bank)
    data = one_pain001(f"{ISO_SERIAL}00000001", "350.01")
    name = f"P001_{ISO_SERIAL}_01.xml"
    _upload(client, f"{name}.sig", helpers.sign_detached(data, keys.gateway))
    _upload(client, name, data)
    report = f"P002_{ISO_SERIAL}_01.xml"
    helpers.wait_for(lambda: report in client.listdir("/outbox"))
    first = _fetch(client, report)
    assert bank.processor.republish_now() == [report]
    second = _fetch(client, report)
    assert len(second) == len(first) and second != first
    helpers.check_detached(second, _fetch(client, f"{report}.sig"), keys.bank.public_key())
    (tx,) = ET.fromstring(second).iter(f"{PAIN002}TxInfAndSts")  # noqa: S314 - bank output
    assert tx.findtext(f"{PAIN002}TxSts") == "RJCT"
    assert tx.findtext(f"{PAIN002}StsRsnInf/{PAIN002}Rsn/{PAIN002}Cd") == "AC04"
    assert tx.find(f"{PAIN002}AcctSvcrRef") is None
