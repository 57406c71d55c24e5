"""Progress bars on stderr for a person watching a terminal (segjob.progress defines the protocol)."""

from __future__ import annotations

import sys
import time

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
        self.console.print(f"{self.name}: {summary} ({elapsed:.1f}s)", markup=False, highlight=False, soft_wrap=True)

    def _stop(self) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None


def for_terminal(quiet: bool) -> Progress:
    """Rich bars when a person watches stderr; Silent with `quiet` or when stderr is not a terminal."""
    return RichBars() if not quiet and sys.stderr.isatty() else Silent()
