"""The multi-task model every estimator shares: embeddings -> one tower per task -> logits.

The model knows nothing about any particular estimator: the estimator names the towers it
needs, which embedding group each tower reads (one shared Φ unless it says otherwise), how
many optimiser updates a training step makes, and supplies the loss; the model runs them and
reports each loss term.
"""
from __future__ import annotations

from typing import Callable

import tensorflow as tf
import tf_keras

from ctrcvr.config import Config
from trainer.estimators import Estimator, Labels, Update
from trainer.estimators.base import POTENTIAL_OUTCOME
from trainer.layers import FeatureEmbedding, make_tower
from trainer.propensity import field_key, inverse_propensity_weights

CTCVR_LOGLOSS = "ctcvr_logloss"
CVR_SNIPS_LOGLOSS = "cvr_snips_logloss"


class MultiTaskModel(tf_keras.Model):
    """Embedding groups Φ_g, towers θ_task, and a pluggable estimator loss.

    ``make_embedding(group)`` builds the embedding of one group (constructor injection, so
    tests and benchmarks can size tables without a transform output).
    """

    def __init__(self, make_embedding: Callable[[str], FeatureEmbedding], estimator: Estimator, config: Config,
                 **kwargs):
        super().__init__(**kwargs)
        self.estimator = estimator
        groups = sorted({estimator.embedding_group(t) for t in estimator.towers})
        self.embeddings = {g: make_embedding(g) for g in groups}
        self.towers = {name: make_tower(config.model.tower, name) for name in estimator.towers}
        self._label_names = config.labels
        self._dense_gradients = config.train.dense_embedding_gradients
        self._trackers = [tf_keras.metrics.Mean(name=t) for t in ("loss", *estimator.terms)]
        served = estimator.outputs({t: tf.zeros([1]) for t in estimator.towers})
        # estimator-independent validation metrics of the CVR family, observable without ground truth
        # (e.g. for early stopping): see _update_cvr_metrics
        cvr_family = "pctcvr" in served
        self._ctcvr = tf_keras.metrics.Mean(name=CTCVR_LOGLOSS) if cvr_family else None
        self._cvr_snips = SelfNormalisedMean(CVR_SNIPS_LOGLOSS) if cvr_family else None
        self._ipw = config.model.ipw

    def call(self, features, training=False):
        """Transformed features -> {tower name: logits of shape [batch]} (+ ``field/<name>`` vectors)."""
        x = {g: emb(features) for g, emb in self.embeddings.items()}
        out = {name: tf.squeeze(tower(x[self.estimator.embedding_group(name)], training=training), axis=-1)
               for name, tower in self.towers.items()}
        fields = self.estimator.fields()
        if fields:
            vectors = self.embeddings[self.estimator.embedding_group("cvr")].vectors(features, fields)
            out.update({field_key(n): v for n, v in vectors.items()})
        return out

    def predict_named(self, features) -> dict[str, tf.Tensor]:
        """Transformed features -> the estimator's named outputs (pctr, pcvr, pctcvr, ...)."""
        return self.estimator.outputs(self(features, training=False))

    def labels(self, batch) -> Labels:
        names = self._label_names
        potential = batch.get(POTENTIAL_OUTCOME)
        return Labels(click=tf.cast(batch[names.selection], tf.float32),
                      conversion=tf.cast(batch[names.outcome], tf.float32),
                      potential_conversion=None if potential is None else tf.cast(potential, tf.float32))

    @property
    def metrics(self):
        return self._trackers + ([self._ctcvr, self._cvr_snips] if self._ctcvr is not None else [])

    def train_step(self, batch):
        y = self.labels(batch)
        for update in self.estimator.updates:
            with tf.GradientTape() as tape:
                terms = self.estimator.loss(y, self(batch, training=True))
                total = terms[update.loss] + (tf.add_n(self.losses) if self.losses else 0.0)
            variables = self.update_variables(update)
            grads = tape.gradient(total, variables)
            self.optimizer.apply_gradients(
                (self._maybe_dense(g), v) for g, v in zip(grads, variables) if g is not None)
        return self._track(terms)

    def test_step(self, batch):
        y, logits = self.labels(batch), self(batch, training=False)
        logs = self._track(self.estimator.loss(y, logits))
        if self._ctcvr is not None:
            logs.update(self._update_cvr_metrics(y, self.estimator.outputs(logits)))
        return logs

    def _update_cvr_metrics(self, y: Labels, served: dict) -> dict:
        """Two validation log losses every CVR-family estimator reports:

        ctcvr_logloss      1/|D| Σ_D BCE(o·r, pCTCVR)  (seed 003 §4.4). Mind that an unbiased pCVR
                           scores worse here: pCTR·P(r | do(click)) underestimates P(o = 1, r = 1)
                           when clicked exposures convert more, so it favours click-space estimators.
        cvr_snips_logloss  Σ_O w·BCE(r, pCVR) / Σ_O w, w = 1/pCTR bounded as ``model.ipw`` says: the
                           self-normalised IPS estimate of the entire-space CVR log loss (the
                           quantity the debiasing estimators minimise), with each model's own pCTR.
        """
        o, r = y.click, y.conversion
        p_ctcvr = tf.clip_by_value(served["pctcvr"], 1e-7, 1.0 - 1e-7)
        self._ctcvr.update_state(_log_loss(o * r, p_ctcvr))
        weights = o * inverse_propensity_weights(served["pctr"], self._ipw)
        self._cvr_snips.update_state(_log_loss(r, tf.clip_by_value(served["pcvr"], 1e-7, 1.0 - 1e-7)), weights)
        return {CTCVR_LOGLOSS: self._ctcvr.result(), CVR_SNIPS_LOGLOSS: self._cvr_snips.result()}

    def update_variables(self, update: Update) -> list[tf.Variable]:
        """The variables one update trains: its towers' and the embedding groups they read."""
        if update.towers is None:
            return self.trainable_variables
        groups = {self.estimator.embedding_group(t) for t in update.towers}
        layers = [self.towers[t] for t in update.towers] + [self.embeddings[g] for g in sorted(groups)]
        return [v for layer in layers for v in layer.trainable_variables]

    def _maybe_dense(self, grad):
        if self._dense_gradients and isinstance(grad, tf.IndexedSlices):
            return tf.convert_to_tensor(grad)
        return grad

    def _track(self, terms):
        for tracker in self._trackers:
            tracker.update_state(terms[tracker.name])
        return {t.name: t.result() for t in self._trackers}


class SelfNormalisedMean(tf_keras.metrics.Metric):
    """Σ w·v / Σ w over every batch seen: a self-normalised (SNIPS) weighted mean."""

    def __init__(self, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        self.weighted = self.add_weight(name="weighted", initializer="zeros")
        self.total = self.add_weight(name="total", initializer="zeros")

    def update_state(self, values, weights):
        self.weighted.assign_add(tf.reduce_sum(weights * values))
        self.total.assign_add(tf.reduce_sum(weights))

    def result(self):
        return self.weighted / tf.maximum(self.total, 1e-12)


def _log_loss(labels: tf.Tensor, p: tf.Tensor) -> tf.Tensor:
    return -(labels * tf.math.log(p) + (1.0 - labels) * tf.math.log(1.0 - p))
