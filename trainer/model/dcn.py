"""The ``dcn`` backbone (DCN-v2, Wang et al. 2021) on ``tensorflow_recommenders.layers.dcn.Cross``.

    x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l        over x_0 = [v_1 : … : v_F], the tower's field vectors
    stacked:   logit = w·MLP(x_L) + b
    parallel:  logit = w·[x_L : MLP(x_0)] + b
``model.dcn`` holds the cross knobs, ``model.tower`` the MLP's (its hidden layers; the logit is this layer's).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras

from trainer.model.layers import make_tower


def hidden_mlp(config, name: str):
    """``model.tower``'s hidden layers (no logit), or None when it has none."""
    return make_tower(config, name, logit=False) if config.units else None


class DcnBackbone(tf_keras.layers.Layer):
    def __init__(self, context, **kwargs):
        super().__init__(name=f"{context.name}_dcn", **kwargs)
        import tensorflow_recommenders as tfrs  # needs TF_USE_LEGACY_KERAS before TF (the trainer package sets it)
        Cross = tfrs.layers.dcn.Cross
        config = context.model.dcn
        self.structure = config.structure
        self.cross = [Cross(projection_dim=config.projection_dim, name=f"{context.name}_cross{i}")
                      for i in range(config.cross_layers)]
        self.mlp = hidden_mlp(context.model.tower, context.name)
        self.logit = tf_keras.layers.Dense(1, name=f"{context.name}_logit")

    @classmethod
    def field_dims(cls, context) -> dict[str, int]:
        return {}

    def call(self, fields, features=None, training=False):
        x0 = tf.concat(list(fields.values()), axis=-1)
        x = x0
        for cross in self.cross:
            x = cross(x0, x)
        if self.structure == "stacked":
            h = self.mlp(x, training=training) if self.mlp is not None else x
        else:
            h = tf.concat([x, self.mlp(x0, training=training) if self.mlp is not None else x0], axis=-1)
        return tf.squeeze(self.logit(h), axis=-1)
