"""The demo's (and the tests') banks: one mock bank per bank profile, and the gateway's
bank-profile file pointing at them.

| profile | bank (simulated)      | format / transport          | signatures   |
|---------|-----------------------|-----------------------------|--------------|
| hnrcu   | 湖南农信              | fw-gb18030-v1 over SFTP     | RSA-PSS      |
| psbc    | 邮储银行              | iso20022-v1 over SFTP       | ECDSA P-256  |
| abc     | 农业银行              | openapi-v1 over HTTPS, mTLS | SM2 + SM4    |
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gateway.certs import DEV_KEY_FILES

K = DEV_KEY_FILES


@dataclass(frozen=True)
class DemoBank:
    profile: str
    display_name: str
    kind: str  # file | api
    format: str | None
    alg: str  # rsa | ecdsa | sm2

    @property
    def keys(self) -> tuple[str, str, str, str]:
        """(gateway private, gateway public, bank private, bank public) key file names."""
        return {
            "rsa": (
                K.gateway_signing_key,
                K.gateway_signing_pub,
                K.bank_signing_key,
                K.bank_signing_pub,
            ),
            "ecdsa": (K.gateway_ecdsa_key, K.gateway_ecdsa_pub, K.bank_ecdsa_key, K.bank_ecdsa_pub),
            "sm2": (K.gateway_sm2_key, K.gateway_sm2_pub, K.bank_sm2_key, K.bank_sm2_pub),
        }[self.alg]

    @property
    def wire_alg(self) -> str:
        return {"rsa": "RSA-PSS-SHA256", "ecdsa": "ECDSA-P256-SHA256", "sm2": "SM2-SM3"}[self.alg]

    @property
    def crypto(self) -> str:
        return {"rsa": "rsa-pss-sha256", "ecdsa": "ecdsa-p256-sha256", "sm2": "sm2-sm3"}[self.alg]


HNRCU = DemoBank("hnrcu", "湖南农信（模拟银行）", "file", "fw-gb18030-v1", "rsa")
PSBC = DemoBank("psbc", "邮储银行（模拟银行）", "file", "iso20022-v1", "ecdsa")
ABC = DemoBank("abc", "农业银行（模拟银行）", "api", None, "sm2")
BANKS = (HNRCU, PSBC, ABC)
SM4_KEY_ID = "k2026"


def write_bank_config(
    workdir: Path,
    keys: Path,
    accounts: list[dict[str, str]] | None,
    *,
    delay: float = 0.5,
    bank: DemoBank = HNRCU,
    callback_url: str | None = None,
    extra: str = "",
    dedupe: bool = True,
) -> Path:
    """Write ``<workdir>/bank[_<profile>]/mock_bank.toml`` (and the account registry)."""
    bank_dir = workdir / ("bank" if bank is HNRCU else f"bank_{bank.profile}")
    bank_dir.mkdir(parents=True, exist_ok=True)
    accounts_line = ""
    if accounts is not None:
        (bank_dir / "accounts.json").write_text(
            json.dumps(accounts, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        accounts_line = 'accounts_file = "accounts.json"\n'
    _gw_priv, gw_pub, bank_priv, _bank_pub = bank.keys
    # an API bank still needs a file-signing key pair for its config; RSA is fine there
    file_priv = bank_priv if bank.kind == "file" else K.bank_signing_key
    file_pub = gw_pub if bank.kind == "file" else K.gateway_signing_pub
    text = f"""data_dir = "{bank_dir.resolve()}"
{accounts_line}result_delay_seconds = {delay}
poll_interval_seconds = 0.2
dedupe_by_serial = {"true" if dedupe else "false"}
format = "{bank.format or "fw-gb18030-v1"}"

[signing]
alg = "{bank.wire_alg if bank.kind == "file" else "RSA-PSS-SHA256"}"
bank_private_key = "{(keys / file_priv).resolve()}"
bank_key_id = "mockbank-dev"
gateway_public_key = "{(keys / file_pub).resolve()}"
"""
    if bank.kind == "file":
        text += f"""
[sftp]
host = "127.0.0.1"
port = 0
username = "gateway"
host_key = "{(keys / K.sftp_host_key).resolve()}"
authorized_keys = "{(keys / K.sftp_client_pub).resolve()}"
"""
    else:
        sm4 = (keys / K.sm4_key).read_text().strip()
        text += f"""
[api]
host = "127.0.0.1"
port = 0
server_cert = "{(keys / K.api_server_cert).resolve()}"
server_key = "{(keys / K.api_server_key).resolve()}"
client_ca = "{(keys / K.ca_cert).resolve()}"
client_id = "subsidy-gateway"
gateway_public_key = "{(keys / gw_pub).resolve()}"
gateway_key_id = "gateway-dev"
bank_private_key = "{(keys / bank_priv).resolve()}"
bank_key_id = "mockbank-dev"
signature_alg = "{bank.wire_alg}"
result_delay_seconds = {delay}
# used only when the matching fault is configured in [faults]
hold_seconds = 3.0
bounce_after_seconds = 0.5
{f'callback_url = "{callback_url}"' if callback_url else ""}

[api.sm4_keys]
{SM4_KEY_ID} = "{sm4}"
"""
    config = bank_dir / "mock_bank.toml"
    config.write_text(text + extra, encoding="utf-8")
    return config


def profile_toml(bank: DemoBank, keys: Path, port: int) -> str:
    """The gateway's bank-profile table for a demo bank listening on ``port``."""
    gw_priv, _gw_pub, _bank_priv, bank_pub = bank.keys
    head = f"""
[profiles.{bank.profile}]
display_name = "{bank.display_name}"
accounts_are_cards = true
# the mock banks work every day at any hour: the demo never waits for a business day
every_day = true
cutoff = "none"
poll_seconds = 0.3
"""
    crypto = f"""
[profiles.{bank.profile}.crypto]
crypto = "{bank.crypto}"
own_key = "{(keys / gw_priv).resolve()}"
own_key_id = "gateway-dev"
peer_public_key = "{(keys / bank_pub).resolve()}"
"""
    if bank.kind == "file":
        fmt = f'format = "{bank.format}"\nmax_items_per_file = 50000\n'
        if bank.format == "iso20022-v1":
            fmt += 'bank_id = "PSBCCNBJ"\n'
        body = f"""kind = "file"

[profiles.{bank.profile}.format]
{fmt}{crypto}
[profiles.{bank.profile}.transport]
transport = "sftp"
host = "127.0.0.1"
port = {port}
username = "gateway"
client_key = "{(keys / K.sftp_client_key).resolve()}"
host_public_key = "{(keys / K.sftp_host_pub).resolve()}"
inbox = "/inbox"
outbox = "/outbox"
"""
    else:
        body = f"""kind = "api"
{crypto}
[profiles.{bank.profile}.api]
base_url = "https://127.0.0.1:{port}"
client_id = "subsidy-gateway"
client_cert = "{(keys / K.api_client_cert).resolve()}"
client_key = "{(keys / K.api_client_key).resolve()}"
server_ca = "{(keys / K.ca_cert).resolve()}"
connect_timeout = 5.0
read_timeout = 10.0
encrypt = "SM4-CBC"
sm4_key_id = "{SM4_KEY_ID}"
sm4_key_file = "{(keys / K.sm4_key).resolve()}"
"""
    codes = {
        "E101": "account_not_found",
        "E102": "name_mismatch",
        "E103": "account_frozen",
        "E104": "account_closed",
        "E105": "id_mismatch",
        "E199": "bank_other",
        "F001": "file_rejected",
        "F002": "file_rejected",
        "AC01": "account_not_found",
        "BE01": "name_mismatch",
        "AC06": "account_frozen",
        "AC04": "account_closed",
        "BE16": "id_mismatch",
        "NARR": "bank_other",
        "DS0B": "file_rejected",
        "FF01": "file_rejected",
        "AM10": "file_rejected",
        "DU05": "file_rejected",
        "R001": "bounced",
        "RETURN": "bounced",
    }
    mapping = "\n".join(f'{k} = "{v}"' for k, v in codes.items())
    return head + body + f"\n[profiles.{bank.profile}.result_codes]\n{mapping}\n"


def write_profiles(
    workdir: Path, keys: Path, sftp_port: int, *, ports: dict[str, int] | None = None
) -> Path:
    """The gateway's profile file: ``hnrcu`` on ``sftp_port`` plus any of the other demo
    banks named in ``ports``."""
    path = workdir / "banks.toml"
    text = "# Generated by `gateway demo`: the mock banks on loopback.\n"
    text += profile_toml(HNRCU, keys, sftp_port)
    for bank in (PSBC, ABC):
        if ports and bank.profile in ports:
            text += profile_toml(bank, keys, ports[bank.profile])
    path.write_text(text, encoding="utf-8")
    return path
