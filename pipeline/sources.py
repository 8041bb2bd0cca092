"""Readers that turn raw files (local or any Beam filesystem) into Arrow chunks with row numbers.

CSV is read with every column as bytes so that validation, not the reader, decides what a bad
value is (wrong type, undecodable bytes); lines with the wrong number of fields and empty lines
become rejects instead of errors. Every chunk carries the row number of each of its rows
(1-based line for text files, header included; 0-based row for Parquet; 1-based index for the
generated unobserved ratings pairs, an input no file holds: see ``pipeline.ratings``).
"""
from __future__ import annotations

import dataclasses
import glob
import os
from typing import Iterator, NamedTuple, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.validation import Reject

SPLITS = ("train", "eval", "test")


class Chunk(NamedTuple):
    """Up to ``rows`` raw rows of one file, their row numbers, and the lines rejected while reading."""

    table: pa.Table
    rows: np.ndarray
    rejects: list


@dataclasses.dataclass(frozen=True)
class Reader:
    """How to read one kind of file: ``csv`` (``header`` or ``names``), ``parquet``, ``whitespace``
    (fields split on any run of spaces or tabs) or a ratings ``matrix`` (see ``pipeline.ratings``)."""

    format: str
    delimiter: str = ","
    header: bool = True
    names: Optional[tuple[str, ...]] = None
    columns: Optional[tuple[str, ...]] = None  # parquet: read only these (when present)

    def chunks(self, path: str, rows: int) -> Iterator[Chunk]:
        if self.format == "parquet":
            yield from _read_parquet(path, rows, self.columns)
        elif self.format == "whitespace":
            from pipeline.ratings import read_whitespace
            yield from read_whitespace(path, rows, self.names)
        elif self.format == "matrix":
            from pipeline.ratings import read_matrix
            yield from read_matrix(path, rows, self.names)
        else:
            yield from _rechunk(_read_csv(path, self), rows)


def file_format(path: str) -> str:
    """'csv' or 'parquet', from the file name."""
    name = path.lower().removesuffix(".gz")
    if name.endswith((".csv", ".txt", ".tsv")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ValueError(f"cannot tell the format of {path!r} (expected .csv, .csv.gz or .parquet)")


RATINGS_SOURCES = ("ratings", "simulated_ratings")


def reader_for(data, path, columns=None):
    """The reader the config's ``data`` section implies for ``path`` (a file, or generated pairs)."""
    from pipeline.ratings import UnobservedPairs, UnobservedReader
    if isinstance(path, UnobservedPairs):
        return UnobservedReader(data)
    if data.source in RATINGS_SOURCES:
        names = tuple(data.ratings.columns)
        if data.ratings.format == "matrix":
            return Reader("matrix", names=names)
        delimiter = data.ratings.delimiter or _sniff_delimiter(path)
        if delimiter is None:
            return Reader("whitespace", names=None if data.ratings.header else names)
        return Reader("csv", delimiter=delimiter, header=data.ratings.header,
                      names=None if data.ratings.header else names)
    fmt = file_format(path)
    return Reader(fmt, delimiter=data.csv_delimiter, columns=tuple(columns) if columns else None)


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


def resolve_inputs(data, raw_dir=None, task: str = "conversion", seed: Optional[int] = None) -> list[tuple]:
    """The job's ``(path, split)`` inputs: simulator output under ``raw_dir``, or the configured globs.

    With ``split.by: files`` the train / eval globs decide the split; otherwise the split is
    computed per row and the file's own split is ``None``. ``test_files`` are always ``test``.
    Ratings with ``data.ratings.unobserved`` get one more input, last: the generated unobserved
    pairs of the train files (``pipeline.ratings.UnobservedPairs``), drawn from ``seed``.
    """
    if data.source == "simulated_ratings":
        if raw_dir is None:
            raise ValueError("data.source is 'simulated_ratings': give the ratings simulator's output directory "
                             "(--input)")
        from pipeline.simulate_ratings import TRIPLET_FILES
        inputs = [(p, None) for p in expand_patterns([f"{raw_dir}/{TRIPLET_FILES['train']}"])]
        inputs += [(p, "test") for p in expand_patterns([f"{raw_dir}/{TRIPLET_FILES['test']}"])]
        return inputs + _unobserved_input(data, [p for p, _ in inputs[:-1]], None, seed)
    if data.source == "simulated" or (data.source == "survey" and not data.train_files and raw_dir):
        if raw_dir is None:
            raise ValueError(f"data.source is {data.source!r}: give the simulator's output directory (--input)")
        folder = "surveys" if task == "survey" or data.source == "survey" else "exposures"
        return [(p, None) for p in expand_patterns([f"{raw_dir}/{folder}/*.parquet"])]
    if not data.train_files:
        raise ValueError(f"data.train_files is empty: list the {data.source} files to read")
    by_files = data.split.by == "files"
    if by_files and not data.eval_files:
        raise ValueError("data.split.by is 'files' but data.eval_files is empty")
    inputs = [(p, "train" if by_files else None) for p in expand_patterns(data.train_files)]
    train = [p for p, _ in inputs]
    inputs += [(p, "eval") for p in expand_patterns(data.eval_files)] if by_files else []
    inputs += [(p, "test") for p in expand_patterns(data.test_files)]
    if data.source in RATINGS_SOURCES:
        inputs += _unobserved_input(data, train, "train" if by_files else None, seed)
    return inputs


def _unobserved_input(data, train_files: list[str], split: Optional[str], seed: Optional[int]) -> list[tuple]:
    """``[(UnobservedPairs, split)]`` when ``data.ratings.unobserved`` asks for them, else ``[]``."""
    from pipeline.ratings import UnobservedPairs
    how = data.ratings.unobserved
    if how == 0:
        return []
    if seed is None:
        raise ValueError("data.ratings.unobserved draws from the config seed: pass seed to resolve_inputs")
    return [(UnobservedPairs(tuple(train_files), None if how == "all" else int(how), seed), split)]


# ---------------------------------------------------------------------- parquet
def _read_parquet(path: str, rows: int, columns):
    with FileSystems.open(path) as handle:
        reader = pq.ParquetFile(handle)
        wanted = [c for c in columns if c in reader.schema_arrow.names] if columns else None
        first = 0
        for batch in reader.iter_batches(batch_size=rows, columns=wanted):
            yield Chunk(pa.Table.from_batches([batch]), np.arange(first, first + batch.num_rows), [])
            first += batch.num_rows


# ---------------------------------------------------------------------- csv
def _read_csv(path: str, reader: Reader) -> Iterator[Chunk]:
    """CSV blocks as Chunks: bytes columns, physical line numbers, malformed and empty lines rejected."""
    names = list(reader.names) if reader.names else _peek_header(path, reader.delimiter)
    malformed: list[int] = []
    pending: list[Reject] = []

    def on_invalid(row) -> str:
        line = int(row.number) if row.number is not None else -1
        reason = "truncated_line" if row.actual_columns < row.expected_columns else "extra_fields"
        if not row.text.strip(reader.delimiter + " \t\r"):
            reason = "empty_line"
        malformed.append(line)
        pending.append(Reject(path, line, reason, {"line": row.text, "expected_fields": row.expected_columns,
                                                   "found_fields": row.actual_columns}))
        return "skip"

    first_line = 2 if reader.header else 1
    with _open(path) as handle:
        stream = pa.input_stream(handle, compression="gzip" if path.endswith(".gz") else None)
        csv = pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(block_size=1 << 23, use_threads=False, column_names=names,
                                            skip_rows=1 if reader.header else 0),
            parse_options=pa_csv.ParseOptions(delimiter=reader.delimiter, invalid_row_handler=on_invalid,
                                              ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(column_types={c: pa.binary() for c in names},
                                                  strings_can_be_null=False))
        seen = 0
        for batch in csv:
            table = pa.Table.from_batches([batch])
            lines = _line_numbers(seen, table.num_rows, sorted(malformed), first_line)
            seen += table.num_rows
            table, lines, empty = _drop_empty_lines(table, lines, path)
            yield Chunk(table, lines, pending[:] + empty)
            pending.clear()
        if pending:
            yield Chunk(pa.table({c: pa.array([], pa.binary()) for c in names}), np.array([], np.int64), pending[:])


def _open(path: str):
    """The raw bytes of ``path`` (decompression is pyarrow's job, not Beam's)."""
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _line_numbers(first: int, n: int, skipped: list[int], first_line: int) -> np.ndarray:
    """Physical line numbers of data rows ``first .. first + n - 1``, given the skipped lines.

    Row k lands on line first_line + k + j, j the number of skipped lines before it.
    """
    k = np.arange(first, first + n)
    if not skipped:
        return k + first_line
    skipped = np.asarray(skipped)
    as_rows = skipped - first_line - np.arange(len(skipped))  # the row index each skipped line displaced
    return k + first_line + np.searchsorted(as_rows, k, side="right")


def _drop_empty_lines(table: pa.Table, lines: np.ndarray, path: str):
    """Rows whose every field is empty (an empty line) become ``empty_line`` rejects."""
    if table.num_rows == 0:
        return table, lines, []
    empty = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        empty &= pc.equal(pc.binary_length(column), 0).to_numpy(zero_copy_only=False)
        if not empty.any():
            return table, lines, []
    rejects = [Reject(path, int(line), "empty_line", {"line": ""}) for line in lines[empty]]
    return table.filter(pa.array(~empty)), lines[~empty], rejects


def _rechunk(chunks: Iterator[Chunk], rows: int) -> Iterator[Chunk]:
    """Re-cuts chunks to ``rows`` rows each (the last one shorter); rejects travel with the next chunk."""
    tables, lines, rejects, held, empty = [], [], [], 0, None
    for chunk in chunks:
        empty = chunk.table.schema.empty_table()
        rejects.extend(chunk.rejects)
        if chunk.table.num_rows:
            tables.append(chunk.table)
            lines.append(chunk.rows)
            held += chunk.table.num_rows
        while held >= rows:
            table, all_lines = pa.concat_tables(tables), np.concatenate(lines)
            yield Chunk(table.slice(0, rows), all_lines[:rows], rejects[:])
            rejects.clear()
            tables, lines, held = [table.slice(rows)], [all_lines[rows:]], held - rows
    if held or rejects:
        if not tables:
            yield Chunk(empty, np.array([], np.int64), rejects)
            return
        yield Chunk(pa.concat_tables(tables), np.concatenate(lines), rejects)


def _peek_header(path: str, delimiter: str) -> list[str]:
    with _open(path) as handle:
        stream = pa.input_stream(handle, compression="gzip" if path.endswith(".gz") else None)
        line = stream.read(1 << 16).split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
    if not line:
        raise ValueError(f"{path}: empty file or no header line")
    return [c.strip() for c in line.split(delimiter)]


def _sniff_delimiter(path: str) -> Optional[str]:
    """Tab or comma if the first line has one, None (any whitespace) otherwise."""
    with _open(path) as handle:
        stream = pa.input_stream(handle, compression="gzip" if path.endswith(".gz") else None)
        line = stream.read(1 << 16).split(b"\n", 1)[0]
    return "\t" if b"\t" in line else "," if b"," in line else None


# ---------------------------------------------------------------------- samples
def sample_rows(data, path: str, n: int):
    """The first ``n`` rows of a raw input file as a DataFrame of text and numbers (warmup requests,
    examples). Ali-CCP raw skeleton rows come with their own (not the common) features parsed."""
    if data.source == "aliccp_raw":
        from pipeline.aliccp import SKELETON, parse_feature_lists
        chunk = next(iter(Reader("csv", header=False, names=SKELETON).chunks(path, n)), None)
        if chunk is None or chunk.table.num_rows == 0:
            return None
        fields = sorted({item.split("\x02")[0] for line in chunk.table.column("feature_list").to_pylist()
                         for item in line.decode("utf-8", "replace").split("\x01") if "\x02" in item})
        columns, _ = parse_feature_lists(chunk.table, fields, set())
        table = pa.table({"sample_id": chunk.table.column("sample_id"), **columns})
    else:
        chunk = next(iter(reader_for(data, path).chunks(path, n)), None)
        if chunk is None or chunk.table.num_rows == 0:
            return None
        table = chunk.table.slice(0, n)
    frame = table.to_pandas()
    for name in frame.columns:
        if frame[name].dtype == object:
            frame[name] = frame[name].map(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
    return frame
