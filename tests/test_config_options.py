"""build_spec(): the K-selection, algorithm, transform and labels settings and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from segjob.config import build_spec
from segjob.errors import UsageError

BASE = dict(source="customers", id="id", features="spend,age")


def test_defaults():
    spec = build_spec(**BASE)
    assert (spec.algorithm, spec.select, spec.min_segment_share, spec.transform) == (
        "kmeans",
        "silhouette-gain",
        0.01,
        "auto",
    )
    assert spec.eps is None and spec.clip_outliers is None and spec.labels == {}
    assert spec.log1p_columns == [] and spec.auto_log1p
    assert not build_spec(**BASE, transform="none").auto_log1p


def test_transform_forms():
    assert build_spec(**BASE, transform="AUTO").auto_log1p
    spec = build_spec(**BASE, transform="log1p: spend , age")
    assert spec.transform == "log1p:spend,age" and spec.log1p_columns == ["spend", "age"]


def test_config_file_with_inline_labels_and_a_labels_file(tmp_path):
    (tmp_path / "names.json").write_text('{"3": "Bargain hunters"}')
    config = tmp_path / "job.toml"
    config.write_text(
        'source = "customers"\nid = "id"\nfeatures = ["spend"]\nalgorithm = "gmm"\nselect = "elbow"\n'
        'min-segment-share = 0.05\ntransform = "auto"\nclip_outliers = 3\n[labels]\n1 = "Loyal"\n'
    )
    spec = build_spec(config)
    assert (spec.algorithm, spec.select, spec.min_segment_share, spec.clip_outliers) == ("gmm", "elbow", 0.05, 3.0)
    assert spec.labels == {"1": "Loyal"} and spec.segment_labels == {1: "Loyal"}
    config.write_text('source = "customers"\nid = "id"\nfeatures = ["spend"]\nlabels = "names.json"\n')
    assert build_spec(config).labels == {"3": "Bargain hunters"}  # found next to the config file


@pytest.mark.parametrize(
    "options, message",
    [
        (
            dict(algorithm="kmedoids"),
            "--algorithm must be one of kmeans, minibatch-kmeans, gmm, agglomerative, dbscan, not 'kmedoids'",
        ),
        (
            dict(select="gapp"),
            "--select must be one of next-period, silhouette-gain, silhouette, macro-silhouette, gap, elbow, davies-bouldin,"
            " calinski-harabasz, stability, not 'gapp'",
        ),
        (
            dict(algorithm="dbscan", k="4"),
            "--k does not apply to --algorithm dbscan, which finds the number of segments itself (tune it with --eps)",
        ),
        (
            dict(algorithm="dbscan", k_max=6, select="elbow"),
            "--k-max, --select do not apply to --algorithm dbscan, which finds the number of segments itself (tune it with --eps)",
        ),
        (dict(eps=0.5), "--eps applies only to --algorithm dbscan"),
        (dict(algorithm="dbscan", eps=0), "--eps must be greater than 0, not 0"),
        (
            dict(min_segment_share=0.5),
            "--min-segment-share must be at least 0 and below 0.5 (a share: 0.01 = 1%), not 0.5",
        ),
        (dict(min_segment_share="lots"), "min-segment-share must be a number, not 'lots'"),
        (dict(clip_outliers=-1), "--clip-outliers must be greater than 0 (standard deviations), not -1"),
        (dict(stability_sample=10), "--stability-sample must be at least 100 rows, not 10"),
        (dict(transform="sqrt:spend"), "--transform must be auto, none or log1p:COL,COL, not 'sqrt:spend'"),
        (
            dict(transform="log1p:income"),
            "--transform log1p:income names a column that is not among --features (spend, age)",
        ),
        (dict(labels={"one": "x"}), "labels: 'one' is not a segment id (a whole number such as 1)"),
        (dict(labels={"1": ""}), "labels: the label of segment 1 must be non-empty text, not ''"),
    ],
)
def test_bad_settings(options, message):
    with pytest.raises(UsageError) as info:
        build_spec(**{**BASE, **options})
    assert str(info.value) == message


def test_dbscan_accepts_k_auto():
    assert build_spec(**BASE, algorithm="dbscan", k="auto").algorithm == "dbscan"


def test_every_run_option_is_documented_in_the_readme():
    import typer.main

    from segjob.cli.app import app

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    run = typer.main.get_command(app).commands["run"]
    options = [name for param in run.params for name in param.opts if name.startswith("--")]
    assert "--min-segment-share" in options and "--labels" in options
    for option in options:
        assert f"`{option}" in readme, option
