"""The Alembic migrations build exactly the schema the models describe (no forgotten migration)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from controller.store import Store
from controller.store.models import Base


def test_migrations_match_the_models(fresh_database_url):
    store = Store(fresh_database_url)
    try:
        store.upgrade()
        with store.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        store.dispose()
    assert differences == []
