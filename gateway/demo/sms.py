"""The demo's (and tests') SMS set-up: a mock SMS centre speaking the Aliyun-style API, and
the gateway's SMS configuration pointing at it (same secret on both sides, templates whose
parameters match)."""

from __future__ import annotations

import secrets
from pathlib import Path

PAID_TEMPLATE = "SMS_460001"
FAILED_TEMPLATE = "SMS_460002"
PAID_PARAMS = ["subsidy", "amount", "date", "last4"]
FAILED_PARAMS = ["subsidy", "amount", "date", "last4", "reason"]
SIGN_NAME = "岳阳县财政局"


def write_sms_configs(
    workdir: Path,
    *,
    gateway_port: int,
    centre_extra: str = "",
    notify_failures: bool = True,
    quiet: tuple[str, str] = ("00:00", "00:00"),
) -> tuple[Path, Path]:
    """Write ``<workdir>/sms/mock_sms.toml`` (the centre) and ``<workdir>/sms.toml`` (the
    gateway's ``GATEWAY_SMS_FILE``); the centre's port is read from its port file later, so
    the gateway's file is rewritten by ``point_gateway_at`` once the centre listens.

    Quiet hours are off by default here (equal start and end) so that the demo and the tests
    behave the same at any hour; production uses 21:00–08:00 (``deploy/sms.example.toml``)."""
    sms_dir = workdir / "sms"
    sms_dir.mkdir(parents=True, exist_ok=True)
    secret_path = sms_dir / "aliyun.secret"
    if not secret_path.exists():
        secret_path.write_text(secrets.token_hex(24) + "\n", encoding="ascii")
        secret_path.chmod(0o600)
    centre = sms_dir / "mock_sms.toml"
    centre.write_text(
        f"""data_dir = "{sms_dir.resolve()}"
host = "127.0.0.1"
port = 0
receipt_delay_seconds = 0.2
late_receipt_seconds = 2.0
hold_seconds = 3.0

[aliyun]
access_key_id = "gateway-demo"
access_key_secret_file = "{secret_path.resolve()}"
callback_url = "http://127.0.0.1:{gateway_port}/v1/sms-receipts/aliyun-style"
sign_names = ["{SIGN_NAME}"]

[aliyun.templates]
{PAID_TEMPLATE} = {PAID_PARAMS!r}
{FAILED_TEMPLATE} = {FAILED_PARAMS!r}
""".replace("'", '"')
        + centre_extra,
        encoding="utf-8",
    )
    gateway = workdir / "sms.toml"
    gateway.write_text(
        f"""[sms]
enabled = true
notify_failures = {"true" if notify_failures else "false"}
quiet_start = "{quiet[0]}"
quiet_end = "{quiet[1]}"
rate_per_second = 50
default_sign_name = "{SIGN_NAME}"

[sms.sign_names]
"430621" = "{SIGN_NAME}"

[sms.provider]
provider = "aliyun-style"
base_url = "http://127.0.0.1:0/aliyun/"
access_key_id = "gateway-demo"
secret_file = "{secret_path.resolve()}"
read_timeout = 1.0

[sms.templates.paid]
template_id = "{PAID_TEMPLATE}"
text = "您的{{subsidy}}{{amount}}元已于{{date}}发放至尾号{{last4}}的一卡通账户，请注意查收。"

[sms.templates.failed]
template_id = "{FAILED_TEMPLATE}"
text = "您的{{subsidy}}{{amount}}元未能发放（{{reason}}），请携带身份证和一卡通到乡镇财政所办理。"
""",
        encoding="utf-8",
    )
    return centre, gateway


def point_gateway_at(gateway_file: Path, centre_port: int) -> None:
    text = gateway_file.read_text(encoding="utf-8")
    gateway_file.write_text(
        text.replace("http://127.0.0.1:0/aliyun/", f"http://127.0.0.1:{centre_port}/aliyun/"),
        encoding="utf-8",
    )
