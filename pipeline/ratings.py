"""Explicit ratings in whitespace-separated text: ``user item rating`` triplets split on any run of
spaces or tabs, or a dense users x items matrix (the Coat release), one line per user, one
column per item, 0 = not rated.

Each rated cell becomes a row ``user, item, rating`` (user = line index, item = column index,
both from 0); with ``keep_missing`` the 0 cells are rows too (the validator marks them
unobserved). A line with a different number of fields than the first is rejected whole.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipeline.sources import Chunk
from pipeline.validation import Reject


def read_matrix(path: str, rows: int, names, keep_missing: bool = False) -> Iterator[Chunk]:
    user_col, item_col, rating_col = names
    with FileSystems.open(path) as handle:
        lines = handle.read().split(b"\n")
    if lines and lines[-1].strip() == b"":
        lines.pop()
    width = len(lines[0].split()) if lines else 0
    users, items, ratings, numbers, rejects = [], [], [], [], []
    held = 0
    for i, line in enumerate(lines):
        fields = line.split()
        if len(fields) != width:
            reason = "empty_line" if not fields else "truncated_line" if len(fields) < width else "extra_fields"
            rejects.append(Reject(path, i + 1, reason, {"line": line.decode("utf-8", "backslashreplace"),
                                                        "expected_fields": width, "found_fields": len(fields)}))
            continue
        keep = np.arange(width) if keep_missing else np.flatnonzero([not _is_zero(v) for v in fields])
        users.append(np.full(len(keep), i))
        items.append(keep)
        ratings.extend(fields[j] for j in keep)
        numbers.append(np.full(len(keep), i + 1))
        held += len(keep)
        if held >= rows:
            yield _chunk(names, users, items, ratings, numbers, rejects)
            users, items, ratings, numbers, rejects, held = [], [], [], [], [], 0
    if held or rejects:
        yield _chunk(names, users, items, ratings, numbers, rejects)


def _chunk(names, users, items, ratings, numbers, rejects) -> Chunk:
    user_col, item_col, rating_col = names
    user = np.concatenate(users) if users else np.array([], np.int64)
    item = np.concatenate(items) if items else np.array([], np.int64)
    table = pa.table({user_col: pa.array(user.astype(np.int64)).cast(pa.string()),
                      item_col: pa.array(item.astype(np.int64)).cast(pa.string()),
                      rating_col: pa.array(ratings, pa.binary())})
    lines = np.concatenate(numbers) if numbers else np.array([], np.int64)
    return Chunk(table, lines, list(rejects))


def _is_zero(value: bytes) -> bool:
    """'0', '0.0', '00' ... (text that is a zero), without parsing every cell."""
    return value.lstrip(b"+-").strip(b"0").strip(b".").strip(b"0") == b""


def read_whitespace(path: str, rows: int, names) -> Iterator[Chunk]:
    """Whitespace-separated text: every line must have as many fields as the first one."""
    with FileSystems.open(path) as handle:
        text = handle.read()
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    start = 0
    if names is None:  # the first line is a header
        names, start = [c.decode("utf-8", "replace") for c in lines[0].split()], 1
    values: list[list[bytes]] = [[] for _ in names]
    numbers: list[int] = []
    rejects: list[Reject] = []
    for i in range(start, len(lines)):
        fields = lines[i].split()
        if len(fields) != len(names):
            reason = ("empty_line" if not fields else
                      "truncated_line" if len(fields) < len(names) else "extra_fields")
            rejects.append(Reject(path, i + 1, reason, {"line": lines[i].decode("utf-8", "backslashreplace"),
                                                        "expected_fields": len(names), "found_fields": len(fields)}))
            continue
        for column, value in zip(values, fields):
            column.append(value)
        numbers.append(i + 1)
        if len(numbers) == rows:
            yield _whitespace_chunk(names, values, numbers, rejects)
            values, numbers, rejects = [[] for _ in names], [], []
    if numbers or rejects:
        yield _whitespace_chunk(names, values, numbers, rejects)


def _whitespace_chunk(names, values, numbers, rejects) -> Chunk:
    table = pa.table({name: pa.array(column, pa.binary()) for name, column in zip(names, values)})
    return Chunk(table, np.asarray(numbers, dtype=np.int64), list(rejects))
