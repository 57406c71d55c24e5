"""Migrations: upgrade from empty, down to base and up again, and no drift from segjob.store.schema."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from segjob.errors import SchemaOutOfDateError
from segjob.store import db, migrate
from segjob.store.dialect import dialect_of
from segjob.store.schema import SCHEMA, VIEW_NAMES, metadata_for


def _segjob_objects(url: str) -> tuple[set[str], set[str]]:
    engine = db.make_engine(url)
    try:
        inspector = sa.inspect(engine)
        schema = SCHEMA if dialect_of(engine).postgres else None
        if schema and schema not in inspector.get_schema_names():
            return set(), set()
        return set(inspector.get_table_names(schema=schema)), set(inspector.get_view_names(schema=schema))
    finally:
        engine.dispose()


def test_upgrade_from_empty_creates_tables_and_views(db_url):
    before, after = migrate.upgrade(db_url)
    assert before is None
    assert after == db.head_revision()
    tables, views = _segjob_objects(db_url)
    assert {"run", "run_feature", "segment", "segment_centroid", "run_metric", "assignment"} <= tables
    assert set(VIEW_NAMES) <= views


def test_expected_revision_is_the_newest_migration():
    assert db.SCHEMA_REVISION == db.head_revision()


def test_upgrade_is_idempotent(db_url):
    migrate.upgrade(db_url)
    assert migrate.upgrade(db_url) == (db.head_revision(), db.head_revision())


def test_downgrade_to_base_and_up_again(db_url):
    migrate.upgrade(db_url)
    migrate.downgrade(db_url, "base")
    tables, views = _segjob_objects(db_url)
    assert tables - {"alembic_version"} == set()
    assert views == set()
    migrate.upgrade(db_url)
    tables, views = _segjob_objects(db_url)
    assert "assignment" in tables and set(VIEW_NAMES) <= views


def test_models_and_migrations_do_not_drift(db_url):
    migrate.upgrade(db_url)
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as connection:
            postgres = dialect_of(connection).postgres
            target = metadata_for(connection.dialect.name)
            own = {table.name for table in target.sorted_tables}
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_schemas": postgres,
                    "version_table_schema": SCHEMA if postgres else None,
                    "include_name": lambda name, type_, _parents: (
                        name == (SCHEMA if postgres else None)
                        if type_ == "schema"
                        else name in own
                        if type_ == "table"
                        else True
                    ),
                },
            )
            assert compare_metadata(context, target) == []
    finally:
        engine.dispose()


def test_check_at_head_refuses_empty_database(db_url):
    engine = db.make_engine(db_url)
    try:
        with pytest.raises(SchemaOutOfDateError, match="has no segjob schema.*segjob db upgrade"):
            db.check_at_head(engine)
    finally:
        engine.dispose()


def test_check_at_head_refuses_older_revision(db_url):
    migrate.upgrade(db_url)
    engine = db.make_engine(db_url)
    table = "segjob.alembic_version" if dialect_of(engine).postgres else "alembic_version"
    with engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE {table} SET version_num = '0000'")
    try:
        with pytest.raises(SchemaOutOfDateError, match="version 0000, expected"):
            db.check_at_head(engine)
    finally:
        engine.dispose()
