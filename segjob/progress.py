"""Progress of long steps. Library code talks to the `Progress` protocol; the CLI picks the
implementation (segjob.cli.terminal): rich progress bars at a terminal, timestamped lines when
stderr goes to a log, nothing with --quiet."""

from __future__ import annotations

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
