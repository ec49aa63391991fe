"""Config loading and log masking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mock_bank.config import ConfigError, load_config
from mock_bank.masking import mask_name, mask_tail, scrub_event


def test_relative_paths_and_rules(write_config: Any, keys: Any, tmp_path: Path) -> None:
    path = write_config(
        delay=1.5,
        dedupe=False,
        extra=(
            '\n[[rules]]\naccount_suffix = "0102"\ncode = "E102"\n'
            '\n[[rules]]\naccount_suffix = "9"\ncode = "E199"\namount_fen = 4242\n'
        ),
    )
    config = load_config(path)
    assert config.data_dir == (tmp_path / "bank").resolve()
    assert config.sftp.host_key == (keys.directory / "mock_bank_sftp_host.key").resolve()
    assert config.result_delay_seconds == 1.5 and config.dedupe_by_serial is False
    assert config.accounts_file is None
    assert [(r.account_suffix, r.code, r.amount_fen) for r in config.rules] == [
        ("0102", "E102", None),
        ("9", "E199", 4242),
    ]
    assert config.port_file == config.data_dir / "sftp.port"


@pytest.mark.parametrize(
    "extra",
    [
        "unknown_key = 1\n",
        '\n[[rules]]\naccount_suffix = "1"\ncode = "E999"\n',
        '\n[[rules]]\naccount_suffix = "1"\ncode = "E101"\nsurprise = 1\n',
    ],
)
def test_bad_config(write_config: Any, extra: str) -> None:
    with pytest.raises(ConfigError):
        load_config(write_config(extra=extra))


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_masking() -> None:
    assert mask_tail("6217001234567890001") == "*" * 15 + "0001"
    assert mask_tail("123") == "***"
    assert mask_name("阿依古丽·买买提") == "阿*******"
    event = scrub_event(
        None,
        "info",
        {
            "event": "paid 6217001234567890001 for 43062119800101002X",
            "account_no": "6217001234567890001",
            "name": "张三",
            "id_number": "43062119800101002X",
            "file": "PAY_2026031500000001_01.txt",
            "batch_serial": "2026031500000001",
            "nested": {"account_no": "6217001234567890001"},
        },
    )
    assert "6217001234567890001" not in str(event) and "张三" not in str(event)
    assert "43062119800101002X" not in str(event)
    assert event["file"] == "PAY_2026031500000001_01.txt"
    assert event["batch_serial"] == "2026031500000001"
    assert event["event"] == f"paid {'*' * 15}0001 for {'*' * 14}002X"
