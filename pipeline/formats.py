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
import zlib
from typing import Iterator, NamedTuple, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.validation import Reject
from transforms.errors import UserError


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
        """``rows`` rows at a time. A file that cannot be read as this format (a directory, truncated or
        mislabelled compression, not Parquet, ...) is a :class:`UserError` naming it."""
        rows_before = 0
        try:
            for chunk in self._chunks(path, rows):
                rows_before += chunk.table.num_rows + len(chunk.rejects)
                yield chunk
        except UserError as err:
            raise err.located(file=path) from err
        except (IsADirectoryError, NotADirectoryError) as err:
            raise UserError("is a directory, not a file", file=path) from err
        except (pa.ArrowException, OSError, EOFError, zlib.error) as err:
            where = f" after {rows_before} row(s)" if rows_before else ""
            raise UserError(f"cannot read it as {_FORMAT_NAMES.get(self.format, self.format)}{where}: "
                            f"{_reason(err)}", file=path) from err

    def _chunks(self, path: str, rows: int) -> Iterator[Chunk]:
        if self.format == "parquet":
            yield from _read_parquet(path, rows, self.columns)
        elif self.format == "whitespace":
            yield from _read_whitespace(path, rows, self.names)
        elif self.format == "matrix":
            yield from _read_matrix(path, rows, self.names)
        else:
            yield from _rechunk(_read_csv(path, self), rows)


_FORMAT_NAMES = {"csv": "CSV", "parquet": "Parquet", "whitespace": "whitespace-separated text",
                 "matrix": "a ratings matrix"}


def _reason(err: Exception) -> str:
    """An I/O or Arrow error's message without the path it may repeat, on one line."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror
    return text


def file_format(path: str) -> str:
    """'csv' or 'parquet', from the file name."""
    name = path.lower().removesuffix(".gz")
    if name.endswith((".csv", ".txt", ".tsv")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise UserError("cannot tell the format from the file name (expected .csv, .csv.gz or .parquet)", file=path)


def sniff_delimiter(path: str) -> Optional[str]:
    """Tab or comma if the first line has one, None (any whitespace) otherwise."""
    line = _first_line(path)
    return "\t" if b"\t" in line else "," if b"," in line else None


# ---------------------------------------------------------------------- parquet
def _read_parquet(path: str, rows: int, columns):
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        reader = pq.ParquetFile(handle)
        wanted = [c for c in columns if c in reader.schema_arrow.names] if columns else None
        first = 0
        for batch in reader.iter_batches(batch_size=rows, columns=wanted):
            yield Chunk(pa.Table.from_batches([batch]), np.arange(first, first + batch.num_rows), [])
            first += batch.num_rows


# ---------------------------------------------------------------------- csv
def _read_csv(path: str, reader: Reader) -> Iterator[Chunk]:
    """CSV blocks as Chunks: bytes columns, physical line numbers, malformed and empty lines rejected.

    Every physical line is one row: pyarrow splits the file on line ends with quoting off, and the few
    lines that hold a quote are parsed again on their own with CSV quoting (:func:`_requote`). A quote
    left open at the end of its line is that line's ``unbalanced_quote`` reject, so a stray quote
    never swallows the lines after it, and a value cannot hold a newline.
    """
    header, has_rows = _head(path)
    names = list(reader.names) if reader.names else _header_names(header, reader.delimiter, path)
    if reader.header and not has_rows:  # a header and nothing else (with or without its newline)
        return
    malformed: list[int] = []
    pending: list[Reject] = []
    repaired: list[tuple[int, list[bytes]]] = []

    def on_invalid(row) -> str:
        line = int(row.number) if row.number is not None else -1
        malformed.append(line)
        text = row.text.encode("utf-8", "surrogateescape") if isinstance(row.text, str) else row.text
        if QUOTE in text:
            fields = _csv_fields(text, reader.delimiter)
            if fields is not None and len(fields) == len(names):
                repaired.append((line, fields))
                return "skip"
        pending.append(_line_reject(path, line, row.text, reader.delimiter, row.expected_columns,
                                    row.actual_columns))
        return "skip"

    first_line = 2 if reader.header else 1
    with _open(path) as handle:
        stream = pa.input_stream(handle, compression=_compression(path))
        csv = pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(block_size=1 << 23, use_threads=False, column_names=names,
                                            skip_rows=1 if reader.header else 0),
            parse_options=pa_csv.ParseOptions(delimiter=reader.delimiter, quote_char=False,
                                              invalid_row_handler=on_invalid, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(column_types={c: pa.binary() for c in names},
                                                  strings_can_be_null=False))
        seen = 0
        for batch in csv:
            table = pa.Table.from_batches([batch])
            lines = _line_numbers(seen, table.num_rows, sorted(malformed), first_line)
            seen += table.num_rows
            table, lines, quoted = _requote(table, lines, path, reader.delimiter)
            table, lines = _with_rows(table, lines, repaired)
            repaired.clear()
            table, lines, empty = _drop_empty_lines(table, lines, path)
            yield Chunk(table, lines, pending[:] + quoted + empty)
            pending.clear()
        if pending or repaired:
            table, lines = _with_rows(pa.table({c: pa.array([], pa.binary()) for c in names}),
                                      np.array([], np.int64), repaired)
            yield Chunk(table, lines, pending[:])


QUOTE = b'"'
GZIP_MAGIC = b"\x1f\x8b"
BOM = "\ufeff"


def _csv_fields(text: bytes, delimiter: str) -> Optional[list[bytes]]:
    """One line's fields with CSV quoting (``""`` inside quotes is a quote); None if a quote is left open."""
    import csv
    try:
        rows = list(csv.reader([text.decode("utf-8", "surrogateescape")], delimiter=delimiter, strict=True))
    except csv.Error:
        return None
    return [f.encode("utf-8", "surrogateescape") for f in (rows[0] if rows else [])]


def _line_reject(path: str, line: int, text, delimiter: str, expected: int, found: int) -> Reject:
    """A line with the wrong number of fields (or an open quote, or none at all) as its reject."""
    raw = text if isinstance(text, str) else text.decode("utf-8", "backslashreplace")
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    if not raw.strip(delimiter + " \t\r"):
        reason = "empty_line"
    elif QUOTE in data and _csv_fields(data, delimiter) is None:
        reason = "unbalanced_quote"
    else:
        reason = "truncated_line" if found < expected else "extra_fields"
    return Reject(path, line, reason, {"line": raw, "expected_fields": expected, "found_fields": found})


def _requote(table: pa.Table, lines: np.ndarray, path: str, delimiter: str):
    """Rows read with quoting off whose fields hold a quote, parsed again as CSV: ``"a,b"`` is one field
    and loses its quotes; a quote left open is an ``unbalanced_quote`` reject. Other rows are untouched."""
    if table.num_rows == 0:
        return table, lines, []
    quoted = np.zeros(table.num_rows, dtype=bool)
    for column in table.columns:
        quoted |= pc.match_substring(column, '"').to_numpy(zero_copy_only=False)
    if not quoted.any():
        return table, lines, []
    names, at = table.column_names, np.flatnonzero(quoted)
    fixed, fixed_lines, rejects = {n: [] for n in names}, [], []
    for i, row in zip(at, table.take(pa.array(at)).to_pylist()):
        text = delimiter.encode().join(row[n] for n in names)
        fields = _csv_fields(text, delimiter)
        if fields is not None and len(fields) == len(names):
            for n, value in zip(names, fields):
                fixed[n].append(value)
            fixed_lines.append(int(lines[i]))
        else:
            rejects.append(_line_reject(path, int(lines[i]), text, delimiter, len(names),
                                        len(fields) if fields is not None else len(names)))
    keep = pa.array(~quoted)
    table = pa.concat_tables([table.filter(keep), pa.table({n: pa.array(fixed[n], pa.binary()) for n in names})])
    return table, np.concatenate([lines[~quoted], np.asarray(fixed_lines, np.int64)]), rejects


def _with_rows(table: pa.Table, lines: np.ndarray, rows: list[tuple[int, list[bytes]]]):
    """``table`` and ``lines`` with ``(line, fields)`` rows appended."""
    if not rows:
        return table, lines
    names = table.column_names
    extra = pa.table({n: pa.array([fields[j] for _, fields in rows], pa.binary()) for j, n in enumerate(names)})
    return pa.concat_tables([table, extra]), np.concatenate([lines, np.asarray([r for r, _ in rows], np.int64)])


def _compression(path: str) -> Optional[str]:
    """'gzip' for a .gz name, else None; a name that does not match the bytes is the user's error."""
    with _open(path) as handle:
        magic = handle.read(2)
    named = path.lower().endswith(".gz")
    if named and magic != GZIP_MAGIC:
        raise UserError("the file is named .gz but is not gzip-compressed; rename it (without .gz) or "
                        "compress it", file=path)
    if not named and magic == GZIP_MAGIC:
        raise UserError("the file is gzip-compressed but not named .gz; rename it to end in .gz", file=path)
    return "gzip" if named else None


def _open(path: str):
    """The raw bytes of ``path`` (decompression is pyarrow's job, not Beam's)."""
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _head(path: str) -> tuple[bytes, bool]:
    """The first line of a (possibly gzipped) text file (up to 64 KiB, a UTF-8 BOM removed) and whether
    any byte follows its line end. An empty file is a :class:`UserError`."""
    with _open(path) as handle:
        stream = pa.input_stream(handle, compression=_compression(path))
        start = stream.read(1 << 16)
    if start.startswith(BOM.encode()):
        start = start[len(BOM.encode()):]
    if not start.strip():
        raise UserError("empty file: no header line", file=path)
    line, _, rest = start.partition(b"\n")
    return line.rstrip(b"\r"), bool(rest) or len(start) == 1 << 16


def _first_line(path: str) -> bytes:
    """The first line of a (possibly gzipped) text file, up to 64 KiB."""
    return _head(path)[0]


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


def _header_names(line: bytes, delimiter: str, path: str) -> list[str]:
    """The column names of a header line (quoted names unquoted, spaces around them trimmed)."""
    fields = _csv_fields(line, delimiter)
    if fields is None:
        raise UserError("the header line has an unbalanced quote", file=path, line=1)
    names = [f.decode("utf-8", "replace").strip() for f in fields]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise UserError(f"the header names {', '.join(map(repr, duplicated))} more than once", file=path, line=1)
    return names


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
        lines = handle.read().removeprefix(BOM.encode()).split(b"\n")
    if lines and (lines[-1].strip() if blank_last else lines[-1]) == b"":
        lines.pop()
    return lines


def _field_count_reject(path: str, i: int, line: bytes, fields: list, expected: int) -> Reject:
    """Line ``i`` (0-based) has ``len(fields)`` fields instead of ``expected``."""
    reason = "empty_line" if not fields else "truncated_line" if len(fields) < expected else "extra_fields"
    return Reject(path, i + 1, reason, {"line": line.decode("utf-8", "backslashreplace"),
                                        "expected_fields": expected, "found_fields": len(fields)})
