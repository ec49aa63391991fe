from __future__ import annotations

import json
import logging
from pathlib import Path

from gateway.kit.logging import configure_logging, correlation, get_logger, scrub_text


def test_scrub_text() -> None:
    text = "id 430621199001011234 card 6217991234567890123 phone 13812345678 serial ABC123"
    out = scrub_text(text)
    assert "430621199001011234" not in out
    assert "6217991234567890123" not in out
    assert "13812345678" not in out
    assert "4306**********1234" in out
    assert "ABC123" in out


def test_json_logs_are_scrubbed_and_correlated(tmp_path: Path) -> None:
    log_file = tmp_path / "g.log"
    configure_logging(json=True, file=log_file)
    try:
        with correlation("test", "cid-123"):
            get_logger("t").info("oops", detail="account 6217991234567890123")
            get_logger("t").info("id", value="11010519491231002x")
    finally:
        for h in logging.getLogger().handlers:
            h.flush()
    lines = [json.loads(x) for x in log_file.read_text().splitlines()]
    assert all(x["correlation_id"] == "cid-123" for x in lines)
    text = log_file.read_text()
    assert "6217991234567890123" not in text
    assert "11010519491231002x" not in text
