"""The multi-task model every estimator shares: embeddings -> one tower per task -> logits.

The model knows nothing about any particular estimator: the estimator names the towers it
needs and supplies the loss; the model runs them and reports each loss term.
"""
from __future__ import annotations

import ctrcvr  # noqa: F401
import tensorflow as tf
import tf_keras

from ctrcvr.config import Config
from trainer.estimators import Estimator, Labels
from trainer.layers import FeatureEmbedding, make_tower


class MultiTaskModel(tf_keras.Model):
    """Shared embeddings Φ, towers θ_task, and a pluggable estimator loss."""

    def __init__(self, embedding: FeatureEmbedding, estimator: Estimator, config: Config, **kwargs):
        super().__init__(**kwargs)
        self.embedding = embedding
        self.estimator = estimator
        self.towers = {name: make_tower(config.model.tower, name) for name in estimator.towers}
        self._label_names = config.labels
        self._trackers = [tf_keras.metrics.Mean(name=t) for t in ("loss", *estimator.terms)]

    def call(self, features, training=False):
        """Transformed features -> {tower name: logits of shape [batch]}."""
        x = self.embedding(features)
        return {name: tf.squeeze(tower(x, training=training), axis=-1) for name, tower in self.towers.items()}

    def predict_named(self, features) -> dict[str, tf.Tensor]:
        """Transformed features -> the estimator's named outputs (pctr, pcvr, pctcvr, ...)."""
        return self.estimator.outputs(self(features, training=False))

    def labels(self, batch) -> Labels:
        names = self._label_names
        potential = batch.get("gt_conversion")
        return Labels(click=tf.cast(batch[names.click], tf.float32),
                      conversion=tf.cast(batch[names.conversion], tf.float32),
                      potential_conversion=None if potential is None else tf.cast(potential, tf.float32))

    @property
    def metrics(self):
        return self._trackers

    def train_step(self, batch):
        with tf.GradientTape() as tape:
            terms = self.estimator.loss(self.labels(batch), self(batch, training=True))
            total = terms["loss"] + (tf.add_n(self.losses) if self.losses else 0.0)
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        return self._track(terms)

    def test_step(self, batch):
        return self._track(self.estimator.loss(self.labels(batch), self(batch, training=False)))

    def _track(self, terms):
        for tracker in self._trackers:
            tracker.update_state(terms[tracker.name])
        return {t.name: t.result() for t in self._trackers}
