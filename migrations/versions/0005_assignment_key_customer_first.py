"""PostgreSQL: assignment's primary key becomes (customer_key, run_id), with customer_key in the "C" collation.

Every run's partition holds one run_id, so a key that starts with it sorts on customer_key alone
after a comparison that never differs, without the abbreviated keys PostgreSQL uses to sort on
a leading text column, and compares ids with the database's locale. Building the key of a 5M-row
partition took 3.1 s; customer first and byte order ("C"), 2.2 s, inside every publish. A lookup
of one customer across runs (the customer history views and queries) can now use each
partition's index instead of reading it whole.

The "C" collation orders ids by their UTF-8 bytes, which is how Python sorts them, and equality
is the same as before, so joins with source tables' ids are unchanged.

Existing partitions are re-indexed (one index build per partition, in this migration's
transaction). Views that read customer_key are re-created from their stored definitions, with
their grants, and attach_assignment_partition builds the new key. SQLite has no partitions and
keeps (run_id, customer_key): nothing to do.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

VIEWS = (
    "run_summary",
    "current_segment",
    "segment_profile",
    "customer_segment_history",
    "segment_migration",
    "segment_size_history",
)
RUN_FIRST = "run_id, customer_key"
CUSTOMER_FIRST = "customer_key, run_id"


def upgrade() -> None:
    _rekey(collation='"C"', old_key=RUN_FIRST, new_key=CUSTOMER_FIRST)


def downgrade() -> None:
    _rekey(collation='"default"', old_key=CUSTOMER_FIRST, new_key=RUN_FIRST)


def _rekey(collation: str, old_key: str, new_key: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    views = bind.exec_driver_sql(
        "SELECT c.relname, pg_get_viewdef(c.oid) FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'segjob' AND c.relkind = 'v' AND c.relname = ANY(%(names)s)",
        {"names": list(VIEWS)},
    ).all()
    definitions = dict(views)
    readers = bind.exec_driver_sql(
        "SELECT table_name, grantee FROM information_schema.role_table_grants WHERE table_schema = 'segjob'"
        " AND privilege_type = 'SELECT' AND grantee <> current_user AND table_name = ANY(%(names)s)",
        {"names": list(VIEWS)},
    ).all()
    for name in reversed(VIEWS):  # later views may read earlier ones
        if name in definitions:
            bind.exec_driver_sql(f"DROP VIEW segjob.{name}")

    bind.exec_driver_sql("ALTER TABLE segjob.assignment DROP CONSTRAINT pk_assignment")
    bind.exec_driver_sql(f"ALTER TABLE segjob.assignment ALTER COLUMN customer_key TYPE text COLLATE {collation}")
    partitions = bind.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'segjob.assignment'::regclass ORDER BY c.relname"
    ).scalars().all()
    quote = bind.dialect.identifier_preparer.quote
    for partition in partitions:  # named as attach_assignment_partition names them
        bind.exec_driver_sql(
            f"ALTER TABLE segjob.{quote(partition)} ADD CONSTRAINT {quote('pk_' + partition)} PRIMARY KEY ({new_key})"
        )
    bind.exec_driver_sql(f"ALTER TABLE segjob.assignment ADD CONSTRAINT pk_assignment PRIMARY KEY ({new_key})")

    # The function keeps its owner, grants and everything else; only the key it builds changes.
    attach = bind.exec_driver_sql(
        "SELECT pg_get_functiondef('segjob.attach_assignment_partition(integer)'::regprocedure)"
    ).scalar_one()
    old, new = f"PRIMARY KEY ({old_key})", f"PRIMARY KEY ({new_key})"
    if attach.count(old) != 1:
        raise RuntimeError(f"segjob.attach_assignment_partition does not build {old}; was it changed by hand?")
    cursor = bind.connection.driver_connection.cursor()  # no parameters: a % in these bodies is SQL's own
    cursor.execute(attach.replace(old, new))
    for name in VIEWS:
        if name in definitions:
            cursor.execute(f"CREATE VIEW segjob.{name} AS {definitions[name]}")
    for view, role in readers:
        bind.exec_driver_sql(f"GRANT SELECT ON segjob.{view} TO {quote(role)}")
