"""Progress reporting on stderr for long steps. Library code talks to the `Progress` protocol;
the CLI picks the implementation (silent with --quiet or --json)."""

from __future__ import annotations

import sys
import time
from typing import Protocol


class Progress(Protocol):
    def stage(self, name: str) -> None:
        """A new step starts (reading, preparing, fitting, writing)."""

    def rows(self, done: int) -> None:
        """Rows handled so far in the current step."""

    def done(self, summary: str) -> None:
        """The current step finished; `summary` says what it did."""


class Silent:
    def stage(self, name: str) -> None:
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

    def stage(self, name: str) -> None:
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
