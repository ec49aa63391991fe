"""Fixtures for the mock bank's own tests.

Everything here is built **independently of mock_bank's codec and signing code**: request
files are assembled byte by byte from the tables of ``docs/formats/fw-gb18030-v1.md``
(``bytes.ljust``/``zfill`` and the stdlib ``gb18030`` codec), signatures are made and checked
with ``cryptography`` directly, and result files are read by byte offsets from the spec. So a
bug in ``mock_bank.fileformat`` shows up as a failure here rather than as agreement.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from tests.waits import wait_until

ENC = "gb18030"
CRLF = b"\r\n"
SERIAL = "2026031500000001"


# ------------------------------------------------------------------------------------------
# Hand-built fixed-width fields (from the spec, not from mock_bank.fileformat)


def x(text: str, width: int) -> bytes:
    """Text field: GB18030, left-aligned, space-padded (the value must fit)."""
    raw = text.encode(ENC)
    assert len(raw) <= width, (text, width)
    return raw.ljust(width, b" ")


def n(value: int, width: int) -> bytes:
    """Numeric field: zero-padded ASCII digits."""
    raw = str(value).encode("ascii")
    assert len(raw) <= width
    return raw.zfill(width)


@dataclass
class Item:
    serial: str
    account: str
    name: str
    id_number: str
    amount: int
    remark: str = ""


def request_header(
    *,
    serial: str = SERIAL,
    file_no: int = 1,
    payer: str = "43062100000000000001",
    code: str = "NY0001",
    subsidy_name: str = "耕地地力保护补贴",
    period: str = "2026",
    count: int,
    total: int,
    created: str = "20260315",
) -> bytes:
    rec = (
        b"H"
        + b"FW01"
        + x(serial, 16)
        + n(file_no, 2)
        + x(payer, 32)
        + x(code, 12)
        + x(subsidy_name, 60)
        + x(period, 8)
        + n(count, 9)
        + n(total, 18)
        + created.encode("ascii")
        + b" " * 22
    )
    assert len(rec) == 192
    return rec


def request_detail(seq: int, item: Item) -> bytes:
    rec = (
        b"D"
        + n(seq, 9)
        + x(item.serial, 24)
        + x(item.account, 32)
        + x(item.name, 60)
        + x(item.id_number, 18)
        + n(item.amount, 15)
        + x(item.remark, 60)
        + b" " * 37
    )
    assert len(rec) == 256
    return rec


def trailer(count: int, total: int) -> bytes:
    rec = b"T" + n(count, 9) + n(total, 18) + b"END" + b" " * 33
    assert len(rec) == 64
    return rec


def build_request(items: list[Item], **header: Any) -> bytes:
    total = sum(i.amount for i in items)
    lines = [request_header(count=len(items), total=total, **header)]
    lines += [request_detail(seq, item) for seq, item in enumerate(items, start=1)]
    lines.append(trailer(len(items), total))
    return b"".join(line + CRLF for line in lines)


def request_name(serial: str = SERIAL, file_no: int = 1) -> str:
    return f"PAY_{serial}_{file_no:02d}.txt"


# ------------------------------------------------------------------------------------------
# Result files, read by byte offsets from the spec tables


def parse_result(data: bytes) -> dict[str, Any]:
    assert data.endswith(CRLF)
    lines = data[:-2].split(CRLF)
    h = lines[0]
    assert len(h) == 128
    out: dict[str, Any] = {
        "type": h[0:1],
        "version": h[1:5],
        "serial": h[5:21].decode(),
        "file_no": h[21:23],
        "status": h[23:24].decode(),
        "reject_code": h[24:30].decode().rstrip(" "),
        "item_count": int(h[30:39]),
        "paid_count": int(h[39:48]),
        "paid_amount": int(h[48:66]),
        "failed_count": int(h[66:75]),
        "failed_amount": int(h[75:93]),
        "date": h[93:101].decode(),
        "reserved": h[101:128],
    }
    items = []
    for d in lines[1:-1]:
        assert len(d) == 224 and d[0:1] == b"D"
        assert d[194:224] == b" " * 30
        items.append(
            {
                "seq": int(d[1:10]),
                "serial": d[10:34].decode(ENC).rstrip(" "),
                "account": d[34:66].decode(ENC).rstrip(" "),
                "amount": int(d[66:81]),
                "status": d[81:82].decode(),
                "code": d[82:88].decode().rstrip(" "),
                "message": d[88:148].rstrip(b" ").decode(ENC),
                "bank_ref": d[148:180].decode().rstrip(" "),
                "processed_at": d[180:194].decode(),
            }
        )
    out["items"] = items
    t = lines[-1]
    assert len(t) == 64 and t[0:1] == b"T" and t[28:31] == b"END" and t[31:] == b" " * 33
    out["trailer_count"] = int(t[1:10])
    out["trailer_total"] = int(t[10:28])
    return out


def parse_movements(data: bytes) -> dict[str, Any]:
    """An account movements file (``ACT_…``), read by the spec's byte offsets."""
    assert data.endswith(CRLF)
    lines = data[:-2].split(CRLF)
    h = lines[0]
    assert len(h) == 192 and h[0:5] == b"HFW01" and h[164:192] == b" " * 28
    out: dict[str, Any] = {
        "notice_id": h[5:37].decode().rstrip(" "),
        "serial": h[37:53].decode(),
        "file_no": int(h[53:55]),
        "payer_account": h[55:87].decode().rstrip(" "),
        "record_count": int(h[87:96]),
        "debit_count": int(h[96:105]),
        "debit_amount": int(h[105:123]),
        "credit_count": int(h[123:132]),
        "credit_amount": int(h[132:150]),
        "created_at": h[150:164].decode(),
    }
    entries = []
    for d in lines[1:-1]:
        assert len(d) == 192 and d[0:1] == b"D" and d[154:192] == b" " * 38
        entries.append(
            {
                "seq": int(d[1:10]),
                "direction": d[10:11].decode(),
                "amount": int(d[11:26]),
                "date": d[26:34].decode(),
                "bank_ref": d[34:66].decode().rstrip(" "),
                "serial": d[66:90].decode(ENC).rstrip(" "),
                "code": d[90:94].decode(),
                "description": d[94:154].rstrip(b" ").decode(ENC),
            }
        )
    out["entries"] = entries
    t = lines[-1]
    assert len(t) == 64 and t[0:1] == b"T" and t[28:31] == b"END" and t[31:] == b" " * 33
    out["trailer_count"] = int(t[1:10])
    out["trailer_total"] = int(t[10:28])
    return out


# ------------------------------------------------------------------------------------------
# Signatures made and checked with cryptography directly


def _pss(salt: int = 32) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt)


def sign_detached(
    data: bytes, key: rsa.RSAPrivateKey, key_id: str = "gw-test", *, salt: int = 32
) -> bytes:
    sig = key.sign(data, _pss(salt), hashes.SHA256())
    return (
        f"alg=RSA-PSS-SHA256\nkey-id={key_id}\nsha256={hashlib.sha256(data).hexdigest()}\n"
        f"sig={base64.b64encode(sig).decode()}\n"
    ).encode("ascii")


def check_detached(data: bytes, sig_file: bytes, key: rsa.RSAPublicKey) -> str:
    """Verify a ``.sig`` file by hand; returns its key-id; raises AssertionError."""
    text = sig_file.decode("ascii")
    assert text.endswith("\n") and "\r" not in text
    lines = text[:-1].split("\n")
    assert [line.split("=", 1)[0] for line in lines] == ["alg", "key-id", "sha256", "sig"]
    values = dict(line.split("=", 1) for line in lines)
    assert values["alg"] == "RSA-PSS-SHA256"
    assert values["sha256"] == hashlib.sha256(data).hexdigest()
    try:
        key.verify(base64.b64decode(values["sig"], validate=True), data, _pss(), hashes.SHA256())
    except InvalidSignature as exc:  # pragma: no cover - failure path
        raise AssertionError("bank signature does not verify") from exc
    return values["key-id"]


# ------------------------------------------------------------------------------------------
# Keys and config


@dataclass
class Keys:
    directory: Path
    gateway: rsa.RSAPrivateKey
    bank: rsa.RSAPrivateKey
    client: paramiko.Ed25519Key
    other_client: paramiko.Ed25519Key
    host: paramiko.Ed25519Key


def _write_rsa(directory: Path, stem: str) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (directory / f"{stem}.key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / f"{stem}.pub.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key


def _write_ssh(directory: Path, stem: str) -> paramiko.Ed25519Key:
    key = ed25519.Ed25519PrivateKey.generate()
    path = directory / f"{stem}.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    pub = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    (directory / f"{stem}.pub").write_bytes(pub + f" {stem}\n".encode())
    return paramiko.Ed25519Key.from_private_key_file(str(path))


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    directory = tmp_path_factory.mktemp("keys")
    return Keys(
        directory=directory,
        gateway=_write_rsa(directory, "gateway_signing"),
        bank=_write_rsa(directory, "mock_bank_signing"),
        client=_write_ssh(directory, "gateway_sftp_client"),
        other_client=_write_ssh(directory, "intruder_sftp_client"),
        host=_write_ssh(directory, "mock_bank_sftp_host"),
    )


ConfigWriter = Callable[..., Path]


@pytest.fixture
def write_config(tmp_path: Path, keys: Keys) -> ConfigWriter:
    """Write a TOML config (relative paths, to exercise their resolution); returns its path.
    ``extra`` is appended verbatim (e.g. ``[[rules]]`` tables)."""

    def write(
        *,
        accounts: list[dict[str, str]] | None = None,
        delay: float = 0.0,
        poll: float = 0.05,
        dedupe: bool = True,
        extra: str = "",
    ) -> Path:
        import json
        import os

        conf_dir = tmp_path / "conf"
        conf_dir.mkdir(exist_ok=True)
        rel_keys = os.path.relpath(keys.directory, conf_dir)
        accounts_line = ""
        if accounts is not None:
            (conf_dir / "accounts.json").write_text(
                json.dumps(accounts, ensure_ascii=False), encoding="utf-8"
            )
            accounts_line = 'accounts_file = "accounts.json"\n'
        text = (
            'data_dir = "../bank"\n'
            + accounts_line
            + f"result_delay_seconds = {delay}\n"
            + f"poll_interval_seconds = {poll}\n"
            + f"dedupe_by_serial = {'true' if dedupe else 'false'}\n"
            + extra
            + "\n[sftp]\n"
            + 'host = "127.0.0.1"\nport = 0\nusername = "gateway"\n'
            + f'host_key = "{rel_keys}/mock_bank_sftp_host.key"\n'
            + f'authorized_keys = "{rel_keys}/gateway_sftp_client.pub"\n'
            + "\n[signing]\n"
            + f'bank_private_key = "{rel_keys}/mock_bank_signing.key.pem"\n'
            + 'bank_key_id = "mockbank-test"\n'
            + f'gateway_public_key = "{rel_keys}/gateway_signing.pub.pem"\n'
        )
        path = conf_dir / "mock_bank.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``predicate`` until it holds; AssertionError after ``timeout`` seconds."""
    wait_until(predicate, timeout=timeout, what=getattr(predicate, "__qualname__", ""))


@pytest.fixture
def sample_items() -> list[Item]:
    return [
        Item(
            "S20260315000000000000001",
            "6217001234567890001",
            "王䶮",
            "430621198001010011",
            12345,
            "第一季度",
        ),
        Item(
            "S20260315000000000000002", "6217001234567890002", "李𬎆", "43062119800101002X", 50000
        ),
        Item(
            "S20260315000000000000003",
            "6217001234567890003",
            "阿依古丽·买买提",
            "430621198001010038",
            7,
            "龑",
        ),
    ]


@pytest.fixture
def helpers() -> Iterator[Any]:
    """The module-level helpers, for test modules (no package imports needed)."""
    import types

    yield types.SimpleNamespace(
        x=x,
        n=n,
        Item=Item,
        request_header=request_header,
        request_detail=request_detail,
        trailer=trailer,
        build_request=build_request,
        request_name=request_name,
        parse_result=parse_result,
        parse_movements=parse_movements,
        sign_detached=sign_detached,
        check_detached=check_detached,
        wait_for=wait_for,
        SERIAL=SERIAL,
        CRLF=CRLF,
    )
