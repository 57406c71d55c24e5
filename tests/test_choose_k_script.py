"""benchmarks/choose_k.py: its generated cases hold the groups they claim (k results are pinned in test_model)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "choose_k.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("choose_k_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def shares(case) -> list[float]:
    return (np.bincount(case.truth) / len(case.truth)).round(3).tolist()


def test_generated_cases_have_the_stated_group_shares(script):
    dominant = script.dominant_group()
    assert shares(dominant) == [0.75, 0.10, 0.07, 0.05, 0.03] and dominant.expected == "5"
    assert shares(script.dominant_group(script.DOMINANT80_SHARES)) == [0.80, 0.10, 0.06, 0.04]
    assert shares(script.one_blob()) == [1.0] and script.one_blob().expected == "warning"
    assert shares(script.gaussian_blobs()) == [0.25] * 4
    assert len(dominant.frame) == len(script.one_blob().frame) == 5_000


def test_truth_against_itself_and_seeded(script):
    for build in (script.dominant_group, script.gaussian_blobs):
        case = build()
        assert adjusted_rand_score(case.truth, case.truth) == 1.0
        assert case.frame.equals(build().frame)  # same seed, same rows


def test_dominant_groups_apart_in_log_space_not_in_raw_units(script):
    case = script.dominant_group()
    logs = np.log(case.frame[["x1", "x2", "x3"]].to_numpy())
    big, shifted = logs[case.truth == 0, 0], logs[case.truth == 1, 0]
    assert shifted.mean() - big.mean() > 5 * big.std()
    raw = case.frame["x1"].to_numpy()
    assert raw[case.truth == 0].max() > raw[case.truth == 1].min()  # the big group's tail overlaps
