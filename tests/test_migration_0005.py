"""Revision 0005 (PostgreSQL): assignment keyed customer first in byte order, and back, keeping
rows, views and their grants."""

from __future__ import annotations

import uuid

import psycopg
import sqlalchemy as sa
from helpers import INCOME, MALL_ID, SPENDING, invoke, load_mall, query, run_json

from segjob.store import migrate


def _key_facts(url: str) -> dict:
    """The parent's and each partition's primary key, the key column's collation and the key
    the attach function builds."""
    rows = query(
        url,
        "SELECT c.conname AS name, pg_get_constraintdef(c.oid) AS definition FROM pg_constraint AS c"
        " JOIN pg_namespace AS n ON n.oid = c.connamespace WHERE n.nspname = 'segjob' AND c.contype = 'p'"
        " AND c.conname ~ '^pk_assignment(_r[0-9]+)?$' ORDER BY c.conname",
    )
    collation = query(
        url,
        "SELECT coalesce(collation_name, 'default') AS name FROM information_schema.columns"
        " WHERE table_schema = 'segjob' AND table_name = 'assignment' AND column_name = 'customer_key'",
    )[0]["name"]
    attach = query(
        url, "SELECT pg_get_functiondef('segjob.attach_assignment_partition(integer)'::regprocedure) AS body"
    )
    builds = "run first" if "PRIMARY KEY (run_id, customer_key)" in attach[0]["body"] else "customer first"
    return {"keys": {row["name"]: row["definition"] for row in rows}, "collation": collation, "attach builds": builds}


def test_0005_rekeys_partitions_and_keeps_rows_views_and_grants(migrated_pg_url, pg_admin_engine):
    load_mall(migrated_pg_url)
    features = f"{INCOME},{SPENDING}"
    first = run_json(migrated_pg_url, "--source", "mall", "--id", MALL_ID, "--features", features, "--k", "3")["run_id"]
    reader = f"segjob_reader_{uuid.uuid4().hex[:8]}"
    with pg_admin_engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {reader} LOGIN")
    try:
        assert invoke(migrated_pg_url, "db", "grant", "--reader", reader).exit_code == 0
        customer_first = "PRIMARY KEY (customer_key, run_id)"
        assert _key_facts(migrated_pg_url) == {
            "keys": {"pk_assignment": customer_first, f"pk_assignment_r{first}": customer_first},
            "collation": "C",
            "attach builds": "customer first",
        }

        migrate.downgrade(migrated_pg_url, "0004")
        run_first = "PRIMARY KEY (run_id, customer_key)"
        assert _key_facts(migrated_pg_url) == {
            "keys": {"pk_assignment": run_first, f"pk_assignment_r{first}": run_first},
            "collation": "default",
            "attach builds": "run first",
        }
        assert _reader_counts(migrated_pg_url, reader) == 200

        migrate.upgrade(migrated_pg_url)
        second = run_json(migrated_pg_url, "--source", "mall", "--id", MALL_ID, "--features", features, "--k", "3")[
            "run_id"
        ]
        assert _key_facts(migrated_pg_url)["keys"] == {
            "pk_assignment": customer_first,
            f"pk_assignment_r{first}": customer_first,
            f"pk_assignment_r{second}": customer_first,
        }
        assert _reader_counts(migrated_pg_url, reader) == 200
        both = query(migrated_pg_url, "SELECT count(*) AS n FROM segment_migration WHERE to_run_id = :r", r=second)
        assert both[0]["n"] > 0  # the re-created history views see both runs
    finally:
        with psycopg.connect(
            sa.make_url(migrated_pg_url).set(drivername="postgresql").render_as_string(False), autocommit=True
        ) as connection:
            connection.execute(f"DROP OWNED BY {reader}")
        with pg_admin_engine.connect() as connection:
            connection.exec_driver_sql(f"DROP ROLE {reader}")


def _reader_counts(url: str, reader: str) -> int:
    as_reader = sa.make_url(url).set(username=reader, drivername="postgresql").render_as_string(False)
    with psycopg.connect(as_reader) as connection:
        return connection.execute("SELECT count(*) FROM segjob.current_segment").fetchone()[0]
