"""Validation metrics an estimator may declare (``EstimatorSpec.validation_metrics``), by name.

Observable without ground truth, so early stopping may monitor them (``val_<name>``):

    ctcvr_logloss      1/|D| Σ_D BCE(o·r, pCTCVR)  (seed 003 §4.4). Mind that an unbiased pCVR
                       scores worse here: pCTR·P(r | do(click)) underestimates P(o = 1, r = 1)
                       when clicked exposures convert more, so it favours click-space estimators.
    cvr_snips_logloss  Σ_O w·BCE(r, pCVR) / Σ_O w, w = 1/pCTR bounded as ``model.ipw`` says: the
                       self-normalised IPS estimate of the entire-space CVR log loss (the
                       quantity the debiasing estimators minimise), with each model's own pCTR.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras

from trainer.model.labels import Labels
from trainer.estimators.registry import CTCVR_LOGLOSS, CVR_SNIPS_LOGLOSS
from trainer.model.propensity import inverse_propensity_weights

EPS = 1e-7


class CtcvrLogLoss(tf_keras.metrics.Mean):
    def __init__(self, params=None, name: str = CTCVR_LOGLOSS, **kwargs):
        super().__init__(name=name, **kwargs)

    def observe(self, y: Labels, served: dict) -> None:
        self.update_state(log_loss(y.o * y.r, tf.clip_by_value(served["pctcvr"], EPS, 1.0 - EPS)))


class CvrSnipsLogLoss(tf_keras.metrics.Metric):
    """Σ w·v / Σ w over every batch seen: a self-normalised (SNIPS) weighted mean."""

    def __init__(self, params=None, name: str = CVR_SNIPS_LOGLOSS, **kwargs):
        super().__init__(name=name, **kwargs)
        self._ipw = None if params is None else params.ipw
        self.weighted = self.add_weight(name="weighted", initializer="zeros")
        self.total = self.add_weight(name="total", initializer="zeros")

    def observe(self, y: Labels, served: dict) -> None:
        weights = y.o * inverse_propensity_weights(served["pctr"], self._ipw)
        self.update_state(log_loss(y.r, tf.clip_by_value(served["pcvr"], EPS, 1.0 - EPS)), weights)

    def update_state(self, values, weights):
        self.weighted.assign_add(tf.reduce_sum(weights * values))
        self.total.assign_add(tf.reduce_sum(weights))

    def result(self):
        return self.weighted / tf.maximum(self.total, 1e-12)


METRICS = {CTCVR_LOGLOSS: CtcvrLogLoss, CVR_SNIPS_LOGLOSS: CvrSnipsLogLoss}


def validation_metrics(names, params) -> list[tf_keras.metrics.Metric]:
    """The declared metrics, each with ``observe(labels, served outputs)``."""
    return [METRICS[name](params) for name in names]


def log_loss(labels: tf.Tensor, p: tf.Tensor) -> tf.Tensor:
    return -(labels * tf.math.log(p) + (1.0 - labels) * tf.math.log(1.0 - p))
