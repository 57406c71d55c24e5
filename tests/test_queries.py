"""sql/queries/*.sql and the history views over a seeded history, on PostgreSQL and SQLite.

The seed is a small story in plain Python data: runs of job "shop" (fit, a failed fit, fit with
a new segment and new customers, a score run whose silhouette dropped) and one run of another
job in between. Every expected result is computed from that data here, independently of the SQL.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from helpers import invoke, query

from segjob.results import promotion
from segjob.store import db, partitions, schema
from segjob.store.dialect import dialect_of

JOB = "shop"
T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


@dataclass
class SeedRun:
    job: str
    kind: str
    status: str
    days: int  # started T0 + days
    silhouette: float | None
    spend: dict[int, float]  # segment id -> centroid of feature "spend"
    assignments: dict[str, int]  # customer -> segment id
    model_run: int | None = None  # index into STORY of the fit run a score run used
    run_id: int = 0  # filled in when seeded

    @property
    def started_at(self) -> datetime:
        return T0 + timedelta(days=self.days)

    @property
    def current_from(self) -> datetime:
        """When the run became current (it published an hour after it started)."""
        return self.started_at + timedelta(hours=1)


def _story() -> list[SeedRun]:
    return [
        SeedRun(
            JOB,
            "fit",
            "succeeded",
            0,
            0.60,
            {1: 10, 2: 50, 3: 90},
            {"c1": 3, "c2": 3, "c3": 2, "c4": 1, "c5": 1, "c6": 2},
        ),
        SeedRun(JOB, "fit", "failed", 14, None, {}, {}),
        SeedRun(
            JOB,
            "fit",
            "succeeded",
            31,
            0.62,
            {1: 12, 2: 48, 3: 95, 4: 70},
            {"c1": 3, "c2": 4, "c3": 2, "c4": 1, "c5": 2, "c7": 1, "c8": 4},
        ),
        SeedRun("other", "fit", "succeeded", 40, 0.70, {1: 5, 2: 60}, {"c1": 1, "c2": 2, "x9": 2}),
        SeedRun(
            JOB,
            "score",
            "succeeded",
            59,
            0.45,
            {1: 12, 2: 48, 3: 95, 4: 70},
            {"c1": 2, "c2": 4, "c3": 2, "c4": 1, "c5": 2, "c6": 3, "c7": 1, "c9": 3},
            model_run=2,
        ),
        SeedRun(JOB, "fit", "running", 60, None, {}, {}),
    ]


LABELS = {1: "Low spend", 2: "Mid spend", 3: "High spend", 4: "Upper-mid spend"}


def seed(url: str) -> list[SeedRun]:
    story = _story()
    engine = db.make_engine(url)
    try:
        with engine.begin() as connection:
            run, segment, centroid = schema.run, schema.segment, schema.segment_centroid
            metric, assignment = schema.run_metric, schema.assignment
            for r in story:
                r.run_id = connection.execute(
                    sa.insert(run)
                    .values(
                        job=r.job,
                        kind=r.kind,
                        status="running",
                        started_at=r.started_at,
                        heartbeat_at=r.started_at,
                        spec={},
                        source="seed",
                        segjob_version="test",
                        sklearn_version="test",
                        numpy_version="test",
                        host="test",
                        pid=1,
                        k=len(r.spend) or None,
                        model_run_id=story[r.model_run].run_id if r.model_run is not None else None,
                    )
                    .returning(run.c.run_id)
                ).scalar_one()
                sizes = Counter(r.assignments.values())
                for segment_id, spend in r.spend.items():
                    connection.execute(
                        sa.insert(segment).values(
                            run_id=r.run_id,
                            segment_id=segment_id,
                            label=LABELS[segment_id],
                            size=sizes[segment_id],
                            share=sizes[segment_id] / len(r.assignments),
                            cluster_index=segment_id - 1,
                        )
                    )
                    for feature, value in (("spend", spend), ("visits", spend / 10)):
                        connection.execute(
                            sa.insert(centroid).values(
                                run_id=r.run_id,
                                segment_id=segment_id,
                                feature=feature,
                                centroid=value,
                                centroid_scaled=value / 100,
                                mean=value,
                                median=value,
                                z_score=value / 50 - 1,
                            )
                        )
                if r.silhouette is not None:
                    connection.execute(sa.insert(metric).values(run_id=r.run_id, name="silhouette", value=r.silhouette))
                if r.assignments:
                    _write_assignments(connection, assignment, r)
                if r.status != "running":
                    connection.execute(sa.update(run).where(run.c.run_id == r.run_id).values(status=r.status))
                if r.status == "succeeded":  # as publishing does: an ordinary run becomes current
                    promotion.record_success(connection, r.job, r.run_id)
                    connection.execute(
                        sa.update(schema.promotion)
                        .where(schema.promotion.c.run_id == r.run_id)
                        .values(promoted_at=r.current_from)
                    )
    finally:
        engine.dispose()
    return story


def _write_assignments(connection, assignment: sa.Table, r: SeedRun) -> None:
    rows = [
        dict(run_id=r.run_id, customer_key=key, segment_id=segment_id, distance=0.5)
        for key, segment_id in r.assignments.items()
    ]
    if not dialect_of(connection).postgres:
        connection.execute(sa.insert(assignment), rows)
        return
    target = partitions.create(connection, r.run_id)  # the same partition path a publish takes
    connection.execute(
        sa.text(
            f"INSERT INTO {target} (run_id, customer_key, segment_id, distance)"
            " VALUES (:run_id, :customer_key, :segment_id, :distance)"
        ),
        rows,
    )
    partitions.attach(connection, r.run_id)


def run_query(url: str, name: str, **params) -> list[dict]:
    text = (db.sql_dir() / "queries" / name).read_text()
    # Comment lines name the parameters (":job"), which sa.text would take for placeholders.
    sql = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return query(url, sql, **params)


def _ts(value) -> datetime | None:
    """A timestamp from either backend as naive UTC (SQLite returns text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _succeeded(story: list[SeedRun], job: str = JOB) -> list[SeedRun]:
    return [r for r in story if r.job == job and r.status == "succeeded"]


# --- the independent expectations -----------------------------------------------------------


def expected_history(story: list[SeedRun], customer: str) -> list[tuple]:
    """(run, segment, previous segment, changed, valid_from, valid_to, segment_since) of one customer."""
    runs = _succeeded(story)
    rows, previous = [], None
    for position, r in enumerate(runs):
        if customer not in r.assignments:
            continue
        segment = r.assignments[customer]
        start = position  # walk back while the customer sat in the same segment in every run
        while start > 0 and runs[start - 1].assignments.get(customer) == segment:
            start -= 1
        valid_to = _naive(runs[position + 1].current_from) if position + 1 < len(runs) else None
        rows.append(
            (
                r.run_id,
                segment,
                previous,
                previous is not None and previous != segment,
                _naive(r.current_from),
                valid_to,
                _naive(runs[start].current_from),
            )
        )
        previous = segment
    return rows


def expected_migration(earlier: SeedRun, later: SeedRun) -> dict[tuple[int, int], int]:
    return dict(
        Counter(
            (earlier.assignments[key], segment)
            for key, segment in later.assignments.items()
            if key in earlier.assignments
        )
    )


# --- tests ------------------------------------------------------------------------------------


@pytest.fixture
def seeded(migrated_db_url):
    return migrated_db_url, seed(migrated_db_url)


def test_customer_history_with_valid_from_and_valid_to(seeded):
    url, story = seeded
    for customer in ("c1", "c2", "c5", "c6", "c8", "c9"):
        rows = run_query(url, "01_customer_history.sql", job=JOB, customer_key=customer)
        got = [
            (
                r["run_id"],
                r["segment_id"],
                r["previous_segment_id"],
                bool(r["changed"]),
                _ts(r["valid_from"]),
                _ts(r["valid_to"]),
                _ts(r["segment_since"]),
            )
            for r in rows
        ]
        assert got == expected_history(story, customer), customer
    # c2 sat in 4 from the second run on: one stretch, open now; c6 left and came back: two stretches.
    c2 = run_query(url, "01_customer_history.sql", job=JOB, customer_key="c2")
    assert [_ts(r["valid_to"]) for r in c2][-1] is None
    assert [_ts(r["segment_since"]) for r in c2][-2:] == [_naive(story[2].current_from)] * 2
    c6 = run_query(url, "01_customer_history.sql", job=JOB, customer_key="c6")
    assert _ts(c6[0]["valid_to"]) == _naive(story[2].current_from)
    assert _ts(c6[1]["segment_since"]) == _naive(story[4].current_from)


def test_migration_matrix_of_the_last_two_runs(seeded):
    url, story = seeded
    runs = _succeeded(story)
    rows = run_query(url, "02_migration_matrix_last_two_runs.sql", job=JOB)
    got = {(r["from_segment_id"], r["to_segment_id"]): r["customers"] for r in rows}
    assert got == expected_migration(runs[-2], runs[-1])


def test_customers_who_moved_down_from_the_top_segment(seeded):
    url, story = seeded
    earlier, later = _succeeded(story)[-2:]
    top = max(earlier.spend, key=earlier.spend.get)
    expected = sorted(
        key
        for key, segment in later.assignments.items()
        if earlier.assignments.get(key) == top and later.spend[segment] < earlier.spend[top]
    )
    rows = run_query(url, "03_moved_down_from_top_segment.sql", job=JOB, value_feature="spend")
    assert [r["customer_key"] for r in rows] == expected
    assert expected  # the seed has such a customer
    assert all(r["previous_segment_id"] == top for r in rows)


def test_segment_sizes_over_time(seeded):
    url, story = seeded
    expected = [
        (r.run_id, segment, size, size / len(r.assignments))
        for r in _succeeded(story)
        for segment, size in sorted(Counter(r.assignments.values()).items())
    ]
    rows = run_query(url, "04_segment_sizes_over_time.sql", job=JOB)
    assert [(r["run_id"], r["segment_id"], r["size"]) for r in rows] == [e[:3] for e in expected]
    assert [r["share"] for r in rows] == pytest.approx([e[3] for e in expected])


def test_new_customers_and_where_they_landed(seeded):
    url, story = seeded
    earlier, later = _succeeded(story)[-2:]
    expected = Counter(segment for key, segment in later.assignments.items() if key not in earlier.assignments)
    rows = run_query(url, "05_new_customers_and_where_they_landed.sql", job=JOB)
    assert {r["segment_id"]: r["new_customers"] for r in rows} == dict(expected)


def test_segment_stability(seeded):
    url, story = seeded
    runs = _succeeded(story)
    stayed = defaultdict(list)
    for earlier, later in zip(runs, runs[1:]):
        moves = expected_migration(earlier, later)
        for segment in {f for f, _ in moves}:
            total = sum(n for (f, _), n in moves.items() if f == segment)
            stayed[segment].append(moves.get((segment, segment), 0) / total)
    rows = run_query(url, "06_segment_stability.sql", job=JOB)
    assert [r["segment_id"] for r in rows] == sorted(stayed)
    for r in rows:
        assert r["run_pairs"] == len(stayed[r["segment_id"]])
        assert r["average_share_stayed"] == pytest.approx(np.mean(stayed[r["segment_id"]]))
        assert r["worst_share_stayed"] == pytest.approx(min(stayed[r["segment_id"]]))


def test_segment_profile_over_time(seeded):
    url, story = seeded
    expected = [
        (feature, r.run_id, value)
        for feature, scale in (("spend", 1), ("visits", 10))
        for r in _succeeded(story)
        if 4 in r.spend
        for value in [r.spend[4] / scale]
    ]
    rows = run_query(url, "07_segment_profile_over_time.sql", job=JOB, segment_id=4)
    assert [(r["feature"], r["run_id"]) for r in rows] == [e[:2] for e in expected]
    assert [r["centroid"] for r in rows] == pytest.approx([e[2] for e in expected])


def test_runs_whose_quality_dropped(seeded):
    url, story = seeded
    scored = [r for r in _succeeded(story) if r.silhouette is not None]
    for min_drop in (0.1, 0.5):
        expected = [
            later.run_id
            for earlier, later in zip(scored, scored[1:])
            if earlier.silhouette - later.silhouette >= min_drop
        ]
        rows = run_query(url, "08_runs_whose_quality_dropped.sql", job=JOB, min_drop=min_drop)
        assert [r["run_id"] for r in rows] == expected
    assert run_query(url, "08_runs_whose_quality_dropped.sql", job=JOB, min_drop=0.1)  # the score run dropped


def test_views_show_only_succeeded_runs_and_run_summary_all(seeded):
    url, story = seeded
    shown = {r["run_id"] for r in query(url, "SELECT DISTINCT run_id FROM segment_size_history WHERE job = :j", j=JOB)}
    assert shown == {r.run_id for r in _succeeded(story)}
    summary = {r["run_id"]: r for r in query(url, "SELECT run_id, status, model_run_id FROM run_summary")}
    assert set(summary) == {r.run_id for r in story}
    score = next(r for r in story if r.kind == "score")
    assert summary[score.run_id]["model_run_id"] == story[score.model_run].run_id
    current = query(url, "SELECT DISTINCT run_id FROM current_segment WHERE job = :j", j=JOB)
    assert current == [{"run_id": _succeeded(story)[-1].run_id}]  # the score run, not the running fit


def test_join_back_to_a_customers_table_with_integer_ids(migrated_db_url):
    """09: current segments beside the customers' own columns, although customer_key is text and
    the customers' id a bigint; the plain join that query replaces fails on PostgreSQL."""
    url = migrated_db_url
    rng = np.random.default_rng(5)
    customers = [(1000 + i, float(rng.normal(50 if i % 2 else 150, 10)), float(rng.normal(5, 1))) for i in range(60)]
    engine = db.make_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "CREATE TABLE customers (customer_id BIGINT PRIMARY KEY, spend FLOAT, visits FLOAT)"
            )
            connection.execute(
                sa.text("INSERT INTO customers VALUES (:i, :s, :v)"),
                [{"i": i, "s": s, "v": v} for i, s, v in customers],
            )
    finally:
        engine.dispose()
    result = invoke(
        url, "run", "--source", "customers", "--id", "customer_id", "--features", "spend,visits", "--k", "2"
    )
    assert result.exit_code == 0, result.stderr

    rows = run_query(url, "09_join_back_to_integer_ids.sql", job="customers")
    current = {r["customer_key"]: r["segment_id"] for r in query(url, "SELECT * FROM current_segment")}
    assert len(rows) == 60
    assert {int(r["customer_id"]): r["segment_id"] for r in rows} == {int(k): s for k, s in current.items()}
    assert {int(r["customer_id"]): r["spend"] for r in rows} == {i: s for i, s, _ in customers}
    # The two segments split the customers by spend, so the join paired the right rows.
    by_segment = defaultdict(list)
    for r in rows:
        by_segment[r["segment_id"]].append(int(r["customer_id"]) % 2)
    assert sorted(len(set(parities)) for parities in by_segment.values()) == [1, 1]
    if url.startswith("postgresql"):
        with pytest.raises(sa.exc.ProgrammingError, match="operator does not exist: bigint = text"):
            query(url, "SELECT * FROM current_segment s JOIN customers c ON c.customer_id = s.customer_key")
