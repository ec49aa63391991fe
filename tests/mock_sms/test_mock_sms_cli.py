"""Configuration from TOML, and the ``mock-sms`` command line (in-process and as a real
process serving both APIs until SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mock_sms.cli import main
from mock_sms.config import ConfigError, load_config
from tests.mock_sms.clients import aliyun_send, tencent_send
from tests.waits import wait_until

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
data_dir = "state"
receipt_delay_seconds = 0.05

[aliyun]
access_key_id = "ak-mock"
access_key_secret_file = "aliyun.secret"
sign_names = ["岳阳县财政局"]
[aliyun.templates]
SMS_460001 = ["item", "amount"]

[tencent]
secret_id = "sid-mock"
secret_key = "tencent-secret"
sdk_app_id = "1400000001"
[tencent.templates]
"1860001" = 2

[faults]
seed = 9
invalid_number_pattern = "^170"
[[faults.rules]]
kind = "receipt_late"
probability = 0.5
provider = "tencent-style"
"""


def write_config(tmp_path: Path, text: str = CONFIG) -> Path:
    (tmp_path / "aliyun.secret").write_text("aliyun-secret\n")
    path = tmp_path / "mock_sms.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_config(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    assert config.data_dir == (tmp_path / "state").resolve()
    assert config.aliyun is not None and config.aliyun.access_key_secret == "aliyun-secret"
    assert config.aliyun.templates == {"SMS_460001": ("item", "amount")}
    assert config.tencent is not None and config.tencent.templates == {"1860001": 2}
    assert config.faults.seed == 9 and config.faults.invalid_number("17000000001")
    assert config.faults.rules[0].provider == "tencent-style"


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        ('data_dir = "state"', 'data_dir = "state"\ncolour = 1', "unknown keys"),
        ('access_key_secret_file = "aliyun.secret"', "", "exactly one"),
        ('secret_key = "tencent-secret"', 'secret_key = "x"\nsecret_key_file = "y"', "exactly one"),
        ('"1860001" = 2', '"1860001" = "two"', "count"),
        ('kind = "receipt_late"', 'kind = "nope"', "unknown fault kind"),
        ("receipt_delay_seconds = 0.05", "receipt_delay_seconds = -1", "seconds"),
    ],
)
def test_config_errors(tmp_path: Path, replace: str, by: str, message: str) -> None:
    path = write_config(tmp_path, CONFIG.replace(replace, by))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_config_needs_a_provider(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'data_dir = "x"\n')
    with pytest.raises(ConfigError, match="aliyun"):
        load_config(path)


def test_cli_config_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_serve_then_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "mock_sms", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        port_file = tmp_path / "state" / "sms.port"

        def port_written() -> str:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            text = port_file.read_text() if port_file.exists() else ""
            return text if text.endswith("\n") else ""  # the whole line, not half of it

        port = int(wait_until(port_written, what=f"the centre to write {port_file}"))
        base = f"http://127.0.0.1:{port}"
        assert aliyun_send(f"{base}/aliyun/", "13800138000", "c-1").json()["Code"] == "OK"
        assert aliyun_send(f"{base}/aliyun/", "13800138000", "c-1").json()["Code"] == "OK"
        refused = aliyun_send(f"{base}/aliyun/", "17000000001", "c-2").json()
        assert refused["Code"] == "isv.MOBILE_NUMBER_ILLEGAL"
        status = tencent_send(f"{base}/tencent/", "13900139000", "c-3").json()
        assert status["Response"]["SendStatusSet"][0]["Code"] == "Ok"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert main(["summary", "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"sent": 3, "failed": 1, "duplicates": 1}
    assert main(["messages", "--config", str(config), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["out_id"] for r in rows] == ["c-1", "c-1", "c-3"]
    assert "13800138000" not in json.dumps(rows)
