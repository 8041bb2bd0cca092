"""The preprocessing Beam job: raw files -> validated, split, transformed TFRecord shards.

Wiring only: reading lives in ``sources`` / ``aliccp`` / ``ratings`` and ``read``, validation in
``validation``, splitting in ``splits``, the transform in ``transforms.preprocessing.preprocessing_fn``,
writing in ``sink``. Outputs under ``out_dir``:

    train/, eval/ [, test/]  part-*.tfrecord.gz       transformed tf.Examples (gzip)
    transform_fn/ (vocabularies in its assets/), transformed_metadata/
    metadata/                                         the raw schema (for serving)
    rejects/rejects-*.jsonl                           every rejected row with its reason and raw values
    report.json                                       counts that reconcile: read = written + rejected

The data goes through TFT twice, once to analyse (train rows only) and once to transform and
write, each pass streaming whole Arrow record batches so memory stays flat however many rows
there are (a single pass would hold every row until the analysis ends). File sources are read
and validated once, on local runners: the first pass also appends what it validated to temporary
Arrow files that the second pass reads back (``pipeline.spill``, ``preprocess.read_once``); on
Dataflow, or with ``read_once: false``, they are read and validated twice. The next chunk is read
and validated on a second thread while TFT works on the current one. Ali-CCP raw is read once:
its keyed join groups the rows anyway.
"""
from __future__ import annotations

import functools
import gc
import json
import logging
import shutil
import tempfile
import time
from typing import Optional

import apache_beam as beam
import pyarrow as pa
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from tfx_bsl.tfxio import tensor_adapter, tensor_representation_util

from ctrcvr.config import Config
from ctrcvr.output_dir import prepare_output_dir
from pipeline import runners, splits
from pipeline.aliccp import ReadAliccpRaw
from pipeline.report import build_report, format_report, write_text
from pipeline.read import NAMESPACE, SPLIT_COLUMN, ReadValidateSplit, ValidateSplit
from pipeline.sink import WriteTFRecordShards
from pipeline.spill import ReadSpilled
from pipeline.sources import expand_patterns
from pipeline.validation import RowValidator
from transforms.schema import Schema
from transforms.preprocessing import preprocessing_fn

log = logging.getLogger(__name__)


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
        task=lab.task, click=lab.selection, conversion=lab.outcome,
        conversion_without_click=config.preprocess.conversion_without_click,
        rating_without_response=config.preprocess.rating_without_response,
        rating_range=tuple(lab.rating_range), rating_threshold=lab.rating_threshold, rating_column=rating,
        optional=(lab.outcome,) if lab.task == "survey" else ())


def run_preprocess(config: Config, inputs: list[tuple[str, Optional[str]]], out_dir,
                   overwrite: bool = False) -> dict:
    """Runs the job over ``(path, split-or-None)`` inputs and returns the reconciled report.

    ``out_dir`` is a local directory or any Beam filesystem URI (``gs://...`` on Dataflow).
    """
    out = _prepare_output(out_dir, overwrite)
    schema = Schema.from_config(config)
    local = runners.is_local(config.preprocess) and "://" not in out  # temporary files on this machine
    temp_dir = tempfile.mkdtemp(prefix="tft-", dir=out) if local else (
        config.preprocess.dataflow.temp_location or f"{out}/tmp")
    started = time.time()
    log.info("preprocess: %d input file(s) -> %s (runner %s)", len(inputs), out, config.preprocess.runner)
    gc.freeze()  # the millions of objects TF and Beam import need no rescanning by every collection
    try:
        with tft_beam.Context(temp_dir=temp_dir, passthrough_keys={SPLIT_COLUMN}):
            pipeline = build_pipeline(config, inputs, out,
                                      spill_dir=f"{temp_dir}/spill" if local and config.preprocess.read_once else None)
            result = pipeline.run()
            result.wait_until_finish()
    finally:
        gc.unfreeze()
        if local:
            shutil.rmtree(temp_dir, ignore_errors=True)
    tft_output = tft.TFTransformOutput(out)
    vocabularies = {f.name: tft_output.vocabulary_size_by_name(f.name)
                    for f in schema.features if f.transform == "vocabulary"}
    report = build_report(_counters(result), out, schema.labels, vocabularies, time.time() - started)
    write_text(f"{out}/report.json", json.dumps(report, indent=2))
    log.info("preprocess report (%s/report.json):\n%s", out, format_report(report))
    _check_reject_share(report, config.preprocess.max_reject_fraction, out)
    return report


def build_pipeline(config: Config, inputs: list[tuple[str, Optional[str]]], out: str,
                   spill_dir: Optional[str] = None) -> beam.Pipeline:
    """The job's pipeline, not run yet; call it inside ``tft_beam.Context`` (TFT traces the
    ``preprocessing_fn`` here). ``spill_dir``: read file inputs once (see ``pipeline.spill``)."""
    schema = Schema.from_config(config)
    validator = make_validator(config, schema)
    raw_spec = schema.raw_feature_spec()
    raw_metadata = tft.DatasetMetadata.from_feature_spec(raw_spec)
    tft_schema = validator.arrow_schema(list(raw_spec)).append(pa.field(SPLIT_COLUMN, pa.list_(pa.binary())))
    adapter = tensor_adapter.TensorAdapterConfig(
        tft_schema, tensor_representation_util.InferTensorRepresentationsFromSchema(raw_metadata.schema))
    pipeline = beam.Pipeline(runner=runners.make_runner(config.preprocess),
                             options=runners.pipeline_options(config.preprocess))
    _build(pipeline, config, inputs, out, validator, adapter, raw_metadata, spill_dir)
    return pipeline


def _build(p, config, inputs, out, validator, adapter, raw_metadata, spill_dir):
    fn = functools.partial(preprocessing_fn, schema=Schema.from_config(config))
    read_columns = list(validator.kinds)
    if config.data.source == "aliccp_raw":
        chunks, side_rejects = p | "ReadAliccpRaw" >> ReadAliccpRaw(
            inputs, expand_patterns(config.data.aliccp.common_features), read_columns,
            {f.name for f in config.features if f.multivalued}, config.preprocess.batch_rows,
            config.data.aliccp.join_buckets)
        train = chunks | "ValidateForAnalysis" >> beam.ParDo(
            ValidateSplit(validator, config, adapter.arrow_schema, count=False, outputs=("train",)))
        parts = chunks | "ValidateSplit" >> beam.ParDo(
            ValidateSplit(validator, config, adapter.arrow_schema, count=True)).with_outputs("rejects",
                                                                                             main="batches")
        batches, rejects = parts.batches, (parts.rejects, side_rejects) | beam.Flatten()
    elif spill_dir:  # read once: the first pass spills what it validated, the second reads that back
        args = (config.data, read_columns, validator, config, adapter.arrow_schema)
        first = (p | "ListInputs" >> beam.Create(inputs)
                 | "ReadValidateSplit" >> beam.ParDo(ReadValidateSplit(
                     *args, count=True, spill_dir=spill_dir, downstream=("train",)))
                 .with_outputs("rejects", "spilled", main="batches"))
        train, rejects = first.batches, first.rejects
        # the shuffle keeps the read-back batches in the transform's stage (fused, streamed) instead of
        # letting the runner materialise them after the first pass, which also feeds the analysis
        batches = first.spilled | "ShuffleSpilled" >> beam.Reshuffle() | "ReadSpilled" >> beam.ParDo(ReadSpilled())
    else:  # read twice: once to analyse (train rows), once to transform and write
        args = (config.data, read_columns, validator, config, adapter.arrow_schema)
        train = (p | "ListInputsForAnalysis" >> beam.Create(inputs)
                 | "ReadForAnalysis" >> beam.ParDo(ReadValidateSplit(*args, count=False, outputs=("train",))))
        parts = (p | "ListInputs" >> beam.Create(inputs)
                 | "ReadValidateSplit" >> beam.ParDo(ReadValidateSplit(*args, count=True))
                 .with_outputs("rejects", main="batches"))
        batches, rejects = parts.batches, parts.rejects
    transform_fn = (train, adapter) | "Analyze" >> tft_beam.AnalyzeDataset(fn)
    transformed, _ = (((batches, adapter), transform_fn)
                      | "Transform" >> tft_beam.TransformDataset(output_record_batches=True))
    _ = transformed | "Write" >> WriteTFRecordShards(
        out, SPLIT_COLUMN, config.preprocess.num_shards, config.preprocess.compression_level,
        counter=(NAMESPACE, "{split}:written"))
    _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(out)
    _ = raw_metadata | "WriteRawMetadata" >> tft_beam.WriteMetadata(f"{out}/metadata", pipeline=p)
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
