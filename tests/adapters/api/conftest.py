"""Fixtures for the bank-API adapter tests: a throw-away PKI, signing keys, a test bank.

Certificates are made here with ``cryptography.x509`` (P-256 keys: fast):

- ``bank CA`` issues the bank's server certificate (SAN IP 127.0.0.1) and one for the wrong
  host name (SAN DNS bank.example only);
- ``client CA`` (the bank's CA for clients) issues the gateway's client certificate;
- ``rogue CA`` issues a client certificate the bank does not trust, and is also the wrong
  trust anchor for the gateway.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapters.api.openapi import OpenApiBank
from adapters.api.tls import build_client_ssl_context
from adapters.crypto.keys import generate_keypair
from adapters.crypto.raw import RawSigner, build_raw_signer, build_raw_verifier
from tests.adapters.api.bank_server import Script, TestBankServer

CRYPTO_PROFILES = ("ecdsa-p256-sha256", "rsa-pss-sha256", "sm2-sm3")
GATEWAY_KEY_ID = "gw-2026"
BANK_KEY_ID = "bank-2026"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class _Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def make(cls, name: str) -> _Ca:
        key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
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
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def issue(
        self, name: str, sans: list[x509.GeneralName] | None, *, server: bool
    ) -> tuple[bytes, bytes]:
        key = _key()
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return _pem_cert(builder.sign(self.key, hashes.SHA256())), _pem_key(key)


@dataclass(frozen=True)
class Pki:
    dir: Path

    def __getitem__(self, name: str) -> Path:
        return self.dir / name


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("api-pki")
    bank_ca, client_ca, rogue_ca = _Ca.make("bank CA"), _Ca.make("client CA"), _Ca.make("rogue")
    files: dict[str, bytes] = {
        "bank_ca.pem": _pem_cert(bank_ca.cert),
        "client_ca.pem": _pem_cert(client_ca.cert),
        "rogue_ca.pem": _pem_cert(rogue_ca.cert),
    }
    loopback: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    wrong_name: list[x509.GeneralName] = [x509.DNSName("bank.example")]
    for stem, ca, sans, server in (
        ("server", bank_ca, loopback, True),
        ("server_wrong_name", bank_ca, wrong_name, True),
        ("client", client_ca, None, False),
        ("rogue_client", rogue_ca, None, False),
    ):
        cert, key = ca.issue(stem, sans, server=server)
        files[f"{stem}.pem"], files[f"{stem}.key.pem"] = cert, key
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return Pki(directory)


@dataclass(frozen=True)
class Keys:
    """Signing keys of one crypto profile, and the two ``[crypto]`` tables."""

    profile: str
    dir: Path

    def gateway_config(self, **changes: Any) -> dict[str, Any]:
        return {
            "crypto": self.profile,
            "own_key": str(self.dir / "gateway.key"),
            "own_key_id": GATEWAY_KEY_ID,
            "peer_public_key": str(self.dir / "bank.pub"),
            "peer_key_id": BANK_KEY_ID,
            **changes,
        }

    def bank_config(self) -> dict[str, Any]:
        return {
            "crypto": self.profile,
            "own_key": str(self.dir / "bank.key"),
            "own_key_id": BANK_KEY_ID,
            "peer_public_key": str(self.dir / "gateway.pub"),
            "peer_key_id": GATEWAY_KEY_ID,
        }

    def bank_signer(self) -> RawSigner:
        return build_raw_signer(self.bank_config())

    def rogue_signer(self) -> RawSigner:
        """Signs like the bank (same key id) with a key the gateway does not know."""
        return build_raw_signer({**self.bank_config(), "own_key": str(self.dir / "rogue.key")})


@pytest.fixture(scope="session")
def key_sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Keys]:
    sets: dict[str, Keys] = {}
    for profile in CRYPTO_PROFILES:
        directory = tmp_path_factory.mktemp(f"api-keys-{profile}")
        for who in ("gateway", "bank", "rogue"):
            private, public = generate_keypair(profile)
            (directory / f"{who}.key").write_bytes(private)
            (directory / f"{who}.pub").write_bytes(public)
        sets[profile] = Keys(profile, directory)
    return sets


@pytest.fixture
def keys(key_sets: dict[str, Keys]) -> Keys:
    """The default profile for most tests (ECDSA: fast)."""
    return key_sets["ecdsa-p256-sha256"]


def server_tls(pki: Pki, *, cert: str = "server", max_version: str = "TLSv1_3") -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion[max_version]
    context.load_cert_chain(pki[f"{cert}.pem"], pki[f"{cert}.key.pem"])
    context.load_verify_locations(cafile=pki["client_ca.pem"])
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.fixture
def start_bank(pki: Pki, keys: Keys, rng: random.Random) -> Iterator[Callable[..., TestBankServer]]:
    """Start test banks; ``cert``/``max_version`` pick the server certificate and TLS."""
    started: list[TestBankServer] = []

    def start(
        script: Script | None = None,
        *,
        cert: str = "server",
        max_version: str = "TLSv1_3",
        keyset: Keys | None = None,
    ) -> TestBankServer:
        ks = keyset or keys
        server = TestBankServer(
            server_tls(pki, cert=cert, max_version=max_version),
            ks.bank_signer(),
            build_raw_verifier(ks.bank_config()),
            script,
            rng=rng,
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def make_api(pki: Pki, keys: Keys) -> Iterator[Callable[..., OpenApiBank]]:
    """Build an OpenApiBank; keyword arguments override the defaults."""
    made: list[OpenApiBank] = []

    def make(
        base_url: str,
        *,
        keyset: Keys | None = None,
        client_cert: str = "client",
        server_ca: str = "bank_ca",
        ssl_context: ssl.SSLContext | None = None,
        **overrides: Any,
    ) -> OpenApiBank:
        ks = keyset or keys
        context = ssl_context or build_client_ssl_context(
            client_cert=pki[f"{client_cert}.pem"],
            client_key=pki[f"{client_cert}.key.pem"],
            server_ca_pem=pki[f"{server_ca}.pem"].read_bytes(),
        )
        kwargs: dict[str, Any] = {
            "base_url": base_url,
            "client_id": "subsidy-gateway",
            "ssl_context": context,
            "signer": build_raw_signer(ks.gateway_config()),
            "verifier": build_raw_verifier(ks.gateway_config()),
            "connect_timeout": 2.0,
            "read_timeout": 2.0,
            "write_timeout": 2.0,
            **overrides,
        }
        api = OpenApiBank(**kwargs)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()
