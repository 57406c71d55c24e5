"""Cleaners of leftover assignment tables running at once (PostgreSQL).

A prune drops the tables it detached while a run of another job may be marking dead runs
abandoned, which drops the same orphaned tables (migration 0010): neither may fail.
"""

from __future__ import annotations

import threading
import time

import psycopg
from helpers import query


def _driver_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def test_two_sessions_dropping_the_same_orphaned_tables_both_succeed(migrated_pg_url):
    url = _driver_url(migrated_pg_url)
    with psycopg.connect(url, autocommit=True) as setup:
        for run_id in (9001, 9002):  # standalone tables of runs that do not exist (detached by a prune)
            setup.execute(f"CREATE TABLE segjob.assignment_r{run_id} (LIKE segjob.assignment)")
    first, second = psycopg.connect(url), psycopg.connect(url)
    outcome: dict = {}

    def drop_too() -> None:
        try:
            outcome["dropped"] = second.execute("SELECT segjob.drop_orphan_assignment_tables()").fetchone()[0]
            second.commit()
        except psycopg.Error as exc:
            outcome["error"] = exc

    try:
        assert first.execute("SELECT segjob.drop_orphan_assignment_tables()").fetchone()[0] == 2  # not committed
        other = threading.Thread(target=drop_too)
        other.start()
        pid = second.info.backend_pid
        deadline = time.monotonic() + 30
        while not query(
            migrated_pg_url, "SELECT 1 AS x FROM pg_stat_activity WHERE pid = :p AND wait_event_type = 'Lock'", p=pid
        ):
            assert time.monotonic() < deadline, "the second session never waited for the first one's drop"
            time.sleep(0.02)
        first.commit()
        other.join(30)
    finally:
        first.close()
        second.close()
    assert "error" not in outcome, outcome.get("error")
    assert query(migrated_pg_url, "SELECT relname FROM pg_class WHERE relname ~ '^assignment_r900[12]$'") == []
