"""PostgreSQL binary COPY encoding, built from numpy arrays without a Python loop per row.

Format (PostgreSQL docs, "COPY ... Binary Format"): a fixed header, then per row an int16
field count and, per field, an int32 byte length followed by the value in network byte order;
an int16 -1 ends the stream.

Rows whose text fields have the same byte lengths have the same layout, so they are encoded
together as one numpy structured array. Ids usually come in a handful of lengths, so this is a
few vectorised passes; COPY does not care about row order.
"""

from __future__ import annotations

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"

# Big-endian encodings of the fixed-width PostgreSQL types segjob writes. float8 NaN is written
# as a NaN value (PostgreSQL has one), not as NULL, so every fixed field keeps its width.
_FIXED = {"int4": ">i4", "int8": ">i8", "float8": ">f8"}


def encode_rows(columns: list[tuple[str, np.ndarray]]) -> bytes:
    """Encode rows given column-wise as (pg type, array) pairs: int4, int8, float8 or text (str)."""
    text = {index: _utf8(values) for index, (kind, values) in enumerate(columns) if kind == "text"}
    if not text:
        return _encode_group(columns, text, {}, None)
    # One integer per row that identifies its combination of text lengths.
    layout_key = np.zeros(len(columns[0][1]), dtype=np.int64)
    for _, lengths in text.values():
        layout_key = layout_key * (int(lengths.max(initial=0)) + 1) + lengths
    parts = []
    for key in np.unique(layout_key):
        rows = np.flatnonzero(layout_key == key)
        widths = {index: int(lengths[rows[0]]) for index, (_, lengths) in text.items()}
        parts.append(_encode_group(columns, text, widths, rows))
    return b"".join(parts)


def _utf8(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    encoded = np.array([value.encode("utf-8") for value in values], dtype=object)
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    return encoded, lengths


def _encode_group(columns, text, text_lengths: dict[int, int], rows: np.ndarray | None) -> bytes:
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
                encoded = text[index][0]
                out[f"value{index}"] = encoded if rows is None else encoded[rows]
        else:
            out[f"length{index}"] = np.dtype(_FIXED[kind]).itemsize
            out[f"value{index}"] = values if rows is None else np.asarray(values)[rows]
    return out.tobytes()
