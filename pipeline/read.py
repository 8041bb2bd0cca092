"""The job's reading step: input chunks -> validated record batches of one split each, and rejects.

``ValidateSplit`` works on chunks a source already read (Ali-CCP raw's joined chunks);
``ReadValidateSplit`` reads files itself, a chunk at a time, one chunk ahead on a background
thread. Every row is counted (Beam counters in ``NAMESPACE``) as read and as written to a split
or rejected for a reason, so the report reconciles.
"""
from __future__ import annotations

import collections
import queue
import threading
from typing import Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics

from pipeline import splits
from pipeline.config import SplitConfig
from pipeline.inputs import reader_for
from pipeline.report import MILLI, SPLITS
from pipeline.spill import SpillFile
from pipeline.validation import RowValidator, to_record_batches
from transforms.errors import UserError

NAMESPACE = "ctrcvr"
SPLIT_COLUMN = "__split__"  # which split a record batch belongs to; TFT passes it through untouched


class ValidateSplit(beam.DoFn):
    """Chunks -> record batches of one split each (named in SPLIT_COLUMN), and tagged JSON rejects.
    With ``count`` (in the one pass that counts) every row is counted as read and as written to a
    split or rejected for a reason. ``split`` is ``data.split``, ``rows`` the rows per record batch,
    ``labels`` the (selection, outcome) columns whose sums the report shows per split."""

    def __init__(self, validator: RowValidator, split: SplitConfig, rows: int, labels: tuple[str, str],
                 tft_schema: pa.Schema, count: bool, outputs=SPLITS):
        self._validator, self._count, self._outputs = validator, count, outputs
        self._split, self._rows, self._labels = split, rows, labels
        self._tft_schema = tft_schema

    def process(self, element):
        outputs, counts = self.split(element)
        _increment(counts)
        yield from outputs

    def split(self, element) -> tuple[list, collections.Counter]:
        """One chunk's outputs and counter increments (no Beam calls: safe on any thread)."""
        path, file_split, table, rows, rejects = element
        outputs, counts = [], collections.Counter()
        self._rejects(rejects, outputs, counts)
        generated = getattr(path, "generated", False)  # rows no file holds (sources.unobserved.UnobservedPairs)
        counts["rows_generated" if generated else "rows_read"] += table.num_rows + len(rejects)
        if table.num_rows == 0:
            return outputs, counts
        missing = self._validator.missing_columns(table.column_names)
        if missing:
            raise UserError(f"missing required column(s) {', '.join(missing)}; "
                            f"found {', '.join(map(str, table.column_names))}", file=str(path))
        clean, rejects, fixes = self._validator.validate(table, path, rows)
        self._rejects(rejects, outputs, counts)
        counts.update(fixes)
        for split, mask in splits.assign(clean, self._split, file_split).items():
            if split in self._outputs and mask.any():
                part = clean.filter(mask) if not mask.all() else clean
                counts[f"{split}:rows"] += part.num_rows
                counts[f"{split}:generated"] += part.num_rows if generated else 0
                for name in self._labels:
                    total = np.sum(part.column(name).to_numpy(), dtype=np.float64)
                    counts[f"{split}:sum:{name}"] += int(round(total * MILLI))
                outputs += to_record_batches(part, self._tft_schema, self._rows, {SPLIT_COLUMN: split})
        return outputs, (counts if self._count else collections.Counter())

    def _rejects(self, rejects, outputs: list, counts) -> None:
        if self._count:
            for reject in rejects:
                counts[f"rejected:{reject.reason}"] += 1
                outputs.append(beam.pvalue.TaggedOutput("rejects", reject.to_json()))


class ReadValidateSplit(ValidateSplit):
    """(path, split) -> the same outputs, ``batch_rows`` rows at a time; the next chunk is read and
    validated on a background thread while the current one goes through TFT (Arrow, numpy and TF
    release the GIL, so two cores work). With ``spill_dir`` every batch also goes to a spill file
    (``pipeline.spill``), whose path is the ``spilled`` output, and only the batches of the
    ``downstream`` splits are yielded."""

    def __init__(self, data, columns: list[str], *args, spill_dir: Optional[str] = None, downstream=SPLITS,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self._data, self._columns = data, columns
        self._spill_dir, self._downstream = spill_dir, downstream

    def process(self, element):
        for outputs, counts in _read_ahead(self._chunks(*element)):
            _increment(counts)
            yield from outputs

    def _chunks(self, path, file_split):
        spill = SpillFile(self._spill_dir, self._tft_schema) if self._spill_dir else None
        for chunk in reader_for(self._data, path, self._columns).chunks(path, self._rows):
            outputs, counts = self.split((path, file_split, *chunk))
            if spill is not None:
                for batch in (o for o in outputs if isinstance(o, pa.RecordBatch)):
                    spill.write(batch)
                outputs = [o for o in outputs if not isinstance(o, pa.RecordBatch) or _split_of(o) in self._downstream]
            yield outputs, counts
        spilled = spill.close() if spill is not None else None
        if spilled:
            yield [beam.pvalue.TaggedOutput("spilled", spilled)], collections.Counter()


def _split_of(batch: pa.RecordBatch) -> str:
    return batch.column(batch.schema.get_field_index(SPLIT_COLUMN))[0].as_py()[0].decode()


def _read_ahead(items, depth: int = 1):
    """Yields ``items``, computing the next ``depth`` of them on a background thread."""
    results: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce():
        try:
            for item in items:
                results.put((item, None))
        except BaseException as err:  # noqa: BLE001  (re-raised in the consumer)
            results.put((None, err))
        results.put((done, None))

    threading.Thread(target=produce, daemon=True, name="read-ahead").start()
    while True:
        item, err = results.get()
        if err is not None:
            raise err
        if item is done:
            return
        yield item


def _increment(counts) -> None:
    for name, n in counts.items():
        if n:
            Metrics.counter(NAMESPACE, name).inc(n)
