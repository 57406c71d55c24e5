"""PostgreSQL: a run's assignment table gets its partition CHECK when created, not before attaching.

ATTACH PARTITION skips its validation scan when a CHECK constraint already proves the partition
bound. 0003 added that CHECK after the load, which cost a scan of the whole table (about 0.5 s
per 5M rows, inside the publish transaction); checked row by row during COPY it costs nothing
measurable. create_assignment_partition now creates the table with the CHECK, and
attach_assignment_partition no longer adds it (it still drops it once attached). CREATE OR
REPLACE keeps the functions' owner and grants. SQLite has no partitions: nothing to do.

The function bodies are frozen here, the old ones included, so a downgrade restores 0003's.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_HEADER = """
CREATE OR REPLACE FUNCTION segjob.{name}(p_run_id integer) RETURNS {returns}
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    partition_name text := 'assignment_r' || p_run_id;
BEGIN
"""

_CREATE_CHECKS = """
    IF NOT EXISTS (SELECT 1 FROM segjob.run WHERE run_id = p_run_id AND status = 'running') THEN
        RAISE EXCEPTION 'run % is not running', p_run_id;
    END IF;
"""
_CREATE_GRANT_AND_RETURN = """
    IF session_user <> current_user THEN
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON segjob.%I TO %I', partition_name, session_user);
    END IF;
    RETURN partition_name;
END
$$"""
_ADD_PRIMARY_KEY = """
    EXECUTE format('ALTER TABLE segjob.%I ADD CONSTRAINT %I PRIMARY KEY (run_id, customer_key)',
                   partition_name, 'pk_' || partition_name);
"""
_ATTACH_AND_DROP_CHECK = """
    EXECUTE format('ALTER TABLE segjob.assignment ATTACH PARTITION segjob.%I FOR VALUES IN (%s)',
                   partition_name, p_run_id);
    -- Now redundant with the partition bound.
    EXECUTE format('ALTER TABLE segjob.%I DROP CONSTRAINT %I', partition_name, 'ck_' || partition_name || '_run');
END
$$"""


def _create_function(create_table: str) -> str:
    header = _HEADER.format(name="create_assignment_partition", returns="text")
    return header + _CREATE_CHECKS + create_table + _CREATE_GRANT_AND_RETURN


def _attach_function(before_attach: str) -> str:
    header = _HEADER.format(name="attach_assignment_partition", returns="void")
    return header + _ADD_PRIMARY_KEY + before_attach + _ATTACH_AND_DROP_CHECK


CREATE_WITH_CHECK = _create_function("""
    -- The CHECK matching the partition bound lets ATTACH skip its validation scan.
    EXECUTE format('CREATE TABLE segjob.%I (LIKE segjob.assignment INCLUDING DEFAULTS, CONSTRAINT %I CHECK (run_id = %s))',
                   partition_name, 'ck_' || partition_name || '_run', p_run_id);
""")
ATTACH_WITH_CHECK_FROM_CREATE = _attach_function("")

CREATE_0003 = _create_function("""
    EXECUTE format('CREATE TABLE segjob.%I (LIKE segjob.assignment INCLUDING DEFAULTS)', partition_name);
""")
ATTACH_0003 = _attach_function("""
    -- A CHECK matching the partition bound lets ATTACH skip its validation scan.
    EXECUTE format('ALTER TABLE segjob.%I ADD CONSTRAINT %I CHECK (run_id = %s)',
                   partition_name, 'ck_' || partition_name || '_run', p_run_id);
""")


def upgrade() -> None:
    _replace_functions(CREATE_WITH_CHECK, ATTACH_WITH_CHECK_FROM_CREATE)


def downgrade() -> None:
    _replace_functions(CREATE_0003, ATTACH_0003)


def _replace_functions(*statements: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    cursor = bind.connection.driver_connection.cursor()
    for statement in statements:
        cursor.execute(statement)  # no parameters: the bodies' % signs are format() and RAISE's own
