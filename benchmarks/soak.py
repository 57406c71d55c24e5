"""Soak test: rounds of concurrent segjob work under faults, with invariants checked after each round.

    .venv/bin/python benchmarks/soak.py [--rounds 200] [--seed 1] [--customers 2000]
        [--restart-every 5] [--pg-bin /usr/lib/postgresql/15/bin] [--log /tmp/soak.log]

Each round starts, at staggered moments, a run (fit; sometimes a candidate, sometimes a score run)
of each of three jobs, a `segjob prune` of one of them and a promote or rollback of one of them,
while dashboard threads read the BI views: short queries, timed, and now and then a long one that
holds its locks for a few seconds. One segjob process is SIGKILLed at a random moment, and every
--restart-every rounds PostgreSQL itself is restarted (fast or immediate shutdown, alternately)
at a random moment. Then one more `segjob prune`, with no fault, finishes what the faults left
(as the next prune or run would), and the checker looks at the database:

- each job that has a current run has exactly one, a succeeded run, and current_segment holds
  exactly its rows, one per customer (as many as the run used); a job without one shows nothing;
- no run is still `running` once a later run of its job exists;
- every assignment table is an attached partition (not detach pending) of a succeeded run, and
  every succeeded run has one: nothing standalone, detached or orphaned is left;
- the history views agree with `promotion`: the rows of customer_segment_history with valid_to
  IS NULL are exactly current_segment's rows;
- what the dashboards saw while it all happened: per job at most one current run, and each run
  whole (as many rows as customers), in current_segment and in the history views;
- every process ended with a documented exit code and, when it failed, one "Error: ..." line.

The last line is the totals: rounds, kills, restarts, invariant violations (must be 0), the worst
wait of a short dashboard query. Exit status 0 when there were no violations.

PostgreSQL runs as a private cluster (initdb in a temporary folder, a free port), so restarting it
disturbs nobody else; as root, the cluster runs as the `postgres` user. segjob processes are
forked from a server that imported segjob once (multiprocessing's forkserver), so the machine's
cores go to segjob's work rather than to importing scikit-learn in every process; each one is a
process of its own running `segjob.cli.app.main` with its own connections, killed with SIGKILL.
`tests/test_soak.py` runs a short version in CI; the long one is run by hand (docs/readers.md).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

JOBS = ("alpha", "beta", "gamma")
FEATURES = "a,b,c"
# Cheap fits: the soak is about concurrency and faults, not about choosing k.
RUN_OPTIONS = ("--k", "4", "--silhouette-sample", "500", "--stability-sample", "500", "--quiet")
EXPECTED_EXITS = {0, 2, 4}  # success, a usage error a race can cause (e.g. promote a pruned run), job busy
EXPECTED_EXITS_RESTART = EXPECTED_EXITS | {5}  # and "lost the connection" while PostgreSQL restarts
OP_TIMEOUT = 240.0
PRELOAD = [
    "segjob.cli.app",
    "segjob.pipeline",
    "segjob.results.retention",
    "segjob.results.promotion",
    "segjob.scoring.score",
    "segjob.store.migrate",
    "sklearn.cluster",
    "sklearn.metrics",
    "pandas",
]


# --- a private PostgreSQL cluster -----------------------------------------------------------


class Cluster:
    """A throwaway PostgreSQL cluster this script may restart at will."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="segjob-soak-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = _free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        settings = {
            "port": self.port,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",  # an immediate shutdown is a crash of PostgreSQL, not of the machine
            "max_connections": 100,
            # Every lock wait over 100 ms goes to the server log, which the totals count.
            "log_lock_waits": "on",
            "deadlock_timeout": "'100ms'",
        }
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "start")
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute("CREATE DATABASE soak")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/soak"

    def _run(self, program: str, *args: str) -> None:
        command = [*self.as_postgres, str(self.bindir / program), *args]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)

    def lock_waits(self) -> Counter:
        """Lock waits over 100 ms that the server logged, by lock mode and what was waited for
        ("AccessShareLock on relation": a reader; "ShareLock on virtual transaction": DETACH
        CONCURRENTLY waiting for older queries)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        found = re.findall(r"still waiting for (\w+) on (relation|virtual transaction|transaction|\w+)", text)
        return Counter(f"{mode} on {what}" for mode, what in found)

    def restart(self, mode: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-m", mode, "-w", "restart")

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pg_bindir(given: str | None) -> Path:
    if given:
        return Path(given)
    found = shutil.which("pg_config")
    if found:
        return Path(subprocess.run([found, "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not versions:
        sys.exit("no PostgreSQL server programs found; give --pg-bin")
    return versions[-1]


# --- segjob processes ---------------------------------------------------------------------


def _segjob_main(argv: list[str], stdout: str, stderr: str) -> None:
    """The body of a segjob process: `segjob ARGV` with its output in two files."""
    for fd, path in ((1, stdout), (2, stderr)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(handle, fd)
        os.close(handle)
    sys.argv = ["segjob", *argv]
    from segjob.cli.app import main

    main()


@dataclass
class Op:
    """One segjob process of a round."""

    name: str
    argv: list[str]
    process: multiprocessing.process.BaseProcess | None = None
    started: float = 0.0
    killed: bool = False
    exitcode: int | None = None  # None: it hung and was killed
    stderr: str = ""
    paths: tuple[Path, Path] | None = None  # its stdout and stderr files


class Launcher:
    def __init__(self, url: str, folder: Path) -> None:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before the server forks: 2 cores, many processes
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        self.context = multiprocessing.get_context("forkserver")
        # "__main__": this script, when run as one, so the server can find _segjob_main in it.
        self.context.set_forkserver_preload(["__main__", *PRELOAD])
        self.url, self.folder = url, folder
        self.count = 0

    def start(self, op: Op) -> None:
        self.count += 1
        out, err = op.paths = self.folder / f"{self.count}.out", self.folder / f"{self.count}.err"
        op.process = self.context.Process(
            target=_segjob_main, args=([*op.argv, "--database-url", self.url], str(out), str(err)), daemon=True
        )
        op.started = time.monotonic()
        op.process.start()

    def finish(self, op: Op) -> None:
        assert op.process is not None
        op.process.join(max(0.0, OP_TIMEOUT - (time.monotonic() - op.started)))
        if op.process.is_alive():
            op.process.kill()
            op.process.join()
            op.exitcode = None  # hung
        else:
            op.exitcode = op.process.exitcode
        assert op.paths is not None
        out, err = op.paths
        op.stderr = err.read_text(errors="replace") if err.exists() else ""
        for path in (out, err):
            path.unlink(missing_ok=True)


# --- dashboards -----------------------------------------------------------------------------

SHORT_QUERIES = (
    # (what, SQL): each returns (job, run_id, rows, customers) per run it shows as current.
    (
        "current_segment",
        "SELECT cs.job, cs.run_id, COUNT(*), COUNT(DISTINCT cs.customer_key)"
        " FROM segjob.current_segment AS cs GROUP BY cs.job, cs.run_id",
    ),
    (
        "customer_segment_history",
        "SELECT h.job, h.run_id, COUNT(*), COUNT(DISTINCT h.customer_key)"
        " FROM segjob.customer_segment_history AS h WHERE h.valid_to IS NULL GROUP BY h.job, h.run_id",
    ),
    (
        "segment_profile",
        "SELECT sp.job, sp.run_id, SUM(sp.size), SUM(sp.size) FROM segjob.segment_profile AS sp"
        " WHERE sp.feature = 'a' AND sp.run_id IN (SELECT run_id FROM segjob.current_segment)"
        " GROUP BY sp.job, sp.run_id",
    ),
)
# The long dashboard query: one transaction that reads these and keeps their locks while it sleeps
# (a pg_sleep inside the query itself may be run once per row, depending on the plan).
LONG_QUERY = (
    "SELECT COUNT(*) FROM segjob.segment_migration",
    "SELECT COUNT(*) FROM segjob.customer_segment_history",
    SHORT_QUERIES[0][1],
)
# A dashboard's own limit: no reader holds its locks for long whatever the plan.
READER_OPTIONS = "-c statement_timeout=30000"


class Dashboards:
    """Reader threads: short queries back to back (timed) and a long one every few seconds; each
    checks what it saw. Errors while PostgreSQL restarts are expected; others are violations."""

    def __init__(self, url: str, customers: int, rng: random.Random) -> None:
        self.url, self.customers = url, customers
        self.rng = random.Random(rng.random())
        self.stop = threading.Event()
        self.restarting = threading.Event()
        self.restarts = 0
        self.lock = threading.Lock()
        self.violations: list[str] = []
        self.waits: dict[str, list[float]] = {}  # seconds of every short query outside restarts, by view
        self.long_queries = 0
        self.threads = [
            threading.Thread(target=self._loop, args=(self._short,), daemon=True),
            threading.Thread(target=self._loop, args=(self._long,), daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def take_violations(self) -> list[str]:
        with self.lock:
            found, self.violations = self.violations, []
        return found

    def _loop(self, body) -> None:
        while not self.stop.is_set():
            restarts = self.restarts
            try:
                options = {"autocommit": True, "connect_timeout": 5, "options": READER_OPTIONS}
                with psycopg.connect(self.url, **options) as connection:
                    while not self.stop.is_set():
                        body(connection)
            except psycopg.Error as exc:
                # A connection made before a restart learns of it at its next query, maybe later.
                if not self.restarting.is_set() and restarts == self.restarts:
                    self._violation(f"dashboard query failed outside a restart: {str(exc).strip().splitlines()[0]}")
                time.sleep(0.2)

    def _short(self, connection: psycopg.Connection) -> None:
        for what, sql in SHORT_QUERIES:
            started = time.perf_counter()
            rows = connection.execute(sql).fetchall()
            seconds = time.perf_counter() - started
            if not self.restarting.is_set():  # a restart's cold caches are not a wait for segjob
                with self.lock:
                    self.waits.setdefault(what, []).append(seconds)
            self._check(what, rows)
        time.sleep(0.05)

    def _long(self, connection: psycopg.Connection) -> None:
        time.sleep(self.rng.uniform(1, 4))
        with connection.transaction():
            for sql in LONG_QUERY:
                rows = connection.execute(sql).fetchall()
            connection.execute("SELECT pg_sleep(%s)", (self.rng.uniform(1, 4),))
        with self.lock:
            self.long_queries += 1
        self._check("long query on current_segment", rows)

    def _check(self, what: str, rows: list[tuple]) -> None:
        jobs = Counter(job for job, *_ in rows)
        for job, count in jobs.items():
            if count > 1:
                self._violation(f"{what} showed {count} runs of job {job} at once: {sorted(rows)}")
        for job, run_id, shown, customers in rows:
            if not shown == customers == self.customers:
                self._violation(f"{what} showed part of run {run_id} of {job}: {shown} rows, {customers} customers")

    def _violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)


# --- rounds ---------------------------------------------------------------------------------


@dataclass
class Totals:
    rounds: int = 0
    kills: int = 0
    restarts: int = 0
    violations: list[str] = field(default_factory=list)
    worst_reader_wait: float = 0.0
    p99_reader_wait: float = 0.0
    by_view: dict[str, tuple[float, float]] = field(default_factory=dict)  # view: (99th percentile, worst)
    reader_queries: int = 0
    promotions: int = 0  # rows of `promotion` at the end (history views: a row per customer and promotion)
    long_queries: int = 0
    leftovers: int = 0  # assignment tables a killed prune (or run) left for the next prune to finish
    lock_waits: Counter = field(default_factory=Counter)  # waits over 100 ms the server logged, by lock mode
    exits: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def details(self) -> str:
        """Per view: the 99th percentile and the worst time of the dashboards' short queries."""
        views = "; ".join(f"{view} {p99:.3f} / {worst:.3f} s" for view, (p99, worst) in sorted(self.by_view.items()))
        return f"dashboard queries by view (99th percentile / worst): {views}; {self.promotions} promotions at the end"

    def line(self) -> str:
        exits = ", ".join(f"{code}: {count}" for code, count in sorted(self.exits.items(), key=str))
        return (
            f"soak: {self.rounds} rounds, {self.kills} kills, {self.restarts} restarts,"
            f" {len(self.violations)} invariant violations, worst reader wait {self.worst_reader_wait:.3f} s"
            f" (99th percentile {self.p99_reader_wait:.3f} s over {self.reader_queries} dashboard queries,"
            f" {self.long_queries} long ones; {self.leftovers} half-pruned tables finished by the next prune;"
            f" lock waits over 100 ms: {dict(self.lock_waits) or 'none'}; segjob exit codes {exits};"
            f" {self.seconds:.0f} s)"
        )


class Soak:
    def __init__(self, cluster: Cluster, customers: int, rng: random.Random, folder: Path, log) -> None:
        self.cluster, self.customers, self.rng, self.log = cluster, customers, rng, log
        self.url = cluster.url
        self.launcher = Launcher(cluster.url.replace("postgresql://", "postgresql+psycopg://"), folder)
        self.totals = Totals()
        self.restart_mode = "fast"

    def setup(self) -> None:
        from segjob.store import migrate

        migrate.upgrade(self.url)
        with psycopg.connect(self.url, autocommit=True) as connection:
            for number, job in enumerate(JOBS):
                connection.execute(
                    f"CREATE TABLE customers_{job} AS SELECT 'c' || g AS id,"
                    f" random() * 100 AS a, random() * 10 AS b, mod(g, {37 + number})::float8 AS c"
                    f" FROM generate_series(1, {int(self.customers)}) AS g"
                )

    def round(self, number: int, restart: bool) -> list[str]:
        ops = self._plan()
        starts = {id(op): self.rng.uniform(0, 1.5) for op in ops}
        victim = self.rng.choice(ops)
        # Within a short operation's life on an idle machine (about 0.3-2 s with 1,000 customers):
        # later moments found every victim of the test's three rounds already ended.
        kill_at = starts[id(victim)] + self.rng.uniform(0.1, 1.5)
        restart_at = self.rng.uniform(0.5, 5.0) if restart else None
        began = time.monotonic()
        waiting = sorted(ops, key=lambda op: starts[id(op)])
        kill_done = restarted = False
        while True:
            now = time.monotonic() - began
            while waiting and starts[id(waiting[0])] <= now:
                self.launcher.start(waiting.pop(0))
            if not kill_done and now >= kill_at:
                kill_done = True
                assert victim.process is not None
                if victim.process.is_alive():
                    victim.process.kill()
                    victim.killed = True
            if restart_at is not None and not restarted and now >= restart_at:
                restarted = True
                self._restart()
            all_ended = not waiting and all(op.process is not None and not op.process.is_alive() for op in ops)
            if all_ended and (restart_at is None or restarted):
                break  # the victim may have ended before its moment came: then nothing is killed
            time.sleep(0.02)
        for op in ops:
            self.launcher.finish(op)
        self.totals.kills += victim.killed
        violations = self._check_exits(ops, restarted)
        self.totals.leftovers += count_leftovers(self.url)
        violations += self._settle()
        violations += check_invariants(self.url, self.customers)
        summary = " ".join(f"{op.name}={'killed' if op.killed else op.exitcode}" for op in ops)
        took = time.monotonic() - began
        print(f"round {number} ({took:.0f} s): {summary}{' + restart' if restarted else ''}", file=self.log, flush=True)
        return violations

    def _settle(self) -> list[str]:
        """The next prune, with no fault: it finishes whatever a killed prune left."""
        with psycopg.connect(self.url, autocommit=True) as connection:
            job = connection.execute("SELECT job FROM segjob.run ORDER BY run_id LIMIT 1").fetchone()
        if job is None:
            return []
        settle = Op("settle prune", ["prune", "--job", job[0], "--keep", "1000", "--lock-wait", "60"])
        self.launcher.start(settle)
        self.launcher.finish(settle)
        if settle.exitcode != 0:
            return [f"the prune after the round failed: exit {settle.exitcode}: {settle.stderr.strip()}"]
        return []

    def _plan(self) -> list[Op]:
        ops = []
        with psycopg.connect(self.url, autocommit=True) as connection:
            succeeded = connection.execute(
                "SELECT job, run_id FROM segjob.run WHERE status = 'succeeded' ORDER BY run_id"
            ).fetchall()
            current = dict(
                connection.execute("SELECT job, run_id FROM segjob.current_segment GROUP BY 1, 2").fetchall()
            )
        for job in JOBS:
            kind = self.rng.random()
            source = ["--source", f"customers_{job}"]
            if kind < 0.2 and job in current:
                ops.append(Op(f"score:{job}", ["score", "--job", job, *source, "--quiet"]))
            else:
                candidate = ["--candidate"] if kind > 0.8 else []
                seed = ["--seed", str(self.rng.randrange(1000))]
                argv = ["run", *source, "--id", "id", "--features", FEATURES, "--job", job, *RUN_OPTIONS, *seed]
                ops.append(Op(f"run{'(candidate)' if candidate else ''}:{job}", argv + candidate))
        job = self.rng.choice(JOBS)
        ops.append(
            Op(f"prune:{job}", ["prune", "--job", job, "--keep", str(self.rng.randint(1, 3)), "--lock-wait", "30"])
        )
        job = self.rng.choice(JOBS)
        runs = [run_id for owner, run_id in succeeded if owner == job]
        if runs and self.rng.random() < 0.5:
            ops.append(Op(f"promote:{job}", ["promote", str(self.rng.choice(runs))]))
        else:
            ops.append(Op(f"rollback:{job}", ["promote", "--job", job, "--previous"]))
        return ops

    def _restart(self) -> None:
        self.dashboards.restarting.set()
        self.dashboards.restarts += 1
        self.cluster.restart(self.restart_mode)
        self.restart_mode = "immediate" if self.restart_mode == "fast" else "fast"
        self.totals.restarts += 1
        threading.Timer(3.0, self.dashboards.restarting.clear).start()  # readers reconnect meanwhile

    def _check_exits(self, ops: list[Op], restarted: bool) -> list[str]:
        expected = EXPECTED_EXITS_RESTART if restarted else EXPECTED_EXITS
        found = []
        for op in ops:
            self.totals.exits["killed" if op.killed else str(op.exitcode)] += 1
            if op.killed:
                continue
            if op.exitcode is None:
                found.append(f"{op.name} did not finish within {OP_TIMEOUT:.0f} s")
            elif op.exitcode not in expected:
                found.append(f"{op.name} exited {op.exitcode}: {op.stderr.strip()[-400:]}")
            elif op.exitcode != 0 and not _one_error_line(op.stderr):
                found.append(f"{op.name} exited {op.exitcode} without one Error line: {op.stderr.strip()[-400:]}")
        return found

    def run(self, rounds: int, restart_every: int) -> Totals:
        started = time.monotonic()
        self.dashboards = Dashboards(self.url, self.customers, self.rng)
        self.dashboards.start()
        try:
            for number in range(1, rounds + 1):
                restart = restart_every > 0 and number % restart_every == 0
                found = self.round(number, restart) + self.dashboards.take_violations()
                for text in found:
                    print(f"round {number}: VIOLATION {text}", file=self.log, flush=True)
                self.totals.violations += [f"round {number}: {text}" for text in found]
                self.totals.rounds = number
        finally:
            self.dashboards.close()
        self.totals.violations += self.dashboards.take_violations()
        waits = sorted(seconds for view in self.dashboards.waits.values() for seconds in view) or [0.0]
        self.totals.worst_reader_wait, self.totals.p99_reader_wait = waits[-1], _p99(waits)
        self.totals.reader_queries = len(waits)
        for view, seconds in self.dashboards.waits.items():
            self.totals.by_view[view] = (_p99(sorted(seconds)), max(seconds))
        with psycopg.connect(self.url, autocommit=True) as connection:
            self.totals.promotions = connection.execute("SELECT COUNT(*) FROM segjob.promotion").fetchone()[0]
        self.totals.long_queries = self.dashboards.long_queries
        self.totals.seconds = time.monotonic() - started
        return self.totals


def _p99(ordered: list[float]) -> float:
    return ordered[int(0.99 * (len(ordered) - 1))]


def _one_error_line(stderr: str) -> bool:
    lines = stderr.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("Error: ")


# --- the invariant checker ------------------------------------------------------------------


def count_leftovers(url: str) -> int:
    """Assignment tables that are not an attached partition of an existing run: detach pending,
    standalone, or attached for a run a prune deleted."""
    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute(
            "SELECT COUNT(*) FROM pg_class AS c"
            " JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = 'segjob'"
            " LEFT JOIN pg_inherits AS i ON i.inhrelid = c.oid"
            " WHERE c.relkind = 'r' AND c.relname ~ '^assignment_r[0-9]+$'"
            " AND (i.inhrelid IS NULL OR i.inhdetachpending"
            " OR NOT EXISTS (SELECT 1 FROM segjob.run AS r WHERE r.run_id = substr(c.relname, 13)::integer))"
        ).fetchone()[0]


def check_invariants(url: str, customers: int) -> list[str]:
    """What must hold once a round's processes have ended and the next prune has run."""
    found = []
    with psycopg.connect(url, autocommit=True) as connection:

        def rows(sql: str) -> list[tuple]:
            return connection.execute(sql).fetchall()

        current = dict(
            rows(
                "SELECT DISTINCT ON (p.job) p.job, p.run_id FROM segjob.promotion AS p"
                " ORDER BY p.job, p.promotion_id DESC"
            )
        )
        status = dict(rows("SELECT run_id, status FROM segjob.run"))
        shown = rows(
            "SELECT job, run_id, COUNT(*), COUNT(DISTINCT customer_key) FROM segjob.current_segment GROUP BY 1, 2"
        )
        for job in JOBS:
            mine = [row for row in shown if row[0] == job]
            if job not in current:
                if mine:
                    found.append(f"job {job} has no current run but current_segment shows {mine}")
                continue
            run_id = current[job]
            if status.get(run_id) != "succeeded":
                found.append(f"job {job}'s current run {run_id} is {status.get(run_id, 'gone')}")
            if mine != [(job, run_id, customers, customers)]:
                found.append(f"current_segment for {job} should be run {run_id} x {customers} customers: {mine}")
        stuck = rows(
            "SELECT r.run_id, r.job FROM segjob.run AS r WHERE r.status = 'running'"
            " AND EXISTS (SELECT 1 FROM segjob.run AS later WHERE later.job = r.job AND later.run_id > r.run_id)"
        )
        found += [f"run {run_id} of {job} is still running after a later run of its job" for run_id, job in stuck]
        tables = rows(
            "SELECT substr(c.relname, 13)::integer, c.relispartition, COALESCE(i.inhdetachpending, false)"
            " FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = 'segjob'"
            " LEFT JOIN pg_inherits AS i ON i.inhrelid = c.oid"
            " WHERE c.relkind = 'r' AND c.relname ~ '^assignment_r[0-9]+$'"
        )
        with_partition = set()
        for run_id, attached, pending in tables:
            if not attached or pending:
                found.append(f"assignment_r{run_id} is left {'detach pending' if pending else 'standalone'}")
            elif status.get(run_id) != "succeeded":
                found.append(f"assignment_r{run_id} is attached but its run is {status.get(run_id, 'gone')}")
            with_partition.add(run_id)
        bare = [run_id for run_id, state in status.items() if state == "succeeded" and run_id not in with_partition]
        if bare:
            found.append(f"succeeded runs without assignments: {bare}")
        disagree = rows(
            "(SELECT job, customer_key, run_id, segment_id FROM segjob.customer_segment_history WHERE valid_to IS NULL"
            " EXCEPT ALL SELECT job, customer_key, run_id, segment_id FROM segjob.current_segment)"
            " UNION ALL (SELECT job, customer_key, run_id, segment_id FROM segjob.current_segment"
            " EXCEPT ALL SELECT job, customer_key, run_id, segment_id FROM segjob.customer_segment_history"
            " WHERE valid_to IS NULL) LIMIT 5"
        )
        if disagree:
            found.append(f"customer_segment_history (valid_to IS NULL) and current_segment differ, e.g. {disagree}")
    return found


# --- main -----------------------------------------------------------------------------------


def soak(
    rounds: int, seed: int = 1, customers: int = 2000, restart_every: int = 5, pg_bin: str | None = None, log=None
) -> Totals:
    """Run the soak on a private PostgreSQL cluster; returns the totals."""
    rng = random.Random(seed)
    cluster = Cluster(pg_bindir(pg_bin))
    folder = Path(tempfile.mkdtemp(prefix="segjob-soak-out-"))
    try:
        run = Soak(cluster, customers, rng, folder, log or sys.stdout)
        run.setup()
        totals = run.run(rounds, restart_every)
        totals.lock_waits = cluster.lock_waits()
        return totals
    finally:
        cluster.close()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--customers", type=int, default=2000, help="customers per job")
    parser.add_argument("--restart-every", type=int, default=5, help="restart PostgreSQL every N rounds (0: never)")
    parser.add_argument("--pg-bin", help="PostgreSQL's server programs (default: pg_config --bindir)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up the cluster on kill
    totals = soak(args.rounds, args.seed, args.customers, args.restart_every, args.pg_bin)
    for text in totals.violations:
        print(f"VIOLATION {text}")
    print(totals.details())
    print(totals.line())
    sys.exit(1 if totals.violations else 0)


if __name__ == "__main__":
    main()
