"""The history views follow the sequence of current runs, rollbacks included (issue 22).

After any sequence of runs, candidates, promote, rollback and prune, on both databases:
customer_segment_history's open rows (valid_to IS NULL, the type-2 convention) are exactly
current_segment's rows, every customer has one row per change of the current run with validity
intervals that meet end to start, and segment_migration's latest change goes from the run current
before to the run current now.
"""

from __future__ import annotations

from helpers import INCOME, MALL_ID, SPENDING, invoke, query, run_json

TWO = ("--source", "mall", "--id", MALL_ID, "--features", f"{INCOME},{SPENDING}")


def _current(url: str) -> dict[str, tuple[int, int]]:
    rows = query(url, "SELECT customer_key, run_id, segment_id FROM current_segment WHERE job = 'mall'")
    return {r["customer_key"]: (r["run_id"], r["segment_id"]) for r in rows}


def _check_agreement(url: str, expected_run: int, changes: list[int]) -> None:
    """`changes`: the run ids that became current, in order (what dashboards showed)."""
    current = _current(url)
    assert {run for run, _ in current.values()} == {expected_run}
    history = query(
        url,
        "SELECT customer_key, run_id, segment_id, valid_from, valid_to, promotion_id"
        " FROM customer_segment_history WHERE job = 'mall' ORDER BY customer_key, promotion_id",
    )
    open_rows = {r["customer_key"]: (r["run_id"], r["segment_id"]) for r in history if r["valid_to"] is None}
    assert open_rows == current
    assert sum(1 for r in history if r["valid_to"] is None) == len(current)
    # Every customer has one row per change of the current run, in that order, and each row's
    # validity ends where the next row's begins.
    by_customer: dict[str, list[dict]] = {}
    for r in history:
        by_customer.setdefault(r["customer_key"], []).append(r)
    for rows in by_customer.values():
        assert [r["run_id"] for r in rows] == changes
        assert [r["valid_to"] for r in rows[:-1]] == [r["valid_from"] for r in rows[1:]]
    if len(changes) > 1:
        latest = query(
            url,
            "SELECT from_run_id, to_run_id, SUM(customers) AS n FROM segment_migration WHERE job = 'mall'"
            " AND promotion_id = (SELECT MAX(promotion_id) FROM segment_migration WHERE job = 'mall')"
            " GROUP BY from_run_id, to_run_id",
        )
        assert [(r["from_run_id"], r["to_run_id"], r["n"]) for r in latest] == [(changes[-2], changes[-1], 200)]


def _promote(url: str, *args: str) -> None:
    result = invoke(url, "promote", *args)
    assert result.exit_code == 0, result.stderr


def test_history_views_follow_promote_rollback_and_prune(mall_url):
    url = mall_url
    first = run_json(url, *TWO, "--k", "5")["run_id"]
    second = run_json(url, *TWO, "--k", "3", "--candidate")["run_id"]
    _check_agreement(url, first, [first])

    _promote(url, str(second))
    _check_agreement(url, second, [first, second])

    # The case of the issue: the rollback must open rows for the first run again and close the second's.
    _promote(url, "--job", "mall", "--previous")
    _check_agreement(url, first, [first, second, first])
    reopened = query(
        url,
        "SELECT COUNT(*) AS n FROM customer_segment_history WHERE job = 'mall' AND run_id = :r AND valid_to IS NULL",
        r=second,
    )
    assert reopened[0]["n"] == 0

    third = run_json(url, *TWO, "--k", "4")["run_id"]
    _check_agreement(url, third, [first, second, first, third])
    _promote(url, str(second))
    _check_agreement(url, second, [first, second, first, third, second])

    # Two rollbacks in a row walk back two steps.
    _promote(url, "--job", "mall", "--previous")
    _check_agreement(url, third, [first, second, first, third, second, third])
    _promote(url, "--job", "mall", "--previous")
    _check_agreement(url, first, [first, second, first, third, second, third, first])

    # Prune keeps the current run and the newest one; the history drops the pruned run's changes.
    result = invoke(url, "prune", "--job", "mall", "--keep", "1")
    assert result.exit_code == 0, result.stderr
    kept = {r["run_id"] for r in query(url, "SELECT run_id FROM run WHERE job = 'mall'")}
    assert first in kept and second not in kept
    changes = [run for run in [first, second, first, third, second, third, first] if run in kept]
    _check_agreement(url, first, changes)


def test_a_stable_segment_keeps_one_open_stretch_across_a_rollback(mall_url):
    """Same data and k: every customer keeps their segment id, so segment_since is when the first
    run became current on every row, while validity moves on with each change."""
    url = mall_url
    first = run_json(url, *TWO, "--k", "5")["run_id"]
    second = run_json(url, *TWO, "--k", "5", "--candidate")["run_id"]
    _promote(url, str(second))
    _promote(url, "--job", "mall", "--previous")
    _check_agreement(url, first, [first, second, first])
    rows = query(
        url,
        "SELECT valid_from, valid_to, segment_since, changed FROM customer_segment_history WHERE job = 'mall'",
    )
    assert len(rows) == 3 * 200 and not any(r["changed"] for r in rows)
    first_current = min(r["valid_from"] for r in rows)
    assert {r["segment_since"] for r in rows} == {first_current}
    assert sum(1 for r in rows if r["valid_to"] is None) == 200
