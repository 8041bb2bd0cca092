"""Matrix factorisation, written once: the ``mf`` backbone of every multi-task estimator, and the score
of the own-loop ratings estimators (c_ips, rel_mf).

    logit(u, i) = ⟨p_u, q_i⟩ + b_u + b_i + b                       (Koren et al. 2009; seed 002's base model)
                  w_t·(p_u ⊙ q_i) + b_u + b_i + b    head "gmf"  (He et al. 2017's GMF; w_t = 1 at the start)
    penalty     = weight_decay · 1/|B| Σ_B (‖p_u‖² + ‖q_i‖²)        L2 on the batch's vectors

Why a head: towers that share p, q (Multi-IPW's CTR and CVR towers, seed 003's shared Φ; seed 002's
co-training, "a representation ϕ followed by a prediction head h") would, with plain dot products, score
every pair with one ⟨p_u, q_i⟩ and differ only in their biases: the CVR tower would rank a user's items
as the propensity does. The learned per-tower weights w_t let each task read its own directions of the
shared space (``model.mf.head: auto`` picks gmf exactly for such towers).

:class:`MfScore` holds b_u, b_i, b and computes the logit from given p_u, q_i (c_ips gives p_u = φ(x_u));
:class:`MfBackbone` reads p_u, q_i from the tower's embedding group (tables of ``model.mf.embedding_dim``),
so towers in one group share p and q (Multi-IPW's shared Φ) and towers in different groups do not
(naive IPW's separate propensity model); each tower has its own biases.
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tf_keras

from transforms.schema import transformed_name


class MfScore(tf_keras.layers.Layer):
    """⟨p_u, q_i⟩ + b_u + b_i + b for ids (users, items) and their vectors; biases start at zero."""

    def __init__(self, n_users: int, n_items: int, biases: bool = True, head_dim: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.biases = biases
        self.head = None
        if head_dim:
            self.head = self.add_weight(name="w_t", shape=(head_dim,), initializer="ones")
        if biases:
            self.user_bias = tf_keras.layers.Embedding(n_users, 1, embeddings_initializer="zeros", name="b_u")
            self.item_bias = tf_keras.layers.Embedding(n_items, 1, embeddings_initializer="zeros", name="b_i")
            self.bias = self.add_weight(name="b", shape=(), initializer="zeros")

    def call(self, p_u, q_i, users, items):
        product = p_u * q_i
        logit = tf.reduce_sum(product if self.head is None else product * self.head, axis=-1)
        if self.biases:
            users, items = tf.reshape(users, [-1]), tf.reshape(items, [-1])
            logit += tf.squeeze(self.user_bias(users), -1) + tf.squeeze(self.item_bias(items), -1) + self.bias
        return logit


def l2_penalty(p_u, q_i) -> tf.Tensor:
    """1/|B| Σ_B (‖p_u‖² + ‖q_i‖²)."""
    return tf.reduce_mean(tf.reduce_sum(tf.square(p_u), -1) + tf.reduce_sum(tf.square(q_i), -1))


class MfBackbone(tf_keras.layers.Layer):
    """The ``mf`` backbone of one tower (:mod:`trainer.model.backbones`), ``model.mf`` its knobs."""

    def __init__(self, context, **kwargs):
        super().__init__(name=f"{context.name}_mf", **kwargs)
        self.config = context.model.mf
        self.user, self.item = self.pair(context)
        sizes = context.cardinalities
        head = self.config.head if self.config.head != "auto" else ("gmf" if context.shares_with else "dot")
        self.score = MfScore(sizes[self.user], sizes[self.item], self.config.biases,
                             head_dim=self.config.embedding_dim if head == "gmf" else None, name=f"{context.name}_bias")

    @classmethod
    def pair(cls, context) -> tuple[str, str]:
        """The user and item features: ``model.mf.user_feature`` / ``item_feature``, else the ratings' columns."""
        mf, pair = context.model.mf, context.pair_features or (None, None)
        user, item = mf.user_feature or pair[0], mf.item_feature or pair[1]
        embedded = {f.name for f in context.features if f.is_embedded}
        for role, name in (("user", user), ("item", item)):
            if name is None or name not in embedded:
                raise ValueError(f"backbone mf: model.mf.{role}_feature={name!r} is not an embedded feature "
                                 f"(embedded: {', '.join(sorted(embedded))})")
        return user, item

    @classmethod
    def field_dims(cls, context) -> dict[str, int]:
        user, item = cls.pair(context)
        return {user: context.model.mf.embedding_dim, item: context.model.mf.embedding_dim}

    def call(self, fields, features, training=False):
        p_u, q_i = fields[self.user], fields[self.item]
        if self.config.weight_decay:
            self.add_loss(self.config.weight_decay * l2_penalty(p_u, q_i))
        return self.score(p_u, q_i, features[transformed_name(self.user)], features[transformed_name(self.item)])
