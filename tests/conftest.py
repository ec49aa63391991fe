"""Shared fixtures: real databases (SQLite always, PostgreSQL when configured), development
keys, a gateway context, and the mock bank running in-process on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL")


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]


@pytest.fixture(scope="session")
def dev_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gateway.certs import init_dev_keys

    directory = tmp_path_factory.mktemp("keys")
    init_dev_keys(directory)
    return directory


def _create_pg_database() -> tuple[str, str]:
    assert POSTGRES_URL
    name = f"gw_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False), name


def _drop_pg_database(name: str) -> None:
    assert POSTGRES_URL
    admin = create_engine(
        make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=_backends())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, migrated from nothing to head by Alembic."""
    from gateway.kit.migrate import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
        upgrade(url)
        yield url
        return
    url, name = _create_pg_database()
    try:
        upgrade(url)
        yield url
    finally:
        _drop_pg_database(name)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database (tests that need real concurrency); skipped without one."""
    if not POSTGRES_URL:
        pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set")
    from gateway.kit.migrate import upgrade

    url, name = _create_pg_database()
    try:
        upgrade(url)
        yield url
    finally:
        _drop_pg_database(name)


# --- the gateway and the mock bank -----------------------------------------------------------


@pytest.fixture
def accounts() -> list[dict[str, str]]:
    """The mock bank's account registry; tests may append before the bank starts."""
    return []


@pytest.fixture
def bank_extra() -> str:
    """Extra TOML appended to every in-process mock bank's config (e.g. a [faults] table);
    tests override this fixture."""
    return ""


@pytest.fixture
def bank_dedupe() -> bool:
    """Whether the in-process mock banks pay an item serial only once; tests override."""
    return True


@pytest.fixture
def callback_port() -> int:
    """The port the gateway's HTTP API listens on for bank callbacks (when a test runs it)."""
    from gateway.demo.runner import free_port

    return free_port()


def _start_bank(
    tmp_path: Path,
    dev_keys: Path,
    accounts: list[dict[str, str]],
    which: str,
    extra: str,
    callback_url: str | None = None,
    dedupe: bool = True,
) -> object:
    from gateway.demo.banks import ABC, HNRCU, PSBC, write_bank_config
    from mock_bank.config import load_config
    from mock_bank.server import MockBank

    demo_bank = {"hnrcu": HNRCU, "psbc": PSBC, "abc": ABC}[which]
    # no registry when the test gives no accounts: every account is active and matching
    config = write_bank_config(
        tmp_path,
        dev_keys,
        accounts or None,
        delay=0.0,
        bank=demo_bank,
        callback_url=callback_url,
        extra=extra,
        dedupe=dedupe,
    )
    mb = MockBank(load_config(config))
    mb.start()
    return mb


@pytest.fixture
def bank(
    tmp_path: Path,
    dev_keys: Path,
    accounts: list[dict[str, str]],
    bank_extra: str,
    bank_dedupe: bool,
) -> Iterator[Any]:
    """The fixed-width mock bank (湖南农信), in-process, SFTP on a free loopback port."""
    mb: Any = _start_bank(tmp_path, dev_keys, accounts, "hnrcu", bank_extra, dedupe=bank_dedupe)
    try:
        yield mb
    finally:
        mb.stop()


@pytest.fixture
def iso_bank(
    tmp_path: Path,
    dev_keys: Path,
    accounts: list[dict[str, str]],
    bank_extra: str,
    bank_dedupe: bool,
) -> Iterator[Any]:
    """The ISO 20022 mock bank (邮储银行), in-process, SFTP on a free loopback port."""
    mb: Any = _start_bank(tmp_path, dev_keys, accounts, "psbc", bank_extra, dedupe=bank_dedupe)
    try:
        yield mb
    finally:
        mb.stop()


@pytest.fixture
def api_bank(
    tmp_path: Path,
    dev_keys: Path,
    accounts: list[dict[str, str]],
    bank_extra: str,
    callback_port: int,
    bank_dedupe: bool,
) -> Iterator[Any]:
    """The open-API mock bank (农业银行), in-process, HTTPS with mutual TLS; it calls back
    to the gateway's API on ``callback_port``."""
    url = f"http://127.0.0.1:{callback_port}/v1/bank-callbacks/abc"
    mb: Any = _start_bank(tmp_path, dev_keys, accounts, "abc", bank_extra, url, bank_dedupe)
    try:
        yield mb
    finally:
        mb.stop()


def make_settings(db_url: str, profiles: Path, **over: object) -> object:
    from gateway.settings import Settings

    values: dict[str, object] = {
        "environment": "test",
        "database_url": db_url,
        "bank_profiles_file": profiles,
        "poll_interval_seconds": 0.05,
        "retry_initial_seconds": 0.01,
        "retry_max_seconds": 0.05,
        "log_json": True,
    }
    values.update(over)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def ctx(
    db_url: str, tmp_path: Path, dev_keys: Path, request: pytest.FixtureRequest
) -> Iterator[object]:
    """A gateway context on a migrated database; profiles point at the mock bank when the
    test also uses the ``bank`` fixture (else at a closed port)."""
    from gateway.context import Context
    from gateway.demo.banks import write_profiles

    port = 9
    if "bank" in request.fixturenames:
        port = request.getfixturevalue("bank").sftp_port
    ports: dict[str, int] = {}
    if "iso_bank" in request.fixturenames:
        ports["psbc"] = request.getfixturevalue("iso_bank").sftp_port
    if "api_bank" in request.fixturenames:
        ports["abc"] = request.getfixturevalue("api_bank").api_port
    profiles = write_profiles(tmp_path, dev_keys, port, ports=ports)
    context = Context.build(make_settings(db_url, profiles))  # type: ignore[arg-type]
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def gateway_http(ctx: Any, callback_port: int) -> Iterator[str]:
    """The gateway's HTTP API (uvicorn, in a thread) on ``callback_port``."""
    import threading
    import time

    import uvicorn

    from gateway.api.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(ctx), host="127.0.0.1", port=callback_port, log_config=None, lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{callback_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
