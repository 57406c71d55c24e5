"""Progress reporting on stderr for long steps. Library code talks to the `Progress` protocol;
the CLI picks the implementation: rich progress bars at a terminal, nothing with --quiet or
--json or when stderr is not a terminal (logs of scheduled runs stay clean)."""

from __future__ import annotations

import sys
import time
from typing import Protocol


class Progress(Protocol):
    def stage(self, name: str, total: int | None = None) -> None:
        """A new step starts (reading, preparing, fitting, writing); `total` rows if known."""

    def rows(self, done: int) -> None:
        """Rows handled so far in the current step."""

    def done(self, summary: str) -> None:
        """The current step finished; `summary` says what it did."""


class Silent:
    def stage(self, name: str, total: int | None = None) -> None:
        pass

    def rows(self, done: int) -> None:
        pass

    def done(self, summary: str) -> None:
        pass


class StderrLines:
    """One line per finished step, with its duration; row counts update in place."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.name = ""
        self.started = time.perf_counter()

    def stage(self, name: str, total: int | None = None) -> None:
        self.name = name
        self.started = time.perf_counter()

    def rows(self, done: int) -> None:
        rate = done / max(time.perf_counter() - self.started, 1e-9)
        self.stream.write(f"\r{self.name}: {done:,} rows ({rate:,.0f} rows/s)")
        self.stream.flush()

    def done(self, summary: str) -> None:
        elapsed = time.perf_counter() - self.started
        self.stream.write(f"\r\033[K{self.name}: {summary} ({elapsed:.1f}s)\n")
        self.stream.flush()


class RichBars:
    """A rich progress bar per step (row count, rate, elapsed; a bar when the total is known),
    replaced by one plain line "<step>: <summary> (<seconds>s)" when the step finishes."""

    def __init__(self, console=None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.name = ""
        self.started = time.perf_counter()
        self._bars = None
        self._task = None

    def stage(self, name: str, total: int | None = None) -> None:
        from rich.progress import BarColumn, Progress as Bars, SpinnerColumn, TextColumn, TimeElapsedColumn

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
