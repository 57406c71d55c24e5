"""Names and text from data or users are printed as they are, never read as rich markup or emoji
codes: a feature `spend [eur]` keeps its `[eur]`, and a `[/x]` in a job name, table, column,
category, label or error message neither vanishes nor stops the command after the run published."""

from __future__ import annotations

from pathlib import Path

from helpers import invoke

from segjob.cli.terminal import RichBars

JOB = "nightly [/x] [bold]"
LABELS = ["Big [/x] spenders :thumbs_up:", "[red]Bargain[/red] hunters", "Quiet [eur] ones"]


def _customers(tmp_path: Path) -> Path:
    lines = ["id,spend [eur],visits [/x],tier,words [/x]"]
    for i in range(90):
        group = i % 3
        tier = ["gold", "[red]silver", "bronze :smile:"][group]
        lines.append(f"c{i},{group * 100 + i % 7},{group * 5 + i % 3},{tier},w{i}")
    path = tmp_path / "customers.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_names_labels_and_errors_print_as_they_are(sqlite_url, tmp_path):
    assert invoke(sqlite_url, "db", "upgrade").exit_code == 0
    assert invoke(sqlite_url, "load-csv", str(_customers(tmp_path)), "--table", "cust [/x]").exit_code == 0
    labels = tmp_path / "labels.toml"
    labels.write_text("".join(f'{i} = "{label}"\n' for i, label in enumerate(LABELS, start=1)))
    job = ("--source", "cust [/x]", "--id", "id", "--job", JOB, "--k", "3", "--quiet")

    features = ("--features", "spend [eur],visits [/x]", "--categorical", "tier", "--labels", str(labels))
    ran = invoke(sqlite_url, "run", *job, *features)
    assert ran.exit_code == 0, ran.output
    for text in (f"of job {JOB}:", "table cust [/x]", "spend [eur]", "visits [/x]", "[red]silver", *LABELS):
        assert text in ran.stdout, text
    assert ":smile:" in ran.stdout and "\N{SMILING FACE WITH OPEN MOUTH AND SMILING EYES}" not in ran.stdout

    failed = invoke(sqlite_url, "run", *job, "--features", "spend [eur],words [/x]")
    assert failed.exit_code == 3
    assert 'column "words [/x]" is not numeric' in failed.stderr

    listed = invoke(sqlite_url, "runs", "list")
    assert listed.exit_code == 0, listed.output
    assert JOB in listed.stdout and 'column "words [/x]" is not numeric' in listed.stdout

    shown = invoke(sqlite_url, "runs", "show", "2")
    assert shown.exit_code == 0, shown.output
    assert 'error: column "words [/x]" is not numeric' in shown.stdout


def test_progress_bars_print_step_names_as_they_are(capsys):
    bars = RichBars()
    bars.stage("reading table cust [/x] :smile:")
    bars.done("90 rows [eur]")
    err = capsys.readouterr().err
    assert "reading table cust [/x] :smile:: 90 rows [eur]" in err
