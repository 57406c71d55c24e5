"""Real databases for the tests: an SQLite file per test and a fresh PostgreSQL database per test.

PostgreSQL comes from SEGJOB_TEST_PG_URL (default: the local server, database `test`). A server
that cannot be reached fails the tests; it is never skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("SEGJOB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(autouse=True)
def _processes_only_in_slow_tests(request, monkeypatch):
    """`make test-fast` (-m "not slow") is the subset that starts no segjob or Python process: a
    test that starts one (the installed `segjob`, a probe interpreter) fails here unless it is
    marked slow. Other programs pass (joblib reads /proc/cpuinfo with `cat` once, for example)."""
    if request.node.get_closest_marker("slow"):
        return
    start = subprocess.Popen.__init__
    venv_bin = Path(sys.executable).parent

    def refuse_ours(self, args, *rest, **options):
        program = Path(str(args[0] if isinstance(args, list | tuple) else str(args).split()[0]))
        if program.name.startswith("python") or program.name == "segjob" or program.parent == venv_bin:
            raise AssertionError(f"{request.node.nodeid} starts {program.name}: mark it @pytest.mark.slow")
        start(self, args, *rest, **options)

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse_ours)


@pytest.fixture(scope="session")
def pg_admin_engine():
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for the tests and is not reachable at {PG_ADMIN_URL}: {exc}")
    yield engine
    engine.dispose()


def _pg_database_url(name: str) -> str:
    return sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _create_pg_database(admin, name: str, template: str | None = None) -> str:
    with admin.connect() as conn:
        template_clause = f" TEMPLATE {template}" if template else ""
        conn.execute(sa.text(f"CREATE DATABASE {name}{template_clause}"))
    return _pg_database_url(name)


def _drop_pg_database(admin, name: str) -> None:
    sa.create_engine(_pg_database_url(name)).dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="session")
def pg_template(pg_admin_engine):
    """A PostgreSQL database migrated to head once per session; tests get copies of it."""
    from segjob.store import migrate

    name = f"segjob_tpl_{uuid.uuid4().hex[:10]}"
    url = _create_pg_database(pg_admin_engine, name)
    migrate.upgrade(url)
    sa.create_engine(url).dispose()
    yield name
    _drop_pg_database(pg_admin_engine, name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    from segjob.store import migrate

    path = tmp_path_factory.mktemp("template") / "segjob.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def pg_url(pg_admin_engine):
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    name = f"segjob_t_{uuid.uuid4().hex[:12]}"
    url = _create_pg_database(pg_admin_engine, name)
    yield url
    _drop_pg_database(pg_admin_engine, name)


@pytest.fixture
def migrated_pg_url(pg_admin_engine, pg_template):
    name = f"segjob_t_{uuid.uuid4().hex[:12]}"
    url = _create_pg_database(pg_admin_engine, name, template=pg_template)
    yield url
    _drop_pg_database(pg_admin_engine, name)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'segjob.db'}"


@pytest.fixture(params=BACKENDS)
def db_url(request) -> str:
    """An empty database of each backend."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture(params=BACKENDS)
def migrated_db_url(request, tmp_path) -> str:
    """A database of each backend with segjob's schema at head."""
    if request.param == "postgresql":
        return request.getfixturevalue("migrated_pg_url")
    path = tmp_path / "segjob.db"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def mall_url(migrated_db_url) -> str:
    """A database of each backend at head with the Mall customers loaded as table `mall`."""
    from helpers import load_mall

    load_mall(migrated_db_url)
    return migrated_db_url


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Real public customer datasets copied from shared/data (see tests/data/README.md)."""
    return Path(__file__).resolve().parent / "data"
