"""The Alembic migrations build exactly the schema the models describe, from empty, on
every backend (a model change without a migration fails here)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway.kit.db import make_engine
from gateway.models import Base


def test_migrated_schema_matches_models(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
