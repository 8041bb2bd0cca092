"""SavedModel export for TF Serving: raw serialized tf.Examples in, named predictions out.

The TFT graph (vocabularies included, as assets) is inside the SavedModel, so a model
directory keeps working after the preprocessing output is gone. Layout:
``<base>/<integer version>/saved_model.pb``, a new version per export.
"""
from __future__ import annotations

import time
from pathlib import Path

import ctrcvr  # noqa: F401
import tensorflow as tf
import tensorflow_transform as tft

from transforms.features import Schema

EXAMPLES_INPUT = "examples"


def make_serving_signatures(model, tft_output: tft.TFTransformOutput, schema: Schema) -> dict:
    """``serving_default`` (raw tf.Examples -> predictions) and ``transform_features``."""
    model.tft_layer = tft_output.transform_features_layer()
    spec = schema.serving_feature_spec()
    examples = tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)

    @tf.function(input_signature=[examples])
    def serve_examples(examples):
        transformed = model.tft_layer(tf.io.parse_example(examples, spec))
        return model.predict_named(transformed)

    @tf.function(input_signature=[examples])
    def transform_features(examples):
        return model.tft_layer(tf.io.parse_example(examples, spec))

    return {"serving_default": serve_examples.get_concrete_function(),
            "transform_features": transform_features.get_concrete_function()}


def next_version(base) -> int:
    """A version number above every existing one (seconds since the epoch, as TFX does)."""
    existing = [int(p.name) for p in Path(base).glob("*") if p.name.isdigit()]
    return max([int(time.time()), *(v + 1 for v in existing)])


def export_serving_model(model, tft_output: tft.TFTransformOutput, schema: Schema, export_base) -> Path:
    """Writes a new version under ``export_base`` and returns its directory."""
    signatures = make_serving_signatures(model, tft_output, schema)
    path = Path(export_base) / str(next_version(export_base))
    tf.saved_model.save(model, str(path), signatures=signatures)
    return path


def to_raw_examples(rows, schema: Schema) -> list[bytes]:
    """Serialized raw tf.Examples (features only) from a DataFrame of raw rows.

    What a client sends to ``serving_default``; also used for warmup requests and tests.
    Columns the frame lacks are left out of the example (the signature fills defaults).
    """
    spec = schema.serving_feature_spec()
    out = []
    for record in rows.to_dict("records"):
        feature = {}
        for name, fixed in spec.items():
            if name not in record or record[name] is None:
                continue
            if fixed.dtype == tf.string:
                feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(record[name]).encode()]))
            else:
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(record[name])]))
        out.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return out
