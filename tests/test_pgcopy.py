"""Binary COPY encoding round-trips through a real PostgreSQL server."""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from segjob.store.pgcopy import HEADER, TRAILER, encode_rows

PG_TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40)


def _round_trip(url: str, keys, values: list[float]) -> list[tuple]:
    with psycopg.connect(sa.make_url(url).set(drivername="postgresql").render_as_string(False)) as conn:
        conn.execute("CREATE TEMP TABLE t (position int4, key text, value float8, big int8)")
        n = len(keys)
        payload = encode_rows(
            [
                ("int4", np.arange(n)),
                ("text", keys if isinstance(keys, pd.api.extensions.ExtensionArray) else np.array(keys, dtype=object)),
                ("float8", np.array(values, dtype=np.float64)),
                ("int8", np.arange(n, dtype=np.int64) * 3_000_000_000),
            ]
        )
        with conn.cursor() as cursor, cursor.copy("COPY t FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(HEADER)
            copy.write(payload)
            copy.write(TRAILER)
        return conn.execute("SELECT key, value, big FROM t ORDER BY position").fetchall()


def test_round_trip_of_mixed_lengths_unicode_and_nan(pg_url):
    keys = ["7590-VHVEG", "1", "", "ünïcödé-ключ-顧客", "x" * 5000, "0042", "1"]
    values = [0.5, float("nan"), -1e300, 2.0, 1e-300, 0.0, float("inf")]
    rows = _round_trip(pg_url, keys, values)
    assert [row[0] for row in rows] == keys
    assert np.array_equal(np.array([row[1] for row in rows]), np.array(values), equal_nan=True)
    assert [row[2] for row in rows] == [i * 3_000_000_000 for i in range(len(keys))]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(PG_TEXT, st.floats(allow_nan=True, allow_infinity=True)), min_size=1, max_size=60))
def test_round_trip_of_generated_rows(pg_admin_engine, rows):
    url = pg_admin_engine.url.render_as_string(hide_password=False)
    keys, values = [key for key, _ in rows], [value for _, value in rows]
    back = _round_trip(url, keys, values)
    assert [row[0] for row in back] == keys
    assert np.array_equal(np.array([row[1] for row in back]), np.array(values), equal_nan=True)


@settings(max_examples=25, deadline=None)
@given(st.lists(PG_TEXT, min_size=2, max_size=40), st.booleans())
def test_round_trip_of_arrow_backed_keys(pg_admin_engine, keys, one_length):
    # The reader's ids: Arrow-backed and a slice of a bigger batch; one length takes the fast path.
    if one_length:
        keys = [key.ljust(40, "x") for key in keys]
    arrow_keys = pd.array(["skipped", *keys], dtype="string[pyarrow]")[1:]
    url = pg_admin_engine.url.render_as_string(hide_password=False)
    back = _round_trip(url, arrow_keys, [0.5] * len(keys))
    assert [row[0] for row in back] == keys
