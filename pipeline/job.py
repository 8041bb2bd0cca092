"""The preprocessing Beam job: raw files -> validated, split, transformed TFRecord shards.

Wiring only: reading lives in ``sources`` / ``aliccp`` / ``ratings``, validation in
``validation``, splitting in ``splits``, the transform in ``transforms.features.preprocessing_fn``,
writing in ``sink``. Outputs under ``out_dir``:

    train/, eval/ [, test/]  part-*.tfrecord.gz       transformed tf.Examples (gzip)
    transform_fn/ (vocabularies in its assets/), transformed_metadata/
    metadata/                                         the raw schema (for serving)
    rejects/rejects-*.jsonl                           every rejected row with its reason and raw values
    report.json                                       counts that reconcile: read = written + rejected

File sources are read twice, once to analyse (train rows only) and once to transform and write,
so each pass streams through whole Arrow record batches and memory stays flat however many rows
there are (a single pass would hold every row until the analysis ends); the next chunk is read
and validated on a second thread while TFT works on the current one. Ali-CCP raw is read once:
its keyed join groups the rows anyway.
"""
from __future__ import annotations

import collections
import functools
import gc
import json
import logging
import queue
import shutil
import tempfile
import threading
import time
from typing import Optional

import ctrcvr  # noqa: F401
import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from tfx_bsl.tfxio import tensor_adapter, tensor_representation_util

from ctrcvr.config import Config
from ctrcvr.outputs import prepare_output_dir
from pipeline import runners, splits
from pipeline.aliccp import ReadAliccpRaw
from pipeline.report import MILLI, SPLITS, build_report, format_report, write_text
from pipeline.sink import WriteTFRecordShards
from pipeline.sources import expand_patterns, reader_for
from pipeline.validation import RowValidator, to_record_batches
from transforms.features import Schema, preprocessing_fn

log = logging.getLogger(__name__)
NAMESPACE = "ctrcvr"
SPLIT_COLUMN = "__split__"  # which split a record batch belongs to; TFT passes it through untouched


class PreprocessFailed(ValueError):
    """The job ran but its output should not be used (e.g. too many rejected rows)."""


def make_validator(config: Config, schema: Schema) -> RowValidator:
    """The validator for the configured columns, labels and split key."""
    lab = config.labels
    kinds = schema.column_kinds()
    kinds.update({k: v for k, v in splits.split_columns(config.data.split).items() if k not in kinds})
    rating = config.data.ratings.columns[2] if lab.task == "ratings" else None
    if rating and rating not in kinds:
        kinds[rating] = "float"
    return RowValidator(
        kinds=kinds, defaults={f.name: f.default for f in config.features if f.default is not None},
        separators={f.name: f.separator for f in config.features if f.multivalued},
        task=lab.task, click=lab.click, conversion=lab.conversion,
        conversion_without_click=config.preprocess.conversion_without_click,
        rating_without_response=config.preprocess.rating_without_response,
        rating_range=tuple(lab.rating_range), rating_threshold=lab.rating_threshold, rating_column=rating,
        optional=(lab.conversion,) if lab.task == "survey" else ())


class _ValidateSplit(beam.DoFn):
    """Chunks -> record batches of one split each (named in SPLIT_COLUMN), and tagged JSON rejects.
    With ``count`` (the writing pass) every row is counted as read and as written to a split or
    rejected for a reason."""

    def __init__(self, validator: RowValidator, config: Config, tft_schema: pa.Schema, count: bool,
                 outputs=SPLITS):
        self._validator, self._count, self._outputs = validator, count, outputs
        self._split = config.data.split
        self._rows = config.preprocess.batch_rows
        self._labels = (config.labels.click, config.labels.conversion)
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
        generated = getattr(path, "generated", False)  # rows no file holds (pipeline.ratings.UnobservedPairs)
        counts["rows_generated" if generated else "rows_read"] += table.num_rows + len(rejects)
        if table.num_rows == 0:
            return outputs, counts
        missing = self._validator.missing_columns(table.column_names)
        if missing:
            raise ValueError(f"{path}: missing required column(s) {', '.join(missing)}; "
                             f"found {', '.join(map(str, table.column_names))}")
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


class _ReadValidateSplit(_ValidateSplit):
    """(path, split) -> the same outputs, ``batch_rows`` rows at a time; the next chunk is read and
    validated on a background thread while the current one goes through TFT (Arrow, numpy and TF
    release the GIL, so two cores work)."""

    def __init__(self, data, columns: list[str], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._data, self._columns = data, columns

    def process(self, element):
        path, file_split = element
        chunks = reader_for(self._data, path, self._columns).chunks(path, self._rows)
        for outputs, counts in _read_ahead(self.split((path, file_split, *chunk)) for chunk in chunks):
            _increment(counts)
            yield from outputs


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


def run_preprocess(config: Config, inputs: list[tuple[str, Optional[str]]], out_dir,
                   overwrite: bool = False) -> dict:
    """Runs the job over ``(path, split-or-None)`` inputs and returns the reconciled report.

    ``out_dir`` is a local directory or any Beam filesystem URI (``gs://...`` on Dataflow).
    """
    out = _prepare_output(out_dir, overwrite)
    schema = Schema.from_config(config)
    validator = make_validator(config, schema)
    raw_spec = schema.raw_feature_spec()
    raw_metadata = tft.DatasetMetadata.from_feature_spec(raw_spec)
    tft_schema = validator.arrow_schema(list(raw_spec)).append(pa.field(SPLIT_COLUMN, pa.list_(pa.binary())))
    adapter = tensor_adapter.TensorAdapterConfig(
        tft_schema, tensor_representation_util.InferTensorRepresentationsFromSchema(raw_metadata.schema))
    local = runners.is_local(config.preprocess)
    temp_dir = (tempfile.mkdtemp(prefix="tft-", dir=out) if local and "://" not in out
                else config.preprocess.dataflow.temp_location or f"{out}/tmp")
    started = time.time()
    log.info("preprocess: %d input file(s) -> %s (runner %s)", len(inputs), out, config.preprocess.runner)
    pipeline = beam.Pipeline(runner=runners.make_runner(config.preprocess),
                             options=runners.pipeline_options(config.preprocess))
    gc.freeze()  # the millions of objects TF and Beam import need no rescanning by every collection
    try:
        with tft_beam.Context(temp_dir=temp_dir, passthrough_keys={SPLIT_COLUMN}):
            _build(pipeline, config, inputs, out, validator, adapter, raw_metadata)
            result = pipeline.run()
            result.wait_until_finish()
    finally:
        gc.unfreeze()
    if local and "://" not in out:
        shutil.rmtree(temp_dir, ignore_errors=True)
    tft_output = tft.TFTransformOutput(out)
    vocabularies = {f.name: tft_output.vocabulary_size_by_name(f.name)
                    for f in schema.features if f.transform == "vocabulary"}
    report = build_report(_counters(result), out, schema.labels, vocabularies, time.time() - started)
    write_text(f"{out}/report.json", json.dumps(report, indent=2))
    log.info("preprocess report (%s/report.json):\n%s", out, format_report(report))
    _check_reject_share(report, config.preprocess.max_reject_fraction, out)
    return report


def _build(p, config, inputs, out, validator, adapter, raw_metadata):
    fn = functools.partial(preprocessing_fn, schema=Schema.from_config(config))
    read_columns = list(validator.kinds)
    if config.data.source == "aliccp_raw":
        chunks, side_rejects = p | "ReadAliccpRaw" >> ReadAliccpRaw(
            inputs, expand_patterns(config.data.aliccp.common_features), read_columns,
            {f.name for f in config.features if f.multivalued}, config.preprocess.batch_rows,
            config.data.aliccp.join_buckets)
        train = chunks | "ValidateForAnalysis" >> beam.ParDo(
            _ValidateSplit(validator, config, adapter.arrow_schema, count=False, outputs=("train",)))
        parts = chunks | "ValidateSplit" >> beam.ParDo(
            _ValidateSplit(validator, config, adapter.arrow_schema, count=True)).with_outputs("rejects",
                                                                                             main="batches")
    else:
        args = (config.data, read_columns, validator, config, adapter.arrow_schema)
        train = (p | "ListInputsForAnalysis" >> beam.Create(inputs)
                 | "ReadForAnalysis" >> beam.ParDo(_ReadValidateSplit(*args, count=False, outputs=("train",))))
        parts = (p | "ListInputs" >> beam.Create(inputs)
                 | "ReadValidateSplit" >> beam.ParDo(_ReadValidateSplit(*args, count=True))
                 .with_outputs("rejects", main="batches"))
        side_rejects = None
    transform_fn = (train, adapter) | "Analyze" >> tft_beam.AnalyzeDataset(fn)
    transformed, _ = (((parts.batches, adapter), transform_fn)
                      | "Transform" >> tft_beam.TransformDataset(output_record_batches=True))
    _ = transformed | "Write" >> WriteTFRecordShards(
        out, SPLIT_COLUMN, config.preprocess.num_shards, config.preprocess.compression_level,
        counter=(NAMESPACE, "{split}:written"))
    _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(out)
    _ = raw_metadata | "WriteRawMetadata" >> tft_beam.WriteMetadata(f"{out}/metadata", pipeline=p)
    rejects = parts.rejects if side_rejects is None else (parts.rejects, side_rejects) | beam.Flatten()
    _ = rejects | "WriteRejects" >> beam.io.WriteToText(
        f"{out}/rejects/rejects", file_name_suffix=".jsonl", num_shards=1)


def _prepare_output(out_dir, overwrite: bool) -> str:
    """The output root as a string: a local directory (created; refused if not empty unless
    ``overwrite``), or a Beam filesystem URI checked the same way."""
    if "://" not in str(out_dir):
        return str(prepare_output_dir(out_dir, overwrite))
    root = str(out_dir).rstrip("/")
    existing = [m.path for r in FileSystems.match([f"{root}/**"]) for m in r.metadata_list]
    if existing and not overwrite:
        raise FileExistsError(f"{root} is not empty; choose another directory or pass --overwrite")
    if existing:
        FileSystems.delete(existing)
    return root


def _counters(result) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        counts[c.key.metric.name] = counts.get(c.key.metric.name, 0) + int(value or 0)
    return counts


def _check_reject_share(report: dict, limit: float, out: str) -> None:
    if report["reject_share"] > limit:
        raise PreprocessFailed(
            f"{report['rows_rejected']} of {report['rows_read']} rows rejected "
            f"({report['reject_share']:.2%} > preprocess.max_reject_fraction={limit:.2%}); "
            f"reasons: {report['rejected_by_reason']}; inspect {out}/{report['rejects_file']}")
