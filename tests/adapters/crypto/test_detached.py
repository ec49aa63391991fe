"""Detached ``RSA-PSS-SHA256`` signature files (docs/formats/fw-gb18030-v1.md)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.crypto.detached import (
    ALGORITHMS,
    DetachedSignature,
    DetachedSigner,
    RsaPssDetachedSigner,
    SignatureAlgorithm,
    get_algorithm,
    register_algorithm,
)
from gateway.certs import DEV_KEY_FILES as K
from gateway.ports import SignatureError

DATA = "H FW01 测试 𬎆\r\n".encode("gb18030") * 50


@pytest.fixture(scope="module")
def gateway_signer(dev_keys: Path) -> RsaPssDetachedSigner:
    """Our side: signs with the gateway key, verifies the bank's signatures."""
    return RsaPssDetachedSigner(
        (dev_keys / K.gateway_signing_key).read_bytes(),
        "gw-2026-01",
        (dev_keys / K.bank_signing_pub).read_bytes(),
    )


@pytest.fixture(scope="module")
def bank_signer(dev_keys: Path) -> RsaPssDetachedSigner:
    """The bank's side (as a test double): signs with the bank key, verifies ours."""
    return RsaPssDetachedSigner(
        (dev_keys / K.bank_signing_key).read_bytes(),
        "bank-2026-01",
        (dev_keys / K.gateway_signing_pub).read_bytes(),
    )


def lines_of(sig_file: bytes) -> list[str]:
    return sig_file.decode("ascii").split("\n")


def test_signature_file_layout(gateway_signer: RsaPssDetachedSigner) -> None:
    sig_file = gateway_signer.sign(DATA)
    assert sig_file.endswith(b"\n")
    assert b"\r" not in sig_file
    lines = lines_of(sig_file)
    assert lines[-1] == ""
    assert lines[0] == "alg=RSA-PSS-SHA256"
    assert lines[1] == "key-id=gw-2026-01"
    assert lines[2] == "sha256=" + hashlib.sha256(DATA).hexdigest()
    assert lines[3].startswith("sig=")
    assert len(lines) == 5


def test_signature_is_rsa_pss_sha256_mgf1_salt_32(
    gateway_signer: RsaPssDetachedSigner, dev_keys: Path
) -> None:
    """Checked with cryptography directly, not through the adapter."""
    public = serialization.load_pem_public_key((dev_keys / K.gateway_signing_pub).read_bytes())
    assert isinstance(public, rsa.RSAPublicKey)
    sig = base64.b64decode(lines_of(gateway_signer.sign(DATA))[3].removeprefix("sig="))
    pss32 = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    public.verify(sig, DATA, pss32, hashes.SHA256())
    with pytest.raises(InvalidSignature):  # the salt length really is 32
        public.verify(
            sig, DATA, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20),
            hashes.SHA256(),
        )  # fmt: skip


def test_round_trip_between_the_two_sides(
    gateway_signer: RsaPssDetachedSigner, bank_signer: RsaPssDetachedSigner
) -> None:
    bank_signer.verify(DATA, gateway_signer.sign(DATA))
    gateway_signer.verify(DATA, bank_signer.sign(DATA))


def test_signature_made_elsewhere_verifies(
    gateway_signer: RsaPssDetachedSigner, dev_keys: Path
) -> None:
    """A bank that signs with its own tooling (here: cryptography directly) is accepted."""
    private = serialization.load_pem_private_key(
        (dev_keys / K.bank_signing_key).read_bytes(), password=None
    )
    assert isinstance(private, rsa.RSAPrivateKey)
    sig = private.sign(
        DATA, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
    )
    sig_file = (
        "alg=RSA-PSS-SHA256\nkey-id=bank-2026-01\n"
        f"sha256={hashlib.sha256(DATA).hexdigest()}\nsig={base64.b64encode(sig).decode()}\n"
    ).encode()
    gateway_signer.verify(DATA, sig_file)


@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=2048))
def test_round_trip_any_bytes(
    gateway_signer: RsaPssDetachedSigner, bank_signer: RsaPssDetachedSigner, data: bytes
) -> None:
    bank_signer.verify(data, gateway_signer.sign(data))


# --- tampering -------------------------------------------------------------------------------


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def replace_line(sig_file: bytes, index: int, line: str) -> bytes:
    lines = lines_of(sig_file)
    lines[index] = line
    return "\n".join(lines).encode("ascii")


@pytest.mark.parametrize("index", [0, 1, len(DATA) // 2, len(DATA) - 1])
def test_one_flipped_byte_in_the_data_is_a_digest_mismatch(
    gateway_signer: RsaPssDetachedSigner, bank_signer: RsaPssDetachedSigner, index: int
) -> None:
    sig_file = gateway_signer.sign(DATA)
    with pytest.raises(SignatureError, match="digest mismatch"):
        bank_signer.verify(flip(DATA, index), sig_file)


def test_changed_digest_line_is_a_digest_mismatch(
    gateway_signer: RsaPssDetachedSigner, bank_signer: RsaPssDetachedSigner
) -> None:
    sig_file = gateway_signer.sign(DATA)
    digest = hashlib.sha256(DATA).hexdigest()
    other = ("0" if digest[0] != "0" else "1") + digest[1:]
    with pytest.raises(SignatureError, match="digest mismatch"):
        bank_signer.verify(DATA, replace_line(sig_file, 2, f"sha256={other}"))


def test_tampered_data_with_matching_digest_is_a_bad_signature(
    gateway_signer: RsaPssDetachedSigner, bank_signer: RsaPssDetachedSigner
) -> None:
    """An attacker who changes the file and recomputes the sha256 line still fails."""
    sig_file = gateway_signer.sign(DATA)
    forged = flip(DATA, 10)
    sig_file = replace_line(sig_file, 2, f"sha256={hashlib.sha256(forged).hexdigest()}")
    with pytest.raises(SignatureError, match="bad signature"):
        bank_signer.verify(forged, sig_file)


@pytest.mark.parametrize("index", [0, 100, -1])
def test_one_flipped_byte_in_the_signature_is_a_bad_signature(
    gateway_signer: RsaPssDetachedSigner, bank_signer: RsaPssDetachedSigner, index: int
) -> None:
    sig_file = gateway_signer.sign(DATA)
    raw = bytearray(base64.b64decode(lines_of(sig_file)[3].removeprefix("sig=")))
    raw[index] ^= 0x80
    sig_file = replace_line(sig_file, 3, "sig=" + base64.b64encode(bytes(raw)).decode())
    with pytest.raises(SignatureError, match="bad signature"):
        bank_signer.verify(DATA, sig_file)


def test_truncated_signature_is_a_bad_signature(
    gateway_signer: RsaPssDetachedSigner, bank_signer: RsaPssDetachedSigner
) -> None:
    sig_file = gateway_signer.sign(DATA)
    raw = base64.b64decode(lines_of(sig_file)[3].removeprefix("sig="))
    sig_file = replace_line(sig_file, 3, "sig=" + base64.b64encode(raw[:-3]).decode())
    with pytest.raises(SignatureError, match="bad signature"):
        bank_signer.verify(DATA, sig_file)


def test_wrong_key_is_a_bad_signature(gateway_signer: RsaPssDetachedSigner, dev_keys: Path) -> None:
    """A file signed by the gateway key does not verify as the bank's."""
    with pytest.raises(SignatureError, match="bad signature"):
        gateway_signer.verify(DATA, gateway_signer.sign(DATA))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger_pem = stranger.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    impostor = RsaPssDetachedSigner(
        stranger_pem, "bank-2026-01", (dev_keys / K.gateway_signing_pub).read_bytes()
    )
    with pytest.raises(SignatureError, match="bad signature"):
        gateway_signer.verify(DATA, impostor.sign(DATA))


def test_wrong_algorithm_is_refused(
    gateway_signer: RsaPssDetachedSigner, bank_signer: RsaPssDetachedSigner
) -> None:
    sig_file = replace_line(gateway_signer.sign(DATA), 0, "alg=RSA-PKCS1-SHA256")
    with pytest.raises(SignatureError, match="'RSA-PKCS1-SHA256' is not the configured"):
        bank_signer.verify(DATA, sig_file)


def test_peer_key_id_is_enforced_when_configured(
    gateway_signer: RsaPssDetachedSigner, dev_keys: Path
) -> None:
    strict = RsaPssDetachedSigner(
        (dev_keys / K.bank_signing_key).read_bytes(),
        "bank-2026-01",
        (dev_keys / K.gateway_signing_pub).read_bytes(),
        peer_key_id="gw-2026-02",
    )
    with pytest.raises(SignatureError, match="key-id 'gw-2026-01'"):
        strict.verify(DATA, gateway_signer.sign(DATA))


def _swap(sig_file: bytes, a: int, b: int) -> bytes:
    lines = sig_file.split(b"\n")
    lines[a], lines[b] = lines[b], lines[a]
    return b"\n".join(lines)


def _set_line(sig_file: bytes, index: int, line: bytes) -> bytes:
    lines = sig_file.split(b"\n")
    lines[index] = line
    return b"\n".join(lines)


def _upper_digest(sig_file: bytes) -> bytes:
    lines = sig_file.split(b"\n")
    lines[2] = lines[2].upper().replace(b"SHA256=", b"sha256=")
    if lines[2] == lines[2].lower():  # all digits: make one a letter that is not hex
        lines[2] = lines[2][:-1] + b"g"
    return b"\n".join(lines)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: b"", "last line does not end with LF"),
        (lambda s: s.replace(b"\n", b"\r\n"), "CR"),
        (lambda s: s[:-1], "last line does not end with LF"),
        (lambda s: s + b"extra=1\n", "5 lines, expected 4"),
        (lambda s: b"\n".join(s.split(b"\n")[:3]) + b"\n", "3 lines, expected 4"),
        (lambda s: _swap(s, 1, 2), "line 2 is not key-id"),
        (lambda s: s.replace(b"key-id=", b"keyid="), "line 2 is not key-id"),
        (lambda s: s.replace(b"key-id=gw-2026-01", b"key-id="), "key-id is empty"),
        (lambda s: s.replace(b"key-id=gw-2026-01", b"key-id=gw 1"), "key-id is empty or not"),
        (_upper_digest, "64 lower-case hex"),
        (lambda s: s.replace(b"sig=", b"sig=!"), "not standard base64"),
        (lambda s: _set_line(s, 3, b"sig="), "empty sig"),
        (lambda s: _set_line(s, 0, b"alg="), "empty alg"),
        (lambda s: s.replace(b"gw-2026-01", "网关".encode()), "not ASCII"),
        (lambda s: s + b" " * 20000, "more than"),
    ],
)
def test_malformed_signature_files(
    gateway_signer: RsaPssDetachedSigner,
    bank_signer: RsaPssDetachedSigner,
    mutate: object,
    message: str,
) -> None:
    assert callable(mutate)
    sig_file = mutate(gateway_signer.sign(DATA))
    with pytest.raises(SignatureError, match="malformed signature file") as info:
        bank_signer.verify(DATA, sig_file)
    assert info.match(message)


def test_parse_and_render_are_inverse() -> None:
    parsed = DetachedSignature("RSA-PSS-SHA256", "k1", "ab" * 32, b"\x00\x01\xff")
    assert DetachedSignature.parse(parsed.to_bytes()) == parsed


# --- keys and the registry -------------------------------------------------------------------


def test_key_loading_refuses_wrong_key_types(dev_keys: Path) -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    ed_pem = ed.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ed_pub = ed.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    good_key = (dev_keys / K.gateway_signing_key).read_bytes()
    good_pub = (dev_keys / K.bank_signing_pub).read_bytes()
    with pytest.raises(ValueError, match="needs an RSA private key"):
        RsaPssDetachedSigner(ed_pem, "k", good_pub)
    with pytest.raises(ValueError, match="needs an RSA public key"):
        RsaPssDetachedSigner(good_key, "k", ed_pub)
    with pytest.raises(ValueError, match="cannot load the private key"):
        RsaPssDetachedSigner(b"not a key", "k", good_pub)
    with pytest.raises(ValueError, match="cannot load the public key"):
        RsaPssDetachedSigner(good_key, "k", good_key)  # a private key is not a public key
    with pytest.raises(ValueError, match="own_key_id"):
        RsaPssDetachedSigner(good_key, "has space", good_pub)


def test_small_rsa_keys_are_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - must be refused
    pem = small.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = small.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="too small"):
        RsaPssDetachedSigner(pem, "k", pub)


def test_algorithm_registry() -> None:
    assert "RSA-PSS-SHA256" in ALGORITHMS
    assert get_algorithm("RSA-PSS-SHA256").alg == "RSA-PSS-SHA256"
    assert get_algorithm("ECDSA-P256-SHA256").alg == "ECDSA-P256-SHA256"
    assert get_algorithm("SM2-SM3").alg == "SM2-SM3"
    with pytest.raises(ValueError, match="unknown signature algorithm 'SM9-SM3'"):
        get_algorithm("SM9-SM3")
    with pytest.raises(ValueError, match="already registered"):
        register_algorithm(ALGORITHMS["RSA-PSS-SHA256"])


def test_a_new_profile_plugs_in(dev_keys: Path) -> None:
    """A toy profile shows the seam ECDSA-P256 or SM2 will use."""

    class _Toy:
        def __init__(self, secret: bytes) -> None:
            self.secret = secret

        def sign(self, data: bytes) -> bytes:
            return hashlib.sha256(self.secret + data).digest()

        def verify(self, signature: bytes, data: bytes) -> bool:
            return signature == self.sign(data)

    toy = SignatureAlgorithm("TOY-TEST", _Toy, _Toy)
    register_algorithm(toy)
    try:
        ours = DetachedSigner("TOY-TEST", b"s", "k1", b"s")
        sig_file = ours.sign(b"x")
        assert sig_file.startswith(b"alg=TOY-TEST\n")
        ours.verify(b"x", sig_file)
        with pytest.raises(SignatureError, match="bad signature"):
            DetachedSigner("TOY-TEST", b"s", "k1", b"other").verify(b"x", sig_file)
    finally:
        del ALGORITHMS["TOY-TEST"]
