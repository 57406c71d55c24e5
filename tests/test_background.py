"""background.read_ahead and background.Sender: order, errors, early stops, no stray interrupts."""

from __future__ import annotations

import threading

import pytest

from segjob.background import Sender, read_ahead


class Source:
    """A generator of numbers that records whether it was closed and whether it was interrupted."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count, self.fail_at = count, fail_at
        self.closed = self.interrupted = False
        self.produced = 0

    def items(self):
        try:
            for value in range(self.count):
                if value == self.fail_at:
                    raise ValueError(f"bad item {value}")
                self.produced += 1
                yield value
        finally:
            self.closed = True

    def interrupt(self) -> None:
        self.interrupted = True


def test_read_ahead_yields_everything_in_order_without_interrupting():
    source = Source(1000)
    assert list(read_ahead(source.items(), source.interrupt)) == list(range(1000))
    assert source.closed and not source.interrupted


def test_read_ahead_raises_the_error_where_its_item_would_be():
    source = Source(10, fail_at=6)
    seen = []
    with pytest.raises(ValueError, match="bad item 6"):
        for value in read_ahead(source.items(), source.interrupt):
            seen.append(value)
    assert seen == [0, 1, 2, 3, 4, 5]
    assert source.closed and not source.interrupted


def test_closing_early_interrupts_and_closes_the_source_without_reading_on():
    source = Source(1_000_000)
    reader = read_ahead(source.items(), source.interrupt)
    assert [next(reader) for _ in range(3)] == [0, 1, 2]
    reader.close()
    assert source.interrupted and source.closed
    assert source.produced <= 3 + 2  # at most one waiting and one being made when it stopped


def test_sender_writes_in_order_from_another_thread():
    written, threads = [], set()

    def write(data: bytes) -> None:
        written.append(data)
        threads.add(threading.current_thread().name)

    sender = Sender(write)
    for index in range(100):
        sender.send(b"%d" % index)
    sender.finish()
    assert written == [b"%d" % index for index in range(100)]
    assert threads == {"segjob-copy-sender"}


def test_sender_raises_the_write_error_and_never_blocks_after_it():
    def write(data: bytes) -> None:
        if data == b"3":
            raise OSError("connection lost")

    sender = Sender(write)
    with pytest.raises(OSError, match="connection lost"):
        for index in range(1000):  # the error surfaces on a later send, not after all 1000
            sender.send(b"%d" % index)
    with pytest.raises(OSError, match="connection lost"):
        sender.finish()
