"""C-IPS (seed 004, Algorithm 2): IPS with cluster-level propensities from neural user stratification.

    h_u = φ(x_u)          x_u the user's 0/1 vector of rated items, φ an MLP; s_u = h_u (shared)
    for round in 1..M:    Algorithm 2
        T epochs of DEC on φ and the centres μ_k (eqs. 5–7, Algorithm 1; see trainer.stratification)
        p̂(u, v) from the hard clusters c_u = argmax_k a_uk (eq. 8)
        recommender epochs on eq. 9, over the observed pairs O:
            L_rec = Σ_O w(p̂)·BCE(y_uv, σ(s_u·s_v)) / Σ_O w(p̂)          w = 1/p̂ bounded by ``model.ipw``
(eq. 9 is a plain sum; dividing by Σ w keeps the learning rate comparable across propensity models.)

``model.c_ips.propensity`` swaps the propensity and keeps everything else:
    cluster  C-IPS as above (K = 1: item popularity n(v)/max n(v'), Rel-MF's propensity without its power);
    user     user-level IPS: p̂(u, v) = σ(α_u + β_v + a_u·b_v), a logistic model of the observation
             matrix fitted per (user, item) pair (Schnabel et al. 2016). Eq. 8 itself at K = |U| is
             constant (= 1) on observed pairs when each pair is rated at most once, i.e. plain MF;
    none     plain MF (w ≡ 1).
It has its own training loop: the alternating algorithm trains on users (DEC) and on pairs (eq. 9)
in turns, which the per-example multi-task trainer does not express, so :class:`CIps` implements
:class:`trainer.own_loop.OwnLoopEstimator`: ``build`` sizes φ's input x_u and the item table from the
transform output (vocabulary + OOV ids of the ratings' user and item columns), ``fit`` reads the
observed pairs (o = 1) of the train shards, builds x_u from them and runs Algorithm 2. x_u is a
non-trainable weight, so the saved weights and the SavedModel carry it; an unseen user (OOV id) has
x_u = 0 and gets φ(0). Served output (the stable contract):

    relevance = σ(s_u·s_v) = P(rating > labels.rating_threshold | u, v), the score the ranking uses.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import tensorflow as tf
import tf_keras

from ctrcvr.config import Config
from trainer.losses import bce_with_logits
from trainer.own_loop import OwnLoopEstimator
from trainer.propensity import inverse_propensity_weights
from trainer.ratings_data import RELEVANCE, PairColumns, read_columns
from trainer.stratification import (cluster_propensities, clustering_loss, kmeans_centres, soft_assignment,
                                    target_distribution)


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
    """φ (users' interaction vectors x_u -> h_u = s_u), item embeddings s_v and cluster centres μ_k.

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
        self.centres = self.add_weight(name="mu", shape=(n_clusters, embedding_dim), trainable=True)
        self((tf.zeros([1], tf.int64), tf.zeros([1], tf.int64)))  # create φ's and s_v's variables

    def user_vectors(self, users) -> tf.Tensor:
        return self.phi(tf.gather(self.x, users))

    def call(self, inputs):
        """(users, items) -> logits s_u·s_v."""
        users, items = inputs
        return tf.reduce_sum(self.user_vectors(users) * self.item_embedding(items), axis=-1)

    def assignments(self) -> tf.Tensor:
        """a for every user (eq. 5)."""
        return soft_assignment(self.phi(self.x), self.centres)

    def predict_named(self, features) -> dict[str, tf.Tensor]:
        """Transformed features -> {'relevance': σ(s_u·s_v)}."""
        users, items = features[self.user_feature], features[self.item_feature]
        return {RELEVANCE: tf.sigmoid(self((tf.reshape(users, [-1]), tf.reshape(items, [-1]))))}


class CIps(OwnLoopEstimator):
    """``model.name: c_ips``: Algorithm 2 on the observed pairs of the train shards."""

    name = "c_ips"

    def build(self, tft_output) -> CIpsModel:
        columns = PairColumns.from_config(self.config, tft_output)
        c = self.config.model.c_ips
        return CIpsModel(columns.n_users, columns.n_items, self.config.model.embedding_dim, c.hidden_units,
                         c.n_clusters, columns.user, columns.item, name=self.name)

    def fit(self, model: CIpsModel, data_dir) -> None:
        fit_c_ips(observed_pairs(self.config, data_dir, model), self.config, self.config.seed, model=model)


def observed_pairs(config: Config, data_dir, model: CIpsModel) -> "RatingsData":
    """The train split's observed pairs (o = 1) with their labels r, as ``model``'s ids."""
    o, r = config.labels.selection, config.labels.outcome
    rows = read_columns(data_dir, "train", [model.user_feature, model.item_feature, o, r])
    seen = rows[o] > 0.5
    if not seen.any():
        raise ValueError(f"{data_dir}/train holds no observed rating ({o} = 1) to train c_ips on")
    n_users, n_items = model.x.shape
    return RatingsData(rows[model.user_feature][seen].astype(np.int64), rows[model.item_feature][seen].astype(np.int64),
                       (rows[r][seen] > 0.5).astype(np.float32), int(n_users), int(n_items))


@dataclasses.dataclass
class CIpsResult:
    model: CIpsModel
    propensity: np.ndarray          # p̂ of each training pair, last round
    clusters: np.ndarray | None     # c_u, last round (cluster propensity only)


def fit_c_ips(data: RatingsData, config: Config, seed: int, model: CIpsModel | None = None) -> CIpsResult:
    """Algorithm 2 with the configured propensity (``model.c_ips``), on in-memory training pairs;
    trains ``model`` (its x_u set from ``data``) or a new one sized by ``data``."""
    c = config.model.c_ips
    tf_keras.utils.set_random_seed(seed)
    if model is None:
        model = CIpsModel(data.n_users, data.n_items, config.model.embedding_dim, c.hidden_units, c.n_clusters)
    model.x.assign(data.interactions())
    optimizer = tf_keras.optimizers.legacy.Adam(c.learning_rate)
    if c.propensity == "cluster":
        model.centres.assign(kmeans_centres(model.phi(model.x).numpy(), c.n_clusters, seed))
    p_hat, clusters = np.ones(len(data.users)), None
    if c.propensity == "user":
        p_hat = user_level_propensities(data, seed)
    rng = np.random.default_rng(seed)
    for _ in range(c.rounds):
        if c.propensity == "cluster":
            for _ in range(c.cluster_epochs):
                _dec_epoch(model, optimizer, c.batch_size, rng)
            clusters = np.argmax(model.assignments().numpy(), axis=1)
            p_hat = cluster_propensities(clusters, data.users, data.items, data.n_items)
        w = inverse_propensity_weights(tf.constant(p_hat, tf.float32), config.model.ipw).numpy()
        for _ in range(c.rec_epochs):
            _recommender_epoch(model, optimizer, data, w, c.batch_size, c.l2, rng)
    return CIpsResult(model, p_hat, clusters)


def score(model: CIpsModel, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The recommender's logits for (user, item) pairs, for ranking."""
    return model((tf.constant(users), tf.constant(items))).numpy()


def user_level_propensities(data: RatingsData, seed: int, dim: int = 4, steps: int = 300,
                            l2: float = 0.01) -> np.ndarray:
    """p̂(u, v) = σ(α_u + β_v + a_u·b_v) fitted to the full 0/1 observation matrix; p̂ of each observed pair."""
    observed = tf.constant(data.interactions())
    init = tf.random.stateless_normal
    a = tf.Variable(init((data.n_users, dim), seed=(seed, 1), stddev=0.1))
    b = tf.Variable(init((data.n_items, dim), seed=(seed, 2), stddev=0.1))
    alpha, beta = tf.Variable(tf.zeros((data.n_users, 1))), tf.Variable(tf.zeros((1, data.n_items)))
    optimizer = tf_keras.optimizers.legacy.Adam(0.05)
    variables = [a, b, alpha, beta]

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = alpha + beta + tf.matmul(a, b, transpose_b=True)
            penalty = tf.reduce_mean(tf.reduce_sum(a ** 2, 1)) + tf.reduce_mean(tf.reduce_sum(b ** 2, 1))
            loss = tf.reduce_mean(bce_with_logits(observed, logits)) + l2 * penalty
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    for _ in range(steps):
        step()
    p = tf.sigmoid(alpha + beta + tf.matmul(a, b, transpose_b=True)).numpy()
    return p[data.users, data.items]


def _dec_epoch(model: CIpsModel, optimizer, batch_size: int, rng: np.random.Generator) -> None:
    """Algorithm 1, one epoch: fix the target t from all users' a (eq. 7), then minimise eq. 6 per batch."""
    t = target_distribution(model.assignments())
    variables = model.phi.trainable_variables + [model.centres]
    for users in np.array_split(rng.permutation(model.x.shape[0]), max(1, model.x.shape[0] // batch_size)):
        with tf.GradientTape() as tape:
            loss = clustering_loss(tf.gather(t, users), soft_assignment(model.user_vectors(users), model.centres))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))


def _recommender_epoch(model: CIpsModel, optimizer, data: RatingsData, w: np.ndarray, batch_size: int,
                       l2: float, rng: np.random.Generator) -> None:
    """One epoch of eq. 9 (self-normalised per batch) over the observed pairs, updating φ and s_v."""
    variables = model.phi.trainable_variables + model.item_embedding.trainable_variables
    for idx in np.array_split(rng.permutation(len(data.users)), max(1, len(data.users) // batch_size)):
        users, items = tf.constant(data.users[idx]), tf.constant(data.items[idx])
        weight, y = tf.constant(w[idx]), tf.constant(data.labels[idx])
        with tf.GradientTape() as tape:
            h, s = model.user_vectors(users), model.item_embedding(items)
            e = bce_with_logits(y, tf.reduce_sum(h * s, axis=-1))
            loss = tf.reduce_sum(weight * e) / tf.reduce_sum(weight)
            loss += l2 * tf.reduce_mean(tf.reduce_sum(h ** 2, -1) + tf.reduce_sum(s ** 2, -1))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
