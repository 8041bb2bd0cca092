"""SavedModel export for TF Serving: raw features in, named predictions out.

The TFT graph (vocabularies included, as assets) is inside the SavedModel, so a model
directory keeps working after the preprocessing output is gone. Layout, as TF Serving wants:

    <root>/models.config                                  serves every model under <root>
    <root>/<model name>/<integer version>/saved_model.pb
    <root>/<model name>/<version>/assets.extra/tf_serving_warmup_requests

Signatures (built in one place, :func:`make_serving_signatures`):
    serving_default      serialized raw tf.Examples (labels optional) -> predictions
    predict_raw          one named raw tensor per feature -> predictions
    transform_features   serialized raw tf.Examples -> transformed features (as TFX does)

A multivalued feature is a ``bytes_list`` of any length (possibly empty or absent) in a tf.Example.
In ``predict_raw`` it is a dense ``[batch, max values]`` string matrix padded with ``""``
(:data:`PADDING`), e.g. ``[["a", "b"], ["c", ""], ["", ""]]``. Dense, because TF Serving's predict
API (gRPC ``TensorProto`` inputs, REST row and columnar JSON) and ``saved_model_cli`` feed dense
tensors by name only: a RaggedTensor or SparseTensor input is a composite tensor that neither can
feed. ``""`` is safe as padding because an empty value is no value on every path (the transform
graph drops empty values, :func:`transforms.features.clean_values`, as the training data never
holds them), so padding changes nothing and rows of different lengths share one matrix.

Warmup requests (TF Serving replays them at load time) come from real raw rows: ``serving_default``
with one row and with all of them, and ``predict_raw`` with the same rows, so ``serve-check`` can
also check that both signatures agree.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Optional

import ctrcvr  # noqa: F401
import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_transform as tft

from ctrcvr.config import FeatureConfig
from transforms.features import Schema

EXAMPLES_INPUT = "examples"
PADDING = b""  # pads the rows of a multivalued feature's predict_raw matrix; an empty value is no value
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
MODELS_CONFIG = "models.config"


def make_serving_signatures(model, tft_output: tft.TFTransformOutput, schema: Schema) -> dict:
    """The three serving signatures; every estimator reuses them."""
    model.tft_layer = tft_output.transform_features_layer()
    spec = schema.serving_feature_spec()
    examples = tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)
    multivalued = {f.name for f in schema.features if f.multivalued}

    @tf.function(input_signature=[examples])
    def serve_examples(examples):
        return model.predict_named(model.tft_layer(tf.io.parse_example(examples, spec)))

    @tf.function(input_signature=[raw_input_specs(schema)])
    def serve_raw(features):
        # a padded matrix -> the SparseTensor the transform graph takes (tf.sparse.from_dense drops "")
        features = {name: tf.sparse.from_dense(x) if name in multivalued else x for name, x in features.items()}
        return model.predict_named(model.tft_layer(features))

    @tf.function(input_signature=[examples])
    def transform_features(examples):
        return model.tft_layer(tf.io.parse_example(examples, spec))

    return {"serving_default": serve_examples.get_concrete_function(),
            "predict_raw": serve_raw.get_concrete_function(),
            "transform_features": transform_features.get_concrete_function()}


def raw_input_specs(schema: Schema) -> dict[str, tf.TensorSpec]:
    """``predict_raw``'s inputs: ``[batch]`` per feature, ``[batch, max values]`` strings per multivalued one."""
    spec = schema.serving_feature_spec()
    return {f.name: tf.TensorSpec([None, None] if f.multivalued else [None], spec[f.name].dtype, name=f.name)
            for f in schema.features}


def next_version(base) -> int:
    """A version number above every existing one (seconds since the epoch, as TFX does)."""
    existing = [int(p.name) for p in Path(base).glob("*") if p.name.isdigit()]
    return max([int(time.time()), *(v + 1 for v in existing)])


def export_serving_model(model, tft_output: tft.TFTransformOutput, schema: Schema, root, name: str,
                         warmup_rows: Optional[pd.DataFrame] = None) -> Path:
    """Writes a new version of model ``name`` under ``root``; never touches existing versions."""
    signatures = make_serving_signatures(model, tft_output, schema)
    base = Path(root) / name
    path = base / str(next_version(base))
    tf.saved_model.save(model, str(path), signatures=signatures)
    if warmup_rows is not None and len(warmup_rows):
        write_warmup_requests(path, name, warmup_requests(warmup_rows, schema))
    write_models_config(root)
    return path


def warmup_requests(rows: pd.DataFrame, schema: Schema) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(signature, inputs) pairs for real raw rows: ``serving_default`` on the first row and on all of
    them, ``predict_raw`` on all of them (the same rows: ``serve-check`` compares the two)."""
    examples = np.array(to_raw_examples(rows, schema), dtype=object)
    return [("serving_default", {EXAMPLES_INPUT: examples[:1]}), ("serving_default", {EXAMPLES_INPUT: examples}),
            ("predict_raw", to_raw_tensors(rows, schema))]


def write_warmup_requests(version_dir, model_name: str, requests: list[tuple[str, dict[str, np.ndarray]]]) -> Path:
    """TF Serving replays these PredictionLogs at load time, so the first real request is fast."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    path = Path(version_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            for name, value in inputs.items():
                dtype = tf.string if value.dtype == object else tf.as_dtype(value.dtype)
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value, dtype=dtype, shape=value.shape))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(version_dir) -> list:
    """The PredictRequests stored in a version's warmup file."""
    from tensorflow_serving.apis import prediction_log_pb2
    requests = []
    for record in tf.data.TFRecordDataset(str(Path(version_dir) / WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        requests.append(log.predict_log.request)
    return requests


def write_models_config(root, base_path_prefix: str = "/models") -> Path:
    """``models.config`` for ``tensorflow_model_server --model_config_file``: one entry per model dir.

    Base paths assume ``root`` is mounted at ``base_path_prefix`` in the serving container.
    """
    root = Path(root)
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and any(v.name.isdigit() for v in p.iterdir()))
    entries = "".join(f'  config {{\n    name: "{n}"\n    base_path: "{base_path_prefix}/{n}"\n'
                      f'    model_platform: "tensorflow"\n  }}\n' for n in names)
    path = root / MODELS_CONFIG
    path.write_text(f"model_config_list {{\n{entries}}}\n")
    return path


def to_raw_examples(rows: pd.DataFrame, schema: Schema) -> list[bytes]:
    """Serialized raw tf.Examples (features only) from a DataFrame of raw rows.

    What a client sends to ``serving_default``; also used for warmup requests and tests.
    Missing columns and null values are left out (the signature fills the defaults; a missing
    multivalued feature is an empty list). A multivalued cell is a list of values or text joined
    by the feature's ``separator``, as in the raw data.
    """
    out = []
    for record in rows.to_dict("records"):
        feature = {}
        for f in schema.features:
            values = raw_values(record.get(f.name), f)
            if values is None:
                continue
            if f.kind == "categorical":
                feature[f.name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
            else:
                feature[f.name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        out.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return out


def to_raw_tensors(rows: pd.DataFrame, schema: Schema) -> dict[str, np.ndarray]:
    """``predict_raw``'s inputs for a DataFrame of raw rows: missing values take the feature's
    serving default, multivalued rows are padded with :data:`PADDING` to the longest row."""
    spec = schema.serving_feature_spec()
    records = rows.to_dict("records")
    out = {}
    for f in schema.features:
        cells = [raw_values(r.get(f.name), f) for r in records]
        if f.multivalued:
            out[f.name] = padded_matrix([c or [] for c in cells])
        else:
            default = spec[f.name].default_value
            column = [c[0] if c else default for c in cells]
            if f.kind == "categorical":
                column = [v if isinstance(v, bytes) else str(v).encode() for v in column]
            out[f.name] = np.array(column, dtype=object if f.kind == "categorical" else np.float32)
    return out


def padded_matrix(rows: list[list[bytes]]) -> np.ndarray:
    """Rows of values -> a ``[rows, longest]`` object matrix padded with :data:`PADDING`."""
    matrix = np.full((len(rows), max(map(len, rows), default=0)), PADDING, dtype=object)
    for i, values in enumerate(rows):
        matrix[i, :len(values)] = values
    return matrix


def raw_values(value: Any, feature: FeatureConfig) -> Optional[list]:
    """One raw cell -> its values (bytes for categorical features, floats for numeric ones), or None
    when it is missing. Multivalued text is split on the feature's separator, values are trimmed,
    empty ones left out (as preprocessing reads a text cell)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if feature.kind == "numeric":
        return [float(value)]
    if not feature.multivalued:
        return [value if isinstance(value, bytes) else str(value).encode()]
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    parts = value.split(feature.separator) if isinstance(value, str) else list(value)
    text = [p.decode("utf-8") if isinstance(p, bytes) else str(p) for p in parts]
    return [t.strip().encode() for t in text if t.strip()]
