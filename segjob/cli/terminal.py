"""Progress on stderr (segjob.progress defines the protocol): rich bars for a person at a terminal,
timestamped lines (or JSON lines) for the logs of schedulers such as cron, Airflow or CI."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bars

from segjob.progress import Progress, Silent


class RichBars:
    """A rich progress bar per step (row count, rate, elapsed; a bar when the total is known),
    replaced by one plain line "<step>: <summary> (<seconds>s)" when the step finishes."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.name = ""
        self.started = time.perf_counter()
        self._bars: Bars | None = None
        self._task: TaskID | None = None

    def stage(self, name: str, total: int | None = None) -> None:
        self._stop()
        self.name, self.started = name, time.perf_counter()
        self._bars = Bars(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            refresh_per_second=4,  # a bar, not a firehose: a slow terminal or log still keeps up
        )
        self._task = self._bars.add_task(name, total=total, count="", rate="")
        self._bars.start()

    def rows(self, done: int) -> None:
        if self._bars is None:
            return
        assert self._task is not None  # set together with self._bars in stage()
        rate = done / max(time.perf_counter() - self.started, 1e-9)
        self._bars.update(self._task, completed=done, count=f"{done:,} rows", rate=f"{rate:,.0f} rows/s")

    def done(self, summary: str) -> None:
        self._stop()
        elapsed = time.perf_counter() - self.started
        # Step names hold table and column names: no markup or emoji codes are read in them.
        line = f"{self.name}: {summary} ({elapsed:.1f}s)"
        self.console.print(line, markup=False, emoji=False, highlight=False, soft_wrap=True)

    def _stop(self) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None


# A long step says how far it got this often: often enough to show a run is alive in a task log,
# rare enough that a million-row step writes a handful of lines, not thousands.
LOG_EVERY_SECONDS = 10.0


class LogLines:
    """One timestamped line when a step starts, every LOG_EVERY_SECONDS while it counts rows, and
    when it finishes; as JSON objects, one per line, with `as_json`.

        2026-12-02T05:30:01Z reading table mall: started
        2026-12-02T05:30:11Z reading table mall: 1,200,000 of 5,000,000 rows (24%), 120,000 rows/s
        2026-12-02T05:30:52Z reading table mall: 5,000,000 rows (50.9s)
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        as_json: bool = False,
        every: float = LOG_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.stream = stream or sys.stderr
        self.as_json, self.every, self.clock, self.now = as_json, every, clock, now
        self.name: str = ""
        self.total: int | None = None
        self.started = self.last_line = clock()

    def stage(self, name: str, total: int | None = None) -> None:
        self.name, self.total = name, total
        self.started = self.last_line = self.clock()
        self._write("start", "started", total=total)

    def rows(self, done: int) -> None:
        moment = self.clock()
        if moment - self.last_line < self.every:
            return
        self.last_line = moment
        rate = done / max(moment - self.started, 1e-9)
        counted = f"{done:,} rows" if not self.total else f"{done:,} of {self.total:,} rows ({done / self.total:.0%})"
        self._write("progress", f"{counted}, {rate:,.0f} rows/s", rows=done, total=self.total, rows_per_s=round(rate))

    def done(self, summary: str) -> None:
        seconds = self.clock() - self.started
        self._write("done", f"{summary} ({seconds:.1f}s)", seconds=round(seconds, 3), summary=summary)

    def _write(self, event: str, text: str, **fields: object) -> None:
        stamp = self.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.as_json:
            given = {key: value for key, value in fields.items() if value is not None}
            line = json.dumps({"ts": stamp, "event": event, "step": self.name, **given}, ensure_ascii=False)
        else:
            line = f"{stamp} {self.name}: {text}"
        self.stream.write(line + "\n")
        self.stream.flush()


def for_stderr(quiet: bool, log_format: str = "auto") -> Progress:
    """Nothing with `quiet`; with log format "auto", rich bars when a person watches stderr and
    timestamped lines when it goes to a log; "text" or "json" lines wherever it goes."""
    if quiet:
        return Silent()
    if log_format == "json":
        return LogLines(as_json=True)
    if log_format == "text" or not sys.stderr.isatty():
        return LogLines()
    return RichBars()
