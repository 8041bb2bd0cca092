"""The preprocessing Beam job: raw files -> validated, split, transformed TFRecord shards.

Wiring only: reading and validation live in ``sources`` / ``validation``, the transform in
``transforms.features.preprocessing_fn``. Outputs under ``out_dir``:

    train/part-*.tfrecord.gz, eval/part-*.tfrecord.gz   transformed tf.Examples (gzip)
    transform_fn/, transformed_metadata/                 the TFT graph and its output schema
    metadata/                                            the raw schema (for serving)
    rejects/rejects-*.jsonl                              every rejected row with its reason
    report.json                                          counts that reconcile: read = written + rejected
"""
from __future__ import annotations

import functools
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Optional

import ctrcvr  # noqa: F401
import apache_beam as beam
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from tfx_bsl.coders import example_coder
from tfx_bsl.tfxio import tensor_adapter, tensor_representation_util

from ctrcvr.config import Config
from ctrcvr.outputs import prepare_output_dir
from pipeline import runners, splits
from pipeline.sources import read_chunks
from pipeline.validation import RowValidator, to_record_batches
from transforms.features import Schema, preprocessing_fn

log = logging.getLogger(__name__)
NAMESPACE = "ctrcvr"
SPLITS = ("train", "eval")
_KINDS = {"string": "string", "float32": "float", "int64": "int"}


class PreprocessFailed(RuntimeError):
    """The job ran but its output should not be used (e.g. too many rejected rows)."""


def make_validator(config: Config, schema: Schema) -> RowValidator:
    """The validator for the configured columns, labels and split key."""
    kinds = {name: _KINDS[dtype.name] for name, dtype in schema.column_types().items()}
    kinds.update({k: v for k, v in splits.split_columns(config.data.split).items() if k not in kinds})
    defaults = {f.name: f.default for f in config.features if f.default is not None}
    return RowValidator(kinds=kinds, defaults=defaults, binary_labels=schema.labels,
                        click=config.labels.click, conversion=config.labels.conversion,
                        conversion_without_click=config.preprocess.conversion_without_click)


class _ReadValidateSplit(beam.DoFn):
    """File path -> Arrow record batches tagged train / eval, and JSON rejects."""

    def __init__(self, validator: RowValidator, config: Config, tft_columns: list[str]):
        self._validator = validator
        self._split = config.data.split
        self._rows = config.preprocess.batch_rows
        self._labels = (config.labels.click, config.labels.conversion)
        self._tft_schema = validator.arrow_schema(tft_columns)

    def process(self, element):
        path, file_split = element
        for frame, first_row, malformed in read_chunks(path, self._rows):
            yield from self._rejects(malformed)
            missing = self._validator.missing_columns(frame.columns)
            if missing:
                raise ValueError(f"{path}: missing required column(s) {', '.join(missing)}; "
                                 f"found {', '.join(map(str, frame.columns))}")
            Metrics.counter(NAMESPACE, "rows_read").inc(len(frame))
            clean, rejects, fixes = self._validator.validate(frame, path, first_row)
            yield from self._rejects(rejects)
            for kind, n in fixes.items():
                Metrics.counter(NAMESPACE, kind).inc(n)
            is_eval = splits.eval_mask(clean, self._split, file_split)
            for split, mask in (("train", ~is_eval), ("eval", is_eval)):
                yield from self._emit(split, clean[mask])

    def _emit(self, split, part):
        if part.empty:
            return
        click, conversion = self._labels
        Metrics.counter(NAMESPACE, f"{split}:rows").inc(len(part))
        Metrics.counter(NAMESPACE, f"{split}:clicks").inc(int(part[click].sum()))
        Metrics.counter(NAMESPACE, f"{split}:conversions").inc(int(part[conversion].sum()))
        for batch in to_record_batches(part, self._tft_schema, self._rows):
            yield beam.pvalue.TaggedOutput(split, batch)

    @staticmethod
    def _rejects(rejects):
        for reject in rejects:
            if reject.reason == "malformed_line":
                Metrics.counter(NAMESPACE, "rows_read").inc()
            Metrics.counter(NAMESPACE, f"rejected:{reject.reason}").inc()
            yield beam.pvalue.TaggedOutput("rejects", reject.to_json())


class _EncodeExamples(beam.DoFn):
    """Transformed record batches -> serialized tf.Examples (C++ encoder, whole batches)."""

    def __init__(self, split: str):
        self._split = split

    def setup(self):
        self._encoder = example_coder.RecordBatchToExamplesEncoder()

    def process(self, element):
        batch, _ = element
        Metrics.counter(NAMESPACE, f"{self._split}:written").inc(batch.num_rows)
        yield from self._encoder.encode(batch)


def run_preprocess(config: Config, inputs: list[tuple[str, Optional[str]]], out_dir,
                   overwrite: bool = False) -> dict:
    """Runs the job over ``(path, split-or-None)`` inputs and returns the reconciled report."""
    out = prepare_output_dir(out_dir, overwrite)
    schema = Schema.from_config(config)
    validator = make_validator(config, schema)
    raw_spec = schema.raw_feature_spec()
    raw_metadata = tft.DatasetMetadata.from_feature_spec(raw_spec)
    adapter = tensor_adapter.TensorAdapterConfig(
        validator.arrow_schema(list(raw_spec)),
        tensor_representation_util.InferTensorRepresentationsFromSchema(raw_metadata.schema))
    temp_dir = (config.preprocess.dataflow.temp_location if not runners.is_local(config.preprocess)
                else tempfile.mkdtemp(prefix="tft-", dir=out))
    started = time.time()
    log.info("preprocess: %d input file(s) -> %s (runner %s)", len(inputs), out, config.preprocess.runner)
    pipeline = beam.Pipeline(options=runners.pipeline_options(config.preprocess))
    with tft_beam.Context(temp_dir=temp_dir):
        _build(pipeline, config, inputs, out, validator, adapter, raw_metadata, list(raw_spec))
        result = pipeline.run()
        result.wait_until_finish()
    if runners.is_local(config.preprocess):
        _remove_tree(Path(temp_dir))
    report = _report(_counters(result), out, schema, time.time() - started)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    _check_reject_share(report, config.preprocess.max_reject_fraction, out)
    return report


def _build(p, config, inputs, out, validator, adapter, raw_metadata, tft_columns):
    parts = (p | "ListInputs" >> beam.Create(inputs)
             | "ReadValidateSplit" >> beam.ParDo(_ReadValidateSplit(validator, config, tft_columns))
             .with_outputs("rejects", *SPLITS))
    fn = functools.partial(preprocessing_fn, schema=Schema.from_config(config))
    (train, _), transform_fn = ((parts.train, adapter)
                                | "AnalyzeAndTransform" >> tft_beam.AnalyzeAndTransformDataset(
                                    fn, output_record_batches=True))
    evaluation, _ = (((parts.eval, adapter), transform_fn)
                     | "TransformEval" >> tft_beam.TransformDataset(output_record_batches=True))
    for split, data in (("train", train), ("eval", evaluation)):
        _ = (data | f"Encode{split}" >> beam.ParDo(_EncodeExamples(split))
             | f"Write{split}" >> beam.io.WriteToTFRecord(
                 str(out / split / "part"), file_name_suffix=".tfrecord.gz",
                 num_shards=config.preprocess.num_shards,
                 compression_type=beam.io.filesystem.CompressionTypes.GZIP))
    _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(str(out))
    _ = raw_metadata | "WriteRawMetadata" >> tft_beam.WriteMetadata(str(out / "metadata"), pipeline=p)
    _ = parts.rejects | "WriteRejects" >> beam.io.WriteToText(
        str(out / "rejects" / "rejects"), file_name_suffix=".jsonl", num_shards=1)


def _counters(result) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        counts[c.key.metric.name] = counts.get(c.key.metric.name, 0) + int(value or 0)
    return counts


def _report(counts: dict[str, int], out: Path, schema: Schema, seconds: float) -> dict:
    rejected = {k.split(":", 1)[1]: v for k, v in sorted(counts.items()) if k.startswith("rejected:")}
    fixed = {k.split(":", 1)[1]: v for k, v in sorted(counts.items()) if k.startswith("fixed:")}
    split_report = {}
    for split in SPLITS:
        rows = counts.get(f"{split}:rows", 0)
        clicks = counts.get(f"{split}:clicks", 0)
        conversions = counts.get(f"{split}:conversions", 0)
        split_report[split] = {
            "rows": rows, "written": counts.get(f"{split}:written", 0), "clicks": clicks,
            "conversions": conversions, "ctr": clicks / rows if rows else None,
            "cvr_among_clicks": conversions / clicks if clicks else None,
            "files": sorted(str(p.relative_to(out)) for p in (out / split).glob("*.tfrecord.gz")),
        }
    read = counts.get("rows_read", 0)
    written = sum(s["written"] for s in split_report.values())
    tft_output = tft.TFTransformOutput(str(out))
    vocabularies = {f.name: tft_output.vocabulary_size_by_name(f.name)
                    for f in schema.features if f.transform == "vocabulary"}
    return {
        "rows_read": read, "rows_written": written, "rows_rejected": sum(rejected.values()),
        "reconciled": read == written + sum(rejected.values()),
        "reject_share": (sum(rejected.values()) / read) if read else 0.0,
        "rejected_by_reason": rejected, "fixed_by_reason": fixed, "splits": split_report,
        "vocabulary_sizes": vocabularies, "seconds": round(seconds, 2),
        "rows_per_second": round(read / seconds, 1) if seconds else None,
        "rejects_file": "rejects/rejects-00000-of-00001.jsonl",
    }


def _check_reject_share(report: dict, limit: float, out: Path) -> None:
    if report["reject_share"] > limit:
        raise PreprocessFailed(
            f"{report['rows_rejected']} of {report['rows_read']} rows rejected "
            f"({report['reject_share']:.2%} > preprocess.max_reject_fraction={limit:.2%}); "
            f"reasons: {report['rejected_by_reason']}; inspect {out / report['rejects_file']}")


def _remove_tree(path: Path) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)
