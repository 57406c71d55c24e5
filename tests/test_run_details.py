"""Run details (segjob.results.details) keep the JSON shape `runs show --json` has always printed:
the summary's keys in the run_summary view's order, each feature's in run_feature's (no database)."""

from __future__ import annotations

from dataclasses import fields

from segjob.results.details import Backtest, FeatureDetail, NoBacktest, RunSummary
from segjob.results.history import run_summary_view
from segjob.store import schema


def test_the_summary_and_the_features_follow_their_tables():
    assert [f.name for f in fields(RunSummary)] == list(run_summary_view.c.keys())
    assert [f.name for f in fields(FeatureDetail)] == [c for c in schema.run_feature.c.keys() if c != "run_id"]


def test_a_backtest_or_why_there_is_none():
    backtest = Backtest("2024-07-03", "2024-07-03", "2024-12-31", 182, "a quarter", {2: {"backtest_score": 0.8}})
    assert list(backtest.as_dict()) == ["as_of", "start", "end", "days", "rule", "by_k"]
    assert NoBacktest("the history is too short").as_dict() == {"none": "the history is too short"}
