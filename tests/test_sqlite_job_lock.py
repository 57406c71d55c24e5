"""The SQLite job lock (a locked file beside the database) excludes a second run of the job and
leaves no file behind (issue 26: a `segjob.db.lock-*` file stayed in the working folder)."""

from __future__ import annotations

import threading

import pytest

from segjob.errors import JobLockedError
from segjob.store import db


def test_the_lock_excludes_a_second_holder_and_leaves_no_file(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'segjob.db'}", must_exist=False)
    try:
        with db.job_lock(engine, "nightly", lambda: "run 1 started now"):
            assert len(list(tmp_path.glob("segjob.db.lock-*"))) == 1
            with pytest.raises(JobLockedError, match="job 'nightly' is already running \\(run 1 started now\\)"):
                with db.job_lock(engine, "nightly", lambda: "run 1 started now"):
                    pass
            with db.job_lock(engine, "other job", lambda: "-"):  # another job's lock is its own
                pass
        assert list(tmp_path.glob("segjob.db.lock-*")) == []
        with db.job_lock(engine, "nightly", lambda: "-"):  # free again
            pass
        assert list(tmp_path.glob("segjob.db.lock-*")) == []
    finally:
        engine.dispose()


def test_holders_that_race_on_removal_never_overlap(tmp_path):
    """Many threads take and release the lock as fast as they can: at no moment do two hold it."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'segjob.db'}", must_exist=False)
    holding, overlaps, held = [0], [], [0]
    guard = threading.Lock()

    def worker() -> None:
        for _ in range(200):
            try:
                with db.job_lock(engine, "nightly", lambda: "-"):
                    with guard:
                        holding[0] += 1
                        held[0] += 1
                        if holding[0] > 1:
                            overlaps.append(holding[0])
                    with guard:
                        holding[0] -= 1
            except JobLockedError:
                pass

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert overlaps == [] and held[0] > 0
    assert list(tmp_path.glob("segjob.db.lock-*")) == []
