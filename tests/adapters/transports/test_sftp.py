"""SftpTransport against an in-process paramiko SFTP server (see conftest.py)."""

from __future__ import annotations

import base64
import io
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from adapters.registry import build_transport
from adapters.transports.errors import RemoteExistsError, RemoteNotFoundError
from adapters.transports.sftp import SftpTransport, fingerprint_sha256
from gateway.certs import DEV_KEY_FILES as K
from gateway.ports import (
    FileTransport,
    HostKeyError,
    NeverSentError,
    OutcomeUnknownError,
    RemoteFile,
)
from tests.ports import reserve_port

if TYPE_CHECKING:
    from conftest import SftpTestServer

MakeTransport = Callable[..., SftpTransport]
NAME = "PAY_2026A00000000001_01.txt"
DATA = ("H FW01 阿依古丽·买买提 𬎆\r\n".encode("gb18030")) * 3000  # ~ 100 KB, several writes


def names_in(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


# --- host key pinning --------------------------------------------------------------------------


def test_pinned_host_key_is_accepted(make_transport: MakeTransport, sftp_root: Path) -> None:
    with make_transport() as transport:
        transport.put_atomic("/inbox", NAME, DATA)
    assert (sftp_root / "inbox" / NAME).read_bytes() == DATA


ServerFactory = Callable[..., "SftpTestServer"]


def other_ed25519_key() -> paramiko.PKey:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    return paramiko.Ed25519Key(file_obj=io.StringIO(pem.decode()))


@pytest.fixture
def impostor(sftp_server_factory: ServerFactory) -> SftpTestServer:
    """A server on another port with a different Ed25519 host key."""
    return sftp_server_factory(other_ed25519_key())


def test_unknown_host_key_is_refused_before_auth(
    make_transport: MakeTransport, impostor: SftpTestServer
) -> None:
    transport = make_transport(port=impostor.port)
    with pytest.raises(HostKeyError) as info:
        transport.put_atomic("/inbox", NAME, DATA)
    message = str(info.value)
    assert f"127.0.0.1:{impostor.port}" in message
    assert fingerprint_sha256(impostor.host_key.asbytes()) in message
    assert transport.pinned_host_key.fingerprint in message
    assert impostor.record.auth_attempts == []  # refused before we authenticated
    assert impostor.record.operations == []
    assert names_in(impostor.root / "inbox") == []


def test_changed_host_key_type_is_a_host_key_error(
    make_transport: MakeTransport, sftp_server_factory: ServerFactory
) -> None:
    server = sftp_server_factory(paramiko.RSAKey.generate(2048))
    with pytest.raises(HostKeyError, match="ssh-rsa SHA256:"):
        make_transport(port=server.port).connect()
    assert server.record.auth_attempts == []


def test_fingerprint_matches_openssh_format(dev_keys: Path) -> None:
    kind, blob_b64 = (dev_keys / K.sftp_host_pub).read_text().split()[:2]
    key = paramiko.PKey.from_type_string(kind, base64.b64decode(blob_b64))
    assert fingerprint_sha256(key.asbytes()) == key.fingerprint  # paramiko's own rendering
    assert fingerprint_sha256(key.asbytes()).startswith("SHA256:")
    assert not fingerprint_sha256(key.asbytes()).endswith("=")


def test_bad_pinned_key_file_fails_at_construction(
    make_transport: MakeTransport, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_text("ssh-ed25519 not-base64!!\n")
    with pytest.raises(ValueError, match="not valid base64"):
        make_transport(host_public_key_path=bad)
    bad.write_text("# only a comment\n")
    with pytest.raises(ValueError, match="no public key line"):
        make_transport(host_public_key_path=bad)


# --- put_atomic --------------------------------------------------------------------------------


def test_put_atomic_leaves_only_the_final_name(
    make_transport: MakeTransport, sftp_server: SftpTestServer, sftp_root: Path
) -> None:
    with make_transport() as transport:
        transport.put_atomic("/inbox", NAME + ".sig", b"alg=x\n")
        transport.put_atomic("/inbox", NAME, DATA)
    assert names_in(sftp_root / "inbox") == [NAME, NAME + ".sig"]
    assert (sftp_root / "inbox" / NAME).read_bytes() == DATA
    # written under the dot-name first, then renamed
    ops = [op for op in sftp_server.record.operations if NAME in op[1] and ".sig" not in op[1]]
    assert ("open", f"/inbox/.{NAME}.part") in ops
    assert ops[-1] == ("rename", f"/inbox/{NAME}")


def test_put_atomic_replaces_a_stale_temporary_file(
    make_transport: MakeTransport, sftp_root: Path
) -> None:
    (sftp_root / "inbox" / f".{NAME}.part").write_bytes(b"half of an old upload")
    with make_transport() as transport:
        transport.put_atomic("/inbox", NAME, DATA)
    assert names_in(sftp_root / "inbox") == [NAME]
    assert (sftp_root / "inbox" / NAME).read_bytes() == DATA


def test_existing_final_name_raises_remote_exists(
    make_transport: MakeTransport, sftp_root: Path
) -> None:
    (sftp_root / "inbox" / NAME).write_bytes(b"already here")
    with make_transport() as transport, pytest.raises(RemoteExistsError) as info:
        transport.put_atomic("/inbox", NAME, DATA)
    assert isinstance(info.value, OutcomeUnknownError)  # safe for code that knows only ports
    assert info.value.existing == RemoteFile(NAME, len(b"already here"))
    assert (sftp_root / "inbox" / NAME).read_bytes() == b"already here"
    assert names_in(sftp_root / "inbox") == [NAME]


def test_rename_onto_a_name_created_meanwhile_raises_remote_exists(
    make_transport: MakeTransport, sftp_server: SftpTestServer, sftp_root: Path
) -> None:
    sftp_server.faults.create_target_before_rename = b"the competitor's file"
    with make_transport() as transport, pytest.raises(RemoteExistsError, match="cannot rename"):
        transport.put_atomic("/inbox", NAME, DATA)
    assert (sftp_root / "inbox" / NAME).read_bytes() == b"the competitor's file"
    assert names_in(sftp_root / "inbox") == [NAME]  # our temporary file was removed


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "..", "x\x00y"])
def test_put_atomic_refuses_bad_names(make_transport: MakeTransport, name: str) -> None:
    with pytest.raises(ValueError, match="invalid remote file name"):
        make_transport().put_atomic("/inbox", name, b"x")


# --- error classification ----------------------------------------------------------------------


def test_connection_refused_is_never_sent(make_transport: MakeTransport) -> None:
    with pytest.raises(NeverSentError, match="cannot connect"):
        make_transport(port=reserve_port()).put_atomic("/inbox", NAME, DATA)


def test_dns_failure_is_never_sent(
    make_transport: MakeTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_dns(*args: object, **kwargs: object) -> socket.socket:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    transport = make_transport(host="sftp.bank.invalid")
    monkeypatch.setattr(socket, "create_connection", no_dns)
    with pytest.raises(NeverSentError, match=r"sftp\.bank\.invalid:\d+: cannot connect"):
        transport.connect()


def test_silent_server_is_a_handshake_timeout(make_transport: MakeTransport) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    try:
        transport = make_transport(port=listener.getsockname()[1], timeout=0.5)
        with pytest.raises(NeverSentError, match=r"handshake (timed out|failed after)"):
            transport.connect()
    finally:
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        listener.close()


def test_authentication_failure_is_never_sent(
    make_transport: MakeTransport, sftp_server: SftpTestServer, sftp_root: Path
) -> None:
    with pytest.raises(NeverSentError, match="authentication as 'someone-else'"):
        make_transport(username="someone-else").put_atomic("/inbox", NAME, DATA)
    assert sftp_server.record.auth_attempts == ["someone-else"]
    assert names_in(sftp_root / "inbox") == []


def test_connection_dropped_during_write_is_outcome_unknown(
    make_transport: MakeTransport, sftp_server: SftpTestServer, sftp_root: Path
) -> None:
    sftp_server.faults.drop_on_write = True
    transport = make_transport()
    with transport, pytest.raises(OutcomeUnknownError) as info:
        transport.put_atomic("/inbox", NAME, DATA)
    assert not isinstance(info.value, RemoteExistsError)
    assert "writing /inbox/." in str(info.value)
    assert NAME not in names_in(sftp_root / "inbox")
    # the inquiry that follows reconnects on its own and finds nothing under the final name
    with transport:
        assert transport.stat("/inbox", NAME) is None


def test_lost_rename_reply_is_outcome_unknown(
    make_transport: MakeTransport, sftp_server: SftpTestServer, sftp_root: Path
) -> None:
    sftp_server.faults.drop_after_rename = True
    transport = make_transport()
    with transport, pytest.raises(OutcomeUnknownError, match="rename"):
        transport.put_atomic("/inbox", NAME, DATA)
    # it did happen: an inquiry sees the file, a resend would be refused
    with transport:
        assert transport.stat("/inbox", NAME) == RemoteFile(NAME, len(DATA))
        with pytest.raises(RemoteExistsError):
            transport.put_atomic("/inbox", NAME, DATA)
    assert (sftp_root / "inbox" / NAME).read_bytes() == DATA


def test_stalled_write_times_out_as_outcome_unknown(
    make_transport: MakeTransport, sftp_server: SftpTestServer
) -> None:
    sftp_server.faults.stall_on_write = 1.0
    transport = make_transport(operation_timeout=0.3)
    with transport, pytest.raises(OutcomeUnknownError, match="Timeout"):
        transport.put_atomic("/inbox", NAME, DATA)


# --- stat / list / get / remove ----------------------------------------------------------------


def test_stat_list_get_remove(make_transport: MakeTransport, sftp_root: Path) -> None:
    outbox = sftp_root / "outbox"
    result = "H 户名不符\r\n".encode("gb18030") * 5000
    (outbox / "RET_2026A00000000001_01.txt").write_bytes(result)
    (outbox / "RET_2026A00000000001_01.txt.sig").write_bytes(b"sig\n")
    (outbox / ".RET_2026A00000000001_02.txt.part").write_bytes(b"in progress")
    (outbox / "archive").mkdir()
    with make_transport() as transport:
        assert transport.list("/outbox") == [
            RemoteFile("RET_2026A00000000001_01.txt", len(result)),
            RemoteFile("RET_2026A00000000001_01.txt.sig", 4),
        ]
        assert transport.stat("/outbox", "RET_2026A00000000001_01.txt") == RemoteFile(
            "RET_2026A00000000001_01.txt", len(result)
        )
        assert transport.stat("/outbox", "RET_2026A00000000001_09.txt") is None
        assert transport.get("/outbox", "RET_2026A00000000001_01.txt") == result
        assert transport.get("/outbox", "RET_2026A00000000001_01.txt.sig") == b"sig\n"
        with pytest.raises(RemoteNotFoundError):
            transport.get("/outbox", "RET_2026A00000000001_09.txt")
        with pytest.raises(RemoteNotFoundError):
            transport.list("/nowhere")
        transport.remove("/outbox", "RET_2026A00000000001_01.txt.sig")
        transport.remove("/outbox", "RET_2026A00000000001_01.txt.sig")  # already gone: fine
        assert [f.name for f in transport.list("/outbox")] == ["RET_2026A00000000001_01.txt"]


def test_get_of_an_empty_file(make_transport: MakeTransport, sftp_root: Path) -> None:
    (sftp_root / "outbox" / "EMPTY.txt").write_bytes(b"")
    with make_transport() as transport:
        assert transport.get("/outbox", "EMPTY.txt") == b""


def test_get_refuses_oversized_files(make_transport: MakeTransport, sftp_root: Path) -> None:
    (sftp_root / "outbox" / "BIG.txt").write_bytes(b"x" * 1000)
    with make_transport(max_file_bytes=999) as transport, pytest.raises(Exception, match="999"):
        transport.get("/outbox", "BIG.txt")


def test_transport_can_be_entered_again(make_transport: MakeTransport, sftp_root: Path) -> None:
    transport = make_transport()
    with transport:
        transport.put_atomic("/inbox", "A.txt", b"a")
    with transport:
        transport.put_atomic("/inbox", "B.txt", b"b")
    assert names_in(sftp_root / "inbox") == ["A.txt", "B.txt"]


def test_built_from_bank_profile_config(
    dev_keys: Path, sftp_server: SftpTestServer, sftp_username: str
) -> None:
    transport: FileTransport = build_transport(
        {
            "transport": "sftp",
            "host": "127.0.0.1",
            "port": sftp_server.port,
            "username": sftp_username,
            "client_key": K.sftp_client_key,
            "host_public_key": K.sftp_host_pub,
            "timeout": 5,
            "operation_timeout": 5.0,
        },
        base_dir=dev_keys,
    )
    with transport as session:
        session.put_atomic("/inbox", NAME, DATA)
        assert session.stat("/inbox", NAME) == RemoteFile(NAME, len(DATA))
