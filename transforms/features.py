"""Feature declarations -> raw schemas, transformed names and the TFT ``preprocessing_fn``.

Every feature is declared once, in the config's ``features`` list. This module turns that
list into (a) the raw feature spec the Beam job and the serving signature parse,
(b) the top-level ``preprocessing_fn`` TFT analyses, and (c) the cardinalities the model
reads back from the transform output. Labels, keys and ground truth are passed through
untouched and are never features.

A multivalued categorical feature is a variable-length list of strings per row: raw it is a
``VarLenFeature`` (a ``tf.SparseTensor`` inside ``preprocessing_fn``), transformed a sparse list
of vocabulary (or hash) ids that the model mean-pools. Its values are trimmed and empty values
dropped inside the graph (:func:`clean_values`), so an empty string is "no value" on every path:
in training data, in a client's tf.Example, and as the padding of ``predict_raw``'s dense matrix.
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Mapping, Sequence, Union

import ctrcvr  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf
import tensorflow_transform as tft

from ctrcvr.config import Config, FeatureConfig
from transforms.vocabulary import VocabularySpec, apply_vocabularies

TRANSFORMED_SUFFIX = "_xf"
ColumnKind = Literal["string", "string_list", "float", "int"]
_DTYPES = {"string": tf.string, "string_list": tf.string, "float": tf.float32, "int": tf.int64}


def transformed_name(name: str) -> str:
    """The name a feature carries after preprocessing (labels keep theirs)."""
    return name + TRANSFORMED_SUFFIX


@dataclasses.dataclass(frozen=True)
class Schema:
    """What the transform stage needs to know about the raw columns, read from the config."""

    features: tuple[FeatureConfig, ...]
    labels: tuple[str, ...]
    ground_truth: tuple[str, ...]
    keys: tuple[str, ...]
    task: str = "conversion"

    @classmethod
    def from_config(cls, config: Config) -> "Schema":
        lab = config.labels
        keys = tuple(k for k in lab.keys)
        return cls(tuple(config.features), (lab.click, lab.conversion), tuple(lab.ground_truth), keys, lab.task)

    @property
    def passthrough(self) -> tuple[str, ...]:
        """Columns copied to the output unchanged: labels, ground truth, keys."""
        return self.labels + self.ground_truth + tuple(k for k in self.keys if k not in self.labels)

    def column_kinds(self) -> dict[str, ColumnKind]:
        """The kind of every raw column the pipeline reads: string, string_list, float or int.

        Labels are int (0/1), except a survey rating (float, 0 when there is no response).
        """
        kinds: dict[str, ColumnKind] = {
            f.name: ("string_list" if f.multivalued else "string") if f.kind == "categorical" else "float"
            for f in self.features}
        kinds.update({name: "int" for name in self.labels})
        if self.task == "survey":
            kinds[self.labels[1]] = "float"
        kinds.update({name: "float" for name in self.ground_truth})
        kinds.update({name: "string" for name in self.keys if name not in kinds})
        return kinds

    def column_types(self) -> dict[str, tf.dtypes.DType]:
        """The dtype of every raw column the pipeline reads."""
        return {name: _DTYPES[kind] for name, kind in self.column_kinds().items()}

    def raw_feature_spec(self) -> dict[str, Union[tf.io.FixedLenFeature, tf.io.VarLenFeature]]:
        """Spec of the raw metadata written next to ``transform_fn`` (no defaults: TFT forbids them)."""
        return {name: tf.io.VarLenFeature(tf.string) if kind == "string_list"
                else tf.io.FixedLenFeature([], _DTYPES[kind]) for name, kind in self.column_kinds().items()}

    def serving_feature_spec(self) -> dict[str, Union[tf.io.FixedLenFeature, tf.io.VarLenFeature]]:
        """Spec the serving signature parses: features only, each with a default so it may be omitted
        (a multivalued feature that is omitted is an empty list)."""
        spec = {}
        for f in self.features:
            if f.multivalued:
                spec[f.name] = tf.io.VarLenFeature(tf.string)
            elif f.kind == "categorical":
                spec[f.name] = tf.io.FixedLenFeature([], tf.string, default_value=str(f.default or ""))
            else:
                spec[f.name] = tf.io.FixedLenFeature([], tf.float32, default_value=float(f.default or 0.0))
        return spec


def preprocessing_fn(inputs: Mapping[str, tf.Tensor], schema: Schema) -> dict[str, tf.Tensor]:
    """TFT preprocessing: one transform per declared feature, passthrough for everything else.

    Every vocabulary comes from one analyzer and is applied with one lookup table
    (``transforms.vocabulary``): the same files and ids as
    ``tft.compute_and_apply_vocabulary(vocab_filename=name)``, at the fixed cost of one.
    Bind ``schema`` with ``functools.partial`` before handing this to TFT.
    """
    inputs = {**inputs, **{f.name: clean_values(inputs[f.name]) for f in schema.features if f.multivalued}}
    specs = [VocabularySpec(f.name, f.top_k, f.frequency_threshold, f.num_oov_buckets)
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


def cardinality(feature: FeatureConfig, tft_output: tft.TFTransformOutput) -> int:
    """Embedding-table rows for an embedded feature, read from the transform output."""
    if feature.transform == "vocabulary":
        return tft_output.vocabulary_size_by_name(feature.name) + feature.num_oov_buckets
    if feature.transform == "hash":
        return feature.hash_buckets
    if feature.transform == "bucketize":
        return feature.num_buckets + 1
    raise ValueError(f"feature {feature.name!r} ({feature.transform}) is not embedded")


def embedded_features(features: Sequence[FeatureConfig]) -> list[FeatureConfig]:
    return [f for f in features if f.is_embedded]


def dense_features(features: Sequence[FeatureConfig]) -> list[FeatureConfig]:
    return [f for f in features if not f.is_embedded]
