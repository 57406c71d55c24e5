"""Zero-copy access to the UTF-8 bytes behind Arrow-backed pandas text (what ADBC reads and
pandas 3 makes by default), for vectorised work on ids without one Python string per row."""

from __future__ import annotations

import numpy as np


def text_buffers(values) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """(offsets, UTF-8 bytes, validity or None) of an Arrow-backed string array, without copies:
    row i is bytes[offsets[i]:offsets[i + 1]]. None when `values` is not Arrow-backed."""
    import pyarrow as pa

    if not hasattr(values, "__arrow_array__") and not isinstance(values, pa.Array):
        return None
    array = pa.array(values)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return None
    _, offsets, data = array.buffers()
    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(offsets, dtype=width)[array.offset : array.offset + len(array) + 1].astype(np.int64)
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, dtype=np.uint8)
    valid = None if array.null_count == 0 else array.is_valid().to_numpy(zero_copy_only=False)
    return offsets, data, valid


def surely_not_blank(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    """True for the rows whose first byte is a printable ASCII character other than space: they
    hold text that is not only whitespace. Rows False here need a closer look (empty, or starting
    with whitespace or a non-ASCII character)."""
    starts = offsets[:-1]
    non_empty = offsets[1:] > starts
    first = np.zeros(len(starts), dtype=np.uint8)
    first[non_empty] = data[starts[non_empty]]
    return (first > 0x20) & (first < 0x7F)
