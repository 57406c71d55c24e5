"""The one exception tree of segjob; each class carries the CLI exit code it maps to.

SegjobError                  1  unexpected failure
+-- UsageError               2  bad option, unknown table or column, missing file
+-- DataError                3  input data unusable (no rows, too few rows, non-numeric, duplicates)
+-- JobLockedError           4  another run of the same job is in progress
+-- DatabaseError            5  database unreachable, connection lost, or its schema is not at head
|   +-- SchemaOutOfDateError 5  run 'segjob db upgrade'
|   +-- StatementTimeoutError 5 a statement ran longer than --statement-timeout
|   +-- LockWaitError        5  other sessions held a lock segjob needs for longer than --lock-wait
+-- Interrupted        130/143  stopped by Ctrl-C (SIGINT) or SIGTERM
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SegjobError(Exception):
    """Base class: every error segjob raises on purpose is one of these."""

    exit_code = 1


class UsageError(SegjobError):
    """The user asked for something that cannot exist: bad option, unknown table or column."""

    exit_code = 2


class DataError(SegjobError):
    """The input data cannot be segmented as asked."""

    exit_code = 3


class JobLockedError(SegjobError):
    """Another run of the same job holds the job lock."""

    exit_code = 4


class DatabaseError(SegjobError):
    """The database cannot be reached or used."""

    exit_code = 5


class SchemaOutOfDateError(DatabaseError):
    """segjob's tables are missing or older than this version of segjob."""


class StatementTimeoutError(DatabaseError):
    """PostgreSQL cancelled a statement that ran longer than the job's --statement-timeout."""


class LockWaitError(DatabaseError):
    """segjob gave up waiting for a lock that other sessions (long queries) held; nothing changed."""


class Interrupted(SegjobError):
    """The process was asked to stop (SIGINT or SIGTERM); exit code 128 + the signal number."""

    def __init__(self, signal_number: int) -> None:
        import signal

        super().__init__(f"interrupted by {signal.Signals(signal_number).name}")
        self.exit_code = 128 + signal_number


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """'; did you mean "Name"?' for an unknown name, or "" when nothing is close: names equal but
    for case come first (customerid -> CustomerID), then close spellings (MonthlyCharge ->
    MonthlyCharges), case-insensitively."""
    names = list(dict.fromkeys(known))
    matches = [n for n in names if n.lower() == name.lower() and n != name]
    if not matches:
        lowered = {n.lower(): n for n in reversed(names)}
        matches = [lowered[n] for n in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.75)]
    if not matches:
        return ""
    return "; did you mean " + " or ".join(f'"{match}"' for match in matches[:3]) + "?"
