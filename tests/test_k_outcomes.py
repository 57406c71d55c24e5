"""What the default rule must keep answering on the validation cases (benchmarks/choose_k.py):
generated structures recovered, a structureless blob flagged, real skewed data given more than a
coarse split, and no k lost to a handful of extreme customers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "choose_k.py"

# Whole validation datasets through prepare and the K sweep: minutes, not seconds.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("choose_k_outcomes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_dominant_group_and_its_small_groups_are_recovered(script):
    for case, k in ((script.dominant_group(), 5), (script.dominant_group(script.DOMINANT80_SHARES), 4)):
        row = script.run_case(case)
        assert (row.k, row.criterion) == (k, "silhouette-gain"), case.name
        assert row.ari > 0.95 and row.warning is None


def test_one_blob_is_flagged_as_having_little_structure(script):
    row = script.run_case(script.one_blob())
    assert row.warning is not None and row.warning.startswith("little cluster structure")


def test_well_separated_groups_raise_no_warning(script):
    row = script.run_case(script.gaussian_blobs())
    assert row.k == 4 and row.ari == pytest.approx(1.0) and row.warning is None


def test_telco_charges_get_more_than_the_coarse_split(script):
    """Plain silhouette picks k=2 (low/high tenure); the default rule separates churn much more."""
    case = script.telco()
    row = script.run_case(case)
    assert row.chosen_by["silhouette"] == 2 and row.k == 4
    coarse = script.run_case(case, select="silhouette")
    spread = {r.k: float(r.notes[-1].rsplit("(max-min) ", 1)[1].split()[0]) for r in (row, coarse)}
    assert spread[4] > spread[2] + 20  # churn rate spread in points


def test_an_extreme_income_costs_no_k(script):
    """marketing_campaign has an Income of 666,666: it is clipped to the far-out fence by default,
    and with --transform none the k where it took a centroid are refitted without it."""
    from segjob.model.fit import fit
    from segjob.prepare.columns import prepare

    case = script.marketing()
    for transform in ("auto", "none"):
        spec = script.job_spec(case, transform=transform)
        prepared = prepare(case.frame, spec.id, spec.prepare_options())
        income = next(f for f in prepared.features if f.name == "Income")
        if transform == "auto":
            assert income.clipped_count >= 1 and income.clip_high < 666_666 == income.max
        else:
            assert income.clip_high is None
        model = fit(prepared.X, None, describe_rows=prepared.describe_rows)
        assert model.rejected == [], transform
        if transform == "none":
            refitted = {m.k for m in model.metrics if m.name == "fitted_without_rows"}
            assert refitted, "the extreme customers took a centroid at some k"
