"""Test databases: migrate once per test session, copy (or clean) for every test.

Migrating a database from empty with Alembic costs about 0.3 s on SQLite and 1–3 s on
PostgreSQL. SQLite tests get a copy of a file migrated once (about a millisecond).

PostgreSQL tests get a database migrated once per test process and cleaned between tests.
Measured here on an idle machine, per test: ``CREATE DATABASE … TEMPLATE`` 0.35–0.7 s (WAL_LOG
and FILE_COPY alike, both write every page of the new database) plus 0.02–0.1 s to drop it;
one ``TRUNCATE`` of every table 0.2–0.9 s (it makes new files for every table and index);
``DELETE FROM`` every table and restarting every sequence 0.08–0.11 s. So a test's database
comes from this process's pool: a database it had before, cleaned that way, or (when the
pool is empty) a new copy of the template. Before cleaning, every session still connected
to it is terminated (a thread or subprocess a test left behind); if cleaning fails for any
reason the database is dropped instead of reused. Each pytest(-xdist) process has its own
template and pool under unique names, so parallel workers and concurrent runs never share a
database. ``tests/gateway/kit/test_migrate.py`` still migrates from empty on both backends.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from gateway.kit.migrate import upgrade


def migrate_sqlite(path: Path) -> str:
    """Migrate a new SQLite file from empty; return its URL."""
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


def copy_sqlite(template: Path, path: Path) -> str:
    """A copy of a migrated SQLite file (no connection to it is open: its WAL was
    checkpointed and removed when the migration's engine closed)."""
    for suffix in ("-wal", "-shm"):
        leftover = Path(f"{template}{suffix}")
        assert not leftover.exists(), f"{leftover} exists: the template is still open"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


class PostgresDatabases:
    """Creates and drops the suite's PostgreSQL databases on the server named by ``base``."""

    def __init__(self, base: str) -> None:
        self.base = make_url(base).set(drivername="postgresql+psycopg")
        self._admin: Engine | None = None
        self.template: str | None = None
        self._pool: list[str] = []  # clean databases at the migrations' head

    def url_of(self, name: str) -> str:
        """The URL of a test database. Its sessions commit without waiting for the WAL to
        reach the disk (``synchronous_commit=off``): what a commit makes visible to other
        sessions is unchanged, only durability across a server crash is given up, which no
        test relies on, and every commit stops costing an fsync."""
        url = self.base.set(database=name)
        url = url.update_query_dict({"options": "-c synchronous_commit=off"})
        return url.render_as_string(hide_password=False)

    def _engine(self) -> Engine:
        if self._admin is None:
            # connected to the server's maintenance database, never to a template or a copy
            self._admin = create_engine(self.base, isolation_level="AUTOCOMMIT")
        return self._admin

    def _execute(self, sql: str, **params: str) -> None:
        with self._engine().connect() as conn:
            conn.execute(text(sql), params)

    def create_empty(self) -> str:
        name = f"gw_test_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE DATABASE "{name}"')
        return name

    def migrate_template(self) -> str:
        """Migrate this process's template once; later calls return it."""
        if self.template is None:
            name = f"gw_tmpl_{uuid.uuid4().hex[:12]}"
            self._execute(f'CREATE DATABASE "{name}"')
            upgrade(self.url_of(name))  # its engine is disposed: nobody stays connected
            self.template = name
        return self.template

    def create_from_template(self) -> str:
        template = self.migrate_template()
        name = f"gw_test_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY WAL_LOG')
        return name

    def acquire(self) -> str:
        """A clean database at the migrations' head, for one test."""
        return self._pool.pop() if self._pool else self.create_from_template()

    def release(self, name: str) -> None:
        """Take back a test's database: cleaned into the pool, or dropped."""
        try:
            self.clean(name)
        except Exception:
            self.drop(name)
        else:
            self._pool.append(name)

    def clean(self, name: str) -> None:
        """Make ``name`` as a copy of the template is: no session connected, every table
        but ``alembic_version`` empty, every sequence at its start."""
        self._execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = :name AND pid <> pg_backend_pid()",
            name=name,
        )
        engine = create_engine(self.base.set(database=name), poolclass=NullPool)
        try:
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '10s'"))
                # no foreign-key triggers: the tables can be emptied in any order
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                tables = conn.scalars(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                        " AND tablename <> 'alembic_version'"
                    )
                ).all()
                sequences = conn.scalars(
                    text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
                ).all()
                for table in tables:
                    conn.execute(text(f'DELETE FROM "{table}"'))  # noqa: S608 (catalog names)
                for sequence in sequences:
                    conn.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))
        finally:
            engine.dispose()

    def drop(self, name: str) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        for name in self._pool:
            self.drop(name)
        self._pool.clear()
        if self.template is not None:
            self.drop(self.template)
            self.template = None
        if self._admin is not None:
            self._admin.dispose()
            self._admin = None
