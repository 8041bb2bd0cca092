"""Shared model machinery: per-field embeddings built from the transform output, and the MLP towers
(the ``mlp`` backbone of :mod:`trainer.model.backbones`)."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import tensorflow as tf
import tf_keras

from transforms.schema import FeatureConfig
from trainer.estimators.params import TowerConfig
from transforms.schema import transformed_name


class FeatureEmbedding(tf_keras.layers.Layer):
    """Transformed features -> one vector: a table per categorical field, numerics appended.

    ``cardinalities`` come from the transform output (vocabulary sizes + OOV buckets), never
    from the config, so the model always matches the data it was preprocessed with.
    """

    def __init__(self, features: Sequence[FeatureConfig], cardinalities: dict[str, int],
                 embedding_dim: int, dims: Optional[Mapping[str, int]] = None, **kwargs):
        super().__init__(**kwargs)
        self._embedded = [f for f in features if f.is_embedded]
        self._dense = [f for f in features if not f.is_embedded]
        self._cardinalities = dict(cardinalities)
        self._embedding_dim = embedding_dim
        dims = dict(dims or {})
        self.tables = {
            f.name: tf_keras.layers.Embedding(cardinalities[f.name], dims.get(f.name, f.embedding_dim or embedding_dim),
                                              name=f"embedding_{f.name}")
            for f in self._embedded}

    def call(self, features):
        return tf.concat(list(self.fields(features).values()), axis=-1)

    def fields(self, features) -> dict[str, tf.Tensor]:
        """{field: [batch, d]}: the embedded fields' vectors in declaration order, then the numeric
        features as [batch, 1] (what a backbone reads; :meth:`call` is their concatenation)."""
        if not self.built:  # called directly by the multi-task model, not through __call__: build as it would
            self._maybe_build(features)
        out = {f.name: self._lookup(f, features[transformed_name(f.name)]) for f in self._embedded}
        out.update({f.name: tf.reshape(tf.cast(features[transformed_name(f.name)], tf.float32), [-1, 1])
                    for f in self._dense})
        return out

    def _lookup(self, feature: FeatureConfig, ids) -> tf.Tensor:
        """[batch, dim] vectors; a multivalued feature (sparse ids) is the mean of its values' vectors
        (zeros for a row without values)."""
        table = self.tables[feature.name]
        if isinstance(ids, (tf.SparseTensor, tf.RaggedTensor)):
            if not table.built:
                table.build(None)
            sparse = ids.to_sparse() if isinstance(ids, tf.RaggedTensor) else ids
            return tf.nn.safe_embedding_lookup_sparse(table.embeddings, sparse, combiner="mean")
        return table(tf.reshape(ids, [-1]))

    def vectors(self, features, names) -> dict[str, tf.Tensor]:
        """The embedding vectors of the named categorical fields, e.g. user and item for BMSE's φ."""
        missing = [n for n in names if n not in self.tables]
        if missing:
            raise ValueError(f"no embedded feature named {', '.join(missing)} (embedded: {', '.join(self.tables)})")
        return {n: self.tables[n](tf.reshape(features[transformed_name(n)], [-1])) for n in names}


def make_tower(config: TowerConfig, name: str, logit: bool = True) -> tf_keras.Sequential:
    """An MLP ending in one logit: Dense -> [BatchNorm] -> activation -> [Dropout], repeated
    (``logit=False``: the hidden layers only, for a backbone that adds its own last layer)."""
    layers: list[tf_keras.layers.Layer] = []
    for i, units in enumerate(config.units):
        layers.append(tf_keras.layers.Dense(units, use_bias=not config.batch_norm, name=f"{name}_dense{i}"))
        if config.batch_norm:
            layers.append(tf_keras.layers.BatchNormalization(name=f"{name}_bn{i}"))
        layers.append(tf_keras.layers.Activation(config.activation, name=f"{name}_act{i}"))
        if config.dropout:
            layers.append(tf_keras.layers.Dropout(config.dropout, name=f"{name}_dropout{i}"))
    if logit:
        layers.append(tf_keras.layers.Dense(1, name=f"{name}_logit"))
    return tf_keras.Sequential(layers, name=f"{name}_tower")


class MlpBackbone(tf_keras.layers.Layer):
    """The ``mlp`` backbone: :func:`make_tower` over the concatenated field vectors (``model.tower``)."""

    def __init__(self, context, **kwargs):
        super().__init__(name=f"{context.name}_mlp", **kwargs)
        self.mlp = make_tower(context.model.tower, context.name)

    @classmethod
    def field_dims(cls, context) -> dict[str, int]:
        return {}

    def call(self, fields, features=None, training=False):
        return tf.squeeze(self.mlp(tf.concat(list(fields.values()), axis=-1), training=training), axis=-1)
