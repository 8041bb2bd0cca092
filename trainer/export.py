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
(``ctrcvr.serving.client.PADDING``), e.g. ``[["a", "b"], ["c", ""], ["", ""]]``. Dense, because TF Serving's predict
API (gRPC ``TensorProto`` inputs, REST row and columnar JSON) and ``saved_model_cli`` feed dense
tensors by name only: a RaggedTensor or SparseTensor input is a composite tensor that neither can
feed. ``""`` is safe as padding because an empty value is no value on every path (the transform
graph drops empty values, :func:`transforms.preprocessing.clean_values`, as the training data never
holds them), so padding changes nothing and rows of different lengths share one matrix.

Clients encode raw rows with :mod:`ctrcvr.serving.client`; the workflow adds warmup requests built
from real raw rows (:mod:`ctrcvr.serving.warmup`) to each new version.
"""
from __future__ import annotations

import time
from pathlib import Path
import tensorflow as tf
import tensorflow_transform as tft

from transforms.schema import Schema

EXAMPLES_INPUT = "examples"
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


def export_serving_model(model, tft_output: tft.TFTransformOutput, schema: Schema, root, name: str) -> Path:
    """Writes a new version of model ``name`` under ``root`` (and ``root/models.config``); never touches
    existing versions. Warmup requests are the serving layer's (:mod:`ctrcvr.serving.warmup`)."""
    signatures = make_serving_signatures(model, tft_output, schema)
    base = Path(root) / name
    path = base / str(next_version(base))
    partial = base / f".{path.name}.partial"  # TF Serving loads integer directories only: never a half-written one
    tf.saved_model.save(model, str(partial), signatures=signatures)
    partial.rename(path)
    write_models_config(root)
    return path


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
