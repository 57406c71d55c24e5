"""Migrations driven from code: `segjob db upgrade` and the tests' downgrades, over one connection."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from segjob.store import db
from segjob.store.grants import regrant_readers


def upgrade(url: str | sa.URL | None = None, revision: str = "head") -> tuple[str | None, str | None]:
    """Create or migrate segjob's schema; returns (revision before, revision after)."""
    engine = db.make_engine(url)
    try:
        with db.translate_errors(engine), engine.begin() as connection:
            before = db.current_revision(connection)
            command.upgrade(db.alembic_config(connection), revision)
            after = db.current_revision(connection)
            if db.is_postgres(connection):
                regrant_readers(connection)
        return before, after
    finally:
        engine.dispose()


def downgrade(url: str | sa.URL | None, revision: str) -> None:
    engine = db.make_engine(url)
    try:
        with db.translate_errors(engine), engine.begin() as connection:
            command.downgrade(db.alembic_config(connection), revision)
    finally:
        engine.dispose()
