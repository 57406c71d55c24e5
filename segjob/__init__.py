"""segjob: customer segmentation from a database table to versioned, BI-ready tables.

The Python API (segjob.api) is importable from here: `segjob.run(...)`, `segjob.score(...)`,
`segjob.promote(...)`, `segjob.roll_back(...)`, `segjob.run_details(...)`, `segjob.runs(...)`,
`segjob.prune(...)`, `segjob.upgrade(...)`, `segjob.load_csv(...)`, `segjob.spec(...)`, and the types they take and
return. They are loaded on first use, so `import segjob` (and `segjob --version`) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from segjob.version import VERSION as __version__

_FROM = {
    "run": "segjob.api",
    "score": "segjob.api",
    "promote": "segjob.api",
    "roll_back": "segjob.api",
    "run_details": "segjob.api",
    "runs": "segjob.api",
    "prune": "segjob.api",
    "upgrade": "segjob.api",
    "load_csv": "segjob.api",
    "spec": "segjob.api",
    "JobSpec": "segjob.config",
    "RunOutcome": "segjob.pipeline",
    "Promotion": "segjob.results.promotion",
    "PruneResult": "segjob.results.retention",
    "RunDetails": "segjob.results.details",
    "SegjobError": "segjob.errors",
    "UsageError": "segjob.errors",
    "DataError": "segjob.errors",
}
__all__ = ["__version__", *_FROM]

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ loads them on first use
    from segjob.api import load_csv as load_csv
    from segjob.api import promote as promote
    from segjob.api import prune as prune
    from segjob.api import roll_back as roll_back
    from segjob.api import run as run
    from segjob.api import run_details as run_details
    from segjob.api import runs as runs
    from segjob.api import score as score
    from segjob.api import spec as spec
    from segjob.api import upgrade as upgrade
    from segjob.config import JobSpec as JobSpec
    from segjob.errors import DataError as DataError
    from segjob.errors import SegjobError as SegjobError
    from segjob.errors import UsageError as UsageError
    from segjob.pipeline import RunOutcome as RunOutcome
    from segjob.results.details import RunDetails as RunDetails
    from segjob.results.promotion import Promotion as Promotion
    from segjob.results.retention import PruneResult as PruneResult


def __getattr__(name: str) -> Any:
    if name in _FROM:
        return getattr(import_module(_FROM[name]), name)
    raise AttributeError(f"module 'segjob' has no attribute {name!r}")
