"""``MockBank``: the SFTP server, the processor and the ledger, run in-process.

bank = MockBank(load_config("mock_bank.toml"))
bank.start()
... connect to 127.0.0.1:bank.sftp_port, upload, wait ...
assert bank.ledger.summary()["double_credits"] == 0
bank.stop()
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import paramiko
import structlog

from mock_bank.accounts import AccountRegistry, load_accounts
from mock_bank.api.runtime import ApiRuntime
from mock_bank.config import BankConfig
from mock_bank.faults import FaultSchedule
from mock_bank.ledger import Ledger
from mock_bank.processor import Clock, Processor, shanghai_now
from mock_bank.sftp_server import BankSFTPServer, load_authorized_keys
from mock_bank.signing import load_private_key, load_public_key

log = structlog.get_logger("mock_bank")


class MockBank:
    """A running mock bank. ``start()`` opens the ledger, starts the SFTP server (writing the
    port to ``<data_dir>/sftp.port``) when ``[sftp]`` is configured, the processor, and the
    HTTPS open API (port in ``<data_dir>/api.port``) when ``[api]`` is; ``stop()`` shuts all
    down cleanly. ``monotonic``: the processor's clock for its delays (a test may move one
    by hand)."""

    def __init__(
        self,
        config: BankConfig,
        *,
        clock: Clock = shanghai_now,
        faults: FaultSchedule | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._clock = clock
        self._monotonic = monotonic
        #: The seeded fault schedule shared by every hook point (SFTP, HTTPS API, processor);
        #: it lives as long as this object, so counts carry over a stop()/start().
        self.faults = faults if faults is not None else FaultSchedule.from_config(config)
        self._ledger: Ledger | None = None
        self._sftp: BankSFTPServer | None = None
        self._processor: Processor | None = None
        self._api: ApiRuntime | None = None
        self._held_ports: list[socket.socket] = []  # ports held while the listeners are closed

    # --- state --------------------------------------------------------------------------------

    @property
    def sftp_root(self) -> Path:
        return self.config.sftp_root

    @property
    def inbox(self) -> Path:
        return self.config.sftp_root / "inbox"

    @property
    def outbox(self) -> Path:
        return self.config.sftp_root / "outbox"

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            raise RuntimeError("the mock bank is not started")
        return self._ledger

    @property
    def processor(self) -> Processor:
        if self._processor is None:
            raise RuntimeError("the mock bank is not started")
        return self._processor

    @property
    def sftp_port(self) -> int:
        if self._sftp is None:
            raise RuntimeError("the mock bank is not started")
        return self._sftp.port

    @property
    def api(self) -> ApiRuntime:
        """The HTTPS open API (``[api]``); its port is ``api.port``."""
        if self._api is None:
            raise RuntimeError("the mock bank is not started or has no [api]")
        return self._api

    @property
    def api_port(self) -> int:
        return self.api.port

    @property
    def running(self) -> bool:
        return self._ledger is not None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self.running:
            raise RuntimeError("already started")
        cfg = self.config
        # Load every key and file first: a bad config fails before anything listens.
        if cfg.sftp is not None:
            host_key = paramiko.Ed25519Key.from_private_key_file(str(cfg.sftp.host_key))
            authorized = load_authorized_keys(cfg.sftp.authorized_keys)
        api = ApiRuntime(cfg.api, faults=self.faults) if cfg.api is not None else None
        bank_key = load_private_key(cfg.signing.bank_private_key, cfg.signing.alg)
        gateway_key = load_public_key(cfg.signing.gateway_public_key, cfg.signing.alg)
        registry: AccountRegistry | None = (
            load_accounts(cfg.accounts_file) if cfg.accounts_file is not None else None
        )
        for directory in (cfg.data_dir, self.inbox, self.outbox):
            directory.mkdir(parents=True, exist_ok=True)

        self._ledger = Ledger(cfg.ledger_path)
        try:
            self._processor = Processor(
                ledger=self._ledger,
                inbox=self.inbox,
                outbox=self.outbox,
                bank_key=bank_key,
                bank_key_id=cfg.signing.bank_key_id,
                gateway_public_key=gateway_key,
                gateway_key_id=cfg.signing.gateway_key_id,
                registry=registry,
                rules=cfg.rules,
                dedupe_by_serial=cfg.dedupe_by_serial,
                result_delay_seconds=cfg.result_delay_seconds,
                poll_interval_seconds=cfg.poll_interval_seconds,
                clock=self._clock,
                monotonic=self._monotonic,
                file_format=cfg.format,
                faults=self.faults,
            )
            if cfg.sftp is not None:
                self._sftp = BankSFTPServer(
                    root=cfg.sftp_root,
                    host=cfg.sftp.host,
                    port=cfg.sftp.port,
                    username=cfg.sftp.username,
                    host_key=host_key,
                    authorized_keys=authorized,
                    faults=self.faults,
                )
                self._sftp.start()
                self._write_port_file(self._sftp.port)
            self._processor.start()
            if api is not None:
                self._api = api
                api.start(
                    ledger=self._ledger,
                    registry=registry,
                    rules=cfg.rules,
                    dedupe_by_serial=cfg.dedupe_by_serial,
                    result_delay_seconds=cfg.result_delay_seconds,
                    clock=self._clock,
                )
                self._write_port_file(api.port, cfg.api_port_file)
        except BaseException:
            self.stop()
            raise
        log.info(
            "mock_bank_started",
            sftp_port=self._sftp.port if self._sftp is not None else None,
            api_port=self._api.port if self._api is not None else None,
            data_dir=str(cfg.data_dir),
            accounts=len(registry) if registry is not None else None,
            rules=len(cfg.rules),
            dedupe_by_serial=cfg.dedupe_by_serial,
            format=cfg.format,
            fault_rules=len(self.faults.rules),
        )

    def stop(self) -> None:
        for sock in self._held_ports:
            sock.close()
        self._held_ports = []
        if self._api is not None:
            self._api.stop()
            self._api = None
            with contextlib.suppress(FileNotFoundError):
                self.config.api_port_file.unlink()
        if self._processor is not None:
            self._processor.stop()
            self._processor = None
        if self._sftp is not None:
            self._sftp.stop()
            self._sftp = None
            with contextlib.suppress(FileNotFoundError):
                self.config.port_file.unlink()
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
            log.info("mock_bank_stopped")

    # --- outages ------------------------------------------------------------------------------

    def close_listeners(self) -> None:
        """The bank goes off the network: its SFTP and HTTPS ports stop listening and open
        sessions are cut, so every connection is refused (TCP RST, as when a bank's front
        end is down), while its ledger, processor and stored files carry on. The ports stay
        bound (not listening), so nothing else takes them; ``open_listeners`` listens on
        them again."""
        if self._held_ports:
            return
        if self._sftp is not None:
            port = self._sftp.port
            self._sftp.stop()
            host = self.config.sftp.host if self.config.sftp is not None else "127.0.0.1"
            self._held_ports.append(_hold_port(host, port))
        if self._api is not None:
            port = self._api.port
            self._api.close_listener()
            self._held_ports.append(_hold_port(self._api.config.host, port))
        log.warning("mock_bank_listeners_closed")

    def open_listeners(self) -> None:
        """Listen again on the ports ``close_listeners`` closed."""
        held, self._held_ports = self._held_ports, []
        for sock in held:
            sock.close()
        if self._sftp is not None:
            self._sftp.start()
        if self._api is not None:
            self._api.open_listener()
        log.info("mock_bank_listeners_opened")

    def _write_port_file(self, port: int, path: Path | None = None) -> None:
        path = path if path is not None else self.config.port_file
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(f"{port}\n", encoding="ascii")
        os.replace(tmp, path)

    def __enter__(self) -> MockBank:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _hold_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` that does not listen: the port stays taken, and a
    connection to it is refused (RST) as to a closed port."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock
