"""The served EASQ model: transformed features -> the shared ``FeatureEmbedding`` x -> ``Easq`` (eqs. 6–14).

``predict_named`` is the contract export and evaluation read: ``score`` = ŷ (the ranking output, what
serving ranks by) and ``satisfaction`` = ŝ (the satisfaction pathway, a training-time reference).
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras

from trainer.estimators.easq.model import SATISFACTION, SCORE, Easq, EasqConfig
from trainer.model.layers import FeatureEmbedding
from transforms.schema import FeatureConfig, transformed_name


class EasqRanker(tf_keras.Model):
    """{``<feature>_xf``: [batch]} -> the ``Easq`` outputs (``score``, ``satisfaction``, router metrics)."""

    def __init__(self, features: Sequence[FeatureConfig], cardinalities: dict[str, int], embedding_dim: int,
                 config: EasqConfig, **kwargs):
        super().__init__(**kwargs)
        multivalued = [f.name for f in features if f.multivalued]
        if multivalued:
            raise ValueError(f"easq reads single-valued features; {', '.join(multivalued)} are multivalued")
        self.feature_specs = {transformed_name(f.name): tf.int64 if f.is_embedded else tf.float32 for f in features}
        self.embedding = FeatureEmbedding(features, cardinalities, embedding_dim, name="embedding")
        self.easq = Easq(config, name="easq")
        self({name: tf.zeros([1], dtype) for name, dtype in self.feature_specs.items()})  # create the variables

    def call(self, features, training=None):
        return self.easq(self.embedding(features), training=training)

    def predict_named(self, features) -> dict[str, tf.Tensor]:
        """Transformed features -> {'score': ŷ, 'satisfaction': ŝ}, each [batch]."""
        out = self({name: features[name] for name in self.feature_specs}, training=False)
        return {SCORE: out[SCORE], SATISFACTION: out[SATISFACTION]}
