"""The validated rows of the first pass, kept in a temporary Arrow file for the second.

The job needs two passes over the data (the vocabularies must exist before anything is
transformed), and holding the rows in memory between them would make memory grow with the
row count. So the first pass, while it feeds the analysis, appends every validated record batch
(all splits) to an uncompressed Arrow IPC stream, one file per input file; the second pass reads
those batches back instead of reading, parsing and validating the input again. Writing costs
about 0.07 s of CPU per million simulated rows and reading less, against about 0.5 s (Parquet)
to 1 s (CSV) for a second read and validation; the files take about 170 bytes a row and are
deleted with the job's temporary directory.
"""
from __future__ import annotations

import uuid
from typing import Iterator, Optional

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

SUFFIX = ".arrow"


class SpillFile:
    """One Arrow IPC stream under ``directory``, created on the first batch written."""

    def __init__(self, directory: str, schema: pa.Schema):
        self.path = f"{directory.rstrip('/')}/{uuid.uuid4().hex}{SUFFIX}"
        self._schema = schema
        self._handle = self._writer = None

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._handle = FileSystems.create(self.path, compression_type=CompressionTypes.UNCOMPRESSED)
            self._writer = pa.ipc.new_stream(self._handle, self._schema)
        self._writer.write_batch(batch)

    def close(self) -> Optional[str]:
        """The file's path, or None when nothing was written (no file was made)."""
        if self._writer is None:
            return None
        self._writer.close()
        self._handle.close()
        return self.path


def read_spilled(path: str) -> Iterator[pa.RecordBatch]:
    """The record batches of a spill file, one at a time (read, not memory-mapped: memory stays flat)."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        yield from pa.ipc.open_stream(handle)


class ReadSpilled(beam.DoFn):
    """Spill file paths -> their record batches."""

    def process(self, path: str):
        yield from read_spilled(path)
