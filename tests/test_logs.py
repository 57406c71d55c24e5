"""Progress as log lines for schedulers (segjob.cli.terminal.LogLines), with a fake clock."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

from segjob.cli.terminal import LogLines, RichBars, for_stderr
from segjob.progress import Silent


class Clock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return datetime(2026, 12, 2, 5, 30, tzinfo=UTC) + timedelta(seconds=self.seconds)


def _log(as_json: bool = False) -> tuple[LogLines, io.StringIO, Clock]:
    stream, clock = io.StringIO(), Clock()
    return LogLines(stream, as_json=as_json, every=10.0, clock=clock, now=clock.now), stream, clock


def test_a_line_per_step_and_a_rate_line_every_ten_seconds():
    log, stream, clock = _log()
    log.stage("reading table customers", total=5_000_000)
    for second in range(1, 26):  # a chunk a second for 25 s: rate lines at 10 s and 20 s only
        clock.seconds = second
        log.rows(second * 100_000)
    clock.seconds = 25.5
    log.done("2,500,000 rows")
    log.stage("preparing")
    log.rows(10)  # too soon for a rate line
    log.done("2,500,000 rows used")
    assert stream.getvalue().splitlines() == [
        "2026-12-02T05:30:00Z reading table customers: started",
        "2026-12-02T05:30:10Z reading table customers: 1,000,000 of 5,000,000 rows (20%), 100,000 rows/s",
        "2026-12-02T05:30:20Z reading table customers: 2,000,000 of 5,000,000 rows (40%), 100,000 rows/s",
        "2026-12-02T05:30:25Z reading table customers: 2,500,000 rows (25.5s)",
        "2026-12-02T05:30:25Z preparing: started",
        "2026-12-02T05:30:25Z preparing: 2,500,000 rows used (0.0s)",
    ]


def test_without_a_total_the_rate_line_counts_rows_only():
    log, stream, clock = _log()
    log.stage("reading query")
    clock.seconds = 12
    log.rows(600)
    assert stream.getvalue().splitlines()[-1] == "2026-12-02T05:30:12Z reading query: 600 rows, 50 rows/s"


def test_json_lines_carry_the_same_events():
    log, stream, clock = _log(as_json=True)
    log.stage("assigning and writing", total=1_000)
    clock.seconds = 10
    log.rows(400)
    clock.seconds = 12.5
    log.done("1,000 assignments")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert records == [
        {"ts": "2026-12-02T05:30:00Z", "event": "start", "step": "assigning and writing", "total": 1000},
        {
            "ts": "2026-12-02T05:30:10Z",
            "event": "progress",
            "step": "assigning and writing",
            "rows": 400,
            "total": 1000,
            "rows_per_s": 40,
        },
        {
            "ts": "2026-12-02T05:30:12Z",
            "event": "done",
            "step": "assigning and writing",
            "seconds": 12.5,
            "summary": "1,000 assignments",
        },
    ]


def test_the_format_follows_the_options_and_the_terminal(monkeypatch):
    class FakeTerminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert isinstance(for_stderr(quiet=True), Silent)
    assert isinstance(for_stderr(quiet=False), LogLines)  # stderr is a file or a pipe
    assert for_stderr(quiet=False, log_format="json").as_json
    monkeypatch.setattr("sys.stderr", FakeTerminal())
    assert isinstance(for_stderr(quiet=False), RichBars)
    assert isinstance(for_stderr(quiet=False, log_format="text"), LogLines)
    assert isinstance(for_stderr(quiet=True, log_format="json"), Silent)
