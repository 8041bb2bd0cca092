"""Readers that turn raw files (local or any Beam filesystem) into pandas chunks.

CSV is read with every column as text so that validation, not the reader, decides what a
bad value is; lines with the wrong number of fields become rejects instead of errors.
"""
from __future__ import annotations

import glob
import os
from typing import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipeline.validation import Reject


def file_format(path: str) -> str:
    """'csv' or 'parquet', from the file name."""
    name = path.lower().removesuffix(".gz")
    if name.endswith((".csv", ".txt", ".tsv")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ValueError(f"cannot tell the format of {path!r} (expected .csv, .csv.gz or .parquet)")


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


def read_chunks(path: str, rows: int) -> Iterator[tuple[pd.DataFrame, int, list[Reject]]]:
    """Yields (chunk, index of its first row in the file, malformed-line rejects)."""
    reader = _read_csv if file_format(path) == "csv" else _read_parquet
    yield from reader(path, rows)


def _read_parquet(path: str, rows: int):
    with FileSystems.open(path) as handle:
        first = 0
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=rows):
            yield batch.to_pandas(), first, []
            first += batch.num_rows


def _read_csv(path: str, rows: int):
    malformed: list[Reject] = []

    def on_invalid(row) -> str:
        malformed.append(Reject(path, int(row.number or -1), "malformed_line",
                                {"line": row.text, "expected_fields": row.expected_columns,
                                 "found_fields": row.actual_columns}))
        return "skip"

    with FileSystems.open(path) as handle:
        stream = pa.input_stream(handle, compression="gzip" if path.endswith(".gz") else None)
        header = _peek_header(path)
        reader = pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(block_size=1 << 22),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(column_types={c: pa.string() for c in header},
                                                  strings_can_be_null=False))
        first = 0
        for batch in reader:
            frame = batch.to_pandas()
            for start in range(0, len(frame), rows):
                chunk = frame.iloc[start:start + rows].reset_index(drop=True)
                yield chunk, first + start, malformed[:]
                malformed.clear()
            first += len(frame)
        if malformed:
            yield pd.DataFrame(columns=header), first, malformed[:]


def _peek_header(path: str) -> list[str]:
    with FileSystems.open(path) as handle:
        stream = pa.input_stream(handle, compression="gzip" if path.endswith(".gz") else None)
        line = stream.read(1 << 16).split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    if not line:
        raise ValueError(f"{path}: empty file or no header line")
    return [c.strip() for c in line.split(",")]


def resolve_inputs(data, raw_dir=None) -> list[tuple[str, "str | None"]]:
    """The job's ``(path, split)`` inputs: simulator shards under ``raw_dir``, or the configured globs.

    With ``split.by: files`` the train / eval globs decide the split; otherwise the split
    column is computed per row and the file's own split is ``None``.
    """
    if data.source == "simulated":
        if raw_dir is None:
            raise ValueError("data.source is 'simulated': give the simulator's output directory (--input)")
        return [(p, None) for p in expand_patterns([f"{raw_dir}/exposures/*.parquet"])]
    if not data.train_files:
        raise ValueError(f"data.train_files is empty: list the {data.source} files to read")
    by_files = data.split.by == "files"
    if by_files and not data.eval_files:
        raise ValueError("data.split.by is 'files' but data.eval_files is empty")
    inputs = [(p, "train" if by_files else None) for p in expand_patterns(data.train_files)]
    inputs += [(p, "eval") for p in expand_patterns(data.eval_files)] if by_files else []
    return inputs
