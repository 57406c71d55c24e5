"""The Spark engine (`--engine spark`) against a real Spark (local mode, and a local cluster whose
executors are processes of their own) and a real PostgreSQL.

Every test here starts Spark's JVM and its Python workers, so the module is marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from helpers import SEGJOB, invoke, one_error_line, query
from sklearn.metrics import adjusted_rand_score

from segjob.config import build_spec
from segjob.engines import spark as spark_engine
from segjob.errors import UsageError
from segjob.pipeline import run_job
from segjob.store import db

pytestmark = pytest.mark.slow

FEATURES = ["a", "b", "c"]
CENTRES = np.array([[0, 0, 0], [5, 1, 0], [0, 5, 3], [4, 4, 5]], dtype=float)
ROWS = 20_000
# Two threads, and a second attempt for a failed task (local mode's default is one attempt).
MASTER = "local[2,2]"


def _groups(rows: int = ROWS, seed: int = 3) -> pd.DataFrame:
    random = np.random.default_rng(seed)
    truth = random.integers(0, len(CENTRES), rows)
    values = CENTRES[truth] + random.normal(scale=0.9, size=(rows, len(FEATURES)))
    values[:, 1] *= 100  # scales differ, so scaling matters
    frame = pd.DataFrame(values, columns=FEATURES)
    frame.insert(0, "id", [f"c{index:06d}" for index in range(rows)])
    return frame


def _load(url: str, frame: pd.DataFrame, table: str) -> None:
    engine = db.make_engine(url)
    with engine.begin() as connection:
        columns = ", ".join(
            f"{name} {'TEXT' if name == 'id' or frame[name].dtype == object else 'DOUBLE PRECISION'}"
            for name in frame.columns
        )
        connection.exec_driver_sql(f"CREATE TABLE {table} ({columns})")
        cursor = connection.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {table} FROM STDIN") as copy:
            for row in frame.itertuples(index=False):
                copy.write_row(list(row))
    engine.dispose()


@pytest.fixture(scope="module")
def spark():
    """One Spark session for the module; the CLI in this process reuses it (getOrCreate)."""
    spec = build_spec(source="customers", id="id", features="a", engine="spark", spark_master=MASTER)
    session = spark_engine.session(spec)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def data_url(pg_admin_engine, pg_template):
    """A migrated PostgreSQL database holding `customers` (four groups), shared by the module's
    read-only parity tests; each of them runs jobs of its own names."""
    name = f"segjob_spark_{uuid.uuid4().hex[:10]}"
    with pg_admin_engine.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name} TEMPLATE {pg_template}"))
    url = pg_admin_engine.url.set(database=name).render_as_string(hide_password=False)
    _load(url, _groups(), "customers")
    yield url
    sa.create_engine(url).dispose()
    with pg_admin_engine.connect() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _run(url: str, *args: str) -> dict:
    result = invoke(url, "run", "--id", "id", "--features", ",".join(FEATURES), *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _spark(*args: str) -> tuple[str, ...]:
    return ("--engine", "spark", "--spark-master", MASTER, *args)


def _assignments(url: str, run_id: int) -> pd.Series:
    rows = query(url, "SELECT customer_key, segment_id FROM assignment WHERE run_id = :r", r=run_id)
    return pd.Series({row["customer_key"]: row["segment_id"] for row in rows}).sort_index()


def _profile(url: str, run_id: int) -> list[tuple]:
    rows = query(
        url,
        "SELECT segment_id, size, feature, mean FROM segment_profile WHERE run_id = :r ORDER BY segment_id, position",
        r=run_id,
    )
    return [(row["segment_id"], row["size"], row["feature"], round(row["mean"], 9)) for row in rows]


@pytest.mark.parametrize("fit_sample", [None, "5000"], ids=["every-row", "sampled"])
def test_spark_and_local_engines_publish_the_same_run_from_a_postgresql_table(spark, data_url, fit_sample):
    """Both engines fit on the same rows (PostgreSQL draws the sample for both), so they choose the
    same k and publish the same assignments, sizes and centroid profiles."""
    sample = ("--fit-sample", fit_sample) if fit_sample else ()
    tag = fit_sample or "all"
    local = _run(data_url, "--source", "customers", "--job", f"local-{tag}", *sample)
    on_spark = _run(data_url, "--source", "customers", "--job", f"spark-{tag}", *_spark(*sample))
    assert on_spark["k"] == local["k"] == 4
    assert on_spark["rows_used"] == local["rows_used"] == ROWS
    local_assignments, spark_assignments = (
        _assignments(data_url, local["run_id"]),
        _assignments(data_url, on_spark["run_id"]),
    )
    assert len(spark_assignments) == ROWS
    assert (spark_assignments == local_assignments).all()
    assert _profile(data_url, on_spark["run_id"]) == _profile(data_url, local["run_id"])
    summary = query(data_url, "SELECT job, is_current FROM run_summary WHERE run_id = :r", r=on_spark["run_id"])
    assert summary == [{"job": f"spark-{tag}", "is_current": True}]


def test_parquet_and_catalog_sources_match_the_local_engine(spark, data_url, tmp_path):
    """Sources in Spark's own world: Spark samples them (seeded), so the fit sample differs from
    PostgreSQL's and the answer agrees to ARI >= 0.99 with the same k."""
    frame = _groups()
    path = tmp_path / "customers.parquet"
    frame.to_parquet(path, index=False)
    spark.createDataFrame(frame).createOrReplaceTempView("customers_view")
    local = _run(data_url, "--source", "customers", "--job", "local-lake", "--fit-sample", "5000")
    local_assignments = _assignments(data_url, local["run_id"])
    for source in (
        ("--source-format", "parquet", "--source-path", str(path), "--job", "lake-parquet"),
        ("--source-format", "catalog", "--source", "customers_view", "--job", "lake-catalog"),
    ):
        on_spark = _run(data_url, *_spark(*source, "--fit-sample", "5000"))
        assert on_spark["k"] == local["k"] == 4
        assignments = _assignments(data_url, on_spark["run_id"])
        assert len(assignments) == ROWS
        assert adjusted_rand_score(local_assignments, assignments.reindex(local_assignments.index)) >= 0.99
        sizes = sorted(segment["size"] for segment in on_spark["segments"])
        local_sizes = sorted(segment["size"] for segment in local["segments"])
        assert np.allclose(sizes, local_sizes, rtol=0.02)


def test_jdbc_query_source_and_full_fit_agree_with_the_local_engine(spark, data_url):
    """A read-only query through Spark's JDBC source, refined by distributed Lloyd iterations."""
    sql = "SELECT id, a, b, c FROM customers WHERE a > -100"
    args = ("--query", sql, "--fit-sample", "5000", "--full-fit", "--k", "4")
    local = _run(data_url, *args, "--job", "local-query")
    on_spark = _run(data_url, *args, "--job", "spark-query", *_spark())
    (reason,) = query(data_url, "SELECT k_reason FROM run WHERE run_id = :r", r=on_spark["run_id"])
    assert "exact Lloyd iterations over all rows on Spark" in reason["k_reason"]
    assert (
        adjusted_rand_score(_assignments(data_url, local["run_id"]), _assignments(data_url, on_spark["run_id"]))
        >= 0.999
    )
    local_means = {(row[0], row[2]): row[3] for row in _profile(data_url, local["run_id"])}
    for segment, _, feature, mean in _profile(data_url, on_spark["run_id"]):
        assert mean == pytest.approx(local_means[segment, feature], rel=1e-6, abs=1e-6)


def test_python_api_takes_an_existing_spark_session(spark, data_url):
    spec = build_spec(source="customers", id="id", features=",".join(FEATURES), k=3, job="api", engine="spark")
    engine = db.make_engine(data_url)
    outcome = run_job(engine, spec, spark_session=spark)
    engine.dispose()
    sizes = query(data_url, "SELECT sum(size) AS n, count(*) AS k FROM segment WHERE run_id = :r", r=outcome.run_id)
    assert sizes == [{"n": ROWS, "k": 3}]


def _bad_frames() -> dict[str, pd.DataFrame]:
    good = _groups(3000)
    words = good.assign(b=good["b"].map(repr))  # numbers as text, which prepare parses, but one word
    words.loc[5, "b"] = "lots"
    repeated = good.copy()
    repeated.loc[10:12, "id"] = "c000001"
    return {"words": words, "repeated": repeated, "empty": good.iloc[:0]}


def test_bad_input_exits_as_the_local_engine_does(spark, migrated_pg_url, tmp_path):
    frames = _bad_frames()
    for name, frame in frames.items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    _load(migrated_pg_url, frames["repeated"], "repeated")

    def fails(*args: str) -> tuple[int, str]:
        result = invoke(migrated_pg_url, "run", "--id", "id", *args)
        return result.exit_code, one_error_line(result.stderr)

    code, line = fails("--source", "repeated", "--features", "a,bb", *_spark())
    assert code == 2 and 'column "bb" not found' in line and "columns: id, a, b, c" in line
    parquet = ("--source-format", "parquet", "--source-path")
    code, line = fails("--features", "a,B", *_spark(*parquet, str(tmp_path / "words.parquet")))
    assert code == 2 and 'column "B" not found in parquet' in line and 'did you mean "b"' in line
    code, line = fails("--features", "a,b", *_spark(*parquet, str(tmp_path / "words.parquet")))
    assert code == 3 and '"b"' in line and "lots" in line
    code, line = fails("--features", "a,b", *_spark(*parquet, str(tmp_path / "empty.parquet")))
    assert code == 3
    for source in (("--source", "repeated"), (*parquet, str(tmp_path / "repeated.parquet"))):
        code, line = fails("--features", "a,b", "--job", "dups", *_spark(*source))
        assert code == 3 and '1 id appears more than once (for example "c000001" appears 4 times)' in line
    code, line = fails("--source", "repeated", "--features", "a,b", "--algorithm", "gmm", *_spark())
    assert code == 2 and "--algorithm kmeans" in line
    code, line = fails("--features", "a,b", *_spark("--source-format", "catalog", "--source", "nowhere"))
    assert code == 2 and 'table "nowhere" not found in the Spark catalog' in line
    # The runs that started (the data errors) are failed with nothing of them visible, and no
    # standalone assignment table outlived them.
    runs = query(migrated_pg_url, "SELECT status, count(*) AS n FROM run_summary GROUP BY status")
    assert runs == [{"status": "failed", "n": 4}]
    assert query(migrated_pg_url, "SELECT count(*) AS n FROM assignment") == [{"n": 0}]
    assert query(migrated_pg_url, "SELECT count(*) AS n FROM segment_profile") == [{"n": 0}]
    assert _standalone_tables(migrated_pg_url) == []


def test_sqlite_results_database_is_refused_with_the_reason(spark, tmp_path):
    url = f"sqlite:///{tmp_path / 'segjob.db'}"
    assert invoke(url, "db", "upgrade").exit_code == 0
    path = tmp_path / "c.parquet"
    _groups(2000).to_parquet(path, index=False)
    result = invoke(
        url, "run", "--id", "id", "--features", "a,b", *_spark("--source-format", "parquet", "--source-path", str(path))
    )
    assert result.exit_code == 2
    assert "writes results from its executors into PostgreSQL" in one_error_line(result.stderr)


def test_missing_pyspark_or_java_is_one_clear_line(monkeypatch):
    spec = build_spec(source="customers", id="id", features="a", engine="spark", spark_master="local[1]")
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)  # import fails as if not installed
    with pytest.raises(UsageError, match=r"pip install 'segjob\[spark\]'"):
        spark_engine.session(spec)
    monkeypatch.delitem(sys.modules, "pyspark.sql")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UsageError, match="needs Java 17"):
        spark_engine.session(spec)


def _standalone_tables(url: str) -> list[str]:
    rows = query(
        url,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'segjob' AND c.relname ~ '^assignment_r[0-9]+$' AND NOT c.relispartition",
    )
    return [row["relname"] for row in rows]


def _fail_load_inserts(url: str, times: int) -> None:
    """A real database fault: the first `times` partition commits fail (the sequence is not
    rolled back with them); times=0: every one fails."""
    engine = db.make_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE SEQUENCE public.load_attempts")
        condition = "true" if times == 0 else f"nextval('public.load_attempts') <= {times}"
        connection.exec_driver_sql(
            "CREATE FUNCTION public.fail_load() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF {condition} THEN RAISE EXCEPTION 'disk quota exceeded (injected)'; END IF; RETURN NEW; END $$"
        )
        connection.exec_driver_sql(
            "CREATE TRIGGER fail_load BEFORE INSERT ON segjob.assignment_load"
            " FOR EACH ROW EXECUTE FUNCTION public.fail_load()"
        )
    engine.dispose()


def test_a_task_that_fails_once_is_retried_and_leaves_one_row_per_customer(spark, migrated_pg_url):
    _load(migrated_pg_url, _groups(), "customers")
    _fail_load_inserts(migrated_pg_url, times=1)
    run = _run(migrated_pg_url, "--source", "customers", "--k", "4", *_spark("--spark-write-partitions", "3"))
    counts = query(
        migrated_pg_url,
        "SELECT count(*) AS n, count(DISTINCT customer_key) AS d FROM assignment WHERE run_id = :r",
        r=run["run_id"],
    )
    assert counts == [{"n": ROWS, "d": ROWS}]
    assert query(migrated_pg_url, "SELECT last_value FROM public.load_attempts") == [{"last_value": 4}]  # 3 + 1 retry
    assert query(migrated_pg_url, "SELECT count(*) AS n FROM assignment_load") == [{"n": 0}]


def test_an_attempt_after_a_committed_one_writes_nothing(migrated_pg_url):
    """A retry of a partition that already committed (or a speculative copy) finds it recorded."""
    from segjob.prepare.columns import prepare
    from segjob.results import publish

    _load(migrated_pg_url, _groups(500), "customers")
    engine = db.make_engine(migrated_pg_url)
    spec = build_spec(source="customers", id="id", features=",".join(FEATURES), k=2)
    run_id = publish.start_run(engine, spec)
    frame = _groups(500)
    prepared = prepare(frame, "id", spec.prepare_options())
    with engine.begin() as connection:
        from segjob.store import partitions

        target = partitions.create(connection, run_id)
    task = spark_engine.AssignTask(  # the executor's task, run twice by hand
        conninfo=spark_engine.executor_conninfo(engine, 60),
        run_id=run_id,
        target=target,
        id_column="id",
        features=prepared.features,
        centers=prepared.X[:2].copy(),
        stable_ids=np.array([0, 1, 2]),
        shift=np.zeros(len(FEATURES)),
    )
    first = next(task(iter([frame])))
    second = next(task(iter([frame])))
    assert [bool(first["wrote"][0]), bool(second["wrote"][0])] == [True, False]
    rows = query(migrated_pg_url, f"SELECT count(*) AS n FROM segjob.{target.split('.')[1]}")
    assert rows == [{"n": 500}]
    publish.mark_failed(engine, run_id, "test over")  # and its table goes with it
    assert _standalone_tables(migrated_pg_url) == []
    engine.dispose()


def test_an_executor_database_error_fails_the_run_with_one_line_and_exit_5(spark, migrated_pg_url):
    _load(migrated_pg_url, _groups(), "customers")
    _fail_load_inserts(migrated_pg_url, times=0)
    result = invoke(
        migrated_pg_url, "run", "--source", "customers", "--id", "id", "--features", "a,b,c", "--k", "3", *_spark()
    )
    assert result.exit_code == 5
    line = one_error_line(result.stderr)
    assert "database write failed" in line and "disk quota exceeded (injected)" in line
    failed = query(migrated_pg_url, "SELECT status, error FROM run")
    assert failed[0]["status"] == "failed" and "disk quota exceeded" in failed[0]["error"]
    assert query(migrated_pg_url, "SELECT count(*) AS n FROM assignment") == [{"n": 0}]
    assert _standalone_tables(migrated_pg_url) == []


def _segjob(url: str, *args: str, **options) -> subprocess.Popen:
    return subprocess.Popen(
        [SEGJOB, "run", "--id", "id", "--features", ",".join(FEATURES), *args, "--database-url", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the driver, its JVM and the Python workers: one group to kill
        **options,
    )


def _wait_for(check, timeout: float = 120, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_killed_driver_leaves_nothing_visible_and_the_next_run_cleans_up(migrated_pg_url):
    _load(migrated_pg_url, _groups(300_000), "customers")
    process = _segjob(
        migrated_pg_url,
        "--source",
        "customers",
        "--k",
        "4",
        "--engine",
        "spark",
        "--spark-master",
        "local[2]",
        "--spark-write-partitions",
        "6",
    )
    try:
        _wait_for(
            lambda: (
                query(migrated_pg_url, "SELECT count(*) AS n FROM assignment_load")[0]["n"] >= 1
                or process.poll() is not None
            ),
            what="the first partition's commit",
        )
        assert process.poll() is None, process.communicate()
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    # The dead run still says running (nobody could mark it); nothing of it is published.
    assert query(migrated_pg_url, "SELECT status FROM run_summary") == [{"status": "running"}]
    assert query(migrated_pg_url, "SELECT count(*) AS n FROM assignment") == [{"n": 0}]
    assert query(migrated_pg_url, "SELECT count(*) AS n FROM current_segment") == [{"n": 0}]
    assert len(_standalone_tables(migrated_pg_url)) == 1  # the dead run's, not attached, not readable
    result = invoke(migrated_pg_url, "run", "--source", "customers", "--id", "id", "--features", "a,b,c", "--k", "4")
    assert result.exit_code == 0, result.stderr
    statuses = [row["status"] for row in query(migrated_pg_url, "SELECT status FROM run ORDER BY run_id")]
    assert statuses == ["abandoned", "succeeded"]
    assert _standalone_tables(migrated_pg_url) == []
    assert query(migrated_pg_url, "SELECT count(*) AS n FROM assignment_load") == [{"n": 0}]


def _executor_processes() -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            if b"CoarseGrainedExecutorBackend" in (entry / "cmdline").read_bytes():
                count += 1
        except OSError:
            continue
    return count


def test_executors_in_processes_of_their_own_write_the_same_run(data_url):
    """local-cluster mode: a master, a worker and two executor JVMs apart from the driver, so the
    task, its closure and its database connections cross process boundaries."""
    process = _segjob(
        data_url,
        "--source",
        "customers",
        "--job",
        "cluster",
        "--json",
        "--engine",
        "spark",
        "--spark-master",
        "local-cluster[2,1,1024]",
    )
    seen = 0
    while process.poll() is None:
        seen = max(seen, _executor_processes())
        time.sleep(0.2)
    out, err = process.communicate()
    assert process.returncode == 0, err
    assert seen == 2
    run = json.loads(out)
    local = [row for row in query(data_url, "SELECT run_id FROM run_summary WHERE job = 'local-all'")]
    reference = local[0]["run_id"] if local else _run(data_url, "--source", "customers", "--job", "local-all")["run_id"]
    assert (_assignments(data_url, run["run_id"]) == _assignments(data_url, reference)).all()


def test_null_and_blank_ids_are_counted_as_missing_ids_as_on_the_local_engine(spark, migrated_pg_url, tmp_path):
    """A NULL id matches none of the JDBC read's hash predicates unless one takes it in: the Spark
    run must read, drop and count such rows (and blank ids) exactly as the local engine does."""
    frame = _groups(3000)
    ids = frame["id"].tolist()
    for row in (5, 17, 400, 2999):
        ids[row] = None
    ids[8] = ids[9] = ""
    ids[100] = "   "
    frame["id"] = pd.Series(ids, dtype=object)
    _load(migrated_pg_url, frame, "customers")
    path = tmp_path / "customers.parquet"
    frame.to_parquet(path, index=False)
    args = ("--k", "4")
    local = _run(migrated_pg_url, "--source", "customers", "--job", "local-ids", *args)
    runs = {
        "jdbc": _run(
            migrated_pg_url,
            "--source",
            "customers",
            "--job",
            "jdbc-ids",
            *_spark("--spark-write-partitions", "3"),
            *args,
        ),
        "parquet": _run(
            migrated_pg_url, *_spark("--source-format", "parquet", "--source-path", str(path), "--job", "pq-ids"), *args
        ),
    }
    counts = "SELECT rows_read, rows_used, rows_dropped, dropped_by_reason FROM run WHERE run_id = :r"
    expected = [{"rows_read": 3000, "rows_used": 2993, "rows_dropped": 7, "dropped_by_reason": {"missing_id": 7}}]
    assert query(migrated_pg_url, counts, r=local["run_id"]) == expected
    local_assignments = _assignments(migrated_pg_url, local["run_id"])
    for name, run in runs.items():
        assert query(migrated_pg_url, counts, r=run["run_id"]) == expected, name
        assert (_assignments(migrated_pg_url, run["run_id"]) == local_assignments).all(), name


def test_the_jdbc_read_keeps_the_url_settings_and_its_sessions_are_read_only(spark, migrated_pg_url):
    """What the server says the JDBC read's connections got: the URL's own options next to
    segjob's read-only default and statement timeout; a write from inside the read fails."""
    engine = db.make_engine(migrated_pg_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE SCHEMA elsewhere")
        connection.exec_driver_sql("CREATE TABLE elsewhere.scribbles (x int)")
        connection.exec_driver_sql(
            "CREATE FUNCTION elsewhere.scribble() RETURNS int LANGUAGE sql"
            " AS 'INSERT INTO elsewhere.scribbles VALUES (1) RETURNING x'"
        )
    engine.dispose()
    options = quote("-c work_mem=12MB -c search_path=elsewhere,public", safe="")
    engine = db.make_engine(f"{migrated_pg_url}?options={options}")
    spec = build_spec(source="customers", id="id", features="a", engine="spark", statement_timeout=7)

    def read(table: str, url: sa.Engine = engine) -> list:
        return spark.read.jdbc(
            spark_engine.jdbc_url(url), table, properties=spark_engine.jdbc_properties(url, spec)
        ).collect()

    names = ("work_mem", "search_path", "statement_timeout", "default_transaction_read_only", "transaction_read_only")
    shown = ", ".join(f"current_setting('{name}') AS {name}" for name in names)
    (settings,) = read(f"(SELECT {shown}) AS s")
    assert settings.asDict() == {
        "work_mem": "12MB",
        "search_path": "elsewhere,public",
        "statement_timeout": "7s",
        "default_transaction_read_only": "on",
        "transaction_read_only": "on",
    }
    with pytest.raises(Exception, match="cannot execute INSERT in a read-only transaction"):
        read("(SELECT scribble() AS x) AS s")  # found through the URL's search_path
    assert query(migrated_pg_url, "SELECT count(*) AS n FROM elsewhere.scribbles") == [{"n": 0}]
    # sslmode travels too: this server has no TLS, so a URL that requires it cannot read.
    strict = db.make_engine(f"{migrated_pg_url}?sslmode=require")
    spark.conf.set("spark.sql.pyspark.jvmStacktrace.enabled", "true")  # the driver's reason is a cause
    try:
        with pytest.raises(Exception, match="The server does not support SSL"):
            read("(SELECT 1 AS x) AS s", strict)
    finally:
        spark.conf.unset("spark.sql.pyspark.jvmStacktrace.enabled")
    engine.dispose()
    strict.dispose()


def test_spark_sends_no_text_of_the_query_but_what_the_driver_checked(spark, data_url):
    """Every statement the JDBC read runs (the query sees its own text in current_query()) is
    segjob's fixed SQL around the FROM clause that tables.describe_source checked, once."""
    sql = "SELECT id, a, current_query() AS q FROM customers /* ; */ WHERE a > -100 -- )"
    spec = build_spec(
        query=sql, id="id", features="a", categorical="q", job="texts", engine="spark", spark_write_partitions=2
    )
    engine = db.make_engine(data_url)
    source = spark_engine.describe(engine, spec, spark)
    assert source.database is not None
    checked = source.database.from_clause
    assert sql in checked
    sent = {row["q"] for row in source.frame.select("q").distinct().collect()}
    table = spark_engine.jdbc_table(engine, spec, source.database)
    assert table.count(checked) == 1
    # Spark reads only the column asked for; the layout around the WHERE is Spark's own.
    prefix = f'SELECT "q" FROM {table}'
    assert all(text.startswith(prefix) for text in sent), sent
    assert {text.removeprefix(prefix).strip() for text in sent} == {
        f"WHERE {p}" for p in spark_engine.jdbc_predicates(spec, 2)
    }
    engine.dispose()


def test_a_query_that_stacks_statements_is_refused_before_spark_reads_it(spark, migrated_pg_url):
    engine = db.make_engine(migrated_pg_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE public.canary (x int)")
    engine.dispose()
    stacked = (
        "SELECT '1' AS id, 1.0 AS a) s; COMMIT; DROP TABLE public.canary; SELECT * FROM (SELECT '1' AS id, 1.0 AS a"
    )
    result = invoke(
        migrated_pg_url, "run", "--query", stacked, "--id", "id", "--features", "a", "--job", "x", *_spark()
    )
    assert result.exit_code == 2, result.stderr
    assert "one SELECT statement" in one_error_line(result.stderr)
    assert query(migrated_pg_url, "SELECT count(*) AS n FROM public.canary") == [{"n": 0}]
