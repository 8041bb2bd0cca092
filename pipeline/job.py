"""The preprocessing Beam job: raw files -> validated, split, transformed TFRecord shards.

Wiring only: the source (``pipeline.inputs``) says how inputs are read, ``read`` reads and validates
them, the task's label rules are in ``tasks``, splitting in ``splits``, the transform in
``transforms.preprocessing.preprocessing_fn``, writing in ``sink``. The job is given the sections it
reads (:class:`pipeline.config.PreprocessSections`) and writes into ``out_dir`` whatever is there
(guarding it is the caller's job). Outputs under ``out_dir``:

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
and validated on a second thread while TFT works on the current one. A source that reads in Beam
(``Source.beam_read``: Ali-CCP raw's keyed join) is read once: its join groups the rows anyway.
"""
from __future__ import annotations

import functools
import gc
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

import apache_beam as beam
import pyarrow as pa
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.metrics.metric import MetricsFilter
from tfx_bsl.tfxio import tensor_adapter, tensor_representation_util

from pipeline import runners, splits
from pipeline.config import PreprocessSections
from pipeline.hash_stats import CountHashCollisions
from pipeline.inputs import get_source
from pipeline.report import build_report, format_report, write_text
from pipeline.read import NAMESPACE, SPLIT_COLUMN, ReadValidateSplit, ValidateSplit
from pipeline.sink import WriteTFRecordShards
from pipeline.spill import ReadSpilled
from pipeline.tasks import get_pipeline_task
from pipeline.validation import RowValidator
from transforms.errors import UserError
from transforms.schema import Schema
from transforms.preprocessing import preprocessing_fn

log = logging.getLogger(__name__)
_BEAM_STEP = re.compile(r" \[while running '[^']*'\]")


class PreprocessFailed(UserError):
    """The job ran but its output should not be used: too many rejected rows, or an empty train split."""


def make_validator(sections: PreprocessSections, schema: Schema) -> RowValidator:
    """The validator for the configured columns, labels (the task's rules) and split key."""
    lab, data, features = sections.labels, sections.data, sections.features
    task = get_pipeline_task(lab.task)
    kinds = schema.column_kinds()
    kinds.update({k: v for k, v in splits.split_columns(data.split).items() if k not in kinds})
    rating = task.rating_column(data)
    defaults = {f.name: f.default for f in features if f.default is not None}
    if rating and rating not in kinds:
        kinds[rating] = task.source_kind
        if task.source_kind == "string":
            defaults[rating] = ""  # an empty answer is no answer, not a missing value
    return RowValidator(
        kinds=kinds, defaults=defaults,
        separators={f.name: f.separator for f in features if f.multivalued},
        task=lab.task, selection=lab.selection, outcome=lab.outcome,
        conversion_without_click=sections.preprocess.conversion_without_click,
        rating_without_response=sections.preprocess.rating_without_response,
        rating_range=tuple(lab.rating_range), rating_threshold=lab.rating_threshold, rating_column=rating,
        optional=(lab.outcome,) if task.optional_outcome else ())


def run_preprocess(sections: PreprocessSections, inputs: list[tuple[str, Optional[str]]], out_dir) -> dict:
    """Runs the job over ``(path, split-or-None)`` inputs and returns the reconciled report.

    ``out_dir`` is a local directory or any Beam filesystem URI (``gs://...`` on Dataflow); the job
    writes into it as it is (``ctrcvr.output_dir`` guards it first).
    """
    out = str(out_dir).rstrip("/") if "://" in str(out_dir) else str(Path(out_dir))
    settings = sections.preprocess
    schema = Schema.from_config(sections)
    local = runners.is_local(settings) and "://" not in out  # temporary files on this machine
    if local:
        os.makedirs(out, exist_ok=True)
    temp_dir = tempfile.mkdtemp(prefix="tft-", dir=out) if local else (
        settings.dataflow.temp_location or f"{out}/tmp")
    started = time.time()
    log.info("preprocess: %d input file(s) -> %s (runner %s)", len(inputs), out, settings.runner)
    gc.freeze()  # the millions of objects TF and Beam import need no rescanning by every collection
    try:
        with tft_beam.Context(temp_dir=temp_dir, passthrough_keys={SPLIT_COLUMN}):
            pipeline = build_pipeline(sections, inputs, out,
                                      spill_dir=f"{temp_dir}/spill" if local and settings.read_once else None)
            try:
                result = pipeline.run()
                result.wait_until_finish()
            except UserError as err:  # a bad file: Beam appended the step's name to the message
                raise type(err)(_BEAM_STEP.sub("", err.message), file=err.file, line=err.line,
                                key=err.key) from err
    finally:
        gc.unfreeze()
        if local:
            shutil.rmtree(temp_dir, ignore_errors=True)
    tft_output = tft.TFTransformOutput(out)
    vocabularies = {f.name: tft_output.vocabulary_size_by_name(f.name)
                    for f in schema.features if f.transform == "vocabulary"}
    report = build_report(_counters(result), out, schema.labels, vocabularies, time.time() - started)
    failure = _failure(report, settings.max_reject_fraction, out)
    if failure:
        report["failure"] = failure
    write_text(f"{out}/report.json", json.dumps(report, indent=2))
    log.info("preprocess report (%s/report.json):\n%s", out, format_report(report))
    if failure:
        raise PreprocessFailed(failure)
    return report


def build_pipeline(sections: PreprocessSections, inputs: list[tuple[str, Optional[str]]], out: str,
                   spill_dir: Optional[str] = None) -> beam.Pipeline:
    """The job's pipeline, not run yet; call it inside ``tft_beam.Context`` (TFT traces the
    ``preprocessing_fn`` here). ``spill_dir``: read file inputs once (see ``pipeline.spill``)."""
    schema = Schema.from_config(sections)
    validator = make_validator(sections, schema)
    raw_spec = schema.raw_feature_spec()
    raw_metadata = tft.DatasetMetadata.from_feature_spec(raw_spec)
    tft_schema = validator.arrow_schema(list(raw_spec)).append(pa.field(SPLIT_COLUMN, pa.list_(pa.binary())))
    adapter = tensor_adapter.TensorAdapterConfig(
        tft_schema, tensor_representation_util.InferTensorRepresentationsFromSchema(raw_metadata.schema))
    pipeline = beam.Pipeline(runner=runners.make_runner(sections.preprocess),
                             options=runners.pipeline_options(sections.preprocess))
    _build(pipeline, sections, inputs, out, validator, adapter, raw_metadata, spill_dir)
    return pipeline


def _build(p, sections: PreprocessSections, inputs, out, validator, adapter, raw_metadata, spill_dir):
    data, settings = sections.data, sections.preprocess
    fn = functools.partial(preprocessing_fn, schema=Schema.from_config(sections),
                           fixed_vocabularies=fixed_vocabulary_files(sections))
    read_columns = list(validator.kinds)
    split_args = (validator, data.split, settings.batch_rows, (sections.labels.selection, sections.labels.outcome),
                  adapter.arrow_schema)
    beam_read = get_source(data.source).beam_read
    if beam_read is not None:  # the source reads in Beam (a keyed join): validate its chunks
        chunks, side_rejects = p | "ReadSource" >> beam_read(data, sections.features, inputs, read_columns,
                                                             settings.batch_rows)
        train = chunks | "ValidateForAnalysis" >> beam.ParDo(
            ValidateSplit(*split_args, count=False, outputs=("train",)))
        parts = chunks | "ValidateSplit" >> beam.ParDo(
            ValidateSplit(*split_args, count=True)).with_outputs("rejects", main="batches")
        batches, rejects = parts.batches, (parts.rejects, side_rejects) | beam.Flatten()
    elif spill_dir:  # read once: the first pass spills what it validated, the second reads that back
        first = (p | "ListInputs" >> beam.Create(inputs)
                 | "ReadValidateSplit" >> beam.ParDo(ReadValidateSplit(
                     data, read_columns, *split_args, count=True, spill_dir=spill_dir, downstream=("train",)))
                 .with_outputs("rejects", "spilled", main="batches"))
        train, rejects = first.batches, first.rejects
        # the shuffle keeps the read-back batches in the transform's stage (fused, streamed) instead of
        # letting the runner materialise them after the first pass, which also feeds the analysis
        batches = first.spilled | "ShuffleSpilled" >> beam.Reshuffle() | "ReadSpilled" >> beam.ParDo(ReadSpilled())
    else:  # read twice: once to analyse (train rows), once to transform and write
        args = (data, read_columns, *split_args)
        train = (p | "ListInputsForAnalysis" >> beam.Create(inputs)
                 | "ReadForAnalysis" >> beam.ParDo(ReadValidateSplit(*args, count=False, outputs=("train",))))
        parts = (p | "ListInputs" >> beam.Create(inputs)
                 | "ReadValidateSplit" >> beam.ParDo(ReadValidateSplit(*args, count=True))
                 .with_outputs("rejects", main="batches"))
        batches, rejects = parts.batches, parts.rejects
    transform_fn = (train, adapter) | "Analyze" >> tft_beam.AnalyzeDataset(fn)
    hashed = [f for f in sections.features if f.transform == "hash"]
    if hashed:
        _ = train | "CountHashCollisions" >> CountHashCollisions(hashed)
    transformed, _ = (((batches, adapter), transform_fn)
                      | "Transform" >> tft_beam.TransformDataset(output_record_batches=True))
    _ = transformed | "Write" >> WriteTFRecordShards(
        out, SPLIT_COLUMN, settings.num_shards, settings.compression_level, counter=(NAMESPACE, "{split}:written"))
    _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(out)
    _ = raw_metadata | "WriteRawMetadata" >> tft_beam.WriteMetadata(f"{out}/metadata", pipeline=p)
    _ = rejects | "WriteRejects" >> beam.io.WriteToText(
        f"{out}/rejects/rejects", file_name_suffix=".jsonl", num_shards=1)


def fixed_vocabulary_files(sections: PreprocessSections) -> dict[str, str]:
    """{feature: its vocabulary file in ``preprocess.fixed_vocabulary_from``} (empty when unset)."""
    previous = sections.preprocess.fixed_vocabulary_from
    if not previous:
        return {}
    try:
        output = tft.TFTransformOutput(previous)
        files = {f.name: output.vocabulary_file_by_name(f.name)
                 for f in sections.features if f.transform == "vocabulary"}
    except Exception as err:  # noqa: BLE001 (not a transform output, or a feature it has no vocabulary of)
        raise UserError(f"no vocabularies to keep there ({type(err).__name__}: {err}); give a previous "
                        "preprocess output directory", file=previous, key="preprocess.fixed_vocabulary_from") from None
    log.info("keeping the vocabularies of %s: %s", previous, ", ".join(files))
    return files


def _counters(result) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        counts[c.key.metric.name] = counts.get(c.key.metric.name, 0) + int(value or 0)
    return counts


def _failure(report: dict, limit: float, out: str) -> Optional[str]:
    """Why the output must not be used, or None: too many rejects, or no train row at all."""
    if report["reject_share"] > limit:
        return (f"{report['rows_rejected']} of {report['rows_read']} rows rejected "
                f"({report['reject_share']:.2%} > preprocess.max_reject_fraction={limit:.2%}); "
                f"reasons: {report['rejected_by_reason']}; inspect {out}/{report['rejects_file']}")
    if not report["splits"].get("train", {}).get("rows"):
        rows = ", ".join(f"{s} {v['rows']}" for s, v in report["splits"].items())
        return (f"the train split is empty ({report['rows_read']} row(s) read, "
                f"{report['rows_rejected']} rejected; rows per split: {rows}): check the input files "
                "(header only? zero rows?) and data.split (does it send every row to eval?)")
    return None
