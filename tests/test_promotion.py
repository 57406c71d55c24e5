"""Candidate runs and promotion through the CLI on SQLite and PostgreSQL: a candidate is complete
and queryable by run id but not current; `segjob promote` makes a run current atomically and
`--previous` rolls back, and current_segment, segment_profile, the history views, drift and the
default model of `segjob score` follow the current run."""

from __future__ import annotations

import json

import pytest
from helpers import INCOME, MALL_ID, SPENDING, invoke, query, run_json

from segjob.store import migrate

MALL = ("--source", "mall", "--id", MALL_ID)
TWO = (*MALL, "--features", f"{INCOME},{SPENDING}")
WITH_AGE = (*MALL, "--features", f"Age,{INCOME},{SPENDING}")


def current_run(url: str, job: str = "mall") -> set[int]:
    return {row["run_id"] for row in query(url, "SELECT DISTINCT run_id FROM current_segment WHERE job = :j", j=job)}


def summary(url: str, run_id: int) -> dict:
    return query(url, "SELECT * FROM run_summary WHERE run_id = :r", r=run_id)[0]


def promote(url: str, *args: str):
    return invoke(url, "promote", *args)


def test_a_candidate_run_is_complete_but_not_current(mall_url):
    first = run_json(mall_url, *TWO, "--k", "5")["run_id"]
    candidate = run_json(mall_url, *WITH_AGE, "--k", "4", "--candidate")
    assert candidate["candidate"] is True and candidate["is_current"] is False
    second = candidate["run_id"]

    assert current_run(mall_url) == {first}
    assert summary(mall_url, first)["is_current"] and summary(mall_url, first)["current_reason"] == "succeeded"
    as_candidate = summary(mall_url, second)
    assert as_candidate["status"] == "succeeded" and as_candidate["candidate"] and not as_candidate["is_current"]
    assert as_candidate["current_reason"] is None and as_candidate["current_since"] is None
    # Complete and queryable by run id: assignments, profile rows, features used.
    assert query(mall_url, "SELECT COUNT(*) AS n FROM assignment WHERE run_id = :r", r=second)[0]["n"] == 200
    profile = query(mall_url, "SELECT * FROM segment_profile WHERE run_id = :r", r=second)
    assert len(profile) == 4 * 3 and not any(row["is_current"] for row in profile)
    assert json.loads(as_candidate["features"]) == ["Age", INCOME, SPENDING]
    # The job's history does not hold the experiment.
    for view in ("customer_segment_history", "segment_size_history"):
        assert query(mall_url, f"SELECT COUNT(*) AS n FROM {view} WHERE run_id = :r", r=second)[0]["n"] == 0, view
    assert query(mall_url, "SELECT COUNT(*) AS n FROM segment_migration WHERE to_run_id = :r", r=second)[0]["n"] == 0
    # Drift of the candidate is measured against the current run.
    assert as_candidate["compared_run_id"] == first


def test_promote_and_roll_back(mall_url):
    first = run_json(mall_url, *TWO, "--k", "5")["run_id"]
    second = run_json(mall_url, *TWO, "--k", "3", "--candidate")["run_id"]

    promoted = promote(mall_url, str(second), "--json")
    assert promoted.exit_code == 0, promoted.stderr
    assert json.loads(promoted.stdout) == {"job": "mall", "run_id": second, "previous_run_id": first, "changed": True}
    assert current_run(mall_url) == {second}
    assert summary(mall_url, second)["current_reason"] == "promoted"
    assert summary(mall_url, second)["current_since"] is not None
    assert not summary(mall_url, first)["is_current"]
    profile = query(mall_url, "SELECT DISTINCT run_id FROM segment_profile WHERE is_current")
    assert profile == [{"run_id": second}]
    # A promoted candidate joins the job's history.
    moved = query(mall_url, "SELECT SUM(customers) AS n FROM segment_migration WHERE to_run_id = :r", r=second)
    assert moved[0]["n"] == 200

    again = promote(mall_url, str(second))
    assert again.exit_code == 0 and f"run {second} is already the current run of job mall" in again.stdout

    back = promote(mall_url, "--job", "mall", "--previous")
    assert back.exit_code == 0, back.stderr
    assert f"job mall: run {first} is current again (was run {second})" in back.stdout
    assert current_run(mall_url) == {first}
    assert summary(mall_url, first)["current_reason"] == "rolled back"

    further = promote(mall_url, "--job", "mall", "--previous")
    assert further.exit_code == 2
    assert further.stderr.strip() == (
        f"Error: run {first} is the first current run of job 'mall' that is still kept;"
        " there is nothing to roll back to (promote a run by its id instead)"
    )
    assert current_run(mall_url) == {first}


def test_an_ordinary_run_after_a_rollback_compares_with_the_current_run(mall_url):
    first = run_json(mall_url, *TWO, "--k", "5")["run_id"]
    second = run_json(mall_url, *TWO, "--k", "5", "--seed", "3")["run_id"]
    assert promote(mall_url, "--job", "mall", "--previous").exit_code == 0
    third = run_json(mall_url, *TWO, "--k", "5")["run_id"]
    assert summary(mall_url, third)["compared_run_id"] == first != second
    assert current_run(mall_url) == {third}
    # --previous goes back to what was current before the third run: the first, not the second.
    assert promote(mall_url, "--job", "mall", "--previous").exit_code == 0
    assert current_run(mall_url) == {first}


def test_score_uses_the_current_runs_model_by_default(mall_url):
    first = run_json(mall_url, *TWO, "--k", "5")["run_id"]
    run_json(mall_url, *TWO, "--k", "3", "--candidate")
    result = invoke(mall_url, "score", "--job", "mall", "--source", "mall", "--json")
    assert result.exit_code == 0, result.stderr
    scored = json.loads(result.stdout)
    assert summary(mall_url, scored["run_id"])["model_run_id"] == first
    assert current_run(mall_url) == {scored["run_id"]}  # an ordinary score run becomes current


@pytest.mark.parametrize(
    "args, message",
    [
        (("999",), "Error: run 999 not found; 'segjob runs list' shows the runs"),
        ((), "Error: give a RUN_ID to promote, or --job JOB --previous to roll back"),
        (("1", "--previous"), "Error: give a RUN_ID to promote, or --job JOB --previous to roll back"),
        (("--job", "mall"), "Error: give a RUN_ID to promote, or --job JOB --previous to roll back"),
        (("1", "--job", "other"), "Error: run 1 belongs to job 'mall', not 'other'"),
        (("--job", "nope", "--previous"), "Error: job 'nope' has no runs; 'segjob runs list' shows the jobs"),
    ],
)
def test_promote_usage_errors(mall_url, args, message):
    run_json(mall_url, *TWO, "--k", "5")
    result = promote(mall_url, *args)
    assert result.exit_code == 2
    assert result.stderr.strip() == message


def test_only_a_succeeded_run_can_be_promoted(mall_url):
    run_json(mall_url, *TWO, "--k", "5")
    failed = invoke(mall_url, "run", *MALL, "--features", "nope", "--json")
    assert failed.exit_code == 2  # checked before a run row exists: nothing to promote
    bad = invoke(mall_url, "run", *TWO, "--k", "500")
    assert bad.exit_code == 3
    failed_id = query(mall_url, "SELECT MAX(run_id) AS r FROM run WHERE status = 'failed'")[0]["r"]
    result = promote(mall_url, str(failed_id))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: run {failed_id} is failed; only a succeeded run can become current"


def test_migration_0007_makes_each_jobs_latest_succeeded_run_current_with_its_history(mall_url):
    """Runs made before candidate runs existed: after 0006 -> 0007 the latest succeeded run of each
    job is current ("succeeded"), rolling back walks the older succeeded runs, features are filled."""
    first = run_json(mall_url, *TWO, "--k", "5")["run_id"]
    failed = invoke(mall_url, "run", *TWO, "--k", "500")
    assert failed.exit_code == 3
    second = run_json(mall_url, *WITH_AGE, "--k", "4")["run_id"]
    migrate.downgrade(mall_url, "0006")
    migrate.upgrade(mall_url)

    assert current_run(mall_url) == {second}
    assert summary(mall_url, second)["current_reason"] == "succeeded"
    assert json.loads(summary(mall_url, first)["features"]) == [INCOME, SPENDING]
    assert json.loads(summary(mall_url, second)["features"]) == ["Age", INCOME, SPENDING]
    assert not summary(mall_url, first)["candidate"] and not summary(mall_url, second)["candidate"]
    assert promote(mall_url, "--job", "mall", "--previous").exit_code == 0
    assert current_run(mall_url) == {first}


def test_runs_show_and_list_say_which_run_is_current(mall_url):
    first = run_json(mall_url, *TWO, "--k", "5")["run_id"]
    second = run_json(mall_url, *TWO, "--k", "3", "--candidate")["run_id"]
    shown = invoke(mall_url, "runs", "show", str(first)).stdout
    assert "current run of the job since " in shown and "(succeeded)" in shown
    shown = invoke(mall_url, "runs", "show", str(second)).stdout
    assert f"candidate run, not current: 'segjob promote {second}' makes it current" in shown
    listed = json.loads(invoke(mall_url, "runs", "list", "--json").stdout)
    assert [(r["run_id"], r["is_current"], r["candidate"]) for r in listed] == [
        (second, False, True),
        (first, True, False),
    ]
    assert promote(mall_url, str(second)).exit_code == 0
    shown = invoke(mall_url, "runs", "show", str(first)).stdout
    assert f"not current: 'segjob promote {first}' makes it current again" in shown


def test_a_job_with_only_candidate_runs_shows_nothing_current_and_scores_only_when_told(mall_url):
    candidate = run_json(mall_url, *TWO, "--k", "5", "--candidate")["run_id"]
    assert current_run(mall_url) == set()
    result = invoke(mall_url, "score", "--job", "mall", "--source", "mall")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: job 'mall' has only candidate runs, none current: 'segjob promote RUN_ID' one,"
        " or give --model-run RUN_ID"
    )
    told = invoke(mall_url, "score", "--job", "mall", "--source", "mall", "--model-run", str(candidate), "--json")
    assert told.exit_code == 0, told.stderr
    assert current_run(mall_url) == {json.loads(told.stdout)["run_id"]}


def test_segment_profile_has_the_features_position_and_kind_in_order(mall_url):
    run_id = run_json(mall_url, *MALL, "--features", f"Age,{INCOME}", "--categorical", "Gender", "--k", "3")["run_id"]
    rows = query(mall_url, "SELECT * FROM segment_profile WHERE run_id = :r", r=run_id)  # the view's own order
    stored = query(mall_url, "SELECT feature, position, kind FROM run_feature WHERE run_id = :r", r=run_id)
    assert {(r["feature"], r["position"], r["kind"]) for r in rows} == {tuple(s.values()) for s in stored}
    assert [(r["segment_id"], r["position"]) for r in rows] == sorted((r["segment_id"], r["position"]) for r in rows)
    first_segment = [(r["feature"], r["kind"]) for r in rows if r["segment_id"] == rows[0]["segment_id"]]
    assert first_segment == [
        ("Age", "numeric"),
        (INCOME, "numeric"),
        ("Gender=Female", "categorical"),
        ("Gender=Male", "categorical"),
    ]
