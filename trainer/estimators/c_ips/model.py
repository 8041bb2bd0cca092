"""C-IPS's model: φ (the user's interaction vector x_u -> h_u = s_u), item embeddings s_v, cluster centres μ_k."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import tensorflow as tf
import tf_keras

from trainer.estimators.c_ips.stratification import soft_assignment
from trainer.model.mf import MfScore

RELEVANCE = "relevance"  # the served output: σ(⟨s_u, s_v⟩ + b_u + b_v + b) = P(rating > threshold | u, v)


@dataclasses.dataclass(frozen=True)
class RatingsData:
    """Observed (user, item) pairs with binary labels y = 1[rating > threshold]; ids are 0-based ints."""

    users: np.ndarray
    items: np.ndarray
    labels: np.ndarray
    n_users: int
    n_items: int

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, n_users: int, n_items: int, threshold: float) -> "RatingsData":
        return cls(frame["user_id"].to_numpy(np.int64), frame["item_id"].to_numpy(np.int64),
                   (frame["rating"].to_numpy(np.float64) > threshold).astype(np.float32), n_users, n_items)

    def interactions(self) -> np.ndarray:
        """x_u for every user: [n_users, n_items] 0/1 (the seed's raw user features)."""
        x = np.zeros((self.n_users, self.n_items), np.float32)
        x[self.users, self.items] = 1.0
        return x


class CIpsModel(tf_keras.Model):
    """φ (users' interaction vectors x_u -> h_u = s_u), item embeddings s_v and cluster centres μ_k;
    the score is the MF of :mod:`trainer.model.mf` with p_u = φ(x_u), q_v = s_v (and its biases).

    ``user_feature`` / ``item_feature`` name the transformed id columns :meth:`predict_named` reads.
    """

    def __init__(self, n_users: int, n_items: int, embedding_dim: int, hidden_units, n_clusters: int,
                 user_feature: str = "user_id_xf", item_feature: str = "item_id_xf", **kwargs):
        super().__init__(**kwargs)
        self.user_feature, self.item_feature = user_feature, item_feature
        self.x = self.add_weight(name="x_u", shape=(n_users, n_items), initializer="zeros", trainable=False)
        self.phi = tf_keras.Sequential([tf_keras.layers.Dense(u, activation="relu") for u in hidden_units]
                                       + [tf_keras.layers.Dense(embedding_dim)], name="phi")
        self.item_embedding = tf_keras.layers.Embedding(n_items, embedding_dim, name="s_v")
        self.score = MfScore(n_users, n_items, name="mf")
        self.centres = self.add_weight(name="mu", shape=(n_clusters, embedding_dim), trainable=True)
        self((tf.zeros([1], tf.int64), tf.zeros([1], tf.int64)))  # create φ's and s_v's variables

    def user_vectors(self, users) -> tf.Tensor:
        return self.phi(tf.gather(self.x, users))

    def call(self, inputs):
        """(users, items) -> logits ⟨s_u, s_v⟩ + b_u + b_v + b."""
        users, items = inputs
        return self.score(self.user_vectors(users), self.item_embedding(items), users, items)

    def assignments(self) -> tf.Tensor:
        """a for every user (eq. 5)."""
        return soft_assignment(self.phi(self.x), self.centres)

    def predict_named(self, features) -> dict[str, tf.Tensor]:
        """Transformed features -> {'relevance': σ(logit)}."""
        users, items = features[self.user_feature], features[self.item_feature]
        return {RELEVANCE: tf.sigmoid(self((tf.reshape(users, [-1]), tf.reshape(items, [-1]))))}
