"""Shared fixtures: real databases (SQLite always, PostgreSQL when configured), development
keys, a gateway context, and the mock bank running in-process on loopback."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL")


# --- one seed for every randomised test ------------------------------------------------------
# The session seed comes from --seed, else GATEWAY_TEST_SEED, else the system's randomness.
# It is printed in the header and beside every failure; under pytest-xdist the controller
# hands its seed to every worker. Each test derives its own seed from the session seed and
# its node id (so a test's draws do not depend on which tests ran before it, or where), and
# Hypothesis is seeded from it too. `pytest --seed N` replays a run.

_SEED = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--seed",
        type=int,
        default=None,
        help="seed of every randomised test and of Hypothesis (default: GATEWAY_TEST_SEED or "
        "random); printed in the header and beside failures",
    )


def _choose_seed(config: pytest.Config) -> int:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and "gateway_seed" in workerinput:
        return int(workerinput["gateway_seed"])
    given = config.getoption("--seed")
    if given is not None:
        return int(given)
    env = os.environ.get("GATEWAY_TEST_SEED")
    if env:
        return int(env)
    return random.SystemRandom().randrange(2**32)


def pytest_configure(config: pytest.Config) -> None:
    seed = _choose_seed(config)
    config.stash[_SEED] = seed
    from hypothesis import HealthCheck, core, settings

    # No test asserts speed: Hypothesis' per-example deadline and its "too slow" health
    # check are timing assertions that a loaded machine fails at random, so they are off.
    settings.register_profile(
        "gateway", deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gateway"))
    if config.getoption("hypothesis_seed", None) is None:
        core.global_force_seed = seed  # type: ignore[attr-defined]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: every worker uses the controller's seed."""
    node.workerinput["gateway_seed"] = node.config.stash[_SEED]


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.stash[_SEED]
    return f"seed: {seed} (replay with --seed {seed})"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The seed again at the end, where `pytest -q` (which prints no header) shows it too."""
    if getattr(config, "workerinput", None) is None:
        seed = config.stash[_SEED]
        terminalreporter.write_line(f"seed: {seed} (replay with --seed {seed})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[Any]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        seed = item.config.stash[_SEED]
        report.sections.append(("seed", f"replay with: pytest --seed {seed} '{item.nodeid}'"))


def seed_of_test(config: pytest.Config, nodeid: str) -> int:
    digest = hashlib.sha256(f"{config.stash[_SEED]}:{nodeid}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """This test's seed, derived from the session seed and the test's node id."""
    return seed_of_test(request.config, request.node.nodeid)


@pytest.fixture
def rng(seed: int) -> random.Random:
    """A random source seeded from ``seed``: what a randomised test draws from."""
    return random.Random(seed)


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]


@pytest.fixture(scope="session")
def dev_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gateway.certs import init_dev_keys

    directory = tmp_path_factory.mktemp("keys")
    init_dev_keys(directory)
    return directory


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated from empty once per test process."""
    from tests.databases import migrate_sqlite

    path = tmp_path_factory.mktemp("template") / "gateway.db"
    migrate_sqlite(path)
    return path


@pytest.fixture(scope="session")
def _postgres() -> Iterator[Any]:
    """The suite's PostgreSQL databases (a template migrated once per test process)."""
    from tests.databases import PostgresDatabases

    if not POSTGRES_URL:
        pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set")
    databases = PostgresDatabases(POSTGRES_URL)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
def sqlite_url(_sqlite_template: Path, tmp_path: Path) -> str:
    """A SQLite database of this test's own, at the migrations' head."""
    from tests.databases import copy_sqlite

    return copy_sqlite(_sqlite_template, tmp_path / "gateway.db")


@pytest.fixture
def pg_url(_postgres: Any) -> Iterator[str]:
    """A PostgreSQL database of this test's own at the migrations' head (tests that need
    real concurrency); skipped without a server. Only this test uses it while it runs;
    afterwards it is emptied and may serve a later test (``tests/databases.py``)."""
    name = _postgres.acquire()
    try:
        yield _postgres.url_of(name)
    finally:
        _postgres.release(name)


@pytest.fixture(params=_backends())
def db_url(request: pytest.FixtureRequest) -> str:
    """A database of this test's own at the migrations' head, on each backend: a copy of a
    template migrated once per session (``tests/databases.py``)."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture(params=_backends())
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database migrated from nothing to head by Alembic in this test (on each backend)."""
    from tests.databases import PostgresDatabases, migrate_sqlite

    if request.param == "sqlite":
        yield migrate_sqlite(tmp_path / "gateway.db")
        return
    from gateway.kit.migrate import upgrade

    assert POSTGRES_URL
    databases = PostgresDatabases(POSTGRES_URL)
    name = databases.create_empty()
    try:
        upgrade(databases.url_of(name))
        yield databases.url_of(name)
    finally:
        databases.drop(name)
        databases.close()


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
    from tests.ports import reserve_port

    return reserve_port()


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
        # cheap argon2id for the suite's accounts (Settings refuses it outside "test")
        "dashboard_argon2_parameters": "CHEAPEST",
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

    import uvicorn

    from gateway.api.app import create_app
    from tests.waits import wait_until

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(ctx), host="127.0.0.1", port=callback_port, log_config=None, lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), what="the gateway's HTTP API")
    assert server.started, "the gateway's HTTP API did not start"
    try:
        yield f"http://127.0.0.1:{callback_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
