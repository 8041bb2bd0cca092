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
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import ctrcvr  # noqa: F401
import pandas as pd
import tensorflow as tf
import tensorflow_transform as tft

from transforms.features import Schema

EXAMPLES_INPUT = "examples"
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
MODELS_CONFIG = "models.config"


def make_serving_signatures(model, tft_output: tft.TFTransformOutput, schema: Schema) -> dict:
    """The three serving signatures; every estimator reuses them."""
    model.tft_layer = tft_output.transform_features_layer()
    spec = schema.serving_feature_spec()
    examples = tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)
    raw_inputs = {name: tf.TensorSpec([None], f.dtype, name=name) for name, f in spec.items()}

    @tf.function(input_signature=[examples])
    def serve_examples(examples):
        return model.predict_named(model.tft_layer(tf.io.parse_example(examples, spec)))

    @tf.function(input_signature=[raw_inputs])
    def serve_raw(features):
        return model.predict_named(model.tft_layer(features))

    @tf.function(input_signature=[examples])
    def transform_features(examples):
        return model.tft_layer(tf.io.parse_example(examples, spec))

    return {"serving_default": serve_examples.get_concrete_function(),
            "predict_raw": serve_raw.get_concrete_function(),
            "transform_features": transform_features.get_concrete_function()}


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
        write_warmup_requests(path, name, to_raw_examples(warmup_rows, schema))
    write_models_config(root)
    return path


def write_warmup_requests(version_dir, model_name: str, examples: list[bytes]) -> Path:
    """TF Serving replays these PredictionLogs at load time, so the first real request is fast."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    path = Path(version_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for batch in (examples[:1], examples):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name="serving_default"))
            request.inputs[EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
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
    Missing columns and null values are left out (the signature fills the defaults).
    """
    spec = schema.serving_feature_spec()
    out = []
    for record in rows.to_dict("records"):
        feature = {}
        for name, fixed in spec.items():
            value = record.get(name)
            if value is None or (isinstance(value, float) and value != value):
                continue
            if fixed.dtype == tf.string:
                feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))
            else:
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
        out.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return out
