"""File formats: how the bytes of one raw file (local or any Beam filesystem) become Arrow chunks.

A :class:`Reader` reads ``csv`` (a header line or given ``names``), ``parquet``, ``whitespace``
(fields split on any run of spaces or tabs) or a dense ratings ``matrix``, ``rows`` rows at a
time. Which reader a source uses is the source's business (``pipeline.inputs``); this module
knows no source.

Text is read with every column as bytes so that validation, not the reader, decides what a bad
value is (wrong type, undecodable bytes); lines with the wrong number of fields and empty lines
become rejects instead of errors. Every chunk carries the row number of each of its rows (1-based
line for text files, header included; 0-based row for Parquet).

The matrix format (the Coat release) is one line per user, one column per item, 0 = not rated;
each rated cell becomes a row ``user, item, rating`` (user = line index, item = column index, both
from 0). A line with a different number of fields than the first is rejected whole.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, NamedTuple, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.validation import Reject


class Chunk(NamedTuple):
    """Up to ``rows`` raw rows of one file, their row numbers, and the lines rejected while reading."""

    table: pa.Table
    rows: np.ndarray
    rejects: list


@dataclasses.dataclass(frozen=True)
class Reader:
    """How to read one kind of file: ``csv`` (``header`` or ``names``), ``parquet``, ``whitespace``
    (fields split on any run of spaces or tabs) or a ratings ``matrix`` (``names``: user, item, rating)."""

    format: str
    delimiter: str = ","
    header: bool = True
    names: Optional[tuple[str, ...]] = None
    columns: Optional[tuple[str, ...]] = None  # parquet: read only these (when present)

    def chunks(self, path: str, rows: int) -> Iterator[Chunk]:
        if self.format == "parquet":
            yield from _read_parquet(path, rows, self.columns)
        elif self.format == "whitespace":
            yield from _read_whitespace(path, rows, self.names)
        elif self.format == "matrix":
            yield from _read_matrix(path, rows, self.names)
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


def sniff_delimiter(path: str) -> Optional[str]:
    """Tab or comma if the first line has one, None (any whitespace) otherwise."""
    line = _first_line(path)
    return "\t" if b"\t" in line else "," if b"," in line else None


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


def _first_line(path: str) -> bytes:
    """The first line of a (possibly gzipped) text file, up to 64 KiB."""
    with _open(path) as handle:
        stream = pa.input_stream(handle, compression="gzip" if path.endswith(".gz") else None)
        return stream.read(1 << 16).split(b"\n", 1)[0]


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
    line = _first_line(path).decode("utf-8", errors="replace").rstrip("\r")
    if not line:
        raise ValueError(f"{path}: empty file or no header line")
    return [c.strip() for c in line.split(delimiter)]






# ---------------------------------------------------------------------- whitespace and matrix
def _read_whitespace(path: str, rows: int, names) -> Iterator[Chunk]:
    """Whitespace-separated text: every line must have as many fields as the first one."""
    lines = _lines(path, blank_last=False)
    start = 0
    if names is None:  # the first line is a header
        names, start = [c.decode("utf-8", "replace") for c in lines[0].split()], 1
    values: list[list[bytes]] = [[] for _ in names]
    numbers: list[int] = []
    rejects: list[Reject] = []
    for i in range(start, len(lines)):
        fields = lines[i].split()
        if len(fields) != len(names):
            rejects.append(_field_count_reject(path, i, lines[i], fields, len(names)))
            continue
        for column, value in zip(values, fields):
            column.append(value)
        numbers.append(i + 1)
        if len(numbers) == rows:
            yield _text_chunk(names, values, numbers, rejects)
            values, numbers, rejects = [[] for _ in names], [], []
    if numbers or rejects:
        yield _text_chunk(names, values, numbers, rejects)


def _text_chunk(names, values, numbers, rejects) -> Chunk:
    table = pa.table({name: pa.array(column, pa.binary()) for name, column in zip(names, values)})
    return Chunk(table, np.asarray(numbers, dtype=np.int64), list(rejects))


def _read_matrix(path: str, rows: int, names) -> Iterator[Chunk]:
    """The rated cells of a dense matrix file as ``user, item, rating`` rows; bad lines are rejects."""
    lines, width = matrix_lines(path)
    users, items, ratings, numbers, rejects = [], [], [], [], []
    held = 0
    for i, line in enumerate(lines):
        fields = line.split()
        if len(fields) != width:
            rejects.append(_field_count_reject(path, i, line, fields, width))
            continue
        keep = np.flatnonzero([not is_zero(v) for v in fields])
        users.append(np.full(len(keep), i))
        items.append(keep)
        ratings.extend(fields[j] for j in keep)
        numbers.append(np.full(len(keep), i + 1))
        held += len(keep)
        if held >= rows:
            yield _matrix_chunk(names, users, items, ratings, numbers, rejects)
            users, items, ratings, numbers, rejects, held = [], [], [], [], [], 0
    if held or rejects:
        yield _matrix_chunk(names, users, items, ratings, numbers, rejects)


def matrix_lines(path: str) -> tuple[list[bytes], int]:
    """A matrix file's lines (a final empty line dropped) and its width, the first line's field count."""
    lines = _lines(path)
    return lines, (len(lines[0].split()) if lines else 0)


def is_zero(value: bytes) -> bool:
    """'0', '0.0', '00' ... (text that is a zero: an unrated matrix cell), without parsing every cell."""
    return value.lstrip(b"+-").strip(b"0").strip(b".").strip(b"0") == b""


def _matrix_chunk(names, users, items, ratings, numbers, rejects) -> Chunk:
    user_col, item_col, rating_col = names
    user = np.concatenate(users) if users else np.array([], np.int64)
    item = np.concatenate(items) if items else np.array([], np.int64)
    table = pa.table({user_col: pa.array(user.astype(np.int64)).cast(pa.string()),
                      item_col: pa.array(item.astype(np.int64)).cast(pa.string()),
                      rating_col: pa.array(ratings, pa.binary())})
    lines = np.concatenate(numbers) if numbers else np.array([], np.int64)
    return Chunk(table, lines, list(rejects))


def _lines(path: str, blank_last: bool = True) -> list[bytes]:
    """A text file's lines, a final empty line dropped (``blank_last``: also one of only whitespace)."""
    with FileSystems.open(path) as handle:
        lines = handle.read().split(b"\n")
    if lines and (lines[-1].strip() if blank_last else lines[-1]) == b"":
        lines.pop()
    return lines


def _field_count_reject(path: str, i: int, line: bytes, fields: list, expected: int) -> Reject:
    """Line ``i`` (0-based) has ``len(fields)`` fields instead of ``expected``."""
    reason = "empty_line" if not fields else "truncated_line" if len(fields) < expected else "extra_fields"
    return Reject(path, i + 1, reason, {"line": line.decode("utf-8", "backslashreplace"),
                                        "expected_fields": expected, "found_fields": len(fields)})
