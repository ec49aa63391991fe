"""The ``[crypto]`` table, raw message signatures for the bank API, development keys."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from adapters.crypto import (
    CRYPTO_PROFILES,
    RawSigner,
    RawVerifier,
    build_detached_signer,
    build_raw_signer,
    build_raw_verifier,
    parse_crypto_config,
)
from adapters.crypto.detached import DetachedSigner, get_algorithm
from adapters.crypto.keys import KEY_ALGORITHMS, generate_keypair
from adapters.crypto.sm2 import load_sm2_private_hex, load_sm2_public_hex
from gateway.ports import SignatureError

STRING_TO_SIGN = b"POST\n/openapi/v1/disbursements\n1764295200\nn0nce-1\n" + b"ab" * 32


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our and the bank's keys for every profile (``<profile>.<side>.key|pub``)."""
    directory = tmp_path_factory.mktemp("crypto-keys")
    for profile in KEY_ALGORITHMS:
        for side in ("gw", "bank"):
            private, public = generate_keypair(profile)
            (directory / f"{profile}.{side}.key").write_bytes(private)
            (directory / f"{profile}.{side}.pub").write_bytes(public)
    for side in ("gw", "bank"):
        private, public = generate_keypair("sm2-sm3", "hex")
        (directory / f"sm2-hex.{side}.key").write_bytes(private)
        (directory / f"sm2-hex.{side}.pub").write_bytes(public)
    return directory


def config(profile: str, side: str = "gw", /, **extra: object) -> dict[str, object]:
    peer = "bank" if side == "gw" else "gw"
    stem = "sm2-hex" if extra.get("sm2_key_encoding") == "hex" else profile
    return {
        "crypto": profile,
        "own_key": f"{stem}.{side}.key",
        "own_key_id": f"{side}-2026-01",
        "peer_public_key": f"{stem}.{peer}.pub",
        **extra,
    }


PROFILE_CASES = [
    ("rsa-pss-sha256", {}),
    ("ecdsa-p256-sha256", {}),
    ("ecdsa-p256-sha256", {"ecdsa_signature_encoding": "raw"}),
    ("sm2-sm3", {}),
    ("sm2-sm3", {"sm2_signature_encoding": "raw", "sm2_signer_id": "ALICE123@YAHOO.COM"}),
    ("sm2-sm3", {"sm2_key_encoding": "hex"}),
]


@pytest.mark.parametrize(("profile", "extra"), PROFILE_CASES)
def test_raw_sign_and_verify(key_dir: Path, profile: str, extra: dict[str, object]) -> None:
    gateway = build_raw_signer(config(profile, **extra), base_dir=key_dir)
    bank_verifier = build_raw_verifier(config(profile, "bank", **extra), base_dir=key_dir)
    assert isinstance(gateway, RawSigner)
    assert isinstance(bank_verifier, RawVerifier)
    assert gateway.alg == CRYPTO_PROFILES[profile]
    assert gateway.key_id == "gw-2026-01"
    signature = gateway.sign(STRING_TO_SIGN)
    header = base64.b64encode(signature).decode()  # what the API adapter sends
    bank_verifier.verify(STRING_TO_SIGN, base64.b64decode(header))
    if extra.get("sm2_signature_encoding") == "raw" or extra.get("ecdsa_signature_encoding"):
        assert len(signature) == 64
    with pytest.raises(SignatureError, match="bad signature"):
        bank_verifier.verify(STRING_TO_SIGN + b"x", signature)
    # our own verifier holds the bank's key, not ours
    with pytest.raises(SignatureError, match="bad signature"):
        build_raw_verifier(config(profile, **extra), base_dir=key_dir).verify(
            STRING_TO_SIGN, signature
        )


def test_raw_verifier_rejects_empty_and_huge_signatures(key_dir: Path) -> None:
    verifier = build_raw_verifier(config("sm2-sm3"), base_dir=key_dir)
    for signature in (b"", b"\x30" * 4096):
        with pytest.raises(SignatureError, match="bad signature"):
            verifier.verify(STRING_TO_SIGN, signature)


def test_raw_verifier_key_id(key_dir: Path) -> None:
    verifier = build_raw_verifier(config("sm2-sm3", peer_key_id="bank-1"), base_dir=key_dir)
    assert verifier.key_id == "bank-1"
    verifier.check_key_id("bank-1")
    with pytest.raises(SignatureError, match="key id 'bank-2' is not the configured 'bank-1'"):
        verifier.check_key_id("bank-2")
    unpinned = build_raw_verifier(config("sm2-sm3"), base_dir=key_dir)
    assert unpinned.key_id is None
    unpinned.check_key_id("anything")


def test_raw_verifier_needs_no_private_key(key_dir: Path) -> None:
    table = config("ecdsa-p256-sha256")
    del table["own_key"], table["own_key_id"]
    build_raw_verifier(table, base_dir=key_dir)
    with pytest.raises(ValueError, match=r"\[crypto\]: missing key 'own_key'"):
        build_raw_signer({**table, "own_key_id": "gw"}, base_dir=key_dir)
    with pytest.raises(ValueError, match=r"\[crypto\]: missing key 'own_key_id'"):
        build_raw_signer({**table, "own_key": "ecdsa-p256-sha256.gw.key"}, base_dir=key_dir)


def test_reprs_show_no_key_material(key_dir: Path) -> None:
    signer = build_raw_signer(config("sm2-sm3", sm2_key_encoding="hex"), base_dir=key_dir)
    secret = (key_dir / "sm2-hex.gw.key").read_text().strip()
    for text in (repr(signer), str(signer), repr(signer._key)):
        assert secret not in text
    assert repr(signer) == "RawSigner(alg='SM2-SM3', key_id='gw-2026-01')"


def test_extra_keys_for_the_api_adapter(key_dir: Path) -> None:
    table = config("sm2-sm3", encrypt="SM4-CBC", sm4_key_id="k1")
    with pytest.raises(ValueError, match=r"unknown key\(s\) for 'sm2-sm3': encrypt, sm4_key_id"):
        build_raw_signer(table, base_dir=key_dir)
    build_raw_signer(table, base_dir=key_dir, extra_keys={"encrypt", "sm4_key_id"})


@pytest.mark.parametrize(("profile", "extra"), PROFILE_CASES)
def test_detached_signer_from_config(key_dir: Path, profile: str, extra: dict[str, object]) -> None:
    ours = build_detached_signer(config(profile, **extra), base_dir=key_dir)
    theirs = build_detached_signer(
        config(profile, "bank", peer_key_id="gw-2026-01", **extra), base_dir=key_dir
    )
    assert isinstance(ours, DetachedSigner)
    sig_file = ours.sign(b"file bytes")
    assert sig_file.startswith(f"alg={CRYPTO_PROFILES[profile]}\nkey-id=gw-2026-01\n".encode())
    theirs.verify(b"file bytes", sig_file)


def test_sm2_signer_id_and_encoding_must_agree(key_dir: Path) -> None:
    ours = build_raw_signer(config("sm2-sm3", sm2_signer_id="BANK-A"), base_dir=key_dir)
    signature = ours.sign(STRING_TO_SIGN)
    for mismatched in ({}, {"sm2_signature_encoding": "raw", "sm2_signer_id": "BANK-A"}):
        verifier = build_raw_verifier(config("sm2-sm3", "bank", **mismatched), base_dir=key_dir)
        with pytest.raises(SignatureError):
            verifier.verify(STRING_TO_SIGN, signature)
    build_raw_verifier(config("sm2-sm3", "bank", sm2_signer_id="BANK-A"), base_dir=key_dir).verify(
        STRING_TO_SIGN, signature
    )


def test_parse_defaults() -> None:
    settings = parse_crypto_config({"crypto": "sm2-sm3"})
    assert settings.alg == "SM2-SM3"
    assert settings.own_key_path is None
    assert get_algorithm("SM2-SM3").alg == settings.algorithm.alg
    absolute = parse_crypto_config(
        {"crypto": "rsa-pss-sha256", "own_key": "/etc/keys/gw.pem"}, base_dir=Path("/srv")
    )
    assert absolute.own_key_path == Path("/etc/keys/gw.pem")
    relative = parse_crypto_config(
        {"crypto": "rsa-pss-sha256", "own_key": "gw.pem"}, base_dir=Path("/srv")
    )
    assert relative.own_key_path == Path("/srv/gw.pem")


_UNKNOWN_SM9 = r"unknown crypto 'sm9' \(known: ecdsa-p256-sha256, rsa-pss-sha256, sm2-sm3\)"
CONFIG_ERRORS: list[tuple[dict[str, object], str]] = [
    ({}, r"\[crypto\]: missing key 'crypto'"),
    ({"crypto": "sm9"}, _UNKNOWN_SM9),
    ({"crypto": 5}, "'crypto' must be a non-empty string"),
    (
        {"crypto": "rsa-pss-sha256", "sm2_signer_id": "x"},
        r"unknown key\(s\) for 'rsa-pss-sha256': sm2_signer_id",
    ),
    ({"crypto": "ecdsa-p256-sha256", "sm2_key_encoding": "hex"}, "unknown key"),
    ({"crypto": "sm2-sm3", "ecdsa_signature_encoding": "raw"}, "unknown key"),
    (
        {"crypto": "sm2-sm3", "sm2_signature_encoding": "p1363"},
        "'sm2_signature_encoding' must be one of der, raw",
    ),
    (
        {"crypto": "sm2-sm3", "sm2_key_encoding": "der"},
        "'sm2_key_encoding' must be one of pem, hex",
    ),
    ({"crypto": "sm2-sm3", "sm2_signer_id": ""}, "'sm2_signer_id' must be a non-empty string"),
    ({"crypto": "sm2-sm3", "sm2_signer_id": "张三"}, "'sm2_signer_id' must be printable ASCII"),
    ({"crypto": "sm2-sm3", "sm2_signer_id": "x" * 9000}, "'sm2_signer_id' is too long"),
    ({"crypto": "ecdsa-p256-sha256", "ecdsa_signature_encoding": "DER"}, "one of der, raw"),
    ({"crypto": "sm2-sm3", "own_key": 3}, "'own_key' must be a non-empty string"),
]


@pytest.mark.parametrize(("table", "message"), CONFIG_ERRORS)
def test_config_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_crypto_config(table)


KEY_ERRORS: list[tuple[dict[str, object], str]] = [
    ({"own_key": "missing.pem"}, r"\[crypto\]: 'own_key': cannot read .*missing\.pem"),
    (
        {"peer_public_key": "sm2-sm3.bank.key"},
        r"'peer_public_key': cannot load the SM2 public key",
    ),
    (
        {"own_key": "rsa-pss-sha256.gw.key"},
        r"'own_key': cannot load the SM2 private key .*not an EC/SM2 key",
    ),
    ({"own_key": "ecdsa-p256-sha256.gw.key"}, r"'own_key': .*not on the SM2 curve"),
    ({"sm2_key_encoding": "hex"}, r"'own_key': cannot load the SM2 private key \(hex\)"),
    ({"own_key_id": "has space"}, "key_id must be 1–128 printable ASCII"),
]


@pytest.mark.parametrize(("changes", "message"), KEY_ERRORS)
def test_key_errors_name_the_key(key_dir: Path, changes: dict[str, object], message: str) -> None:
    table = {**config("sm2-sm3"), **changes}
    with pytest.raises(ValueError, match=message):
        if "peer_public_key" in changes:
            build_raw_verifier(table, base_dir=key_dir)
        else:
            build_raw_signer(table, base_dir=key_dir)
    if "own_key_id" not in changes:
        with pytest.raises(ValueError, match=message):
            build_detached_signer(table, base_dir=key_dir)


def test_detached_signer_needs_the_peer_key(key_dir: Path) -> None:
    table = config("sm2-sm3")
    del table["peer_public_key"]
    with pytest.raises(ValueError, match=r"\[crypto\]: missing key 'peer_public_key'"):
        build_detached_signer(table, base_dir=key_dir)


# --- development keys ------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ecdsa-p256-sha256", "sm2-sm3", "SM2-SM3"])
def test_generate_keypair_pem(alg: str) -> None:
    private, public = generate_keypair(alg)
    assert private.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert public.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    algorithm = get_algorithm(alg.upper())
    assert algorithm.load_verifying_key(public).verify(
        algorithm.load_signing_key(private).sign(b"x"), b"x"
    )
    assert generate_keypair(alg)[0] != private


def test_generate_keypair_rsa_is_3072_bits(key_dir: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = serialization.load_pem_private_key(
        (key_dir / "rsa-pss-sha256.gw.key").read_bytes(), password=None
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 3072


def test_generate_keypair_sm2_hex() -> None:
    private, public = generate_keypair("sm2-sm3", encoding="hex")
    assert len(private.strip()) == 64
    assert len(public.strip()) == 130 and public.startswith(b"04")
    assert load_sm2_private_hex(private).public_key == load_sm2_public_hex(public)


@pytest.mark.parametrize(
    ("alg", "encoding", "message"),
    [
        ("ed25519", "pem", "unknown key algorithm 'ed25519'"),
        ("rsa-pss-sha256", "hex", "hex key encoding exists only for sm2-sm3"),
        ("sm2-sm3", "der", "unknown key encoding 'der'"),
    ],
)
def test_generate_keypair_errors(alg: str, encoding: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_keypair(alg, encoding)


@pytest.mark.parametrize("profile", ["rsa-pss-sha256", "ecdsa-p256-sha256"])
def test_sm2_key_files_given_to_other_profiles_are_config_errors(
    key_dir: Path, profile: str
) -> None:
    """``cryptography`` raises UnsupportedAlgorithm for SM2 keys: it must become ValueError."""
    table = config(profile, own_key="sm2-sm3.gw.key")
    with pytest.raises(ValueError, match=r"\[crypto\]: 'own_key': cannot load the private key"):
        build_detached_signer(table, base_dir=key_dir)
    table = config(profile, peer_public_key="sm2-sm3.bank.pub")
    with pytest.raises(ValueError, match=r"'peer_public_key': cannot load the public key"):
        build_raw_verifier(table, base_dir=key_dir)
