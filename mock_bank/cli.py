"""``mock-bank`` command line.

    mock-bank serve   --config PATH                      run until SIGTERM/SIGINT
    mock-bank ledger  --config PATH [--json]             the ledger summary
    mock-bank credits --config PATH [--json] [--unmasked]  every credit (masked by default)

Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from types import FrameType
from typing import Any

import structlog

from mock_bank.accounts import AccountsFileError
from mock_bank.config import BankConfig, ConfigError, load_config
from mock_bank.ledger import Ledger
from mock_bank.logsetup import configure_logging
from mock_bank.masking import mask_tail
from mock_bank.server import MockBank


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mock-bank", description="Mock paying agent bank (SFTP files, HTTPS API)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the SFTP server, processor and HTTPS API")
    serve.add_argument("--config", required=True, help="path of the TOML config file")

    ledger = sub.add_parser("ledger", help="print the ledger summary")
    ledger.add_argument("--config", required=True)
    ledger.add_argument("--json", action="store_true", help="print JSON")

    credits = sub.add_parser("credits", help="list every credit the bank made")
    credits.add_argument("--config", required=True)
    credits.add_argument("--json", action="store_true", help="print JSON")
    credits.add_argument(
        "--unmasked", action="store_true", help="show full account numbers (tests only)"
    )
    return parser


def _serve(config: BankConfig) -> int:
    configure_logging(config.log_path)
    log = structlog.get_logger("mock_bank.cli")
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)  # no logging inside a signal handler
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    bank = MockBank(config)
    try:
        bank.start()
    except (OSError, ValueError, TypeError, AccountsFileError) as exc:
        log.error("mock_bank_start_failed", error=str(exc))
        return 1
    try:
        while not stop.wait(0.5):
            pass
        log.info("signal_received", signal=signal.Signals(received[0]).name)
    finally:
        bank.stop()
    return 0


def _ledger(config: BankConfig, as_json: bool) -> int:
    ledger = Ledger(config.ledger_path)
    try:
        summary = ledger.summary()
    finally:
        ledger.close()
    if as_json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:<22}{value}")
    return 0


def _credits(config: BankConfig, as_json: bool, unmasked: bool) -> int:
    ledger = Ledger(config.ledger_path)
    try:
        credits = ledger.credits()
    finally:
        ledger.close()
    rows: list[dict[str, Any]] = []
    for credit in credits:
        row = asdict(credit)
        if not unmasked:
            row["account_no"] = mask_tail(credit.account_no)
        rows.append(row)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        for row in rows:
            print(
                f"{row['credited_at']}  {row['bank_ref']}  {row['item_serial']:<24}  "
                f"{row['account_no']:<32}  {row['amount_fen']:>12}  "
                f"{row['subsidy_code']}/{row['period']}  {row['file_name']}"
            )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"mock-bank: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(config)
    if args.command == "ledger":
        return _ledger(config, args.json)
    return _credits(config, args.json, args.unmasked)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
