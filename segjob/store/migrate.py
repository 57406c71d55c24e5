"""Migrations driven from code: `segjob db upgrade` and the tests' downgrades, over one connection.

On PostgreSQL the whole migration is one transaction whose lock waits are capped at a short
lock_timeout (segjob.store.locks): a view or table that a long query reads makes the attempt roll
back and start again after a pause, instead of queueing every later query behind it, until
`lock_wait` seconds have passed; then LockWaitError (exit 5) with the schema unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from segjob.store import db, locks
from segjob.store.dialect import dialect_of
from segjob.store.grants import regrant_readers


def upgrade(
    url: str | sa.URL | None = None, revision: str = "head", lock_wait: float | None = None
) -> tuple[str | None, str | None]:
    """Create or migrate segjob's schema; returns (revision before, revision after). Gives up
    after `lock_wait` seconds (default locks.DEFAULT_WAIT) of other sessions holding locks it needs."""

    def migrate(connection: sa.Connection) -> tuple[str | None, str | None]:
        before = db.current_revision(connection)
        command.upgrade(db.alembic_config(connection), revision)
        after = db.current_revision(connection)
        if dialect_of(connection).roles:
            regrant_readers(connection)
        return before, after

    engine = db.make_engine(url)
    try:
        with db.translate_errors(engine):
            return locks.retrying(engine, migrate, "segjob db upgrade", lock_wait)
    finally:
        engine.dispose()


def downgrade(url: str | sa.URL | None, revision: str, lock_wait: float | None = None) -> None:
    engine = db.make_engine(url)
    try:
        with db.translate_errors(engine):
            locks.retrying(
                engine,
                lambda connection: command.downgrade(db.alembic_config(connection), revision),
                "segjob db downgrade",
                lock_wait,
            )
    finally:
        engine.dispose()
