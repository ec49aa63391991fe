"""The open API's parts wired together for ``MockBank``: keys and TLS loaded up front (a bad
``[api]`` table fails before anything listens), then the bank logic, the callback sender and
the HTTPS server started on the bank's ledger, and stopped in the reverse order."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from mock_bank.accounts import AccountRegistry
from mock_bank.api.callbacks import CallbackSender, callback_ssl_context
from mock_bank.api.crypto import load_signer, load_verifier, throwaway_signer
from mock_bank.api.server import ApiServer, server_ssl_context
from mock_bank.api.service import ApiBank
from mock_bank.api.settings import ApiConfig
from mock_bank.faults import FaultSchedule
from mock_bank.ledger import Ledger
from mock_bank.processor import Clock, shanghai_now
from mock_bank.rules import Rule


class ApiRuntime:
    """The HTTPS open API of one mock bank."""

    def __init__(self, config: ApiConfig, *, faults: FaultSchedule | None = None) -> None:
        self.config = config
        self.faults = faults if faults is not None else FaultSchedule.never()
        self._signer = load_signer(
            config.signature_alg,
            config.bank_private_key,
            config.bank_key_id,
            encoding=config.signature_encoding,
            sm2_signer_id=config.sm2_signer_id,
        )
        self._verifier = load_verifier(
            config.signature_alg,
            config.gateway_public_key,
            encoding=config.signature_encoding,
            sm2_signer_id=config.sm2_signer_id,
        )
        self._server_ssl = server_ssl_context(
            config.server_cert, config.server_key, config.client_ca
        )
        self._callback_ssl = callback_ssl_context(config)
        self._bank: ApiBank | None = None
        self._server: ApiServer | None = None
        self._callbacks: CallbackSender | None = None

    @property
    def bank(self) -> ApiBank:
        if self._bank is None:
            raise RuntimeError("the API is not started")
        return self._bank

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the API is not started")
        return self._server.port

    def start(
        self,
        *,
        ledger: Ledger,
        registry: AccountRegistry | None,
        rules: Sequence[Rule],
        dedupe_by_serial: bool,
        result_delay_seconds: float,
        clock: Clock = shanghai_now,
    ) -> None:
        cfg = self.config
        try:
            self._bank = ApiBank(
                config=cfg,
                ledger=ledger,
                signer=self._signer,
                verifier=self._verifier,
                registry=registry,
                rules=rules,
                dedupe_by_serial=dedupe_by_serial,
                result_delay_seconds=result_delay_seconds,
                faults=self.faults,
                clock=clock,
            )
            if cfg.callback_url is not None:
                self._callbacks = CallbackSender(
                    url=cfg.callback_url,
                    signer=self._signer,
                    forger=functools.partial(
                        throwaway_signer,
                        cfg.signature_alg,
                        cfg.bank_key_id,
                        encoding=cfg.signature_encoding,
                        sm2_signer_id=cfg.sm2_signer_id,
                    ),
                    store=self._bank.store,
                    faults=self.faults,
                    ssl_context=self._callback_ssl,
                    retries=cfg.callback_retries,
                    retry_seconds=cfg.callback_retry_seconds,
                    clock=clock,
                )
                self._bank.add_event_sink(self._callbacks.enqueue)
                self._callbacks.start()
            self._bank.start()
            self._server = ApiServer(
                bank=self._bank,
                host=cfg.host,
                port=cfg.port,
                ssl_context=self._server_ssl,
                faults=self.faults,
            )
            self._server.start()
        except BaseException:
            self.stop()
            raise

    def close_listener(self) -> None:
        """Stop listening (connections to the port are refused); the bank's state stays."""
        if self._server is not None:
            self._server.stop()

    def open_listener(self) -> None:
        """Listen again, on the same port, after ``close_listener``."""
        if self._server is not None:
            self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._bank is not None:
            self._bank.stop()
            self._bank = None
        if self._callbacks is not None:
            self._callbacks.stop()
            self._callbacks = None
