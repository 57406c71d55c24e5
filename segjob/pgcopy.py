"""PostgreSQL binary COPY encoding, built from numpy arrays without a Python loop per row.

Format (PostgreSQL docs, "COPY ... Binary Format"): a fixed header, then per row an int16
field count and, per field, an int32 byte length followed by the value in network byte order;
an int16 -1 ends the stream.
"""

from __future__ import annotations

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"

# Big-endian encodings of the fixed-width PostgreSQL types segjob writes.
_FIXED = {"int4": ">i4", "int8": ">i8", "float8": ">f8"}


def encode_rows(columns: list[tuple[str, np.ndarray]]) -> bytes:
    """Encode rows given column-wise as (pg type, array) pairs: int4, int8, float8 or text.

    Text arrays hold str; NaN in a float8 column is written as NULL.
    """
    n = len(columns[0][1])
    encoded = [_encode_column(kind, values) for kind, values in columns]
    # Each field is a 4-byte length then its payload (none for NULL, length -1).
    row_sizes = 2 + sum(4 + np.maximum(lengths, 0) for _, lengths in encoded)
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(row_sizes, out=starts[1:])
    out = np.empty(int(starts[-1]), dtype=np.uint8)

    _scatter_fixed(out, starts[:-1], np.full(n, len(columns), dtype=">i2"))
    position = starts[:-1] + 2
    for payload, lengths in encoded:
        _scatter_fixed(out, position, lengths.astype(">i4"))
        position = position + 4
        if payload.dtype == np.uint8:  # variable width: flat bytes, `lengths` per row
            _scatter_variable(out, position, payload, lengths)
        else:
            present = lengths >= 0
            _scatter_fixed(out, position[present], payload[present])
        position = position + np.maximum(lengths, 0)
    return out.tobytes()


def _encode_column(kind: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(payload, per-row byte lengths with -1 for NULL)."""
    if kind == "text":
        raw = [value.encode("utf-8") for value in values]
        lengths = np.fromiter((len(item) for item in raw), dtype=np.int64, count=len(raw))
        return np.frombuffer(b"".join(raw), dtype=np.uint8), lengths
    payload = np.asarray(values).astype(_FIXED[kind])
    lengths = np.full(len(payload), payload.dtype.itemsize, dtype=np.int64)
    if kind == "float8":
        lengths[np.isnan(values)] = -1
    return payload, lengths


def _scatter_fixed(out: np.ndarray, positions: np.ndarray, values: np.ndarray) -> None:
    width = values.dtype.itemsize
    index = positions[:, None] + np.arange(width)
    out[index] = np.ascontiguousarray(values).view(np.uint8).reshape(-1, width)


def _scatter_variable(out: np.ndarray, positions: np.ndarray, payload: np.ndarray, lengths: np.ndarray) -> None:
    if payload.size == 0:
        return
    source_starts = np.cumsum(lengths) - lengths
    index = np.repeat(positions - source_starts, lengths) + np.arange(payload.size)
    out[index] = payload
