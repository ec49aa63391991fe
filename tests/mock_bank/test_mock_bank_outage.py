"""The mock bank taken off the network (``close_listeners``) and back (``open_listeners``):
every connection to its ports is refused meanwhile, its state carries on, and it listens
again on the same ports."""

from __future__ import annotations

import socket
from typing import Any


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def test_closed_listeners_refuse_every_connection_then_listen_again(
    bank: Any, api_bank: Any
) -> None:
    ports = {"sftp": bank.sftp_port, "api": api_bank.api_port}
    bank.close_listeners()
    api_bank.close_listeners()
    assert {name: _refused(port) for name, port in ports.items()} == {"sftp": True, "api": True}
    assert bank.ledger.summary()["credits"] == 0  # the bank itself carries on
    bank.close_listeners()  # twice is once
    bank.open_listeners()
    api_bank.open_listeners()
    assert (bank.sftp_port, api_bank.api_port) == (ports["sftp"], ports["api"])
    assert {name: _refused(port) for name, port in ports.items()} == {"sftp": False, "api": False}
    with socket.create_connection(("127.0.0.1", ports["sftp"]), timeout=5) as conn:
        assert conn.recv(64).startswith(b"SSH-2.0-")  # a real SSH server again


def test_a_bank_stopped_while_off_the_network_releases_its_ports(bank: Any) -> None:
    port = bank.sftp_port
    for _ in range(2):
        bank.close_listeners()
        bank.open_listeners()
    bank.close_listeners()
    bank.stop()
    with socket.create_server(("127.0.0.1", port)):
        pass  # free again
