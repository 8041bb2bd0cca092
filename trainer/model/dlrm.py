"""The ``dlrm`` backbone (Naumov et al. 2019) on ``tensorflow_recommenders.layers.feature_interaction.DotInteraction``.

    z       = bottom([numeric fields])                       bottom MLP (``model.dlrm.bottom_units``) to size d
    pairs   = (⟨v_i, v_j⟩)_{i<j} over [z, v_1, …, v_F]       every field vector of one size d
    logit   = w·top([z : pairs]) + b                          top MLP: ``model.tower``'s hidden layers
Without numeric fields there is no z and the top MLP reads the pairs only.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras

from trainer.model.dcn import hidden_mlp


class DlrmBackbone(tf_keras.layers.Layer):
    def __init__(self, context, **kwargs):
        super().__init__(name=f"{context.name}_dlrm", **kwargs)
        import tensorflow_recommenders as tfrs
        DotInteraction = tfrs.layers.feature_interaction.DotInteraction
        config, activation = context.model.dlrm, context.model.tower.activation
        self.dim = self.common_dim(context)
        self.numeric = [f.name for f in context.features if not f.is_embedded]
        n_vectors = sum(f.is_embedded for f in context.features) + bool(self.numeric)
        if n_vectors < 2:
            raise ValueError(f"backbone dlrm ({context.name}): the dot interaction needs at least two field vectors, "
                             f"got {n_vectors}")
        self.bottom = tf_keras.Sequential(
            [tf_keras.layers.Dense(u, activation=activation, name=f"{context.name}_bottom{i}")
             for i, u in enumerate([*config.bottom_units, self.dim])], name=f"{context.name}_bottom") \
            if self.numeric else None
        self.interaction = DotInteraction(self_interaction=config.self_interaction, name=f"{context.name}_dot")
        self.top = hidden_mlp(context.model.tower, context.name)
        self.logit = tf_keras.layers.Dense(1, name=f"{context.name}_logit")

    @classmethod
    def common_dim(cls, context) -> int:
        """The one size of every embedded field's vector, else a ValueError naming the keys that differ."""
        default = context.model.embedding_dim
        sizes = {f.name: f.embedding_dim or default for f in context.features if f.is_embedded}
        if len(set(sizes.values())) > 1:
            keys = ", ".join(f"features[{n}].embedding_dim={d}" if any(f.name == n and f.embedding_dim
                                                                       for f in context.features)
                             else f"{n}: model.embedding_dim={d}" for n, d in sizes.items())
            raise ValueError(f"backbone dlrm ({context.name}): the dot interaction needs one size for every field "
                             f"vector, got {keys}; set features[].embedding_dim alike (or drop it to use "
                             f"model.embedding_dim)")
        return next(iter(sizes.values()), default)

    @classmethod
    def field_dims(cls, context) -> dict[str, int]:
        return {}

    def call(self, fields, features=None, training=False):
        vectors = [v for n, v in fields.items() if n not in self.numeric]
        sizes = {n: v.shape[-1] for n, v in fields.items() if n not in self.numeric}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"backbone dlrm ({self.name}): field vectors of unequal sizes {sizes} "
                             "(another backbone of the embedding group sized some tables?)")
        parts = []
        if self.bottom is not None:
            z = self.bottom(tf.concat([fields[n] for n in self.numeric], axis=-1), training=training)
            vectors, parts = [z, *vectors], [z]
        h = tf.concat([*parts, self.interaction(vectors)], axis=-1)
        if self.top is not None:
            h = self.top(h, training=training)
        return tf.squeeze(self.logit(h), axis=-1)
