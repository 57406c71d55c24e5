"""Two sessions that drop orphaned assignment tables at once no longer fail.

`segjob.drop_orphan_assignment_tables()` (0008) lists the standalone assignment tables of runs
that are not running, then drops them one by one. Since prune detaches a pruned run's partition
and drops it afterwards (issue 24), such a table can be dropped by the prune and by a run of
another job marking its dead runs abandoned at the same moment: the slower one waited for the
table's lock and then failed with `table "assignment_rN" does not exist` (the soak test found it).
It now drops with IF EXISTS, which skips a table dropped meanwhile, in name order, so two callers
take the tables' locks in the same order. CREATE OR REPLACE keeps the function's owner and grants.
SQLite has no such tables: nothing to do. The bodies are frozen here, 0008's included.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION segjob.drop_orphan_assignment_tables() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    orphan record;
    dropped integer := 0;
BEGIN
    FOR orphan IN
        SELECT c.relname
        FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = 'segjob'
        WHERE c.relkind = 'r'
          AND c.relname ~ '^assignment_r[0-9]+$'
          AND NOT c.relispartition
          AND NOT EXISTS (
              SELECT 1 FROM segjob.run AS r
              WHERE r.run_id = substr(c.relname, 13)::integer AND r.status = 'running'
          ){order}
    LOOP
        EXECUTE format('{drop} segjob.%I', orphan.relname);
        dropped := dropped + 1;
    END LOOP;
    DELETE FROM segjob.assignment_load AS l
    WHERE NOT EXISTS (SELECT 1 FROM segjob.run AS r WHERE r.run_id = l.run_id AND r.status = 'running');
    RETURN dropped;
END
$$"""

DROP_ORPHANS_0010 = _FUNCTION.format(order="\n        ORDER BY c.relname", drop="DROP TABLE IF EXISTS")
DROP_ORPHANS_0008 = _FUNCTION.format(order="", drop="DROP TABLE")


def upgrade() -> None:
    _replace(DROP_ORPHANS_0010)


def downgrade() -> None:
    _replace(DROP_ORPHANS_0008)


def _replace(statement: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.connection.driver_connection.cursor().execute(statement)  # no parameters: % is format()'s own
