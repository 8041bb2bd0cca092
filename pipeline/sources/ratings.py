"""Explicit ratings (``ratings``, ``simulated_ratings``): ``user item rating`` triplets or a dense matrix.

Triplets are split on a comma or a tab (the CSV reader) or on any run of spaces or tabs (the
whitespace reader), as ``data.ratings.delimiter`` says or, when it is None, as the first line
shows; a matrix is read by the matrix reader (``pipeline.formats``). ``simulated_ratings`` reads
the ratings simulator's MNAR train and MAR test triplets under the directory it wrote (``--input``).
Both sources add the generated unobserved pairs that ``data.ratings.unobserved`` asks for
(``pipeline.sources.unobserved``), as the last input, and read them with :func:`ratings_reader` too.
"""
from __future__ import annotations

from typing import Optional

from pipeline.formats import Reader, sniff_delimiter
from pipeline.simulators.ratings import TRIPLET_FILES
from pipeline.sources.files import expand_patterns, resolve_files
from pipeline.sources.unobserved import UnobservedPairs, UnobservedReader


def ratings_reader(data, path, columns=None):
    """The reader of a ratings file, or of the generated unobserved pairs (an :class:`UnobservedPairs`)."""
    if isinstance(path, UnobservedPairs):
        return UnobservedReader(data, ratings_reader)
    names = tuple(data.ratings.columns)
    if data.ratings.format == "matrix":
        return Reader("matrix", names=names)
    delimiter = data.ratings.delimiter or sniff_delimiter(path)
    if delimiter is None:
        return Reader("whitespace", names=None if data.ratings.header else names)
    return Reader("csv", delimiter=delimiter, header=data.ratings.header,
                  names=None if data.ratings.header else names)


def resolve_ratings(data, raw_dir=None, task: Optional[str] = None, seed: Optional[int] = None) -> list[tuple]:
    """The configured ratings files, then the generated unobserved pairs of the train files."""
    return _with_unobserved(data, resolve_files(data), seed)


def resolve_simulated_ratings(data, raw_dir=None, task: Optional[str] = None,
                              seed: Optional[int] = None) -> list[tuple]:
    """The simulator's MNAR train triplets (split per row) and MAR test triplets, then the unobserved pairs."""
    if raw_dir is None:
        raise ValueError("data.source is 'simulated_ratings': give the ratings simulator's output directory "
                         "(--input)")
    inputs = [(p, None) for p in expand_patterns([f"{raw_dir}/{TRIPLET_FILES['train']}"])]
    inputs += [(p, "test") for p in expand_patterns([f"{raw_dir}/{TRIPLET_FILES['test']}"])]
    return _with_unobserved(data, inputs, seed)


def _with_unobserved(data, inputs: list[tuple], seed: Optional[int]) -> list[tuple]:
    """``inputs`` + ``[(UnobservedPairs of the train files, their split)]`` when ``data.ratings.unobserved``
    asks for them."""
    how = data.ratings.unobserved
    if how == 0:
        return inputs
    if seed is None:
        raise ValueError("data.ratings.unobserved draws from the config seed: pass seed to resolve_inputs")
    train = [(p, split) for p, split in inputs if split in (None, "train")]
    split = train[0][1] if train else None
    pairs = UnobservedPairs(tuple(p for p, _ in train), None if how == "all" else int(how), seed)
    return inputs + [(pairs, split)]
