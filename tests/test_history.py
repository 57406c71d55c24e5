"""Segment history on real runs: stable ids, drift, prune, PostgreSQL partitions, migration 0003."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from helpers import INCOME, MALL_CSV, MALL_ID, SPENDING, invoke, load_mall, query, run_json
from sklearn.metrics import adjusted_rand_score

from segjob.results import lineage
from segjob.store import db, migrate, partitions
from segjob.store.dialect import dialect_of

FEATURES = f"{INCOME},{SPENDING}"


def _run(url: str, source: str, *args: str) -> int:
    return run_json(url, "--source", source, "--id", MALL_ID, "--features", FEATURES, "--job", "mall", *args)["run_id"]


def _load_frame(url: str, frame: pd.DataFrame, table: str, tmp_path) -> None:
    path = tmp_path / f"{table}.csv"
    frame.to_csv(path, index=False)
    result = invoke(url, "load-csv", str(path), "--table", table)
    assert result.exit_code == 0, result.stderr


def _assignments(url: str, run_id: int) -> dict[str, int]:
    rows = query(url, "SELECT customer_key, segment_id FROM assignment WHERE run_id = :r", r=run_id)
    return {r["customer_key"]: r["segment_id"] for r in rows}


def _segments(url: str, run_id: int) -> dict[int, dict]:
    rows = query(url, "SELECT * FROM segment WHERE run_id = :r", r=run_id)
    return {r["segment_id"]: r for r in rows}


def _summary(url: str, run_id: int) -> dict:
    return query(url, "SELECT * FROM run_summary WHERE run_id = :r", r=run_id)[0]


def test_same_data_reshuffled_keeps_every_segment_id(migrated_db_url, tmp_path):
    url = migrated_db_url
    load_mall(url)
    shuffled = pd.read_csv(MALL_CSV).sample(frac=1.0, random_state=7)
    _load_frame(url, shuffled, "mall_shuffled", tmp_path)
    first = _run(url, "mall", "--k", "5", "--seed", "1")
    second = _run(url, "mall_shuffled", "--k", "5", "--seed", "2")
    assert _assignments(url, second) == _assignments(url, first)
    assert set(_segments(url, second)) == set(_segments(url, first)) == {1, 2, 3, 4, 5}
    assert sorted(s["cluster_index"] for s in _segments(url, second).values()) == [0, 1, 2, 3, 4]
    summary = _summary(url, second)
    assert (summary["compared_run_id"], summary["common_customers"]) == (first, 200)
    assert summary["changed_share"] == 0.0 and summary["ari"] == pytest.approx(1.0)


def test_new_cluster_gets_a_fresh_id_and_ids_are_never_reused(migrated_db_url, tmp_path):
    url = migrated_db_url
    load_mall(url)
    first = _run(url, "mall", "--k", "5", "--seed", "1")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"6": "Newcomers"}))
    second = _run(url, "mall", "--k", "6", "--seed", "3", "--labels", str(labels))
    before, after = _segments(url, first), _segments(url, second)
    assert set(after) == set(before) | {6}  # five segments continue, one is new
    assert after[6]["label"] == "Newcomers" and after[6]["centroid_shift"] is None
    assert all(after[s]["centroid_shift"] is not None for s in before)
    # The raw index of the new cluster is not its id: the algorithm numbers by size.
    assert {s["cluster_index"] for s in after.values()} == set(range(6))
    assert set(_assignments(url, second).values()) == set(after)
    centroid_ids = {
        r["segment_id"] for r in query(url, "SELECT segment_id FROM segment_centroid WHERE run_id = :r", r=second)
    }
    assert centroid_ids == set(after)
    assert _assignments(url, second)  # and every customer got one of them

    # Different model columns: nothing is comparable, so all ids are fresh (7..9).
    other = run_json(url, "--source", "mall", "--id", MALL_ID, "--features", INCOME, "--job", "mall", "--k", "3")[
        "run_id"
    ]
    assert set(_segments(url, other)) == {7, 8, 9}
    pruned = invoke(url, "prune", "--job", "mall", "--keep", "1", "--json")
    assert pruned.exit_code == 0, pruned.stderr
    # The second run stays: it is what `segjob promote --previous` would make current again.
    assert sorted(run["run_id"] for run in json.loads(pruned.stdout)["deleted"]) == [first]
    # Ids 1..5 are gone with the first run, but a new segment still gets an id above all used ones.
    again = _run(url, "mall", "--k", "5", "--seed", "1")
    assert min(_segments(url, again)) == 10


def test_drift_matches_an_independent_computation(migrated_db_url, tmp_path):
    url = migrated_db_url
    load_mall(url)
    original = pd.read_csv(MALL_CSV)
    rng = np.random.default_rng(11)
    changed = original.iloc[20:].copy()  # 20 customers leave
    lift = rng.random(len(changed)) < 0.3
    changed.loc[lift, SPENDING] = np.minimum(changed.loc[lift, SPENDING] * 1.6, 100).round()
    newcomers = original.iloc[:25].copy()
    newcomers[MALL_ID] += 1000
    newcomers[INCOME] += 40
    changed = pd.concat([changed, newcomers])
    _load_frame(url, changed, "mall_next", tmp_path)
    first = _run(url, "mall", "--k", "5", "--seed", "1")
    second = _run(url, "mall_next", "--k", "5", "--seed", "1")

    a, b = _assignments(url, first), _assignments(url, second)
    common = sorted(set(a) & set(b))
    summary = _summary(url, second)
    assert summary["common_customers"] == len(common) == 180
    assert summary["changed_share"] == pytest.approx(np.mean([a[k] != b[k] for k in common]))
    assert summary["ari"] == pytest.approx(adjusted_rand_score([a[k] for k in common], [b[k] for k in common]))
    assert 0 < summary["changed_share"] < 1

    psi = {
        r["feature"]: r["psi"] for r in query(url, "SELECT feature, psi FROM run_feature WHERE run_id = :r", r=second)
    }
    for feature in (INCOME, SPENDING):
        before, now = original[feature].to_numpy(float), changed[feature].to_numpy(float)
        edges = np.unique(np.quantile(before, np.arange(1, 10) / 10))
        bins = [-np.inf, *edges, np.inf]
        old = pd.Series(pd.cut(before, bins, right=True)).value_counts(sort=False).to_numpy() / len(before)
        new = pd.Series(pd.cut(now, bins, right=True)).value_counts(sort=False).to_numpy() / len(now)
        old, new = np.maximum(old, 1e-4), np.maximum(new, 1e-4)
        assert psi[feature] == pytest.approx(float(((new - old) * np.log(new / old)).sum()))
    assert psi[INCOME] > 0.05  # the newcomers earn more
    assert summary["max_psi"] == pytest.approx(max(psi.values()))

    params = {r["feature"]: r for r in query(url, "SELECT * FROM run_feature WHERE run_id = :r", r=first)}
    centroids = query(url, "SELECT run_id, segment_id, feature, centroid, centroid_scaled FROM segment_centroid")
    shifts = {}
    for segment_id, row in _segments(url, second).items():
        old_point = {
            c["feature"]: c["centroid_scaled"]
            for c in centroids
            if (c["run_id"], c["segment_id"]) == (first, segment_id)
        }
        new_point = {
            c["feature"]: c["centroid"] for c in centroids if (c["run_id"], c["segment_id"]) == (second, segment_id)
        }
        if old_point:
            shifts[segment_id] = np.sqrt(
                sum(((new_point[f] - params[f]["center"]) / params[f]["scale"] - old_point[f]) ** 2 for f in old_point)
            )
            assert row["centroid_shift"] == pytest.approx(shifts[segment_id])
    assert summary["max_centroid_shift"] == pytest.approx(max(shifts.values()))

    shown = invoke(url, "runs", "show", str(second))
    assert f"drift vs run {first}: 180 common customers" in shown.stdout
    assert f"{summary['changed_share']:.1%} changed segment" in shown.stdout


def _insert_running_copy(url: str, run_id: int) -> int:
    engine = db.make_engine(url)
    try:
        with engine.begin() as connection:
            run = "segjob.run" if dialect_of(connection).postgres else "run"
            columns = "job, kind, started_at, heartbeat_at, spec, source, segjob_version, sklearn_version, numpy_version, host, pid"
            connection.exec_driver_sql(
                f"INSERT INTO {run} ({columns}, status) SELECT {columns}, 'running' FROM {run} WHERE run_id = {int(run_id)}"
            )
            return connection.exec_driver_sql(f"SELECT MAX(run_id) FROM {run}").scalar_one()
    finally:
        engine.dispose()


def test_prune_keeps_current_and_running_runs_and_drops_the_rest(migrated_db_url):
    url = migrated_db_url
    load_mall(url)
    runs = [_run(url, "mall", "--k", str(k), "--seed", "1") for k in (3, 4, 5)]
    running = _insert_running_copy(url, runs[-1])
    result = invoke(url, "prune", "--job", "mall", "--keep", "1")
    assert result.exit_code == 0, result.stderr
    assert f"deleted run {runs[0]} (fit, succeeded" in result.stdout and "200 assignments" in result.stdout
    # Kept: the current run, the run a rollback goes back to, and the running one.
    assert f"kept {runs[1]}, {runs[2]}, {running}" in result.stdout
    remaining = query(url, "SELECT run_id FROM run ORDER BY run_id")
    assert [r["run_id"] for r in remaining] == [runs[1], runs[2], running]
    for table in ("assignment", "segment", "segment_centroid", "run_feature", "run_metric", "feature_bin"):
        left = query(url, f"SELECT DISTINCT run_id FROM {table}")
        assert {r["run_id"] for r in left} == {runs[1], runs[2]}, table
    assert query(url, "SELECT COUNT(*) AS n FROM current_segment")[0]["n"] == 200
    engine = db.make_engine(url)
    try:
        if dialect_of(engine).postgres:
            with engine.connect() as connection:
                assert partitions.existing(connection) == {runs[1], runs[2]}
                names = (
                    connection.exec_driver_sql(
                        "SELECT relname FROM pg_class WHERE relname LIKE 'assignment_r%%' AND relkind = 'r'"
                    )
                    .scalars()
                    .all()
                )
                assert sorted(names) == sorted(partitions.partition_name(r) for r in runs[1:])
    finally:
        engine.dispose()
    again = invoke(url, "prune", "--job", "mall", "--keep", "1", "--json")
    assert json.loads(again.stdout)["deleted"] == []
    bad = invoke(url, "prune", "--job", "mall", "--keep", "0")
    assert bad.exit_code == 2 and "--keep must be at least 1" in bad.stderr
    missing = invoke(url, "prune", "--job", "nope", "--keep", "3")
    assert missing.exit_code == 2 and "has no runs" in missing.stderr


def test_a_reader_is_not_blocked_while_a_run_publishes(migrated_pg_url, monkeypatch):
    url = migrated_pg_url
    load_mall(url)
    first = _run(url, "mall", "--k", "4")
    reader = db.make_engine(url)
    seen: dict = {}
    real_record = lineage.record

    def record_then_read(connection, run_id, *args):
        real_record(connection, run_id, *args)
        publisher = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with reader.connect() as other:
            other.exec_driver_sql("SET lock_timeout = '2s'")  # a blocked SELECT fails the test
            seen["rows"] = other.exec_driver_sql("SELECT COUNT(*), MIN(run_id) FROM segjob.current_segment").one()
            seen["modes"] = set(
                other.exec_driver_sql(
                    "SELECT mode FROM pg_locks WHERE pid = %(pid)s AND relation = 'segjob.assignment'::regclass",
                    {"pid": publisher},
                ).scalars()
            )

    monkeypatch.setattr(lineage, "record", record_then_read)
    try:
        second = _run(url, "mall", "--k", "5")
    finally:
        reader.dispose()
    assert tuple(seen["rows"]) == (200, first)  # the old run, read while the new one was unpublished
    # ATTACH PARTITION's lock (plus the drift query's ACCESS SHARE), never ACCESS EXCLUSIVE.
    assert "ShareUpdateExclusiveLock" in seen["modes"] and "AccessExclusiveLock" not in seen["modes"]
    assert query(url, "SELECT MIN(run_id) AS r FROM current_segment")[0]["r"] == second


def test_migration_0003_moves_assignments_and_backfills(migrated_db_url):
    url = migrated_db_url
    load_mall(url)
    first = _run(url, "mall", "--k", "3")
    second = _run(url, "mall", "--k", "4")
    before = query(url, "SELECT run_id, customer_key, segment_id, distance FROM assignment ORDER BY 1, 2")
    migrate.downgrade(url, "0002")
    migrate.upgrade(url)
    assert query(url, "SELECT run_id, customer_key, segment_id, distance FROM assignment ORDER BY 1, 2") == before
    segments = query(url, "SELECT segment_id, cluster_index FROM segment")
    assert all(s["cluster_index"] == s["segment_id"] - 1 for s in segments)
    last = {r["run_id"]: r["last_segment_id"] for r in query(url, "SELECT run_id, last_segment_id FROM run")}
    assert last == {first: 3, second: 4}
    engine = db.make_engine(url)
    try:
        if dialect_of(engine).postgres:
            with engine.connect() as connection:
                assert partitions.existing(connection) == {first, second}
    finally:
        engine.dispose()
    third = _run(url, "mall", "--k", "4")  # publishing works on the migrated schema
    assert query(url, "SELECT COUNT(*) AS n FROM current_segment WHERE run_id = :r", r=third)[0]["n"] == 200


def test_a_score_run_records_drift_against_the_previous_run(migrated_db_url):
    url = migrated_db_url
    load_mall(url)
    fit = _run(url, "mall", "--k", "5", "--seed", "1")
    result = invoke(url, "score", "--job", "mall", "--source", "mall", "--id", MALL_ID, "--json")
    assert result.exit_code == 0, result.stderr
    scored = json.loads(result.stdout)["run_id"]
    summary = _summary(url, scored)
    assert (summary["model_run_id"], summary["compared_run_id"], summary["common_customers"]) == (fit, fit, 200)
    assert summary["changed_share"] == 0.0 and summary["ari"] == pytest.approx(1.0)
    assert summary["max_psi"] == pytest.approx(0.0) and summary["max_centroid_shift"] == pytest.approx(0.0)
    sizes = query(url, "SELECT run_id, segment_id, size FROM segment_size_history ORDER BY run_id, segment_id")
    assert [(r["segment_id"], r["size"]) for r in sizes if r["run_id"] == scored] == [
        (r["segment_id"], r["size"]) for r in sizes if r["run_id"] == fit
    ]


def test_roles_keep_their_rights_across_migration_0003(migrated_pg_url, pg_admin_engine):
    """A writer granted before the upgrade still publishes (partition functions) and prunes; a
    reader still reads the re-created views."""
    import uuid

    url = migrated_pg_url
    suffix = uuid.uuid4().hex[:8]
    reader, writer = f"segjob_r_{suffix}", f"segjob_w_{suffix}"
    with pg_admin_engine.connect() as connection:
        for role in (reader, writer):
            connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    try:
        load_mall(url)
        assert invoke(url, "db", "grant", "--reader", reader, "--writer", writer).exit_code == 0
        first = _run(url, "mall", "--k", "3")
        migrate.downgrade(url, "0002")
        migrate.upgrade(url)
        engine = db.make_engine(url)
        with engine.begin() as connection:
            connection.exec_driver_sql(f"GRANT SELECT ON public.mall TO {writer}")
        engine.dispose()
        as_writer = sa.make_url(url).set(username=writer).render_as_string(hide_password=False)
        _run(as_writer, "mall", "--k", "4")
        third = _run(as_writer, "mall", "--k", "4", "--seed", "2")
        pruned = invoke(as_writer, "prune", "--job", "mall", "--keep", "1", "--json")
        assert pruned.exit_code == 0, pruned.stderr
        # The second run stays as what a rollback would go back to.
        assert [run["run_id"] for run in json.loads(pruned.stdout)["deleted"]] == [first]
        as_reader = sa.make_url(url).set(username=reader).render_as_string(hide_password=False)
        assert query(as_reader, "SELECT COUNT(*) AS n FROM current_segment WHERE run_id = :r", r=third)[0]["n"] == 200
        assert query(as_reader, "SELECT COUNT(*) AS n FROM segment_size_history")[0]["n"] == 8
    finally:
        admin_db = db.make_engine(url)  # DROP OWNED also revokes the roles' privileges there
        with admin_db.begin() as connection:
            connection.exec_driver_sql(f"DROP OWNED BY {reader}, {writer}")
        admin_db.dispose()
        with pg_admin_engine.connect() as connection:
            for role in (reader, writer):
                connection.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
