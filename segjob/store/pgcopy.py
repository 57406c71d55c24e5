"""PostgreSQL binary COPY encoding, built from numpy arrays without a Python loop per row.

Format (PostgreSQL docs, "COPY ... Binary Format"): a fixed header, then per row an int16
field count and, per field, an int32 byte length followed by the value in network byte order;
an int16 -1 ends the stream.

Rows whose text fields have the same byte lengths have the same layout, so they are encoded
together as one numpy structured array. Ids usually come in a handful of lengths, so this is a
few vectorised passes; COPY does not care about row order.
"""

from __future__ import annotations

from collections.abc import Sequence, Sized

import numpy as np

from segjob.arrow_text import text_buffers

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"

# Big-endian encodings of the fixed-width PostgreSQL types segjob writes. float8 NaN is written
# as a NaN value (PostgreSQL has one), not as NULL, so every fixed field keeps its width.
_FIXED = {"int4": ">i4", "int8": ">i8", "float8": ">f8"}


def encode_rows(columns: Sequence[tuple[str, Sized]]) -> bytes:
    """Encode rows given column-wise as (pg type, values) pairs: int4, int8, float8 (numpy arrays)
    or text (a pandas string array, or a numpy array of str)."""
    text = {index: _Utf8(values) for index, (kind, values) in enumerate(columns) if kind == "text"}
    if all(np.ptp(utf8.lengths) == 0 for utf8 in text.values() if len(utf8.lengths)):
        # One layout for all rows (no text, or ids of one length, the usual case).
        widths = {index: int(utf8.lengths.max(initial=0)) for index, utf8 in text.items()}
        return _encode_group(columns, text, widths, None)
    # One integer per row that identifies its combination of text lengths.
    layout_key = np.zeros(len(columns[0][1]), dtype=np.int64)
    for utf8 in text.values():
        layout_key = layout_key * (int(utf8.lengths.max(initial=0)) + 1) + utf8.lengths
    parts = []
    for key in np.unique(layout_key):
        rows = np.flatnonzero(layout_key == key)
        widths = {index: int(utf8.lengths[rows[0]]) for index, utf8 in text.items()}
        parts.append(_encode_group(columns, text, widths, rows))
    return b"".join(parts)


class _Utf8:
    """A text column's UTF-8 byte lengths, and its values as fixed-width bytes for rows of one length."""

    def __init__(self, values) -> None:
        self._buffers = text_buffers(values)
        if self._buffers is not None:
            offsets = self._buffers[0]
            self.lengths = np.diff(offsets)
        else:
            self._encoded = np.array([value.encode("utf-8") for value in values], dtype=object)
            self.lengths = np.fromiter(map(len, self._encoded), dtype=np.int64, count=len(self._encoded))

    def fixed(self, rows: np.ndarray | None, width: int) -> np.ndarray:
        if self._buffers is None:
            return self._encoded if rows is None else self._encoded[rows]
        offsets, data, _ = self._buffers
        if rows is None:  # all rows have this width, so their bytes lie back to back
            return data[offsets[0] : offsets[-1]].view(f"S{width}")
        starts = offsets[rows]
        return data[starts[:, None] + np.arange(width)].view(f"S{width}").ravel()


def _encode_group(columns, text: dict[int, _Utf8], text_lengths: dict[int, int], rows: np.ndarray | None) -> bytes:
    fields = [("count", ">i2")]
    for index, (kind, _) in enumerate(columns):
        fields.append((f"length{index}", ">i4"))
        width = text_lengths.get(index)
        if kind != "text":
            fields.append((f"value{index}", _FIXED[kind]))
        elif width:
            fields.append((f"value{index}", f"S{width}"))
    size = len(columns[0][1]) if rows is None else len(rows)
    out = np.empty(size, dtype=fields)
    out["count"] = len(columns)
    for index, (kind, values) in enumerate(columns):
        if kind == "text":
            out[f"length{index}"] = text_lengths[index]
            if text_lengths[index]:
                out[f"value{index}"] = text[index].fixed(rows, text_lengths[index])
        else:
            out[f"length{index}"] = np.dtype(_FIXED[kind]).itemsize
            out[f"value{index}"] = values if rows is None else np.asarray(values)[rows]
    return out.tobytes()
