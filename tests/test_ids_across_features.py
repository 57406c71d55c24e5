"""Segment ids across a change of features (issue 26): a group of customers that is the same in
both runs keeps its id even when the runs share no feature space, and drift is measured on the
customers, so an unchanged segmentation reports nothing changed."""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from helpers import query, run_json

CENTRES = [(0.0, 0.0, 5.0), (10.0, 0.0, -5.0), (0.0, 10.0, 0.0), (10.0, 10.0, 10.0)]


def _blobs(url: str) -> None:
    random = np.random.default_rng(7)
    rows = []
    for group, centre in enumerate(CENTRES):
        for i in range(30):
            a, b, c = np.asarray(centre) + random.normal(0.0, 0.5, 3)
            rows.append({"id": f"g{group}-{i:02d}", "a": float(a), "b": float(b), "c": float(c)})
    metadata = sa.MetaData()
    table = sa.Table(
        "blobs", metadata, sa.Column("id", sa.Text), *(sa.Column(n, sa.Float(precision=53)) for n in "abc")
    )
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        metadata.create_all(connection)
        connection.execute(sa.insert(table), rows)
    engine.dispose()


def _groups(url: str, run_id: int) -> dict[int, set[str]]:
    groups: dict[int, set[str]] = {}
    for row in query(url, "SELECT customer_key, segment_id FROM assignment WHERE run_id = :r", r=run_id):
        groups.setdefault(row["segment_id"], set()).add(row["customer_key"])
    return groups


def test_an_added_feature_keeps_the_ids_of_unchanged_groups(migrated_db_url):
    url = migrated_db_url
    _blobs(url)
    common = ("--source", "blobs", "--id", "id", "--k", "4", "--job", "blobs")
    first = run_json(url, *common, "--features", "a,b")["run_id"]
    second = run_json(url, *common, "--features", "a,b,c")["run_id"]
    before, after = _groups(url, first), _groups(url, second)
    assert sorted(map(frozenset, before.values()), key=sorted) == sorted(map(frozenset, after.values()), key=sorted)
    assert before == after  # the same customers under the same ids
    drift = query(url, "SELECT changed_share, ari FROM run_summary WHERE run_id = :r", r=second)[0]
    assert drift["changed_share"] == 0.0 and abs(drift["ari"] - 1.0) < 1e-9

    # Dropping a feature again also keeps them; a group that is new gets an id never used before.
    third = run_json(url, *common, "--features", "a,c")["run_id"]
    assert _groups(url, third) == before
    fourth = run_json(url, "--source", "blobs", "--id", "id", "--k", "2", "--job", "blobs", "--features", "a")
    ids = set(_groups(url, fourth["run_id"]))
    assert ids.isdisjoint(before) and min(ids) > max(before)
