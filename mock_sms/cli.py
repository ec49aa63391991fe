"""``mock-sms`` command line.

    mock-sms serve    --config PATH            run until SIGTERM/SIGINT
    mock-sms summary  --config PATH [--json]   {"sent", "failed", "duplicates"}
    mock-sms messages --config PATH [--json]   every accepted message (masked numbers)

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

from mock_sms.config import ConfigError, SmsCentreConfig, load_config
from mock_sms.server import MockSmsCentre
from mock_sms.store import MessageStore


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mock-sms", description="Mock SMS centre (Aliyun-style and Tencent-style APIs)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP APIs and the receipt pusher")
    serve.add_argument("--config", required=True, help="path of the TOML config file")
    for name, text in (("summary", "print sent/failed/duplicates"), ("messages", "list messages")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--config", required=True)
        cmd.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _serve(config: SmsCentreConfig) -> int:
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    centre = MockSmsCentre(config)
    try:
        centre.start()
    except OSError as exc:
        print(f"mock-sms: cannot start: {exc}", file=sys.stderr)
        return 1
    print(f"mock-sms: listening on {config.host}:{centre.port}", file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        centre.stop()
    return 0


def _summary(config: SmsCentreConfig, as_json: bool) -> int:
    store = MessageStore(config.db_path)
    try:
        summary = store.summary()
    finally:
        store.close()
    if as_json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:<12}{value}")
    return 0


def _messages(config: SmsCentreConfig, as_json: bool) -> int:
    store = MessageStore(config.db_path)
    try:
        records = store.messages()
    finally:
        store.close()
    if as_json:
        print(json.dumps([asdict(r) for r in records], ensure_ascii=False))
    else:
        for r in records:
            print(
                f"{r.accepted_at}  {r.provider:<14} {r.out_id:<32} {r.phone_masked}  "
                f"{r.template}  {r.provider_ref}"
            )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"mock-sms: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(config)
    if args.command == "summary":
        return _summary(config, args.json)
    return _messages(config, args.json)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
