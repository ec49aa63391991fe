"""``adapters.registry.build_bank_api``: the profile's ``[api]`` table (+ its ``[crypto]``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.api.openapi import OpenApiBank
from adapters.registry import build_bank_api
from tests.adapters.api.bank_server import Received, Reply, TestBankServer
from tests.adapters.api.conftest import Keys, Pki
from tests.adapters.api.test_openapi import REQUEST_ID, SERIAL, SM4_KEY, _open_envelope, ack
from tests.adapters.api.test_openapi import header as make_header
from tests.adapters.api.test_openapi import items as make_items


@pytest.fixture
def sm4_file(tmp_path: Path) -> Path:
    path = tmp_path / "api_sm4.key"
    path.write_text(SM4_KEY.hex() + "\n")
    return path


def api_config(pki: Pki, keys: Keys, url: str, **changes: Any) -> dict[str, Any]:
    """Shaped like ``gateway.profiles``: the ``[api]`` table plus ``crypto``."""
    config: dict[str, Any] = {
        "base_url": url,
        "client_id": "subsidy-gateway",
        "client_cert": str(pki["client.pem"]),
        "client_key": str(pki["client.key.pem"]),
        "server_ca": str(pki["bank_ca.pem"]),
        "connect_timeout": 2,
        "read_timeout": 2.0,
        "crypto": keys.gateway_config(),
        **changes,
    }
    return {k: v for k, v in config.items() if v is not None}


@pytest.fixture
def built() -> Iterator[Callable[[dict[str, Any]], OpenApiBank]]:
    made: list[OpenApiBank] = []

    def build(config: dict[str, Any]) -> OpenApiBank:
        api = build_bank_api(config)
        assert isinstance(api, OpenApiBank)
        made.append(api)
        return api

    yield build
    for api in made:
        api.close()


def test_build_and_submit_sm2_with_sm4(
    pki: Pki,
    key_sets: dict[str, Keys],
    sm4_file: Path,
    start_bank: Callable[..., TestBankServer],
    built: Callable[[dict[str, Any]], OpenApiBank],
) -> None:
    keys = key_sets["sm2-sm3"]
    seen: list[bytes] = []

    def script(request: Received) -> Reply:
        seen.append(_open_envelope(SM4_KEY, json.loads(request.body)["encrypted"]))
        return ack(202)

    bank = start_bank(script, keyset=keys)
    api = built(
        api_config(
            pki,
            keys,
            bank.base_url,
            encrypt="SM4-CBC",
            sm4_key_id="k2026",
            sm4_key_file=str(sm4_file),
            max_items_per_request=20_000,
            payer_name="某县财政局",
        )
    )
    assert api.max_items_per_request == 20_000
    body = api.render_submission(make_header(), make_items())
    assert api.submit(REQUEST_ID, body).batch_serial == SERIAL
    assert json.loads(seen[0])["items"][0]["name"] == "刘䶮"
    assert bank.requests[0].signature_ok


def test_relative_paths_resolve_against_base_dir(pki: Pki, keys: Keys) -> None:
    config = api_config(
        pki,
        keys,
        "https://127.0.0.1:9",
        api="openapi-v1",
        client_cert="client.pem",
        client_key="client.key.pem",
        server_ca="bank_ca.pem",
        encrypt="none",
    )
    api = build_bank_api(config, base_dir=pki.dir)
    assert isinstance(api, OpenApiBank)
    api.close()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"api": "openapi-v9"}, r"\[api\]: unknown api 'openapi-v9' \(known: openapi-v1\)"),
        ({"base_url": None}, "missing key 'base_url'"),
        ({"base_url": "http://127.0.0.1:1"}, "must be https"),
        ({"client_id": ""}, "'client_id' must be a non-empty string"),
        ({"client_cert": "/nonexistent.pem"}, "'client_cert': /nonexistent.pem is not a readable"),
        ({"server_ca": "/nonexistent.pem"}, "'server_ca': cannot read"),
        ({"timeout": 5}, r"unknown key\(s\) for 'openapi-v1': timeout"),
        ({"callback_url": "https://gw/x"}, "unknown key.*callback_url"),
        ({"read_timeout": 0}, "'read_timeout' must be a positive"),
        ({"connect_timeout": "5"}, "'connect_timeout' must be a number"),
        ({"encrypt": "AES"}, "'encrypt' must be one of none, SM4-CBC"),
        ({"encrypt": "SM4-CBC"}, "missing key 'sm4_key_id'"),
        ({"sm4_key_id": "k1"}, "'sm4_key_id' is only for encrypt = 'SM4-CBC'"),
        ({"max_items_per_request": 0}, "'max_items_per_request' must be at least 1"),
        ({"crypto": None}, "'crypto' must be the profile's"),
        ({"crypto": "rsa"}, "'crypto' must be the profile's"),
    ],
)  # fmt: skip
def test_build_errors(pki: Pki, keys: Keys, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_bank_api(api_config(pki, keys, "https://127.0.0.1:9", **changes))


def test_build_errors_from_files_and_crypto(pki: Pki, keys: Keys, tmp_path: Path) -> None:
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("not hex\n")
    short_key = tmp_path / "short.key"
    short_key.write_text("00ff\n")
    base = {"encrypt": "SM4-CBC", "sm4_key_id": "k1"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({**base, "sm4_key_file": str(bad_key)}, "must hold the key as 32 hex digits"),
        ({**base, "sm4_key_file": str(short_key)}, "holds 2 bytes; an SM4 key is 16"),
        ({"server_ca": str(pki["client.key.pem"])}, "server_ca: not a PEM file"),
        ({"client_key": str(pki["rogue_client.key.pem"])}, "cannot load"),
        ({"crypto": keys.gateway_config(own_key_id=None)}, r"\[crypto\]"),
        ({"crypto": keys.gateway_config(typo=1)}, r"\[crypto\]: unknown key.*typo"),
    ]
    for changes, message in cases:
        config = api_config(pki, keys, "https://127.0.0.1:9", **changes)
        config["crypto"] = {k: v for k, v in config["crypto"].items() if v is not None}
        with pytest.raises(ValueError, match=message):
            build_bank_api(config)
