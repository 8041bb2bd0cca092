"""Feature declarations -> raw schemas, transformed names and the TFT ``preprocessing_fn``.

Every feature is declared once, in the config's ``features`` list. This module turns that
list into (a) the raw feature spec the Beam job and the serving signature parse,
(b) the top-level ``preprocessing_fn`` TFT analyses, and (c) the cardinalities the model
reads back from the transform output. Labels, keys and ground truth are passed through
untouched and are never features.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import ctrcvr  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf
import tensorflow_transform as tft

from ctrcvr.config import Config, FeatureConfig

TRANSFORMED_SUFFIX = "_xf"


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

    @classmethod
    def from_config(cls, config: Config) -> "Schema":
        lab = config.labels
        keys = tuple(k for k in lab.keys)
        return cls(tuple(config.features), (lab.click, lab.conversion), tuple(lab.ground_truth), keys)

    @property
    def passthrough(self) -> tuple[str, ...]:
        """Columns copied to the output unchanged: labels, ground truth, keys."""
        return self.labels + self.ground_truth + self.keys

    def column_types(self) -> dict[str, tf.dtypes.DType]:
        """The dtype of every raw column the pipeline reads."""
        types = {f.name: tf.string if f.kind == "categorical" else tf.float32 for f in self.features}
        types.update({name: tf.int64 for name in self.labels})
        types.update({name: tf.float32 for name in self.ground_truth})
        types.update({name: tf.string for name in self.keys if name not in types})
        return types

    def raw_feature_spec(self) -> dict[str, tf.io.FixedLenFeature]:
        """Spec of the raw metadata written next to ``transform_fn`` (no defaults: TFT forbids them)."""
        return {name: tf.io.FixedLenFeature([], dtype) for name, dtype in self.column_types().items()}

    def serving_feature_spec(self) -> dict[str, tf.io.FixedLenFeature]:
        """Spec the serving signature parses: features only, each with a default so it may be omitted."""
        spec = {}
        for f in self.features:
            if f.kind == "categorical":
                spec[f.name] = tf.io.FixedLenFeature([], tf.string, default_value=str(f.default or ""))
            else:
                spec[f.name] = tf.io.FixedLenFeature([], tf.float32, default_value=float(f.default or 0.0))
        return spec


def preprocessing_fn(inputs: Mapping[str, tf.Tensor], schema: Schema) -> dict[str, tf.Tensor]:
    """TFT preprocessing: one transform per declared feature, passthrough for everything else.

    Bind ``schema`` with ``functools.partial`` before handing this to TFT.
    """
    outputs = {transformed_name(f.name): _transform(f, inputs[f.name]) for f in schema.features}
    for name in schema.passthrough:
        outputs[name] = tf.identity(inputs[name])
    return outputs


def _transform(feature: FeatureConfig, x: tf.Tensor) -> tf.Tensor:
    if feature.transform == "vocabulary":
        return tft.compute_and_apply_vocabulary(
            x, top_k=feature.top_k, frequency_threshold=feature.frequency_threshold,
            num_oov_buckets=feature.num_oov_buckets, vocab_filename=feature.name)
    if feature.transform == "hash":
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
