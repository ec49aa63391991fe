"""Development keys and certificates: ``gateway certs init`` writes them under
``certs/dev/`` (gitignored).

Production keys are installed by operators (see ``certs/README.md``); this module only makes
throw-away material for development, tests and the demo:

- a development CA, a TLS server certificate for the mock bank's API (SAN 127.0.0.1,
  localhost) and a TLS client certificate for the gateway (mutual TLS);
- signing key pairs per bank profile and algorithm, for both sides: the gateway's and the
  (mock) bank's — RSA-PSS for the fixed-width bank, ECDSA P-256 for the ISO 20022 bank, SM2
  for the API bank;
- SFTP host and client keys (Ed25519, OpenSSH format);
- an SM4 key for encrypted API bodies.

Every file is named in ``DEV_KEY_FILES`` so that tests and the demo agree on names.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class DevKeyFiles:
    """Paths of the development key set, relative to the key directory."""

    gateway_signing_key: str = "gateway_signing.key.pem"
    gateway_signing_pub: str = "gateway_signing.pub.pem"
    bank_signing_key: str = "mock_bank_signing.key.pem"
    bank_signing_pub: str = "mock_bank_signing.pub.pem"
    gateway_ecdsa_key: str = "gateway_ecdsa.key.pem"
    gateway_ecdsa_pub: str = "gateway_ecdsa.pub.pem"
    bank_ecdsa_key: str = "mock_bank_ecdsa.key.pem"
    bank_ecdsa_pub: str = "mock_bank_ecdsa.pub.pem"
    gateway_sm2_key: str = "gateway_sm2.key.pem"
    gateway_sm2_pub: str = "gateway_sm2.pub.pem"
    bank_sm2_key: str = "mock_bank_sm2.key.pem"
    bank_sm2_pub: str = "mock_bank_sm2.pub.pem"
    sftp_host_key: str = "mock_bank_sftp_host.key"
    sftp_host_pub: str = "mock_bank_sftp_host.pub"
    sftp_client_key: str = "gateway_sftp_client.key"
    sftp_client_pub: str = "gateway_sftp_client.pub"
    ca_cert: str = "dev_ca.pem"
    ca_key: str = "dev_ca.key.pem"
    api_server_cert: str = "mock_bank_api.pem"
    api_server_key: str = "mock_bank_api.key.pem"
    api_client_cert: str = "gateway_api_client.pem"
    api_client_key: str = "gateway_api_client.key.pem"
    sm4_key: str = "api_sm4.key"


DEV_KEY_FILES = DevKeyFiles()


def _write(path: Path, data: bytes, *, private: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    tmp.replace(path)


def _pem_private(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_public(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _signing_pair(alg: str) -> tuple[bytes, bytes]:
    if alg == "rsa":
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = rsa.generate_private_key(
            public_exponent=65537, key_size=3072
        )
        return _pem_private(key), _pem_public(key)
    if alg == "ecdsa":
        key = ec.generate_private_key(ec.SECP256R1())
        return _pem_private(key), _pem_public(key)
    # SM2: cryptography cannot make SM2 keys; the crypto adapter does (through a maintained
    # SM2 library), in the PKCS#8/SPKI PEM layout OpenSSL 3 uses
    from adapters.crypto.keys import generate_keypair  # noqa: PLC0415 (composition root)

    return generate_keypair("sm2-sm3", "pem")


def _ssh_pair(comment: str) -> tuple[bytes, bytes]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, pub + b" " + comment.encode() + b"\n"


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Subsidy gateway development"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _tls_material(directory: Path) -> None:
    """A development CA and, signed by it, the mock bank's server and our client cert."""
    files = DEV_KEY_FILES
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Subsidy gateway development CA"))
        .issuer_name(_name("Subsidy gateway development CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, *, server: bool) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=397))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _pem_private(key)

    server_cert, server_key = leaf("mock-bank-api", server=True)
    client_cert, client_key = leaf("subsidy-gateway", server=False)
    _write(directory / files.ca_cert, ca.public_bytes(serialization.Encoding.PEM), private=False)
    _write(directory / files.ca_key, _pem_private(ca_key), private=True)
    _write(directory / files.api_server_cert, server_cert, private=False)
    _write(directory / files.api_server_key, server_key, private=True)
    _write(directory / files.api_client_cert, client_cert, private=False)
    _write(directory / files.api_client_key, client_key, private=True)


def init_dev_keys(directory: Path, *, force: bool = False) -> list[Path]:
    """Create the development key set in ``directory``; existing files are kept unless
    ``force``. Returns the files written."""
    f = DEV_KEY_FILES
    written: list[Path] = []

    def missing(*names: str) -> bool:
        return force or not all((directory / n).exists() for n in names)

    pairs = [
        (f.gateway_signing_key, f.gateway_signing_pub, "rsa"),
        (f.bank_signing_key, f.bank_signing_pub, "rsa"),
        (f.gateway_ecdsa_key, f.gateway_ecdsa_pub, "ecdsa"),
        (f.bank_ecdsa_key, f.bank_ecdsa_pub, "ecdsa"),
        (f.gateway_sm2_key, f.gateway_sm2_pub, "sm2"),
        (f.bank_sm2_key, f.bank_sm2_pub, "sm2"),
    ]
    for key_name, pub_name, alg in pairs:
        if missing(key_name, pub_name):
            private, public = _signing_pair(alg)
            _write(directory / key_name, private, private=True)
            _write(directory / pub_name, public, private=False)
            written += [directory / key_name, directory / pub_name]
    for key_name, pub_name, comment in (
        (f.sftp_host_key, f.sftp_host_pub, "mock-bank-host"),
        (f.sftp_client_key, f.sftp_client_pub, "gateway-client"),
    ):
        if missing(key_name, pub_name):
            private, public = _ssh_pair(comment)
            _write(directory / key_name, private, private=True)
            _write(directory / pub_name, public, private=False)
            written += [directory / key_name, directory / pub_name]
    tls = (
        f.ca_cert,
        f.ca_key,
        f.api_server_cert,
        f.api_server_key,
        f.api_client_cert,
        f.api_client_key,
    )
    if missing(*tls):
        _tls_material(directory)
        written += [directory / n for n in tls]
    if missing(f.sm4_key):
        _write(directory / f.sm4_key, os.urandom(16).hex().encode() + b"\n", private=True)
        written.append(directory / f.sm4_key)
    return written
