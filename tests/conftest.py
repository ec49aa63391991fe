"""Shared fixtures: real databases (SQLite always, PostgreSQL when configured), development
keys, a gateway context, and the mock bank running in-process on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

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
def bank(tmp_path: Path, dev_keys: Path, accounts: list[dict[str, str]]) -> Iterator[object]:
    """The mock bank, in-process, SFTP on a free loopback port."""
    from gateway.demo.banks import write_bank_config
    from mock_bank.config import load_config
    from mock_bank.server import MockBank

    config = write_bank_config(tmp_path, dev_keys, accounts, delay=0.0)
    if not accounts:
        # no registry: every account is active and matching
        text = config.read_text().replace('accounts_file = "accounts.json"\n', "")
        config.write_text(text)
    mb = MockBank(load_config(config))
    mb.start()
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
    profiles = write_profiles(tmp_path, dev_keys, port)
    context = Context.build(make_settings(db_url, profiles))  # type: ignore[arg-type]
    try:
        yield context
    finally:
        context.close()
