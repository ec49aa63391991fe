"""The mock bank's HTTPS open API (``docs/formats/openapi-v1.md``) against a plain httpx client.

Everything on the gateway's side is written here from the contract, not from ``mock_bank``:
the strings to sign, RSA-PSS / ECDSA signatures with ``cryptography``, SM2 with the OpenSSL
command line, the SM4-CBC-HMAC-SM3 envelope with ``cryptography``, the certificates with
``cryptography.x509``, and a tiny callback receiver that verifies the bank's signatures and
nonces itself. Nonces, IVs and wrong keys come from the test's seeded ``rng``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import random
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mock_bank.api.validation import RequestRejectedError, decrypt_body
from mock_bank.config import ConfigError, load_config
from mock_bank.server import MockBank
from tests.waits import wait_until

SERIAL = "26112896XZZYYPH7"
CLIENT_ID = "gateway"
GATEWAY_KEY_ID = "gw-test"
BANK_KEY_ID = "mockbank-api-test"
CALLBACK_PATH = "/v1/bank-callbacks/mockbank"
SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
MOCK_BANK = str(Path(sys.executable).with_name("mock-bank"))

#: (serial, account, name, ID number, amount); the account ending 0104 is closed by a rule.
ITEMS = [
    ("26112896XZZYYPH700000001", "6217996529894510001", "刘䶮", "430621199302033015", 35001),
    ("26112896XZZYYPH700000002", "6217996529894510104", "李𬎆", "43062119800101002X", 35002),
    ("26112896XZZYYPH700000003", "6217996529894510003", "阿依古丽·买买提", "430621198001010038", 7),
]
RULES = '\n[[rules]]\naccount_suffix = "0104"\ncode = "E104"\n'
TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00")


# ------------------------------------------------------------------------------------------
# Certificates: a throwaway CA, the bank's server certificate, client certificates


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], cn: str, directory: Path, stem: str
) -> None:
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / f"{stem}.crt.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{stem}.key.pem").write_bytes(_pem_key(key))


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ca``, ``server`` (SAN 127.0.0.1/localhost), ``client`` and ``bank_client`` signed by
    the CA; ``rogue_client`` signed by another CA."""
    directory = tmp_path_factory.mktemp("pki")
    ca = _ca("mock test CA")
    (directory / "ca.crt.pem").write_bytes(ca[1].public_bytes(serialization.Encoding.PEM))
    _issue(ca, "mock bank api", directory, "server")
    _issue(ca, "gateway", directory, "client")
    _issue(ca, "mock bank callbacks", directory, "bank_client")
    _issue(_ca("rogue CA"), "intruder", directory, "rogue_client")
    return directory


def client_context(pki: Path, cert: str | None = "client") -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt.pem"))
    if cert is not None:
        context.load_cert_chain(str(pki / f"{cert}.crt.pem"), str(pki / f"{cert}.key.pem"))
    return context


# ------------------------------------------------------------------------------------------
# Signatures, from the contract

Sign = Callable[[bytes], bytes]
Verify = Callable[[bytes, bytes], bool]  # (signature, message)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def request_message(method: str, path: str, ts: str, nonce: str, body: bytes) -> bytes:
    return f"{method}\n{path}\n{ts}\n{nonce}\n{sha256_hex(body)}".encode()


def response_message(status: int, path: str, ts: str, nonce: str, body: bytes) -> bytes:
    return f"RESPONSE\n{status:03d}\n{path}\n{ts}\n{nonce}\n{sha256_hex(body)}".encode()


def _pss() -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def rsa_signer(key: rsa.RSAPrivateKey) -> Sign:
    return lambda message: key.sign(message, _pss(), hashes.SHA256())


def rsa_verifier(key: rsa.RSAPublicKey) -> Verify:
    def verify(signature: bytes, message: bytes) -> bool:
        try:
            key.verify(signature, message, _pss(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True

    return verify


def ecdsa_signer(key: ec.EllipticCurvePrivateKey, raw: bool) -> Sign:
    def sign(message: bytes) -> bytes:
        der = key.sign(message, ec.ECDSA(hashes.SHA256()))
        if not raw:
            return der
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def ecdsa_verifier(key: ec.EllipticCurvePublicKey, raw: bool) -> Verify:
    def verify(signature: bytes, message: bytes) -> bool:
        if raw:
            assert len(signature) == 64
            signature = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
        try:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    return verify


def openssl_sm2_signer(key_pem: Path, workdir: Path) -> Sign:
    """SM2-SM3 (DER, signer id 1234567812345678) by the OpenSSL command line."""

    def sign(message: bytes) -> bytes:
        msg, sig = workdir / f"m{secrets.token_hex(4)}", workdir / f"s{secrets.token_hex(4)}"
        msg.write_bytes(message)
        subprocess.run(
            ["openssl", "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", str(key_pem),
             "-pkeyopt", "distid:1234567812345678", "-in", str(msg), "-out", str(sig)],
            check=True, capture_output=True,
        )  # fmt: skip
        return sig.read_bytes()

    return sign


def openssl_sm2_verifier(pub_pem: Path, workdir: Path) -> Verify:
    def verify(signature: bytes, message: bytes) -> bool:
        msg, sig = workdir / f"m{secrets.token_hex(4)}", workdir / f"s{secrets.token_hex(4)}"
        msg.write_bytes(message)
        sig.write_bytes(signature)
        out = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey",
             str(pub_pem), "-pkeyopt", "distid:1234567812345678", "-in", str(msg),
             "-sigfile", str(sig)],
            capture_output=True, check=False,
        )  # fmt: skip
        return out.returncode == 0

    return verify


def new_nonce(rng: random.Random) -> str:
    return rng.randbytes(16).hex()


# ------------------------------------------------------------------------------------------
# Bodies


def disbursement(
    items: list[tuple[str, str, str, str, int]] | None = None,
    serial: str = SERIAL,
    file_no: int = 1,
    **over: Any,
) -> dict[str, Any]:
    rows = ITEMS if items is None else items
    doc: dict[str, Any] = {
        "batch_serial": serial,
        "file_no": file_no,
        "payer_account": "43001700062050500001",
        "payer_name": "岳阳县财政局惠民惠农资金专户",
        "subsidy_code": "GDBH",
        "subsidy_name": "耕地地力保护补贴",
        "period": "2026",
        "item_count": len(rows),
        "total_fen": sum(r[4] for r in rows),
        "items": [
            {
                "seq": seq,
                "serial": s,
                "name": name,
                "id_number": id_no,
                "account_no": acct,
                "amount_fen": amount,
                "remark": "耕地地力保护补贴2026",
            }
            for seq, (s, acct, name, id_no, amount) in enumerate(rows, start=1)
        ],
    }
    doc.update(over)
    return doc


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


# The encrypted body of docs/formats/openapi-v1.md, "Optional body encryption (SM4)"
ENVELOPE_ALG = "SM4-CBC-HMAC-SM3"
MAC_KEY_INFO = b"openapi-v1 SM4-CBC-HMAC-SM3 mac key"


def pkcs7(data: bytes) -> bytes:
    padder = sym_padding.PKCS7(128).padder()
    return padder.update(data) + padder.finalize()


def sm4_cbc(key: bytes, iv: bytes, blocks: bytes) -> bytes:
    """Bare SM4-CBC of whole blocks (the caller pads, or deliberately does not)."""
    enc = Cipher(algorithms.SM4(key), modes.CBC(iv)).encryptor()
    return enc.update(blocks) + enc.finalize()


def padding_passes(key: bytes, iv: bytes, data: bytes) -> bool:
    """Whether SM4-CBC decryption under ``key`` ends in valid PKCS#7 padding: all a receiver
    without the MAC could check (and garbage passes it about 1 time in 255)."""
    dec = Cipher(algorithms.SM4(key), modes.CBC(iv)).decryptor()
    unpadder = sym_padding.PKCS7(128).unpadder()
    try:
        unpadder.update(dec.update(data) + dec.finalize())
        unpadder.finalize()
    except ValueError:
        return False
    return True


def envelope_mac(key: bytes, iv: bytes, data: bytes) -> bytes:
    """HMAC-SM3 over IV ‖ ciphertext, keyed by HKDF-SM3(key, no salt, MAC_KEY_INFO, 32)."""
    mac_key = HKDF(algorithm=hashes.SM3(), length=32, salt=None, info=MAC_KEY_INFO).derive(key)
    tag = hmac.HMAC(mac_key, hashes.SM3())
    tag.update(iv + data)
    return tag.finalize()


def envelope(
    iv: bytes, data: bytes, mac: bytes, *, key_id: str = "k2026", alg: str = ENVELOPE_ALG
) -> dict[str, Any]:
    return {
        "alg": alg,
        "key_id": key_id,
        "iv": base64.b64encode(iv).decode(),
        "data": base64.b64encode(data).decode(),
        "mac": base64.b64encode(mac).decode(),
    }


def encrypt(plain: bytes, rng: random.Random, key: bytes = SM4_KEY, key_id: str = "k2026") -> bytes:
    """The envelope of ``plain`` as a sender holding ``key`` writes it."""
    iv = rng.randbytes(16)
    data = sm4_cbc(key, iv, pkcs7(plain))
    return dumps({"encrypted": envelope(iv, data, envelope_mac(key, iv, data), key_id=key_id)})


def wrong_key_with_valid_padding(plain: bytes, rng: random.Random) -> tuple[bytes, bytes]:
    """(key, body): a wrong key, drawn from ``rng``, whose envelope of ``plain`` decrypts
    under SM4_KEY to garbage that passes the PKCS#7 check: the case a receiver trusting the
    padding misreads as a body (INVALID_REQUEST instead of DECRYPTION_FAILED)."""
    for _ in range(100_000):  # about 255 tries are needed; 100,000 fail with p ≈ e^-390
        key = rng.randbytes(16)
        if key == SM4_KEY:
            continue
        body = encrypt(plain, rng, key=key)
        inner = json.loads(body)["encrypted"]
        iv, data = base64.b64decode(inner["iv"]), base64.b64decode(inner["data"])
        if padding_passes(SM4_KEY, iv, data):
            return key, body
    raise AssertionError("no wrong key with valid padding found")


# ------------------------------------------------------------------------------------------
# The gateway's side: a plain httpx client that signs and checks signatures


@dataclass
class Gateway:
    base: str
    context: ssl.SSLContext
    sign: Sign
    verify_bank: Verify
    rng: random.Random
    client_id: str = CLIENT_ID
    key_id: str = GATEWAY_KEY_ID

    def headers(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        timestamp: int | None = None,
        nonce: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or new_nonce(self.rng)
        headers = {
            "Content-Type": "application/json",
            "X-Client-Id": self.client_id,
            "X-Timestamp": ts,
            "X-Nonce": nonce,
            "X-Key-Id": self.key_id,
            "X-Signature": base64.b64encode(
                self.sign(request_message(method, path, ts, nonce, body))
            ).decode(),
        }
        if request_id is not None:
            headers["X-Request-Id"] = request_id
        return headers

    def send(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
        **kw: Any,
    ) -> httpx.Response:
        headers = headers if headers is not None else self.headers(method, path, body, **kw)
        with httpx.Client(verify=self.context, timeout=timeout, trust_env=False) as client:
            response = client.request(method, self.base + path, content=body, headers=headers)
        self.check(response, path)
        return response

    def submit(
        self, body: bytes | dict[str, Any], request_id: str | None = None, **kw: Any
    ) -> httpx.Response:
        raw = body if isinstance(body, bytes) else dumps(body)
        rid = request_id if request_id is not None else f"{SERIAL}01"
        return self.send("POST", "/openapi/v1/disbursements", raw, request_id=rid, **kw)

    def inquire(self, serial: str = SERIAL, file_no: int = 1) -> httpx.Response:
        return self.send("GET", f"/openapi/v1/disbursements/{serial}/{file_no}")

    def check(self, response: httpx.Response, path: str) -> None:
        """Every answer, errors included, is signed by the bank over the exact body."""
        h = response.headers
        assert h["X-Key-Id"] == BANK_KEY_ID
        assert re.fullmatch(r"[A-Za-z0-9_-]{16,64}", h["X-Nonce"])
        assert abs(int(h["X-Timestamp"]) - time.time()) < 60
        assert response.headers["Content-Type"] == "application/json"
        message = response_message(
            response.status_code, path, h["X-Timestamp"], h["X-Nonce"], response.content
        )
        assert self.verify_bank(base64.b64decode(h["X-Signature"]), message), "bad signature"


# ------------------------------------------------------------------------------------------
# A tiny callback receiver (the gateway's callback endpoint)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    fresh: bool
    status: int

    @property
    def doc(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


@dataclass
class Receiver:
    verify_bank: Verify
    fail_first: int = 0
    received: list[Received] = field(default_factory=list)
    _nonces: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.handle(self, body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}{CALLBACK_PATH}"

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        h = {k: v for k, v in handler.headers.items()}
        message = request_message("POST", handler.path, h["X-Timestamp"], h["X-Nonce"], body)
        verified = h["X-Key-Id"] == BANK_KEY_ID and self.verify_bank(
            base64.b64decode(h["X-Signature"]), message
        )
        with self._lock:
            fresh = h["X-Nonce"] not in self._nonces
            self._nonces.add(h["X-Nonce"])
            if self.fail_first > 0:
                self.fail_first -= 1
                status = 500
            else:
                status = 204 if verified and fresh else 401
            self.received.append(Received(handler.path, h, body, verified, fresh, status))
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def genuine(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.verified and r.fresh and r.status == 204]

    def genuine_exactly(self, count: int) -> list[Received]:
        """The genuine callbacks once there are ``count`` of them, else ``[]`` (to wait on)."""
        genuine = self.genuine()
        return genuine if len(genuine) == count else []

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


# ------------------------------------------------------------------------------------------
# The bank


@dataclass
class Setup:
    tmp: Path
    keys: Any
    pki: Path
    gateway_sign: Sign
    bank_verify: Verify
    gateway_public: Path
    bank_private: Path
    rng: random.Random
    alg: str = "RSA-PSS-SHA256"
    api_extra: str = ""

    def config(
        self,
        *,
        delay: float = 0.0,
        faults: str = "",
        callback_url: str | None = None,
        sftp: bool = False,
        api_extra: str = "",
        top_extra: str = "",
    ) -> Path:
        k = self.keys.directory
        text = (
            f'data_dir = "{self.tmp / "bank"}"\n'
            f"result_delay_seconds = {delay}\npoll_interval_seconds = 0.05\n"
            + top_extra
            + RULES
            + "\n[signing]\n"
            + f'bank_private_key = "{k / "mock_bank_signing.key.pem"}"\n'
            + f'gateway_public_key = "{k / "gateway_signing.pub.pem"}"\n'
            + "\n[api]\n"
            + 'host = "127.0.0.1"\nport = 0\n'
            + f'server_cert = "{self.pki / "server.crt.pem"}"\n'
            + f'server_key = "{self.pki / "server.key.pem"}"\n'
            + f'client_ca = "{self.pki / "ca.crt.pem"}"\n'
            + f'client_id = "{CLIENT_ID}"\n'
            + f'gateway_public_key = "{self.gateway_public}"\n'
            + f'gateway_key_id = "{GATEWAY_KEY_ID}"\n'
            + f'bank_private_key = "{self.bank_private}"\n'
            + f'bank_key_id = "{BANK_KEY_ID}"\n'
            + f'signature_alg = "{self.alg}"\n'
            + 'payer_accounts = ["43001700062050500001"]\n'
            + "callback_retry_seconds = 0.05\nhold_seconds = 3.0\nbounce_after_seconds = 0.2\n"
            + (f'callback_url = "{callback_url}"\n' if callback_url else "")
            + self.api_extra
            + api_extra
            + f'\n[api.sm4_keys]\nk2026 = "{SM4_KEY.hex()}"\n'
            + faults
        )
        if sftp:
            text += (
                "\n[sftp]\n"
                + f'host_key = "{k / "mock_bank_sftp_host.key"}"\n'
                + f'authorized_keys = "{k / "gateway_sftp_client.pub"}"\n'
            )
        path = self.tmp / "mock_bank.toml"
        path.write_text(text, encoding="utf-8")
        return path

    def gateway(self, bank: MockBank, cert: str | None = "client") -> Gateway:
        return Gateway(
            f"https://127.0.0.1:{bank.api_port}",
            client_context(self.pki, cert),
            self.gateway_sign,
            self.bank_verify,
            self.rng,
        )

    def receiver(self, fail_first: int = 0) -> Receiver:
        return Receiver(self.bank_verify, fail_first=fail_first)


@pytest.fixture
def setup(tmp_path: Path, keys: Any, pki: Path, rng: random.Random) -> Setup:
    return Setup(
        tmp=tmp_path,
        keys=keys,
        pki=pki,
        gateway_sign=rsa_signer(keys.gateway),
        bank_verify=rsa_verifier(keys.bank.public_key()),
        gateway_public=keys.directory / "gateway_signing.pub.pem",
        bank_private=keys.directory / "mock_bank_signing.key.pem",
        rng=rng,
    )


@pytest.fixture
def run_bank() -> Iterator[Callable[[Path], MockBank]]:
    banks: list[MockBank] = []

    def run(config: Path) -> MockBank:
        bank = MockBank(load_config(config))
        bank.start()
        banks.append(bank)
        return bank

    yield run
    for bank in banks:
        bank.stop()


def completed(gw: Gateway, serial: str = SERIAL, file_no: int = 1) -> dict[str, Any]:
    def done() -> dict[str, Any]:
        doc: dict[str, Any] = gw.inquire(serial, file_no).json()
        return doc if doc["status"] == "completed" else {}

    result: dict[str, Any] = wait_until(done, what=f"{serial}/{file_no} to be completed")
    return result


FAULT = '\n[faults]\nseed = 7\n[[faults.rules]]\nkind = "{kind}"\nnth = [1]\n'


# ------------------------------------------------------------------------------------------
# Transport: mutual TLS


def test_mutual_tls_is_required(setup: Setup, run_bank: Any) -> None:
    bank = run_bank(setup.config())
    for cert in (None, "rogue_client"):  # no client certificate; one from another CA
        gw = setup.gateway(bank, cert=cert)
        with pytest.raises(httpx.TransportError):
            gw.inquire()
    assert setup.gateway(bank).inquire().status_code == 404
    # and the gateway refuses a bank whose certificate its CA did not sign
    stranger = ssl.create_default_context(cafile=str(setup.pki / "rogue_client.crt.pem"))
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=stranger) as client:
        client.get(f"https://127.0.0.1:{bank.api_port}/openapi/v1/disbursements/{SERIAL}/1")


# ------------------------------------------------------------------------------------------
# Submit, inquire, complete


def test_submit_inquire_complete_with_rules_and_ledger(setup: Setup, run_bank: Any) -> None:
    bank = run_bank(setup.config(delay=0.5))
    gw = setup.gateway(bank)
    assert gw.inquire().json() == {"code": "NOT_FOUND"}

    accepted = gw.submit(disbursement())
    assert accepted.status_code == 202
    ack = accepted.json()
    assert ack["batch_serial"] == SERIAL and ack["file_no"] == 1
    assert ack["status"] == "accepted" and TIME_RE.fullmatch(ack["accepted_at"])

    processing = gw.inquire().json()
    assert processing["status"] == "processing"
    assert [i["status"] for i in processing["items"]] == ["pending"] * 3
    assert {i["code"] for i in processing["items"]} == {""}
    assert processing["paid_count"] == processing["failed_count"] == 0

    done = completed(gw)
    items = {i["serial"]: i for i in done["items"]}
    paid, closed, small = (items[s] for s, *_ in ITEMS)
    assert (paid["status"], paid["code"], paid["message"]) == ("paid", "0000", "成功")
    assert re.fullmatch(r"MB\d{8}\d{10}", paid["bank_ref"])
    assert TIME_RE.fullmatch(paid["processed_at"])
    assert (closed["status"], closed["code"], closed["message"]) == ("failed", "E104", "账户已销户")
    assert closed["bank_ref"] == ""
    assert small["status"] == "paid" and small["amount_fen"] == 7
    assert (done["paid_count"], done["paid_fen"]) == (2, 35008)
    assert (done["failed_count"], done["failed_fen"]) == (1, 35002)
    assert "returned_at" not in paid

    # the ledger records the API's credits like the files'
    credits = bank.ledger.credits()
    assert sorted(c.item_serial for c in credits) == [ITEMS[0][0], ITEMS[2][0]]
    assert {c.file_name for c in credits} == {f"API_{SERIAL}_01"}
    assert {c.bank_ref for c in credits} == {paid["bank_ref"], small["bank_ref"]}
    summary = bank.ledger.summary()
    assert summary["credits"] == 2 and summary["double_credits"] == 0
    assert summary["amount_credited_fen"] == 35008


def test_dedupe_by_serial_covers_the_api(setup: Setup, run_bank: Any) -> None:
    """The same item serial in another disbursement is answered from the first credit."""
    bank = run_bank(setup.config())
    gw = setup.gateway(bank)
    assert gw.submit(disbursement()).status_code == 202
    first = {i["serial"]: i for i in completed(gw)["items"]}
    other = "26112896XZZYYPH8"
    again = gw.submit(disbursement(serial=other), request_id=f"{other}01")
    assert again.status_code == 202
    second = {i["serial"]: i for i in completed(gw, other)["items"]}
    assert second[ITEMS[0][0]]["bank_ref"] == first[ITEMS[0][0]]["bank_ref"]
    assert bank.ledger.summary()["credits"] == 2
    assert bank.ledger.summary()["double_credits"] == 0


def test_idempotent_replay_and_conflict(setup: Setup, run_bank: Any) -> None:
    bank = run_bank(setup.config())
    gw = setup.gateway(bank)
    body = dumps(disbursement())
    first = gw.submit(body)
    assert first.status_code == 202
    replay = gw.submit(body)  # a retry: same X-Request-Id, same body, new nonce
    assert replay.status_code == 200 and replay.content == first.content
    completed(gw)
    assert gw.submit(body).content == first.content  # also after completion

    changed = disbursement()
    changed["items"][0]["amount_fen"] += 1
    changed["total_fen"] += 1
    conflict = gw.submit(changed)
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "IDEMPOTENCY_CONFLICT" and conflict.json()["message"]
    assert bank.ledger.summary()["credits"] == 2


# ------------------------------------------------------------------------------------------
# Authentication


def test_signature_timestamp_nonce_and_client(setup: Setup, run_bank: Any) -> None:
    bank = run_bank(setup.config())
    gw = setup.gateway(bank)
    path = "/openapi/v1/disbursements"
    body = dumps(disbursement())

    def code(response: httpx.Response) -> str:
        assert response.status_code == 401
        result: str = response.json()["code"]
        return result

    # a signature over other bytes than those sent
    headers = gw.headers("POST", path, body + b" ", request_id=f"{SERIAL}01")
    assert code(gw.send("POST", path, body, headers=headers)) == "SIGNATURE_INVALID"
    # signed by another key
    intruder = Gateway(gw.base, gw.context, rsa_signer(setup.keys.bank), gw.verify_bank, gw.rng)
    assert code(intruder.submit(body)) == "SIGNATURE_INVALID"
    # stale and future timestamps
    assert code(gw.submit(body, timestamp=int(time.time()) - 301)) == "SIGNATURE_INVALID"
    assert code(gw.submit(body, timestamp=int(time.time()) + 360)) == "SIGNATURE_INVALID"
    # a bad nonce, the wrong key id, an unknown client, no signature at all
    assert code(gw.submit(body, nonce="short")) == "SIGNATURE_INVALID"
    other_key = Gateway(gw.base, gw.context, gw.sign, gw.verify_bank, gw.rng, key_id="other")
    assert code(other_key.submit(body)) == "SIGNATURE_INVALID"
    stranger = Gateway(gw.base, gw.context, gw.sign, gw.verify_bank, gw.rng, client_id="stranger")
    assert code(stranger.submit(body)) == "CLIENT_UNKNOWN"
    assert code(gw.send("GET", f"{path}/{SERIAL}/1", headers={"X-Client-Id": CLIENT_ID})) == (
        "SIGNATURE_INVALID"
    )
    # nothing was taken by any of them
    assert gw.inquire().status_code == 404
    # what http.server answers by itself is JSON and signed too (checked by Gateway.send)
    assert gw.send("OPTIONS", path).status_code == 501
    assert gw.send("DELETE", path).status_code == 405
    assert gw.send("GET", "/elsewhere").status_code == 404

    # a replayed request: the same headers (nonce) again
    headers = gw.headers("POST", path, body, request_id=f"{SERIAL}01")
    assert gw.send("POST", path, body, headers=headers).status_code == 202
    assert code(gw.send("POST", path, body, headers=headers)) == "REPLAYED"
    get_headers = gw.headers("GET", f"{path}/{SERIAL}/1", b"")
    assert gw.send("GET", f"{path}/{SERIAL}/1", headers=get_headers).status_code == 200
    assert code(gw.send("GET", f"{path}/{SERIAL}/1", headers=get_headers)) == "REPLAYED"


def test_validation_rejects_and_takes_nothing(setup: Setup, run_bank: Any) -> None:
    bank = run_bank(setup.config())
    gw = setup.gateway(bank)

    def rejected(doc: Any, request_id: str = f"{SERIAL}01") -> tuple[int, str]:
        response = gw.submit(dumps(doc) if not isinstance(doc, bytes) else doc, request_id)
        return response.status_code, response.json()["code"]

    bad_seq = disbursement()
    bad_seq["items"][1]["seq"] = 3
    dup = disbursement()
    dup["items"][1]["serial"] = dup["items"][0]["serial"]
    bad_id = disbursement()
    bad_id["items"][0]["id_number"] = "43062119930203301x"
    float_amount = disbursement()
    float_amount["items"][0]["amount_fen"] = 35001.0
    extra_key = disbursement(surprise=1)
    assert rejected(disbursement(item_count=2)) == (422, "TOTALS_MISMATCH")
    assert rejected(disbursement(total_fen=1)) == (422, "TOTALS_MISMATCH")
    assert rejected(disbursement(payer_account="43001700062050509999")) == (
        422,
        "PAYER_ACCOUNT_INVALID",
    )
    for doc in (bad_seq, dup, bad_id, float_amount, extra_key, disbursement(items=[])):
        assert rejected(doc) == (400, "INVALID_REQUEST"), doc
    assert rejected(b"not json") == (400, "INVALID_REQUEST")
    assert rejected(disbursement(), request_id=f"{SERIAL}02") == (400, "INVALID_REQUEST")
    assert gw.inquire().status_code == 404
    assert bank.ledger.summary()["credits"] == 0


def test_sm4_encrypted_body(setup: Setup, run_bank: Any, rng: random.Random) -> None:
    bank = run_bank(setup.config())
    gw = setup.gateway(bank)
    plain = dumps(disbursement())
    body = encrypt(plain, rng)
    assert gw.submit(body).status_code == 202
    assert gw.submit(body).status_code == 200  # the same bytes again
    # re-encrypted with a fresh IV: the same plain body, so still the same request
    assert gw.submit(encrypt(plain, rng)).status_code == 200
    assert completed(gw)["paid_count"] == 2

    # a sender with another key under our key id: refused by the MAC, whatever its garbage
    # would decrypt to, including garbage that passes the padding check
    other = "26112896XZZYYPH9"
    plain2 = dumps(disbursement(serial=other))
    lucky_key, lucky = wrong_key_with_valid_padding(plain2, rng)
    wrong = [(lucky_key, lucky), (bytes(16), encrypt(plain2, rng, key=bytes(16)))]
    for _ in range(16):
        key = rng.randbytes(16)
        assert key != SM4_KEY
        wrong.append((key, encrypt(plain2, rng, key=key)))
    wrong.append((SM4_KEY, encrypt(plain2, rng, key_id="nope")))  # a key id we do not know
    for key, bad in wrong:
        response = gw.submit(bad, request_id=f"{other}01")
        assert (response.status_code, response.json()["code"]) == (400, "DECRYPTION_FAILED"), (
            key.hex()
        )
    assert gw.inquire(other).status_code == 404


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def test_sm4_envelope_checks_in_the_contract_order(
    setup: Setup, run_bank: Any, rng: random.Random
) -> None:
    """DECRYPTION_FAILED: not ours (form, alg, key id, lengths, MAC, padding); INVALID_REQUEST
    (and the other validation answers): ours, read, and not a valid request."""
    bank = run_bank(setup.config())
    gw = setup.gateway(bank)
    plain = dumps(disbursement())

    def answer(inner: Any) -> tuple[int, str]:
        response = gw.submit(dumps({"encrypted": inner}))
        return response.status_code, response.json()["code"]

    def sealed(blocks: bytes, **over: Any) -> dict[str, Any]:
        """An envelope of already padded (or deliberately unpadded) blocks, MAC valid."""
        iv = rng.randbytes(16)
        data = sm4_cbc(SM4_KEY, iv, blocks)
        return {**envelope(iv, data, envelope_mac(SM4_KEY, iv, data)), **over}

    good = sealed(pkcs7(plain))
    iv, data, mac = (base64.b64decode(good[k]) for k in ("iv", "data", "mac"))
    failed = (400, "DECRYPTION_FAILED")
    # right key, but the tag, the ciphertext (any block) or the IV altered
    for index in (0, 15, 31):
        assert answer(envelope(iv, data, _flip(mac, index))) == failed
    for index in (0, len(data) - 17, len(data) - 1):
        assert answer(envelope(iv, _flip(data, index), mac)) == failed
    assert answer(envelope(_flip(iv, 3), data, mac)) == failed
    # a valid MAC over blocks whose padding is wrong (the sender did not pad)
    assert answer(sealed(plain[:32] + b"\x00" * 16)) == failed
    # form: the envelope before this MAC, another alg, missing, extra or non-string parts
    old = {k: v for k, v in good.items() if k != "mac"}
    assert answer({**old, "alg": "SM4-CBC"}) == failed
    assert answer({**good, "alg": "SM4-CBC"}) == failed
    assert answer({**good, "extra": ""}) == failed
    assert answer({**good, "mac": 7}) == failed
    assert answer("not an object") == failed
    # lengths and base64 (also text that is not ASCII, which once escaped as a ValueError)
    assert answer(envelope(iv[:15], data, mac)) == failed
    assert answer(envelope(iv, data, mac[:16])) == failed
    assert answer(envelope(iv, data[:-1], mac)) == failed
    assert answer({**good, "mac": good["mac"][:-1]}) == failed
    assert answer({**good, "iv": "ＡＡＥＣ" + good["iv"][4:]}) == failed

    # ours and intact, but the plaintext is not a valid request: read like a plain body
    assert answer(sealed(pkcs7(b"not json"))) == (400, "INVALID_REQUEST")
    assert answer(sealed(pkcs7(rng.randbytes(40)))) == (400, "INVALID_REQUEST")
    assert answer(sealed(pkcs7(dumps({"encrypted": good})))) == (400, "INVALID_REQUEST")
    assert answer(sealed(pkcs7(dumps(disbursement(items=[]))))) == (400, "INVALID_REQUEST")
    assert answer(sealed(pkcs7(dumps(disbursement(total_fen=1))))) == (422, "TOTALS_MISMATCH")
    assert gw.inquire().status_code == 404
    assert bank.ledger.summary()["credits"] == 0
    # and the intact envelope itself is taken
    assert gw.submit(dumps({"encrypted": good})).status_code == 202


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
    """This file's envelope code and the bank's reading of it both agree with the spec."""
    iv = bytes(range(16))
    data = sm4_cbc(SM4_KEY, iv, pkcs7(SPEC_PLAIN))
    assert envelope(iv, data, envelope_mac(SM4_KEY, iv, data)) == SPEC_ENVELOPE
    body = dumps({"encrypted": SPEC_ENVELOPE})
    assert decrypt_body(body, {"k2026": SM4_KEY}) == (SPEC_PLAIN, "k2026")
    with pytest.raises(RequestRejectedError) as info:
        decrypt_body(body, {"k2026": bytes(16)})
    assert info.value.code == "DECRYPTION_FAILED"


# ------------------------------------------------------------------------------------------
# Callbacks


def test_callback_signed_and_retried(setup: Setup, run_bank: Any) -> None:
    receiver = setup.receiver(fail_first=2)
    url = receiver.start()
    try:
        bank = run_bank(setup.config(callback_url=url))
        gw = setup.gateway(bank)
        assert gw.submit(disbursement()).status_code == 202
        [callback] = wait_until(receiver.genuine)
        assert len(receiver.received) == 3  # two 500s, then delivered
        assert callback.path == CALLBACK_PATH
        doc = callback.doc
        assert doc["event"] == "disbursement.completed"
        assert (doc["batch_serial"], doc["file_no"]) == (SERIAL, 1)
        assert re.fullmatch(r"EV\d{8}\d{8}", doc["event_id"]) and TIME_RE.fullmatch(doc["sent_at"])
        assert len({r.headers["X-Nonce"] for r in receiver.received}) == 3  # fresh per attempt
        assert {r.body for r in receiver.received} == {callback.body}  # the same event
        # the callback is only a hint: the inquiry says what happened
        assert gw.inquire().json()["status"] == "completed"
    finally:
        receiver.stop()


def test_callback_given_up_after_retries(setup: Setup, run_bank: Any) -> None:
    receiver = setup.receiver(fail_first=100)
    url = receiver.start()
    try:
        bank = run_bank(setup.config(callback_url=url, api_extra="callback_retries = 2\n"))
        assert setup.gateway(bank).submit(disbursement()).status_code == 202
        # the bank records giving up after the last attempt's answer, which the receiver
        # recorded before answering: from then on nothing more is sent
        [event] = wait_until(
            lambda: [e for e in bank.api.bank.store.events() if e.gave_up_at],
            what="the bank to give the callback up",
        )
        assert len(receiver.received) == 3  # 1 + 2 retries, then given up
        assert event.attempts == 3 and not event.delivered_at
    finally:
        receiver.stop()


def test_https_callback_with_client_certificate(setup: Setup, run_bank: Any) -> None:
    receiver = setup.receiver()
    receiver.start()
    assert receiver.server is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(setup.pki / "server.crt.pem", setup.pki / "server.key.pem")
    context.load_verify_locations(setup.pki / "ca.crt.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    url = f"https://localhost:{receiver.server.server_address[1]}{CALLBACK_PATH}"
    extra = (
        f'callback_ca = "{setup.pki / "ca.crt.pem"}"\n'
        f'callback_client_cert = "{setup.pki / "bank_client.crt.pem"}"\n'
        f'callback_client_key = "{setup.pki / "bank_client.key.pem"}"\n'
    )
    try:
        bank = run_bank(setup.config(callback_url=url, api_extra=extra))
        assert setup.gateway(bank).submit(disbursement()).status_code == 202
        [callback] = wait_until(receiver.genuine)
        assert callback.doc["event"] == "disbursement.completed"
    finally:
        receiver.stop()


# ------------------------------------------------------------------------------------------
# Faults


def test_fault_refuse_connection(setup: Setup, run_bank: Any) -> None:
    bank = run_bank(setup.config(faults=FAULT.format(kind="refuse_connection")))
    gw = setup.gateway(bank)
    with pytest.raises(httpx.ConnectError):  # before TLS: proof that nothing was sent
        gw.submit(disbursement())
    assert gw.submit(disbursement()).status_code == 202
    assert bank.faults.fired("refuse_connection") == [("refuse_connection", 1)]


def test_fault_timeout_after_apply(setup: Setup, run_bank: Any) -> None:
    config = setup.config(faults=FAULT.format(kind="timeout_after_apply"))
    # held for an hour: far past the client's read timeout, and past any deadline below
    config.write_text(config.read_text().replace("hold_seconds = 3.0", "hold_seconds = 3600.0"))
    bank = run_bank(config)
    gw = setup.gateway(bank)
    with pytest.raises(httpx.ReadTimeout):
        gw.submit(disbursement(), timeout=0.5)
    # unknown outcome → inquiry: it was taken
    assert completed(gw)["paid_count"] == 2
    assert gw.submit(disbursement()).status_code == 200  # a retry changes nothing
    assert bank.ledger.summary()["credits"] == 2
    # a held answer does not hold up the stop (it would for an hour)
    stopper = threading.Thread(target=bank.stop, daemon=True)
    stopper.start()
    wait_until(lambda: not stopper.is_alive(), what="bank.stop() while an answer is held")


def test_fault_error_5xx_before_apply(setup: Setup, run_bank: Any) -> None:
    bank = run_bank(setup.config(faults=FAULT.format(kind="error_5xx_before_apply")))
    gw = setup.gateway(bank)
    first = gw.submit(disbursement())
    assert first.status_code == 503
    assert gw.inquire().status_code == 404  # nothing taken
    assert gw.submit(disbursement()).status_code == 202


def test_fault_error_5xx_after_apply(setup: Setup, run_bank: Any) -> None:
    bank = run_bank(setup.config(faults=FAULT.format(kind="error_5xx_after_apply")))
    gw = setup.gateway(bank)
    assert gw.submit(disbursement()).status_code == 500
    assert gw.inquire().status_code == 200  # taken although the answer was 500
    again = gw.submit(disbursement())
    assert again.status_code == 200 and again.json()["status"] == "accepted"
    assert completed(gw)["paid_count"] == 2
    assert bank.ledger.summary()["credits"] == 2


def test_fault_rate_limit(setup: Setup, run_bank: Any) -> None:
    bank = run_bank(setup.config(faults=FAULT.format(kind="rate_limit")))
    gw = setup.gateway(bank)
    limited = gw.submit(disbursement())
    assert limited.status_code == 429 and limited.json()["code"] == "RATE_LIMITED"
    assert limited.headers["Retry-After"] == "1"
    assert gw.inquire().status_code == 404
    assert gw.submit(disbursement()).status_code == 202


def _with_receiver(setup: Setup, run_bank: Any, kind: str) -> tuple[MockBank, Gateway, Receiver]:
    receiver = setup.receiver()
    url = receiver.start()
    bank = run_bank(setup.config(callback_url=url, faults=FAULT.format(kind=kind)))
    gw = setup.gateway(bank)
    assert gw.submit(disbursement()).status_code == 202
    return bank, gw, receiver


def test_fault_duplicate_callback(setup: Setup, run_bank: Any) -> None:
    _bank, _gw, receiver = _with_receiver(setup, run_bank, "duplicate_callback")
    try:
        first, second = wait_until(lambda: receiver.genuine_exactly(2))
        assert first.doc["event_id"] == second.doc["event_id"]
        assert first.headers["X-Nonce"] != second.headers["X-Nonce"]
    finally:
        receiver.stop()


def test_fault_out_of_order_callback(setup: Setup, run_bank: Any) -> None:
    _bank, gw, receiver = _with_receiver(setup, run_bank, "out_of_order_callback")
    try:
        first, second = wait_until(lambda: receiver.genuine_exactly(2))
        assert [first.doc["event"], second.doc["event"]] == [
            "item.returned",
            "disbursement.completed",
        ]
        # the hint was wrong: nothing was returned
        assert {i["status"] for i in gw.inquire().json()["items"]} == {"paid", "failed"}
    finally:
        receiver.stop()


def test_fault_forged_callback(setup: Setup, run_bank: Any) -> None:
    _bank, _gw, receiver = _with_receiver(setup, run_bank, "forged_callback")
    try:
        wait_until(receiver.genuine)
        wait_until(lambda: len(receiver.received) == 2)
        forged, genuine = receiver.received
        assert not forged.verified and forged.status == 401
        assert forged.headers["X-Key-Id"] == BANK_KEY_ID  # claims the bank's key
        assert genuine.verified and genuine.body == forged.body
    finally:
        receiver.stop()


def test_fault_replayed_callback(setup: Setup, run_bank: Any) -> None:
    _bank, _gw, receiver = _with_receiver(setup, run_bank, "replayed_callback")
    try:
        wait_until(lambda: len(receiver.received) == 2)
        original, replay = receiver.received
        assert original.status == 204
        assert replay.headers["X-Nonce"] == original.headers["X-Nonce"]
        assert replay.headers["X-Signature"] == original.headers["X-Signature"]
        assert replay.verified and not replay.fresh and replay.status == 401
    finally:
        receiver.stop()


def test_fault_bounce_after_paid(setup: Setup, run_bank: Any) -> None:
    bank, gw, receiver = _with_receiver(setup, run_bank, "bounce_after_paid")
    try:
        first, second = wait_until(lambda: receiver.genuine_exactly(2))
        assert [first.doc["event"], second.doc["event"]] == [
            "disbursement.completed",
            "item.returned",
        ]
        doc = gw.inquire().json()
        returned = [i for i in doc["items"] if i["status"] == "returned"]
        assert len(returned) == 1
        item = returned[0]
        assert (item["serial"], item["code"], item["message"]) == (
            ITEMS[0][0],
            "R001",
            "退票：账户已销户",
        )
        assert TIME_RE.fullmatch(item["returned_at"]) and item["bank_ref"].startswith("MB")
        assert (doc["paid_count"], doc["paid_fen"]) == (1, 7)  # counts cover paid and failed
        [reversal] = bank.ledger.reversals()
        assert (reversal.item_serial, reversal.amount_fen, reversal.code) == (
            ITEMS[0][0],
            35001,
            "R001",
        )
        assert bank.ledger.summary()["double_credits"] == 0
    finally:
        receiver.stop()


# ------------------------------------------------------------------------------------------
# Other signature algorithms


@pytest.mark.parametrize("alg", ["ECDSA-P256-SHA256/der", "ECDSA-P256-SHA256/raw", "SM2-SM3/der"])
def test_other_signature_algorithms(setup: Setup, run_bank: Any, tmp_path: Path, alg: str) -> None:
    name, encoding = alg.split("/")
    keydir = tmp_path / "algkeys"
    keydir.mkdir()
    if name == "SM2-SM3":
        if shutil.which("openssl") is None:
            pytest.skip("needs the openssl command line (an independent SM2 implementation)")
        for who in ("gateway", "bank"):
            subprocess.run(
                ["openssl", "genpkey", "-algorithm", "SM2", "-out", str(keydir / f"{who}.pem")],
                check=True,
                capture_output=True,
            )
            subprocess.run(
                ["openssl", "pkey", "-in", str(keydir / f"{who}.pem"), "-pubout", "-out",
                 str(keydir / f"{who}.pub.pem")],
                check=True, capture_output=True,
            )  # fmt: skip
        setup.gateway_sign = openssl_sm2_signer(keydir / "gateway.pem", keydir)
        setup.bank_verify = openssl_sm2_verifier(keydir / "bank.pub.pem", keydir)
    else:
        raw = encoding == "raw"
        gateway_key = ec.generate_private_key(ec.SECP256R1())
        bank_key = ec.generate_private_key(ec.SECP256R1())
        for who, key in (("gateway", gateway_key), ("bank", bank_key)):
            (keydir / f"{who}.pem").write_bytes(_pem_key(key))
            (keydir / f"{who}.pub.pem").write_bytes(
                key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
        setup.gateway_sign = ecdsa_signer(gateway_key, raw)
        setup.bank_verify = ecdsa_verifier(bank_key.public_key(), raw)
    setup.alg = name
    setup.gateway_public = keydir / "gateway.pub.pem"
    setup.bank_private = keydir / "bank.pem"
    setup.api_extra = f'signature_encoding = "{encoding}"\n'
    receiver = setup.receiver()
    url = receiver.start()
    try:
        bank = run_bank(setup.config(callback_url=url))
        gw = setup.gateway(bank)  # every answer's signature is checked by Gateway.check
        assert gw.submit(disbursement()).status_code == 202
        assert completed(gw)["paid_count"] == 2
        assert wait_until(receiver.genuine)[0].doc["event"] == "disbursement.completed"
        bad = Gateway(gw.base, gw.context, rsa_signer(setup.keys.gateway), gw.verify_bank, gw.rng)
        assert bad.inquire().status_code == 401
    finally:
        receiver.stop()


# ------------------------------------------------------------------------------------------
# Wiring: config, MockBank, restart, mock-bank serve


def test_api_config_errors(setup: Setup) -> None:
    good = setup.config().read_text(encoding="utf-8")
    broken = {
        "unknown key": good.replace("[api]\n", "[api]\nsurprise = 1\n"),
        "bad alg": good.replace('"RSA-PSS-SHA256"', '"MD5"'),
        "https without CA": good.replace("[api]\n", '[api]\ncallback_url = "https://x/cb"\n'),
        "short SM4 key": good.replace(SM4_KEY.hex(), "0123"),
        "no sftp and no api": good.split("\n[api]\n")[0],
    }
    for what, text in broken.items():
        path = setup.tmp / "broken.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError):
            load_config(path)
        assert what


def test_sftp_and_api_in_one_bank_and_port_files(setup: Setup, run_bank: Any) -> None:
    api_only = load_config(setup.config())
    assert api_only.sftp is None and api_only.api is not None
    assert api_only.api.sm4_keys == {"k2026": SM4_KEY}

    bank = run_bank(setup.config(sftp=True))
    cfg = bank.config
    assert int(cfg.api_port_file.read_text()) == bank.api_port
    assert int(cfg.port_file.read_text()) == bank.sftp_port
    assert setup.gateway(bank).inquire().status_code == 404
    bank.stop()
    assert not cfg.api_port_file.exists() and not cfg.port_file.exists()


def test_restart_decides_what_was_taken(setup: Setup, run_bank: Any) -> None:
    config = setup.config(delay=30.0)
    bank = run_bank(config)
    gw = setup.gateway(bank)
    assert gw.submit(disbursement()).status_code == 202
    bank.stop()
    again = run_bank(config)  # undecided disbursements are decided at start
    assert completed(setup.gateway(again))["paid_count"] == 2
    assert again.ledger.summary()["credits"] == 2


def test_serve_runs_the_api(setup: Setup) -> None:
    config = setup.config()
    port_file = load_config(config).api_port_file
    proc = subprocess.Popen(
        [MOCK_BANK, "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(port_file.exists, what="the API port file")
        port = int(port_file.read_text())
        gw = Gateway(
            f"https://127.0.0.1:{port}",
            client_context(setup.pki),
            setup.gateway_sign,
            setup.bank_verify,
            setup.rng,
        )
        assert gw.submit(disbursement()).status_code == 202
        assert completed(gw)["paid_count"] == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    log = err.decode()
    assert "disbursement_taken" in log and "api_request" in log
    for _serial, account, name, id_number, _amount in ITEMS:  # no personal data in the log
        assert account not in log and id_number not in log and name not in log
    assert not port_file.exists()


def test_sm2_key_forms_interoperate_with_openssl(tmp_path: Path) -> None:
    """PKCS#8 PEM, SEC1 PEM (``openssl ec``) and hex keys load to the same key, and the
    bank's SM2 signatures (DER and raw) verify with OpenSSL, OpenSSL's with the bank."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command line")
    from mock_bank.api.crypto import load_signer, load_verifier

    def openssl(*args: str) -> str:
        out = subprocess.run(["openssl", *args], check=True, capture_output=True, text=True)
        return out.stdout

    key, sec1, pub = tmp_path / "k.pem", tmp_path / "sec1.pem", tmp_path / "p.pem"
    openssl("genpkey", "-algorithm", "SM2", "-out", str(key))
    openssl("ec", "-in", str(key), "-out", str(sec1))
    openssl("pkey", "-in", str(key), "-pubout", "-out", str(pub))
    text = openssl("pkey", "-in", str(key), "-text", "-noout")
    priv_hex = re.sub(r"[^0-9a-f]", "", text.split("priv:")[1].split("pub:")[0])
    pub_hex = re.sub(r"[^0-9a-f]", "", text.split("pub:")[1].split("ASN1")[0])
    assert len(priv_hex) == 64 and len(pub_hex) == 130
    (tmp_path / "k.hex").write_text(priv_hex)
    (tmp_path / "p.hex").write_text(pub_hex + "\n")

    message = b"RESPONSE\n200\n/openapi/v1/x\n1\nnonce\n" + b"0" * 64
    openssl_verify = openssl_sm2_verifier(pub, tmp_path)
    for path in (key, sec1, tmp_path / "k.hex"):
        signer = load_signer("SM2-SM3", path, "bank")
        assert openssl_verify(signer.sign(message), message), path
        raw = load_signer("SM2-SM3", path, "bank", encoding="raw").sign(message)
        assert len(raw) == 64
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        assert openssl_verify(encode_dss_signature(r, s), message)
    theirs = openssl_sm2_signer(key, tmp_path)(message)
    for path in (pub, tmp_path / "p.hex"):
        verifier = load_verifier("SM2-SM3", path)
        assert verifier.verify(theirs, message)
        assert not verifier.verify(theirs, message + b"x")
        assert not verifier.verify(theirs + b"\x00", message)  # not canonical DER
