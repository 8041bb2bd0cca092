"""Explicit ratings: whitespace-separated triplets, the dense matrix format, and generated unobserved pairs.

Readers: ``user item rating`` triplets split on any run of spaces or tabs (comma / tab triplets go
through the CSV reader), or a dense users x items matrix (the Coat release), one line per user, one
column per item, 0 = not rated; each rated cell becomes a row ``user, item, rating`` (user = line
index, item = column index, both from 0). A line with a different number of fields than the first
is rejected whole.

Generated rows (``UnobservedPairs``): the propensity model of IPS-V2 / DR-V2 (seed 002) is trained
over every user-item pair D, the MNAR ratings hold only the observed ones. ``data.ratings.unobserved``
adds, to the rows of ``train_files`` only, rows ``user, item, rating 0`` for pairs no train file rates
(the validator turns rating 0 into observed = 0, label = 0):

    k      for every user, min(k · n_u, |unrated_u|) items drawn without replacement, uniformly
           from the items of the train files the user did not rate (n_u = the user's rating lines);
    all    every unrated (user, item) pair of the train files' users x items (for a matrix: every
           0 cell of the well-formed lines).

"Rated" means any line of a train file naming the pair, even one validation later rejects (its
rating unreadable), so a generated row never contradicts a line of the input. The draw is a pure
function of the files and the config seed: user u draws from the stream (seed, SipHash(u)), users
in any order, so adding a user changes no other user's rows. The job counts these rows as
generated, not read (the report's rows read + generated = written + rejected); they are numbered
1, 2, ... within the generated input.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Iterator, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipeline.sources import Chunk
from pipeline.validation import Reject

UNRATED = b"0"  # the rating text of a generated row: 0 = no rating, as in the matrix format


def read_matrix(path: str, rows: int, names) -> Iterator[Chunk]:
    """The rated cells of a dense matrix file as ``user, item, rating`` rows; bad lines are rejects."""
    lines, width = _matrix_lines(path)
    users, items, ratings, numbers, rejects = [], [], [], [], []
    held = 0
    for i, line in enumerate(lines):
        fields = line.split()
        if len(fields) != width:
            reason = "empty_line" if not fields else "truncated_line" if len(fields) < width else "extra_fields"
            rejects.append(Reject(path, i + 1, reason, {"line": line.decode("utf-8", "backslashreplace"),
                                                        "expected_fields": width, "found_fields": len(fields)}))
            continue
        keep = np.flatnonzero([not _is_zero(v) for v in fields])
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


def _matrix_lines(path: str) -> tuple[list[bytes], int]:
    """The matrix's lines (a final empty line dropped) and its width, the first line's field count."""
    with FileSystems.open(path) as handle:
        lines = handle.read().split(b"\n")
    if lines and lines[-1].strip() == b"":
        lines.pop()
    return lines, (len(lines[0].split()) if lines else 0)


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


# ---------------------------------------------------------------------- generated unobserved pairs
@dataclasses.dataclass(frozen=True)
class UnobservedPairs:
    """The job input that holds the generated unobserved pairs of the MNAR ``files`` (module docstring).

    ``per_rating``: k items per rating, or None for every unrated pair. ``generated`` tells the job
    to count its rows as generated rather than read.
    """

    files: tuple[str, ...]
    per_rating: Optional[int]
    seed: int
    generated: ClassVar[bool] = True

    def __str__(self) -> str:
        how = "all" if self.per_rating is None else f"{self.per_rating} per rating"
        return f"<unobserved pairs ({how}, seed {self.seed}) of {', '.join(self.files)}>"


@dataclasses.dataclass(frozen=True)
class UnobservedReader:
    """Reads an :class:`UnobservedPairs` input: the train files through their own readers, then
    the generated rows, ``rows`` at a time."""

    data: object  # the config's DataConfig (ratings format and columns)

    def chunks(self, pairs: UnobservedPairs, rows: int) -> Iterator[Chunk]:
        names = tuple(self.data.ratings.columns)
        users, items, rated = self._rated_pairs(pairs.files)
        user_text, item_text = pa.array(users, pa.binary()), pa.array(items, pa.binary())
        picked_users, picked_items, held, first = [], [], 0, 1
        for u, chosen in _draw(users, len(items), rated, pairs.per_rating, pairs.seed):
            picked_users.append(np.full(len(chosen), u))
            picked_items.append(chosen)
            held += len(chosen)
            if held >= rows:
                yield _generated_chunk(names, user_text, item_text, picked_users, picked_items, first)
                first += held
                picked_users, picked_items, held = [], [], 0
        if held:
            yield _generated_chunk(names, user_text, item_text, picked_users, picked_items, first)

    def _rated_pairs(self, files) -> tuple[list[bytes], list[bytes], dict[int, np.ndarray]]:
        """Sorted user and item texts of the train files and {user index: rated item indices, one per line}."""
        if self.data.ratings.format == "matrix":
            return _matrix_rated_pairs(files)
        from pipeline.sources import reader_for
        user_col, item_col, _ = self.data.ratings.columns
        pairs = []
        for path in files:
            for chunk in reader_for(self.data, path).chunks(path, 1 << 16):
                pairs.append(pd.DataFrame({"u": chunk.table.column(user_col).to_pylist(),
                                           "v": chunk.table.column(item_col).to_pylist()}))
        frame = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame({"u": [], "v": []})
        frame = frame[frame["u"].map(_usable_id) & frame["v"].map(_usable_id)]
        users, items = sorted(set(frame["u"])), sorted(set(frame["v"]))
        u = pd.Index(users).get_indexer(frame["u"])
        v = pd.Index(items).get_indexer(frame["v"])
        return users, items, _group(u, v)


def _matrix_rated_pairs(files) -> tuple[list[bytes], list[bytes], dict[int, np.ndarray]]:
    """A matrix's well-formed lines are its users, its columns the items, its non-zero cells the rated pairs."""
    rated_u, rated_v, width, lines_ok = [], [], 0, set()
    for path in files:
        lines, width = _matrix_lines(path)
        for i, line in enumerate(lines):
            fields = line.split()
            if len(fields) == width:
                lines_ok.add(i)
                keep = [j for j, value in enumerate(fields) if not _is_zero(value)]
                rated_u += [i] * len(keep)
                rated_v += keep
    users = sorted(lines_ok)
    index = {line: k for k, line in enumerate(users)}
    u = np.array([index[i] for i in rated_u], np.int64)
    return ([str(i).encode() for i in users], [str(j).encode() for j in range(width)],
            _group(u, np.array(rated_v, np.int64)))


def _draw(users: list[bytes], n_items: int, rated: dict[int, np.ndarray], per_rating: Optional[int],
          seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """(user index, sorted unrated item indices) per user: all of them, or k per rating drawn uniformly."""
    streams = pd.util.hash_array(np.array(users, dtype=object), categorize=False)
    everything = np.arange(n_items)
    for u in range(len(users)):
        mine = rated.get(u, np.array([], np.int64))
        unrated = np.setdiff1d(everything, mine, assume_unique=False)
        if per_rating is not None:
            n = min(per_rating * len(mine), len(unrated))
            rng = np.random.default_rng([seed, int(streams[u])])
            unrated = np.sort(rng.choice(unrated, size=n, replace=False))
        if len(unrated):
            yield u, unrated


def _group(u: np.ndarray, v: np.ndarray) -> dict[int, np.ndarray]:
    """{user index: its item indices (one per rating line)}."""
    if not len(u):
        return {}
    order = np.argsort(u, kind="stable")
    u, v = u[order], v[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    return {int(u[s]): part for s, part in zip(starts, np.split(v, starts[1:]))}


def _usable_id(value) -> bool:
    """An id the validator will accept as categorical text: present, not blank, UTF-8."""
    if value is None or not value.strip():
        return False
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _generated_chunk(names, user_text: pa.Array, item_text: pa.Array, users, items, first: int) -> Chunk:
    user_col, item_col, rating_col = names
    u, v = np.concatenate(users), np.concatenate(items)
    table = pa.table({user_col: user_text.take(pa.array(u)), item_col: item_text.take(pa.array(v)),
                      rating_col: pa.array(np.full(len(u), UNRATED, dtype=object), pa.binary())})
    return Chunk(table, np.arange(first, first + len(u), dtype=np.int64), [])
