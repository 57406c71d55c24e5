"""The soak test's short version (benchmarks/soak.py; the long one is run by hand, see docs/readers.md).

Three rounds of three jobs running beside prune, promote or rollback and dashboard readers, one
segjob process SIGKILLed at a random moment in every round and PostgreSQL (a private cluster the
script starts) restarted once; after every round the invariants hold and no dashboard query saw
part of a run or more than one current run of a job.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def soak():
    # Imported by its own name: its forked segjob processes look their entry point up there.
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("soak")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_short_soak_keeps_every_invariant(soak):
    kills = 0
    # Whether a victim still runs at its random moment depends on the machine's speed (an idle
    # machine finished every victim of seed 3 first once): another seed's rounds, until one lands.
    for seed in (3, 4, 5):
        totals = soak.soak(rounds=3, seed=seed, customers=1000, restart_every=2)
        print(totals.details())
        print(totals.line())
        assert totals.violations == []
        assert totals.rounds == 3 and totals.restarts == 1
        assert totals.reader_queries > 100 and totals.long_queries > 0
        # No reader waited for a lock long enough for the server to log it (100 ms); how long the
        # queries took otherwise depends on the machine's load, so it is printed, not asserted.
        assert not [wait for wait in totals.lock_waits if wait.startswith("AccessShareLock")], totals.lock_waits
        kills += totals.kills
        if kills:
            break
    assert kills >= 1  # a kill whose process had already ended does not count
