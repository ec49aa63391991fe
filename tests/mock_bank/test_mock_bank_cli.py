"""The ``mock-bank`` console script, run as a real process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import paramiko

from mock_bank.config import load_config
from mock_bank.ledger import Ledger

MOCK_BANK = str(Path(sys.executable).with_name("mock-bank"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MOCK_BANK, *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_ledger_and_credits(write_config: Any) -> None:
    path = write_config()
    ledger = Ledger(load_config(path).ledger_path)
    with ledger.begin() as txn:
        for serial in ("s1", "s2"):
            txn.add_credit(
                item_serial=serial,
                account_no="6217001234567890001",
                amount_fen=150,
                subsidy_code="NY0001",
                period="2026",
                batch_serial="2026031500000001",
                file_name="PAY_x.txt",
                bank_ref=txn.next_bank_ref(date(2026, 3, 15)),
                credited_at="2026-03-15T10:00:00+08:00",
            )
    ledger.close()

    out = run("ledger", "--config", str(path), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "credits": 2,
        "double_credits": 1,
        "amount_credited_fen": 300,
        "files_processed": 0,
        "files_rejected": 0,
        "returned": 0,
    }

    masked = run("credits", "--config", str(path), "--json")
    assert masked.returncode == 0, masked.stderr
    rows = json.loads(masked.stdout)
    assert [r["account_no"] for r in rows] == ["*" * 15 + "0001"] * 2
    assert "6217001234567890001" not in masked.stdout
    unmasked = json.loads(run("credits", "--config", str(path), "--json", "--unmasked").stdout)
    assert [r["account_no"] for r in unmasked] == ["6217001234567890001"] * 2
    assert unmasked[0]["bank_ref"] == "MB202603150000000001"

    text = run("ledger", "--config", str(path))
    assert "double_credits" in text.stdout and text.returncode == 0


def test_bad_config_exits_2(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("data_dir = 1\n")
    out = run("ledger", "--config", str(tmp_path / "c.toml"), "--json")
    assert out.returncode == 2 and "mock-bank:" in out.stderr


def test_serve_until_sigterm_logs_masked_json(
    write_config: Any, keys: Any, helpers: Any, sample_items: Any
) -> None:
    path = write_config(extra='\n[[rules]]\naccount_suffix = "0002"\ncode = "E103"\n')
    config = load_config(path)
    proc = subprocess.Popen(
        [MOCK_BANK, "serve", "--config", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        helpers.wait_for(lambda: config.port_file.exists() or proc.poll() is not None, timeout=15)
        assert proc.poll() is None, proc.communicate()
        port = int(config.port_file.read_text())
        transport = paramiko.Transport(("127.0.0.1", port))
        try:
            transport.connect(hostkey=keys.host, username="gateway", pkey=keys.client)
            sftp = paramiko.SFTPClient.from_transport(transport)
            assert sftp is not None
            data = helpers.build_request(sample_items)
            name = helpers.request_name()
            for final, content in (
                (f"{name}.sig", helpers.sign_detached(data, keys.gateway)),
                (name, data),
            ):
                with sftp.open(f"/inbox/.{final}.part", "wb") as fh:
                    fh.write(content)
                sftp.rename(f"/inbox/.{final}.part", f"/inbox/{final}")
            ret = config.sftp_root / "outbox" / name.replace("PAY_", "RET_")
            helpers.wait_for(ret.exists, timeout=10)
        finally:
            transport.close()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert not config.port_file.exists()

    result = helpers.parse_result(ret.read_bytes())
    assert [i["code"] for i in result["items"]] == ["0000", "E103", "0000"]

    log_text = config.log_path.read_text(encoding="utf-8")
    events = [json.loads(line) for line in log_text.splitlines()]
    names = [e["event"] for e in events]
    for expected in (
        "mock_bank_started",
        "sftp_auth_ok",
        "request_accepted",
        "result_written",
        "signal_received",
        "mock_bank_stopped",
    ):
        assert expected in names
    assert stderr.decode("utf-8").count("request_accepted") == 1  # also on stderr
    for item in sample_items:  # personal data never reaches the log
        for secret in (item.account, item.id_number, item.name):
            assert secret not in log_text
    denied = next(e for e in events if e["event"] == "item_not_credited")
    assert denied["account_no"].endswith("0002") and denied["account_no"].startswith("*")
