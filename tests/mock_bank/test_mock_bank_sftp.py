"""The mock bank in-process: a real paramiko client against its SFTP server."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from mock_bank.config import load_config
from mock_bank.server import MockBank
from tests.waits import wait_until


@pytest.fixture
def bank(write_config: Any) -> Iterator[MockBank]:
    mock = MockBank(load_config(write_config(delay=0.0, poll=0.02)))
    mock.start()
    try:
        yield mock
    finally:
        mock.stop()


Connect = Callable[..., paramiko.SFTPClient]


@pytest.fixture
def connect(bank: MockBank, keys: Any) -> Iterator[Connect]:
    clients: list[paramiko.SSHClient] = []

    def open_sftp(
        pkey: paramiko.PKey | None = None, username: str = "gateway", password: str | None = None
    ) -> paramiko.SFTPClient:
        client = paramiko.SSHClient()
        # verify the bank's host key instead of trusting on first use
        client.get_host_keys().add(f"[127.0.0.1]:{bank.sftp_port}", keys.host.get_name(), keys.host)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        clients.append(client)
        client.connect(
            "127.0.0.1",
            port=bank.sftp_port,
            username=username,
            pkey=pkey if password is None else None,
            password=password,
            look_for_keys=False,
            allow_agent=False,
            timeout=5,
            banner_timeout=5,
            auth_timeout=5,
        )
        return client.open_sftp()

    def default(**kwargs: Any) -> paramiko.SFTPClient:
        kwargs.setdefault("pkey", keys.client)
        return open_sftp(**kwargs)

    yield default
    for client in clients:
        client.close()


def upload(sftp: paramiko.SFTPClient, directory: str, name: str, data: bytes) -> None:
    """The gateway's protocol: write ``.<name>.part`` then rename to the final name."""
    temp = f"{directory}/.{name}.part"
    with sftp.open(temp, "wb") as fh:
        fh.write(data)
    sftp.rename(temp, f"{directory}/{name}")


def test_port_file(bank: MockBank) -> None:
    port_file = bank.config.port_file
    assert port_file.read_text() == f"{bank.sftp_port}\n"
    assert bank.sftp_port > 0


def test_full_session(
    bank: MockBank, connect: Connect, keys: Any, helpers: Any, sample_items: Any
) -> None:
    sftp = connect()
    assert sorted(sftp.listdir("/")) == ["inbox", "outbox"]
    data = helpers.build_request(sample_items)
    name = helpers.request_name()
    upload(sftp, "/inbox", f"{name}.sig", helpers.sign_detached(data, keys.gateway))
    upload(sftp, "/inbox", name, data)
    # verify after upload: size and content under the final name
    assert sftp.stat(f"/inbox/{name}").st_size == len(data)
    with sftp.open(f"/inbox/{name}", "rb") as fh:
        assert fh.read() == data

    ret = name.replace("PAY_", "RET_")
    helpers.wait_for(lambda: ret in sftp.listdir("/outbox"))
    assert f"{ret}.sig" in sftp.listdir("/outbox")  # written before the result file
    result_buf, sig_buf = io.BytesIO(), io.BytesIO()
    sftp.getfo(f"/outbox/{ret}", result_buf)
    sftp.getfo(f"/outbox/{ret}.sig", sig_buf)
    helpers.check_detached(result_buf.getvalue(), sig_buf.getvalue(), keys.bank.public_key())
    result = helpers.parse_result(result_buf.getvalue())
    assert (result["status"], result["paid_count"]) == ("A", 3)
    summary = bank.ledger.summary()
    assert (summary["credits"], summary["double_credits"]) == (3, 0)
    assert summary["amount_credited_fen"] == sum(i.amount for i in sample_items)


def test_wrong_key_refused(connect: Connect, keys: Any) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        connect(pkey=keys.other_client)


def test_wrong_user_refused(connect: Connect, keys: Any) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        connect(username="root")


def test_password_refused(connect: Connect) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        connect(pkey=None, password="gateway")


def test_rename_onto_existing_fails(bank: MockBank, connect: Connect) -> None:
    sftp = connect()
    upload(sftp, "/inbox", "a.txt", b"first")
    with sftp.open("/inbox/.b.part", "wb") as fh:
        fh.write(b"second")
    with pytest.raises(OSError):
        sftp.rename("/inbox/.b.part", "/inbox/a.txt")
    assert (bank.inbox / "a.txt").read_bytes() == b"first"
    assert (bank.inbox / ".b.part").read_bytes() == b"second"
    with pytest.raises(FileNotFoundError):
        sftp.rename("/inbox/missing", "/inbox/c.txt")
    sftp.posix_rename("/inbox/.b.part", "/inbox/a.txt")  # the OpenSSH extension replaces
    assert (bank.inbox / "a.txt").read_bytes() == b"second"


def test_ordinary_operations(bank: MockBank, connect: Connect) -> None:
    sftp = connect()
    sftp.mkdir("/inbox/sub")
    sftp.putfo(io.BytesIO(b"hello"), "/inbox/sub/f.bin")
    assert sftp.stat("/inbox/sub/f.bin").st_size == 5
    assert sftp.lstat("/inbox/sub/f.bin").st_size == 5
    attrs = {a.filename: a for a in sftp.listdir_attr("/inbox/sub")}
    assert list(attrs) == ["f.bin"] and attrs["f.bin"].st_size == 5
    with sftp.open("/inbox/sub/f.bin", "r+b") as fh:
        fh.seek(1)
        fh.write(b"E")
        assert fh.stat().st_size == 5
    assert (bank.inbox / "sub" / "f.bin").read_bytes() == b"hEllo"
    sftp.chmod("/inbox/sub/f.bin", 0o600)
    assert (bank.inbox / "sub" / "f.bin").stat().st_mode & 0o777 == 0o600
    sftp.remove("/inbox/sub/f.bin")
    sftp.rmdir("/inbox/sub")
    assert sftp.listdir("/inbox") == []
    with pytest.raises(FileNotFoundError):
        sftp.stat("/inbox/nothing")
    assert sftp.normalize(".") == "/"


def test_paths_never_escape_the_root(bank: MockBank, connect: Connect, tmp_path: Path) -> None:
    sftp = connect()
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    # ".." stops at the root, as under chroot
    assert sorted(sftp.listdir("/../../..")) == ["inbox", "outbox"]
    assert sftp.normalize("../../etc") == "/etc"
    with pytest.raises(FileNotFoundError):
        sftp.stat("/../../etc/passwd")
    sftp.putfo(io.BytesIO(b"x"), "../../escape.txt")
    assert (bank.sftp_root / "escape.txt").exists()
    assert not (bank.sftp_root.parent.parent / "escape.txt").exists()
    # a symlink planted inside the root (not creatable over SFTP) is refused
    os.symlink(outside, bank.inbox / "link.txt")
    os.symlink(tmp_path, bank.inbox / "dirlink")
    with pytest.raises(PermissionError):
        sftp.open("/inbox/link.txt", "rb")
    with pytest.raises(PermissionError):
        sftp.listdir("/inbox/dirlink")
    with pytest.raises(PermissionError):
        sftp.putfo(io.BytesIO(b"x"), "/inbox/dirlink/new.txt")
    assert not (tmp_path / "new.txt").exists()
    with pytest.raises(OSError):
        sftp.symlink("/etc/passwd", "/inbox/pw")
    assert outside.read_text() == "secret"


def test_non_sftp_channels_refused(bank: MockBank, keys: Any) -> None:
    transport = paramiko.Transport(("127.0.0.1", bank.sftp_port))
    try:
        transport.connect(pkey=keys.client, username="gateway")
        channel = transport.open_session()
        with pytest.raises(paramiko.SSHException):
            channel.exec_command("id")
    finally:
        transport.close()


def test_clean_shutdown(write_config: Any, keys: Any) -> None:
    mock = MockBank(load_config(write_config()))
    mock.start()
    port = mock.sftp_port
    transport = paramiko.Transport(("127.0.0.1", port))
    transport.connect(pkey=keys.client, username="gateway")
    paramiko.SFTPClient.from_transport(transport)
    sftp_server = mock._sftp
    assert sftp_server is not None
    wait_until(lambda: sftp_server.connection_count() == 1, what="the connection's thread")
    mock.stop()  # closes the connection and joins its thread
    assert sftp_server.connection_count() == 0
    assert not mock.config.port_file.exists()
    transport.close()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
