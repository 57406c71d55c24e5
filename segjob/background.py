"""Threads that overlap waiting on the database with work in Python, through bounded queues.

The streaming pass reads chunks from the source, computes on them and writes them back. The
reading (Arrow decoding in C++) and the writing (socket sends) release the GIL, so running them
in threads of their own lets the three steps overlap on a second core. At most DEPTH items wait
in each queue, so memory stays bounded whichever side is slower.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, suppress
from typing import TypeVar

T = TypeVar("T")

DEPTH = 1
_DONE = object()
# How often a blocked producer looks whether its consumer has gone.
_POLL_SECONDS = 0.1


# How long an interrupted blocking call may take to return once cancelled, before the caller
# goes on without it (the connection's timeout bounds a connect; a cancel ends a statement).
_CANCEL_WAIT_SECONDS = 15.0


def call_interruptibly(call: Callable[[], T], interrupt: Callable[[], None]) -> T:
    """`call()` in a worker thread while this thread waits, so Ctrl-C lands here at once.

    A driver that blocks the main thread in C may swap in a SIGINT handler of its own (ADBC does,
    and cancels the statement, so a run saw "cancelled from outside segjob" or lost the signal
    and published). In a worker it cannot; an interrupt here calls `interrupt` (which must make
    the call return soon, e.g. cancel its statement), waits a bounded time for it, and re-raises.
    """
    outcome: list[tuple[T | None, BaseException | None]] = []
    # An Event, not Thread.join: a join that Ctrl-C interrupts can leave the thread marked as
    # ended while it still runs (CPython gh-90882), and the call's connection then outlived the
    # caller's cleanup and failed to close at exit with a traceback.
    done = threading.Event()

    def work() -> None:
        try:
            outcome.append((call(), None))
        except BaseException as error:  # raised in the waiting thread
            outcome.append((None, error))
        finally:
            done.set()

    threading.Thread(target=work, name="segjob-blocking-call", daemon=True).start()
    try:
        while not done.wait(_POLL_SECONDS):
            pass
    except BaseException:
        with suppress(Exception):
            interrupt()
        done.wait(_CANCEL_WAIT_SECONDS)
        raise
    value, error = outcome[0]
    if error is not None:
        raise error
    return value  # type: ignore[return-value]  # None only with an error, raised above


def read_ahead(items: Generator[T, None, None], interrupt: Callable[[], None]) -> Iterator[T]:
    """Yield what `items` yields, produced by a thread of its own up to DEPTH items ahead.

    An error in `items` is raised here, where its item would have been. Closing this generator
    early calls `interrupt` (which must make a blocked `next(items)` fail or return soon), then
    waits for the thread, which closes `items`.
    """
    ready: queue.Queue = queue.Queue(maxsize=DEPTH)
    stop = threading.Event()

    def produce() -> None:
        with closing(items):
            try:
                for item in items:
                    if not _put(ready, (item, None), stop):
                        return
                _put(ready, (_DONE, None), stop)
            except BaseException as error:  # handed to the consumer, which raises it
                _put(ready, (_DONE, error), stop)

    thread = threading.Thread(target=produce, name="segjob-read-ahead", daemon=True)
    thread.start()
    producer_done = False
    try:
        while True:
            item, error = ready.get()
            producer_done = item is _DONE
            if error is not None:
                raise error
            if producer_done:
                return
            yield item
    finally:
        # Only a consumer that stops early interrupts: after the end, an interrupt could still
        # reach the connection's next statement.
        if not producer_done:
            stop.set()
            with suppress(Exception):
                interrupt()
        thread.join()


def _put(ready: queue.Queue, entry, stop: threading.Event) -> bool:
    """Put `entry` once there is room; False if `stop` is set first (the other side has gone)."""
    while not stop.is_set():
        with suppress(queue.Full):
            ready.put(entry, timeout=_POLL_SECONDS)
            return True
    return False


class Sender:
    """Calls `write` with each buffer given to `send`, from a thread of its own.

    At most DEPTH buffers wait, so memory stays bounded when the server is slower than the
    producer. An error in the thread is raised by the next `send` or by `finish`.

    Both sides wait with a timeout and look again, never on a wake-up alone: Ctrl-C raises in
    the main thread wherever it is, and inside a queue's notify it can leave a stale waiter that
    takes the next wake-up, so a thread waiting without a timeout would wait for ever.
    """

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=DEPTH)
        self._error: BaseException | None = None
        self._stop = threading.Event()  # set by `abandon`: write nothing more
        self._ended = threading.Event()  # set by the thread as it ends, after an error too
        self._thread = threading.Thread(target=self._run, name="segjob-copy-sender", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                with suppress(queue.Empty):
                    data = self._queue.get(timeout=_POLL_SECONDS)
                    if data is None:
                        return
                    self._write(data)
        except BaseException as exc:
            self._error = exc
        finally:
            self._ended.set()

    def send(self, data: bytes) -> None:
        if not _put(self._queue, data, self._ended):
            raise self._error or RuntimeError("the sender was abandoned")

    def finish(self) -> None:
        """Wait until everything sent has been written; raise the thread's error if any."""
        try:
            _put(self._queue, None, self._ended)
            self._thread.join()
        except BaseException:
            # Interrupted while the thread still writes: it must stop before the caller uses the
            # connection it writes to (ending a COPY while a buffer is still being sent).
            self.abandon()
            raise
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """Drop what waits, and wait for the thread to stop (the caller is failing anyway)."""
        self._stop.set()
        self._thread.join()
