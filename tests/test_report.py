"""`segjob report` and the report `segjob demo` writes, through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import re
import shutil
import struct
import subprocess
import sys
from html import escape
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from helpers import INCOME, MALL_ID, SPENDING, invoke, load_mall, query, run_json

from segjob.store import db
from segjob.store.dialect import dialect_of

AGE = "Age"
SWEEP_PICTURES = {"elbow.png", "criteria.png"}
CUSTOMER_PICTURES = {"customers.png", "silhouette_samples.png"}
TABLE_PICTURES = {"segment_sizes.png", "zscore_heatmap.png"}
ALL_PICTURES = SWEEP_PICTURES | CUSTOMER_PICTURES | TABLE_PICTURES
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def sqlite_db(sqlite_template, tmp_path) -> str:
    """An SQLite database with segjob's schema at head (the slower tests run on one backend)."""
    path = tmp_path / "segjob.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def mall_run(url: str, *features: str, extra: tuple[str, ...] = ()) -> dict:
    return run_json(url, "--source", "mall", "--id", MALL_ID, "--features", ",".join(features), "--quiet", *extra)


def report(url: str, run_id: int, out: Path, *args: str):
    return invoke(url, "report", str(run_id), "--out", str(out), "--quiet", *args)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a valid PNG has right after its signature."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def embedded_images(html: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def caption(html: str, file: str) -> str:
    match = re.search(rf"<figcaption><strong>[^<]*</strong> \({re.escape(file)}\)(.*?)</figcaption>", html)
    assert match, f"no figure for {file}"
    return match.group(1)


def profile_table(html: str) -> str:
    match = re.search(r'<table class="profile">(.*?)</table>', html, re.S)
    assert match
    return match.group(1)


def card_of(html: str, segment_id: int) -> str:
    match = re.search(rf'<section class="card" id="segment-{segment_id}"[^>]*>(.*?)</section>', html, re.S)
    assert match, f"no card for segment {segment_id}"
    return match.group(1)


def segments(url: str, run_id: int) -> list[dict]:
    return query(url, "SELECT segment_id, label, size FROM segment WHERE run_id = :r ORDER BY segment_id", r=run_id)


def test_two_feature_report(migrated_db_url, tmp_path):
    import matplotlib.image

    load_mall(migrated_db_url)
    run = mall_run(migrated_db_url, INCOME, SPENDING)
    assert run["k"] == 5
    out = tmp_path / "report"
    result = report(migrated_db_url, run["run_id"], out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"Report: {out / 'report.html'} (6 pictures)"
    assert result.stderr == ""  # --quiet

    assert {p.name for p in out.iterdir()} == ALL_PICTURES | {"report.html"}
    files = {}
    for name in ALL_PICTURES:
        data = (out / name).read_bytes()
        width, height = png_size(data)
        assert 400 <= width <= 2500 and 250 <= height <= 2500, (name, width, height)
        assert matplotlib.image.imread(out / name).shape[:2] == (height, width)
        files[name] = data

    html = (out / "report.html").read_text(encoding="utf-8")
    embedded = embedded_images(html)
    assert sorted(embedded) == sorted(files.values())  # exactly the PNG files, each once
    assert not re.search(r"https?://", html)
    # Nothing leaves the file: sources are data: URIs, links point into the page (#appendix).
    assert not re.search(r"""(?:src|href)\s*=\s*(?!["']?(?:data:|#))""", html, re.I)
    assert "<script" not in html.lower() and "@import" not in html and "url(" not in html

    table = profile_table(html)
    stored = segments(migrated_db_url, run["run_id"])
    assert len(stored) == 5
    for segment in stored:
        assert f"{segment['segment_id']}: {escape(segment['label'])}</th>" in table
        assert f"<td class='num'>{segment['size']:,}</td>" in table
    assert table.count("<td class='num'>") >= 5 * (2 + 2 * 4)  # size, share; per feature 4 statistics

    # A marketer's order: segment cards, then pictures, then the diagnostics appendix (run metadata,
    # how k was chosen, the full profile, feature preparation) at the end.
    markers = ['class="cards"', "<figure", 'id="appendix"', "input fingerprint", "The K sweep", 'class="profile"']
    assert [html.index(marker) for marker in markers] == sorted(html.index(marker) for marker in markers)
    assert html.index('class="features"') > html.index('class="profile"')
    for segment in stored:
        card = card_of(html, segment["segment_id"])
        assert f"<h3>{segment['segment_id']}: {escape(segment['label'])}</h3>" in card
        assert f"{segment['size']:,} customers &middot; {segment['size'] / 200:.1%} of all" in card
    high = next(s for s in stored if s["label"] == "High income, high spend")
    description = re.search(r'<p class="description">(.*?)</p>', card_of(html, high["segment_id"])).group(1)
    assert escape(INCOME) in description and escape(SPENDING) in description
    assert description.count("above the average") + description.count("x the average") == 2
    assert "describe these 200 customers against each other" in html

    scatter = caption(html, "customers.png")
    assert f'Horizontal axis: <span class="axis">{escape(INCOME)}</span>' in scatter
    assert f'vertical axis: <span class="axis">{escape(SPENDING)}</span>' in scatter
    assert "200 sampled customers" in scatter
    # The per-customer silhouettes of all 200 customers, rebuilt from the stored parameters and
    # coloured by the stored assignment, average to the silhouette the run measured.
    silhouette = caption(html, "silhouette_samples.png")
    measured = re.search(r"mean (\d\.\d{3}) \(the run measured (\d\.\d{3})", silhouette)
    assert measured and measured.group(1) == measured.group(2) == f"{run['silhouette']:.3f}"
    assert "200 matched to this run" in html
    assert "chosen k=5" in caption(html, "elbow.png")


def test_three_feature_report_uses_principal_components(migrated_db_url, tmp_path):
    load_mall(migrated_db_url)
    run = mall_run(migrated_db_url, AGE, INCOME, SPENDING)
    out = tmp_path / "report"
    result = report(migrated_db_url, run["run_id"], out, "--sample", "150")
    assert result.exit_code == 0, result.stderr
    html = (out / "report.html").read_text(encoding="utf-8")
    scatter = caption(html, "customers.png")
    horizontal, vertical = re.findall(r'<span class="axis">(.*?)</span>', scatter)
    assert horizontal.startswith("PC1 (") and vertical.startswith("PC2 (")
    assert "of variance" in horizontal
    # Each axis names the features that load on it; on Mall, income alone makes up one component.
    named = {feature for feature in (AGE, INCOME, SPENDING) if escape(feature) in horizontal + vertical}
    assert named == {AGE, INCOME, SPENDING}
    assert "150 sampled customers" in scatter
    assert "150 sampled uniformly" in html
    assert {p.name for p in out.iterdir()} == ALL_PICTURES | {"report.html"}


def test_customers_not_in_the_run_are_skipped_and_counted(sqlite_db, tmp_path):
    sqlite_url = sqlite_db
    load_mall(sqlite_url)
    run = mall_run(sqlite_url, INCOME, SPENDING)
    engine = db.make_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                'INSERT INTO mall ("CustomerID", "Gender", "Age", "Annual Income (k$)", "Spending Score (1-100)")'
                " VALUES (9001, 'Female', 30, 50, 50), (9002, 'Male', 40, 60, 40)"
            )
        )
        connection.execute(sa.text('DELETE FROM mall WHERE "CustomerID" IN (1, 2, 3)'))
    engine.dispose()
    out = tmp_path / "report"
    result = report(sqlite_url, run["run_id"], out)
    assert result.exit_code == 0, result.stderr
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "holds 199 rows now; 199 sampled uniformly (seed: the run's), 199 usable, 197 matched" in html
    assert "197 sampled customers" in caption(html, "customers.png")


def test_source_gone_still_renders_the_run(migrated_db_url, tmp_path):
    load_mall(migrated_db_url)
    run = mall_run(migrated_db_url, INCOME, SPENDING)
    out = tmp_path / "report"
    assert report(migrated_db_url, run["run_id"], out).exit_code == 0
    assert {p.name for p in out.iterdir()} == ALL_PICTURES | {"report.html"}
    engine = db.make_engine(migrated_db_url)
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM mall"))
    emptied = report(migrated_db_url, run["run_id"], out)
    assert emptied.exit_code == 0, emptied.stderr
    assert emptied.stderr == "Note: the customer plots are missing: table mall holds no rows now\n"
    # The same directory again: the customer pictures of the first report are gone with it.
    assert {p.name for p in out.iterdir()} == SWEEP_PICTURES | TABLE_PICTURES | {"report.html"}

    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE mall"))
    engine.dispose()
    result = report(migrated_db_url, run["run_id"], out)
    assert result.exit_code == 0, result.stderr
    assert {p.name for p in out.iterdir()} == SWEEP_PICTURES | TABLE_PICTURES | {"report.html"}
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Note: the customer plots are missing: reading table mall failed")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "the customer plots are missing: reading table mall failed" in html
    assert len(embedded_images(html)) == 4
    for segment in segments(migrated_db_url, run["run_id"]):
        assert escape(segment["label"]) in profile_table(html)


def test_dbscan_run_with_outliers_renders(migrated_db_url, tmp_path):
    load_mall(migrated_db_url)
    run = mall_run(migrated_db_url, INCOME, SPENDING, extra=("--algorithm", "dbscan", "--eps", "0.3"))
    stored = segments(migrated_db_url, run["run_id"])
    assert stored[0]["segment_id"] == 0 and stored[0]["label"] == "Outliers" and len(stored) >= 3
    out = tmp_path / "report"
    result = report(migrated_db_url, run["run_id"], out)
    assert result.exit_code == 0, result.stderr
    # No K sweep to draw: DBSCAN found k itself.
    assert {p.name for p in out.iterdir()} == CUSTOMER_PICTURES | TABLE_PICTURES | {"report.html"}
    assert "DBSCAN finds the number of segments itself" in result.stderr
    html = (out / "report.html").read_text(encoding="utf-8")
    table = profile_table(html)
    for segment in stored:
        assert f"{segment['segment_id']}: {escape(segment['label'])}</th>" in table
        assert f"<td class='num'>{segment['size']:,}</td>" in table
    assert "DBSCAN outliers are left out" in caption(html, "silhouette_samples.png")


def test_gmm_run_renders(sqlite_db, tmp_path):
    sqlite_url = sqlite_db
    load_mall(sqlite_url)
    run = mall_run(sqlite_url, AGE, INCOME, SPENDING, extra=("--algorithm", "gmm", "--k-max", "6"))
    out = tmp_path / "report"
    result = report(sqlite_url, run["run_id"], out)
    assert result.exit_code == 0, result.stderr
    assert {p.name for p in out.iterdir()} == ALL_PICTURES | {"report.html"}
    html = (out / "report.html").read_text(encoding="utf-8")
    assert len(embedded_images(html)) == 6
    assert f"chosen k={run['k']}" in caption(html, "elbow.png")


def test_missing_and_unfinished_runs_and_bad_out(migrated_db_url, tmp_path):
    load_mall(migrated_db_url)
    missing = report(migrated_db_url, 999, tmp_path / "nothing")
    assert missing.exit_code == 2
    assert missing.stderr == "Error: run 999 not found; 'segjob runs list' shows the runs\n"
    assert not (tmp_path / "nothing").exists()

    failed = invoke(
        migrated_db_url, "run", "--source", "mall", "--id", MALL_ID, "--features", INCOME, "--k", "500", "--quiet"
    )
    assert failed.exit_code == 3
    (run_id,) = [r["run_id"] for r in query(migrated_db_url, "SELECT run_id FROM run WHERE status = 'failed'")]
    unfinished = report(migrated_db_url, run_id, tmp_path / "failed")
    assert unfinished.exit_code == 2
    assert unfinished.stderr == f"Error: run {run_id} has status failed; only a succeeded run has a model\n"

    run = mall_run(migrated_db_url, INCOME, SPENDING)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    unwritable = report(migrated_db_url, run["run_id"], blocker / "report")
    assert unwritable.exit_code == 2
    assert unwritable.stderr.startswith(f"Error: cannot write the report to {blocker / 'report'}: ")
    assert unwritable.stderr.count("\n") == 1

    too_small = report(migrated_db_url, run["run_id"], tmp_path / "r", "--sample", "1")
    assert too_small.exit_code == 2 and too_small.stderr == "Error: --sample must be at least 2, got 1\n"


@pytest.mark.parametrize("transactions", [False, True], ids=["mall", "transactions"])
def test_demo_prints_where_the_report_is(sqlite_url, tmp_path, transactions):
    out = tmp_path / "demo-report"
    result = invoke(
        sqlite_url, "demo", "--quiet", "--report-dir", str(out), *(["--transactions"] if transactions else [])
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.rstrip().splitlines()[-1] == f"Report: {out / 'report.html'}"
    assert result.stderr == ""
    html = (out / "report.html").read_text(encoding="utf-8")
    (run,) = query(sqlite_url, "SELECT run_id, rows_used FROM run_summary")
    assert f"segjob run {run['run_id']} of job" in html
    for segment in segments(sqlite_url, run["run_id"]):
        assert escape(segment["label"]) in profile_table(html)
    # Every customer the run used is found again in the source: for the purchase history, the
    # features are rebuilt as of the date the run used.
    assert f"{run['rows_used']:,} matched to this run" in html
    assert {p.name for p in out.iterdir()} == ALL_PICTURES | {"report.html"}


@pytest.mark.slow
def test_help_does_not_import_matplotlib():
    code = (
        "import sys; from typer.testing import CliRunner; from segjob.cli.app import app;"
        " result = CliRunner().invoke(app, ['report', '--help']);"
        " assert result.exit_code == 0 and '--sample' in result.stdout, result.stdout;"
        " print('matplotlib' in sys.modules)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "False"


def test_labels_are_escaped_and_log1p_features_on_a_log_axis(sqlite_db, tmp_path):
    load_mall(sqlite_db)
    labels = tmp_path / "labels.toml"
    labels.write_text('1 = "<img src=x> Big & \\"bold\\""\n')
    run = mall_run(
        sqlite_db, INCOME, SPENDING, extra=("--k", "5", "--labels", str(labels), "--transform", f"log1p:{INCOME}")
    )
    out = tmp_path / "report"
    result = report(sqlite_db, run["run_id"], out)
    assert result.exit_code == 0, result.stderr
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "1: &lt;img src=x&gt; Big &amp; &quot;bold&quot;</th>" in profile_table(html)
    assert "<img src=x>" not in html
    # A fixed k has no sweep to draw; the page says why instead.
    assert "no elbow or criteria plots: k was fixed by --k=5" in html
    assert not (out / "elbow.png").exists()
    # Original units on the axes; the log1p feature on a log scale, as the model saw it.
    horizontal, vertical = re.findall(r'<span class="axis">(.*?)</span>', caption(html, "customers.png"))
    assert horizontal == f"{escape(INCOME)} (log scale: the model used log1p)" and vertical == escape(SPENDING)


def test_uniform_sample_over_chunks():
    import numpy as np
    import pandas as pd

    from segjob.report.customers import uniform_sample

    def chunks():
        return (pd.DataFrame({"id": np.arange(start, start + 100)}) for start in range(0, 1000, 100))

    seen = []
    sample, rows = uniform_sample(chunks(), 50, seed=7, progress=seen.append)
    assert rows == 1000 and seen == list(range(100, 1001, 100))
    ids = sample["id"].to_numpy()
    assert len(ids) == 50 and len(set(ids)) == 50 and (np.diff(ids) > 0).all()  # distinct, source order
    again, _ = uniform_sample(chunks(), 50, seed=7)
    assert (again["id"].to_numpy() == ids).all()
    other, _ = uniform_sample(chunks(), 50, seed=8)
    assert set(other["id"]) != set(ids)
    everything, rows = uniform_sample(chunks(), 5000, seed=7)
    assert rows == 1000 and (everything["id"].to_numpy() == np.arange(1000)).all()
    assert uniform_sample(iter([]), 50, seed=7) == (None, 0)
    # Uniform: over many seeds every row is drawn about equally often, late chunks included.
    counts = np.zeros(1000)
    for seed in range(400):
        drawn, _ = uniform_sample(chunks(), 50, seed=seed)
        counts[drawn["id"].to_numpy()] += 1
    per_chunk = counts.reshape(10, 100).sum(axis=1)
    expected = 400 * 50 / 10
    assert np.all(np.abs(per_chunk - expected) < 0.1 * expected), per_chunk


def test_a_structureless_run_warns_in_runs_show_json_and_the_report(sqlite_db, tmp_path):
    """One log-normal blob: the run publishes, and says plainly that its segments are arbitrary
    cuts; the fence that pulled in one extreme customer is listed with the features."""
    import numpy as np

    rng = np.random.default_rng(3)
    values = np.exp(rng.normal([3.0, 1.0], [0.8, 0.5], size=(1500, 2)))
    values[11, 0] = 1e6  # one extreme customer
    csv = tmp_path / "blob.csv"
    csv.write_text("id,spend,visits\n" + "".join(f"c{i},{a:.4f},{b:.4f}\n" for i, (a, b) in enumerate(values)))
    assert invoke(sqlite_db, "load-csv", str(csv), "--table", "blob").exit_code == 0
    run = run_json(sqlite_db, "--source", "blob", "--id", "id", "--features", "spend,visits", "--quiet")
    warning = run["k_explanation"]["warning"]
    assert warning.startswith(f"little cluster structure: the silhouette of these {run['k']} segments")
    assert run["k_explanation"]["silhouette_gain"] < 0.05
    shown = invoke(sqlite_db, "runs", "show", str(run["run_id"])).stdout
    assert "warning: little cluster structure" in shown
    assert "clipped at the far-out fences: spend to [" in shown and "(1 value)" in shown
    out = tmp_path / "report"
    assert report(sqlite_db, run["run_id"], out).exit_code == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<p class='warning'><strong>Warning:</strong> little cluster structure" in html
    assert f"<p>Chosen: k={run['k']} by silhouette-gain; runner-up k={run['k_explanation']['runner_up_k']}" in html
    # The warning comes before the segment cards, where a marketer reads first.
    assert html.index("little cluster structure") < html.index('class="cards"')
    # What the fence did, not where it stood: one value moved, the range kept; visits lost nothing.
    (spend, visits) = query(
        sqlite_db,
        "SELECT clip_high, clipped_count FROM run_feature WHERE run_id = :r ORDER BY position",
        r=run["run_id"],
    )
    assert spend["clipped_count"] == 1 and visits["clipped_count"] == 0
    assert "<th>outliers clipped</th>" in html
    assert "<td>1 value above " in html and " (observed max 1,000,000) moved to the bound; kept as observed: " in html
    assert html.count("<td>none</td>") == 1


def test_an_outlier_is_drawn_at_the_edge_and_the_caption_says_so(migrated_db_url, tmp_path):
    load_mall(migrated_db_url)
    engine = db.make_engine(migrated_db_url)
    try:
        with engine.begin() as connection:
            table = "public.mall" if dialect_of(connection).postgres else "mall"
            connection.exec_driver_sql(
                f'INSERT INTO {table} ("CustomerID", "Gender", "Age", "{INCOME}", "{SPENDING}")'
                " VALUES (9001, 'Female', 40, 5000, 50)"
            )
    finally:
        engine.dispose()
    run = mall_run(migrated_db_url, INCOME, SPENDING, extra=("--transform", "none", "--k", "5"))
    out = tmp_path / "report"
    assert report(migrated_db_url, run["run_id"], out).exit_code == 0
    scatter = caption((out / "report.html").read_text(encoding="utf-8"), "customers.png")
    assert "1 customer far outside the rest is drawn at the edge as hollow diamonds" in scatter
    shown = re.search(r"\(axes show ([^)]*)\)", scatter)
    assert shown and shown.group(1).startswith("horizontal 15 to ")  # income cut; spending was not squeezed
    assert "vertical" not in shown.group(1)

    plain = mall_run(migrated_db_url, INCOME, SPENDING, extra=("--transform", "none", "--k", "5", "--job", "plain"))
    engine = db.make_engine(migrated_db_url)
    try:
        with engine.begin() as connection:
            table = "public.mall" if dialect_of(connection).postgres else "mall"
            connection.exec_driver_sql(f'DELETE FROM {table} WHERE "CustomerID" = 9001')
    finally:
        engine.dispose()
    out = tmp_path / "plain"
    assert report(migrated_db_url, plain["run_id"], out).exit_code == 0
    assert "far outside the rest" not in caption((out / "report.html").read_text(encoding="utf-8"), "customers.png")


def test_heatmap_keeps_feature_names_whole_and_its_width_bounded():
    from segjob.report.plots import DPI, HEATMAP_MAX_WIDTH, SegmentStyle, _wrap, heatmap

    assert _wrap("NumStorePurchases", 16) == "NumStorePurchases"
    assert _wrap("Spending Score (1-100)", 16) == "Spending Score\n(1-100)"
    styles = [SegmentStyle(i, f"segment {i}", f"#{i:02d}3366") for i in range(1, 5)]
    names = [f"NumStorePurchases{i}" for i in range(20)]
    width, height = png_size(heatmap(np.random.default_rng(1).normal(size=(4, 20)), styles, names))
    assert width <= HEATMAP_MAX_WIDTH * DPI and height < width


def test_a_criterion_without_an_answer_says_why(sqlite_db, tmp_path):
    """Twelve tight groups and k at most 5: every k beats the one before it, so the gap statistic and
    the elbow name no k. The report, `runs show` and --json say so instead of leaving them out."""
    rng = np.random.default_rng(5)
    centers = np.array([(x * 10 + 50, y * 10 + 50) for x in range(4) for y in range(3)], dtype=float)
    points = np.concatenate([rng.normal(center, 0.6, size=(25, 2)) for center in centers])
    csv = tmp_path / "groups.csv"
    csv.write_text("id,a,b\n" + "".join(f"c{i},{a:.3f},{b:.3f}\n" for i, (a, b) in enumerate(points)))
    assert invoke(sqlite_db, "load-csv", str(csv), "--table", "groups").exit_code == 0
    run = run_json(sqlite_db, "--source", "groups", "--id", "id", "--features", "a,b", "--k-max", "5", "--quiet")
    no_answer = run["k_explanation"]["no_answer"]
    assert no_answer == {"gap": "gap keeps rising up to k=5", "elbow": "the inertia curve has no elbow"}
    assert "gap" not in run["k_explanation"]["chosen_k_by"]
    shown = json.loads(invoke(sqlite_db, "runs", "show", str(run["run_id"]), "--json").stdout)
    assert shown["k_explanation"]["no_answer"] == no_answer
    text = " ".join(invoke(sqlite_db, "runs", "show", str(run["run_id"])).stdout.split())
    assert "gap: no answer (gap keeps rising up to k=5), elbow: no answer (the inertia curve has no elbow)" in text

    out = tmp_path / "report"
    assert report(sqlite_db, run["run_id"], out).exit_code == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<tr><td>gap</td><td>no answer (gap keeps rising up to k=5)</td></tr>" in html
    assert "<tr><td>elbow</td><td>no answer (the inertia curve has no elbow)</td></tr>" in html
    # The K sweep shows the metric of the rule that chose k, and the gap that had no answer.
    sweep = html[html.index('<table class="sweep">') :]
    assert "<th>silhouette gain (decides)</th>" in sweep and "<th>gap</th>" in sweep


def test_a_long_axis_label_is_wrapped_to_fit_the_picture():
    """marketing_campaign's second principal component, on the vertical axis of the customer scatter:
    one line of it ran past the top of the picture."""
    from segjob.report.plots import DPI, clipped_texts, fit_text, scatter, segment_styles

    vertical = "PC2 (12% of variance): +0.60 NumDealsPurchases, +0.51 Teenhome, +0.36 NumWebPurchases"
    horizontal = "PC1 (46% of variance): +0.35 MntMeatProducts, +0.33 NumCatalogPurchases, +0.32 MntWines"
    rng = np.random.default_rng(0)
    styles = segment_styles([(1, "Few web purchases, few store purchases", False), (2, "Many deals purchases", False)])
    figure, _ = scatter(
        rng.normal(size=(300, 2)), rng.integers(1, 3, 300), {}, styles, horizontal, vertical, "Customers by segment"
    )
    figure.set_dpi(DPI)
    assert clipped_texts(figure) == [vertical]
    fit_text(figure)
    assert clipped_texts(figure) == []
    assert figure.axes[0].get_ylabel().replace("\n", " ") == vertical and figure.axes[0].get_xlabel() == horizontal
