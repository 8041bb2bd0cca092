"""Algorithm 2 of seed 004 on in-memory observed pairs: alternating DEC epochs (Algorithm 1) over users
and recommender epochs (eq. 9) over pairs, each reported through :class:`trainer.progress.Progress`."""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras

from trainer.estimators.c_ips.model import CIpsModel, RatingsData
from trainer.estimators.c_ips.stratification import (cluster_propensities, clustering_loss, kmeans_centres,
                                                     soft_assignment, target_distribution)
from trainer.model.losses import bce_with_logits
from trainer.model.mf import l2_penalty
from trainer.model.propensity import inverse_propensity_weights
from trainer.progress import Progress


@dataclasses.dataclass
class CIpsResult:
    model: CIpsModel
    propensity: np.ndarray          # p̂ of each training pair, last round
    clusters: np.ndarray | None     # c_u, last round (cluster propensity only)


def fit_c_ips(data: RatingsData, params, seed: int, model: Optional[CIpsModel] = None,
              progress: Optional[Progress] = None, block: tuple[int, int] = (256, 128)) -> CIpsResult:
    """Algorithm 2 with the configured propensity (``params.c_ips``; ``params`` is the ``model`` section),
    on in-memory training pairs; trains ``model`` (its x_u set from ``data``) or a new one sized by ``data``.
    With ``feedback: implicit`` ``data`` holds the clicks only and the recommender epochs run over every
    pair in ``block`` s (Rel-MF's loss, θ from eq. 8)."""
    c = params.c_ips
    if c.feedback == "implicit" and c.propensity == "user":
        raise ValueError("model.c_ips.feedback: implicit supports propensity cluster or none, not user")
    tf_keras.utils.set_random_seed(seed)
    if model is None:
        model = CIpsModel(data.n_users, data.n_items, params.embedding_dim, c.hidden_units, c.n_clusters)
    if progress is None:
        progress = Progress("c_ips", total_epochs=c.rounds * (c.rec_epochs + c.cluster_epochs))
    model.x.assign(data.interactions())
    optimizer = tf_keras.optimizers.legacy.Adam(c.learning_rate)
    if c.propensity == "cluster":
        model.centres.assign(kmeans_centres(model.phi(model.x).numpy(), c.n_clusters, seed))
    p_hat, clusters = np.ones(len(data.users)), None
    if c.propensity == "user":
        p_hat = user_level_propensities(data, seed)
    rng = np.random.default_rng(seed)
    for r in range(1, c.rounds + 1):
        if c.propensity == "cluster":
            for t in range(1, c.cluster_epochs + 1):
                _dec_epoch(model, optimizer, c.batch_size, rng, progress, f"round {r}/{c.rounds} DEC epoch {t}")
            clusters = np.argmax(model.assignments().numpy(), axis=1)
            p_hat = cluster_propensities(clusters, data.users, data.items, data.n_items)
        if c.feedback == "implicit":
            _implicit_epochs(model, optimizer, data, clusters if c.propensity == "cluster" else None, params,
                             block, seed + r, progress, f"round {r}/{c.rounds} recommender epoch")
            continue
        w = inverse_propensity_weights(tf.constant(p_hat, tf.float32), params.ipw).numpy()
        for t in range(1, c.rec_epochs + 1):
            _recommender_epoch(model, optimizer, data, w, c.batch_size, c.l2, rng, progress,
                               f"round {r}/{c.rounds} recommender epoch {t}")
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


def _dec_epoch(model: CIpsModel, optimizer, batch_size: int, rng: np.random.Generator, progress: Progress,
               label: str) -> None:
    """Algorithm 1, one epoch: fix the target t from all users' a (eq. 7), then minimise eq. 6 per batch."""
    t = target_distribution(model.assignments())
    variables = model.phi.trainable_variables + [model.centres]
    batches = np.array_split(rng.permutation(model.x.shape[0]), max(1, model.x.shape[0] // batch_size))
    progress.start_epoch(label, steps=len(batches))
    losses = []
    for users in batches:
        with tf.GradientTape() as tape:
            loss = clustering_loss(tf.gather(t, users), soft_assignment(model.user_vectors(users), model.centres))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        losses.append(loss)
        progress.step(len(users), {"clustering": loss})
    progress.end_epoch({"clustering": tf.reduce_mean(losses)})


def _recommender_epoch(model: CIpsModel, optimizer, data: RatingsData, w: np.ndarray, batch_size: int,
                       l2: float, rng: np.random.Generator, progress: Progress, label: str) -> None:
    """One epoch of eq. 9 (self-normalised per batch) over the observed pairs, updating φ and s_v."""
    variables = model.phi.trainable_variables + model.item_embedding.trainable_variables + model.score.trainable_variables
    batches = np.array_split(rng.permutation(len(data.users)), max(1, len(data.users) // batch_size))
    progress.start_epoch(label, steps=len(batches))
    losses = []
    for idx in batches:
        users, items = tf.constant(data.users[idx]), tf.constant(data.items[idx])
        weight, y = tf.constant(w[idx]), tf.constant(data.labels[idx])
        with tf.GradientTape() as tape:
            h, s = model.user_vectors(users), model.item_embedding(items)
            e = bce_with_logits(y, model.score(h, s, users, items))
            loss = tf.reduce_sum(weight * e) / tf.reduce_sum(weight) + l2 * l2_penalty(h, s)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        losses.append(loss)
        progress.step(len(idx), {"recommender": loss})
    progress.end_epoch({"recommender": tf.reduce_mean(losses)})


def _implicit_epochs(model: CIpsModel, optimizer, data: RatingsData, clusters, params, block, seed: int,
                     progress: Progress, label: str) -> None:
    """``rec_epochs`` Rel-MF epochs over every pair, θ(u, v) = n(c_u, v) / max_v' n(c_u, v') (eq. 8 for
    every pair, not only the observed ones; θ ≡ 1 without clusters)."""
    from trainer.estimators.rel_mf import ImplicitTrainer
    from trainer.pairs import ObservedMatrix
    matrix = ObservedMatrix.from_pairs(data.users, data.items, np.ones(len(data.users)), data.n_users, data.n_items)
    theta_of = None
    if clusters is not None:
        counts = np.zeros((int(clusters.max()) + 1, data.n_items))
        np.add.at(counts, (clusters[data.users], data.items), 1.0)
        table = tf.constant(counts / np.maximum(counts.max(axis=1, keepdims=True), 1.0), tf.float32)
        of_user = tf.constant(clusters, tf.int64)
        theta_of = lambda u, i: tf.gather_nd(table, tf.stack([tf.gather(of_user, u), i], axis=1))  # noqa: E731
    variables = model.phi.trainable_variables + model.item_embedding.trainable_variables + model.score.trainable_variables
    trainer = ImplicitTrainer(lambda u, i: model((u, i)), variables, optimizer, theta_of, params.ipw, params.c_ips.l2,
                              lambda u, i: (model.user_vectors(u), model.item_embedding(i)))
    for t in range(1, params.c_ips.rec_epochs + 1):
        trainer.epoch(matrix, block, seed * 1000 + t, progress, f"{label} {t}")
