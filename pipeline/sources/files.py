"""Files the config lists (``csv``, ``parquet``, ``survey``, ``aliccp_processed``, and the ratings files):
``data.train_files`` / ``eval_files`` / ``test_files`` globs -> ``(path, split)`` inputs, a reader
from each file's name, and the first rows of a file as text.
"""
from __future__ import annotations

import glob
import os
from typing import Optional

import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipeline.formats import Reader, file_format


def expand_patterns(patterns: list[str]) -> list[str]:
    """Glob patterns -> sorted, de-duplicated file list (local globs or Beam match for remote)."""
    files: list[str] = []
    for pattern in patterns:
        if "://" in pattern:
            matched = [m.path for r in FileSystems.match([pattern]) for m in r.metadata_list]
        else:
            matched = glob.glob(os.path.expanduser(pattern))
        if not matched:
            raise FileNotFoundError(f"no input file matches {pattern!r}")
        files.extend(matched)
    return sorted(set(files))


def resolve_files(data, raw_dir=None, task: Optional[str] = None, seed: Optional[int] = None) -> list[tuple]:
    """The configured globs as ``(path, split)``: with ``split.by: files`` the train / eval globs decide
    the split, otherwise each row's split is computed and the file's own is ``None``; ``test_files``
    are always ``test``."""
    if not data.train_files:
        raise ValueError(f"data.train_files is empty: list the {data.source} files to read")
    by_files = data.split.by == "files"
    if by_files and not data.eval_files:
        raise ValueError("data.split.by is 'files' but data.eval_files is empty")
    inputs = [(p, "train" if by_files else None) for p in expand_patterns(data.train_files)]
    inputs += [(p, "eval") for p in expand_patterns(data.eval_files)] if by_files else []
    return inputs + [(p, "test") for p in expand_patterns(data.test_files)]


def file_reader(data, path: str, columns=None) -> Reader:
    """CSV (``data.csv_delimiter``, a header line) or Parquet (only ``columns``), from the file name."""
    return Reader(file_format(path), delimiter=data.csv_delimiter, columns=tuple(columns) if columns else None)


def first_rows(reader: Reader, path: str, n: int) -> Optional[pa.Table]:
    """The first ``n`` rows ``reader`` reads from ``path`` (None if it has none)."""
    chunk = next(iter(reader.chunks(path, n)), None)
    if chunk is None or chunk.table.num_rows == 0:
        return None
    return chunk.table.slice(0, n)


def text_frame(table: pa.Table):
    """An Arrow table as a DataFrame whose byte cells are decoded to text (warmup requests, examples)."""
    frame = table.to_pandas()
    for name in frame.columns:
        if frame[name].dtype == object:
            frame[name] = frame[name].map(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
    return frame
