"""The TFT ``preprocessing_fn``: one transform per declared feature (:mod:`transforms.schema`), labels passed through.

Every feature is declared once, in the config's ``features`` list; :mod:`transforms.schema` turns
that list into the raw specs and cardinalities, and this module into the top-level
``preprocessing_fn`` TFT analyses. Labels, keys and ground truth are passed through untouched and
are never features.

A multivalued categorical feature is a variable-length list of strings per row: raw it is a
``VarLenFeature`` (a ``tf.SparseTensor`` inside ``preprocessing_fn``), transformed a sparse list
of vocabulary (or hash) ids that the model mean-pools. Its values are trimmed and empty values
dropped inside the graph (:func:`clean_values`), so an empty string is "no value" on every path:
in training data, in a client's tf.Example, and as the padding of ``predict_raw``'s dense matrix.
"""
from __future__ import annotations

from typing import Mapping, Optional

import tensorflow as tf
import tensorflow_transform as tft

from transforms.schema import FeatureConfig, Schema, transformed_name
from transforms.vocabulary import VocabularySpec, apply_vocabularies


def preprocessing_fn(inputs: Mapping[str, tf.Tensor], schema: Schema,
                     fixed_vocabularies: Optional[Mapping[str, str]] = None) -> dict[str, tf.Tensor]:
    """TFT preprocessing: one transform per declared feature, passthrough for everything else.

    Every vocabulary comes from one analyzer and is applied with one lookup table
    (``transforms.vocabulary``): the same files and ids as
    ``tft.compute_and_apply_vocabulary(vocab_filename=name)``, at the fixed cost of one.
    Bind ``schema`` with ``functools.partial`` before handing this to TFT. ``fixed_vocabularies``
    ({feature: a previous vocabulary file}) keeps those vocabularies as they are instead of building them.
    """
    inputs = {**inputs, **{f.name: clean_values(inputs[f.name]) for f in schema.features if f.multivalued}}
    fixed = fixed_vocabularies or {}
    specs = [VocabularySpec(f.name, f.top_k, f.frequency_threshold, f.num_oov_buckets, fixed.get(f.name))
             for f in schema.features if f.transform == "vocabulary"]
    ids = apply_vocabularies(inputs, specs) if specs else {}
    outputs = {transformed_name(f.name): ids[f.name] if f.name in ids else _transform(f, inputs[f.name])
               for f in schema.features}
    for name in schema.passthrough:
        outputs[name] = tf.identity(inputs[name])
    return outputs


def clean_values(x: tf.SparseTensor) -> tf.SparseTensor:
    """A multivalued feature's values trimmed, empty ones dropped, re-packed row by row (the
    column indices of each row stay 0, 1, 2, ... as TFT's VarLen encoding wants)."""
    values = tf.strings.strip(x.values)
    keep = tf.strings.length(values) > 0
    rows = tf.boolean_mask(x.indices[:, 0], keep)
    ragged = tf.RaggedTensor.from_value_rowids(tf.boolean_mask(values, keep), rows, nrows=x.dense_shape[0])
    return ragged.to_sparse()


def _transform(feature: FeatureConfig, x: tf.Tensor) -> tf.Tensor:
    if feature.transform == "hash":
        if isinstance(x, tf.SparseTensor):
            return tf.SparseTensor(x.indices, tf.strings.to_hash_bucket_fast(x.values, feature.hash_buckets),
                                   x.dense_shape)
        return tf.strings.to_hash_bucket_fast(x, feature.hash_buckets)
    if feature.transform == "zscore":
        return tft.scale_to_z_score(x)
    if feature.transform == "log1p":
        return tft.scale_to_z_score(tf.math.log1p(tf.maximum(x, 0.0)))
    if feature.transform == "bucketize":
        return tft.bucketize(x, feature.num_buckets)
    return tf.identity(x)
