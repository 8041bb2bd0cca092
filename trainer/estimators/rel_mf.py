"""Rel-MF (Saito et al., WSDM 2020; seed 004's strongest baseline): MF on implicit feedback over every
(user, item) pair with the unbiased pointwise loss

    L = 1/|D| Σ_{(u,i) ∈ D} [ −(Y_ui/θ_ui) log σ(s_ui) − (1 − Y_ui/θ_ui) log(1 − σ(s_ui)) ] + λ·L2
    θ_ui = θ_i = (n_i / max_j n_j)^η      (``model.rel_mf.power`` η = 0.5, Saito's choice)

with Y = o·r the click (rated and rating > labels.rating_threshold, i.e. ≥ 4 on 1–5 stars: every other
pair, rated low or not rated, is unlabeled), n_i the clicks of item i in the train split, 1/θ bounded by
``model.ipw`` (e.g. ``tau: 0.1``), s = the MF of :mod:`trainer.model.mf` (``model.mf``: embedding_dim,
weight_decay). ``propensity: none`` is plain MF on the same data (θ ≡ 1: the seed's "MF"). D is the
full matrix streamed in ``train.block`` blocks (:mod:`trainer.pairs`); ``train.select`` selects the
epoch (seed 004: SNIPS on the MNAR eval split). Served output ``relevance`` = σ(s_ui).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras

from trainer.data import TrainingData
from trainer.estimators.interface import Estimator
from trainer.model.mf import MfScore, l2_penalty
from trainer.model.propensity import inverse_propensity_weights
from trainer.pairs import ObservedMatrix, full_matrix_dataset
from trainer.progress import Progress

RELEVANCE = "relevance"


class RelMfModel(tf_keras.Model):
    """p_u, q_i and the MF score; ``predict_named`` reads the transformed user and item ids."""

    def __init__(self, n_users: int, n_items: int, dim: int, user_feature: str, item_feature: str, **kwargs):
        super().__init__(**kwargs)
        self.user_feature, self.item_feature = user_feature, item_feature
        init = tf_keras.initializers.RandomNormal
        self.p = tf_keras.layers.Embedding(n_users, dim, embeddings_initializer=init(stddev=0.1), name="p_u")
        self.q = tf_keras.layers.Embedding(n_items, dim, embeddings_initializer=init(stddev=0.1), name="q_i")
        self.score = MfScore(n_users, n_items, name="mf")
        self((tf.zeros([1], tf.int64), tf.zeros([1], tf.int64)))

    def call(self, inputs):
        users, items = inputs
        return self.score(self.p(users), self.q(items), users, items)

    def predict_named(self, features):
        users = tf.reshape(features[self.user_feature], [-1])
        items = tf.reshape(features[self.item_feature], [-1])
        return {RELEVANCE: tf.sigmoid(self((users, items)))}


def popularity_theta(matrix: ObservedMatrix, power: float) -> np.ndarray:
    """θ_i = (n_i / max n)^η from the clicks Y = o·r of the train split, [n_items] (0 for unclicked items)."""
    clicks = (matrix.o * matrix.r).sum(axis=0).astype(np.float64)
    return (clicks / max(clicks.max(), 1.0)) ** power


class ImplicitTrainer:
    """The Rel-MF loss's train step, traced once: ``logits_of(users, items)`` scores pairs, ``theta_of(users,
    items)`` gives θ (None: θ ≡ 1), ``vectors_of(users, items)`` -> (p_u, q_i) for the L2 penalty."""

    def __init__(self, logits_of, variables, optimizer, theta_of, ipw, weight_decay: float, vectors_of=None):
        self.variables, self.optimizer = variables, optimizer

        @tf.function(reduce_retracing=True)
        def step(users, items, y):
            with tf.GradientTape() as tape:
                target = y if theta_of is None else y * inverse_propensity_weights(theta_of(users, items), ipw)
                loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=target,
                                                                              logits=logits_of(users, items)))
                if weight_decay and vectors_of is not None:
                    loss += weight_decay * l2_penalty(*vectors_of(users, items))
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss
        self.step = step

    def epoch(self, matrix: ObservedMatrix, block, seed: int, progress: Progress, label: str) -> float:
        """One pass over every pair in blocks; Y = o·r. Returns the mean loss."""
        ds = full_matrix_dataset(ObservedMatrix(matrix.o * matrix.r, matrix.r), block, seed)
        n_users, n_items = matrix.shape
        progress.start_epoch(label, steps=-(-n_users // min(block[0], n_users)) * -(-n_items // min(block[1], n_items)))
        losses = []
        for batch in ds:
            loss = self.step(batch["user"], batch["item"], tf.cast(batch["o"], tf.float32))
            losses.append(float(loss))
            progress.step(int(batch["user"].shape[0]), {"rel_mf": loss})
        mean = float(np.mean(losses))
        progress.end_epoch({"rel_mf": mean})
        return mean


class RelMf(Estimator):
    """``model.name: rel_mf``."""

    def build(self, data: TrainingData) -> RelMfModel:
        c = data.pair_columns()
        return RelMfModel(c.n_users, c.n_items, self.params.mf.embedding_dim, c.user, c.item, name=self.name)

    def fit(self, model: RelMfModel, data: TrainingData, model_dir: Path) -> None:
        from trainer.model.selection import ModelSelection
        cfg, c = data.spec.train, self.params.rel_mf
        matrix = data.observed_matrix("train")
        theta = tf.constant(popularity_theta(matrix, c.power), tf.float32)
        theta_of = None if c.propensity == "none" else (lambda users, items: tf.gather(theta, items))
        optimizer = tf_keras.optimizers.legacy.Adam(cfg.learning_rate)
        progress = Progress(self.name, model_dir, total_epochs=cfg.epochs)
        selection = ModelSelection(data) if cfg.select is not None else None
        trainer = ImplicitTrainer(lambda u, i: model((u, i)), model.trainable_variables, optimizer, theta_of,
                                  self.params.ipw, self.params.mf.weight_decay, lambda u, i: (model.p(u), model.q(i)))
        for epoch in range(cfg.epochs):
            trainer.epoch(matrix, cfg.block, data.spec.seed + epoch, progress, f"epoch {epoch + 1}/{cfg.epochs}")
            if selection is not None and selection.after_epoch(model, epoch)[1]:
                break
        if selection is not None:
            selection.finish(model)
