"""The generated unobserved ratings pairs: rows no file holds, added to the ratings sources' train files.

The propensity model of IPS-V2 / DR-V2 (seed 002) is trained over every user-item pair D, the
MNAR ratings hold only the observed ones. ``data.ratings.unobserved`` adds, to the rows of
``train_files`` only, rows ``user, item, rating 0`` for pairs no train file rates (the validator
turns rating 0 into observed = 0, label = 0):

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
from typing import Callable, ClassVar, Iterator, Optional

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.formats import Chunk, is_zero, matrix_lines

UNRATED = b"0"  # the rating text of a generated row: 0 = no rating, as in the matrix format


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
    """Reads an :class:`UnobservedPairs` input: the train files through ``read_file`` (injected by the
    ratings source, ``pipeline.sources.ratings``), then the generated rows, ``rows`` at a time."""

    data: object  # the data section (ratings format and columns)
    read_file: Callable  # read_file(data, path) -> the Reader of one train file (the ratings source's)

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
        user_col, item_col, _ = self.data.ratings.columns
        pairs = []
        for path in files:
            for chunk in self.read_file(self.data, path).chunks(path, 1 << 16):
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
        lines, width = matrix_lines(path)
        for i, line in enumerate(lines):
            fields = line.split()
            if len(fields) == width:
                lines_ok.add(i)
                keep = [j for j, value in enumerate(fields) if not is_zero(value)]
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
