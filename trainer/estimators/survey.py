"""Survey satisfaction under response bias (seed 000 §4): the IPW two-head model and its standalone baseline.

With o = responded, s = rating (read only where o = 1), z_i the response head's logit, z_r the
satisfaction head's logit and ℓ_r the per-row satisfaction loss:

    response rate (eq. 3)  L_i = 1/|D_i| Σ_{D_i} BCE(o, σ(z_i))          every survey impression
    satisfaction  (eq. 2)  L_r = 1/|D_i| Σ_{D_i} o·ℓ_r(s, ŝ)·w(p̂)        w = 1/p̂, bounded by ``model.ipw``
    survey_ipw             L = L_r + L_i: both heads read the shared embedding Φ, trained concurrently
    survey_standalone      L = Σ o·ℓ_r(s, ŝ) / Σ o                        responses only, unweighted (Fig. 3a)

ℓ_r (``model.survey.satisfaction_task``):
    regression      ŝ = s_min + (s_max − s_min)·σ(z_r),  ℓ_r = (s − ŝ)²   [s_min, s_max] = ``rating_range``
    classification  ŝ = P(s > threshold) = σ(z_r),        ℓ_r = BCE(1[s > threshold], ŝ)
Balanced sub-sampling (``model.survey.response_negative_keep`` = w): L_i averages over every response
and a random fraction w of the non-responses, so σ(z_i) = p_s is the sampled-space rate; the propensity
is calibrated back, p̂ = p_s·w / (p_s·w + 1 − p_s) = σ(z_i + log w), and that p̂ is both the weight's
p̂ and the served ``response_rate``.
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf

from trainer.estimators.params import SurveyConfig
from trainer.estimators.interface import Labels, MultiTaskEstimator, WeightedEstimator
from trainer.model.losses import bce_with_logits
from trainer.model.propensity import calibrated_logit

SATISFACTION, RESPONSE_RATE = "satisfaction", "response_rate"  # the served outputs


class SurveyIpw(WeightedEstimator):
    towers = ("satisfaction", "response")
    terms = ("satisfaction", "response")

    def loss(self, y: Labels, logits):
        o, z_i = y.o, logits["response"]
        keep = self.params.survey.response_negative_keep
        l_i = _masked_mean(bce_with_logits(o, z_i), None if keep is None else _keep_negatives(o, keep))
        e = satisfaction_error(self.params.survey, y, logits["satisfaction"])
        l_r = self.weighting.ipw_loss(o, e, tf.sigmoid(self.response_logit(z_i)))
        return {"loss": l_r + l_i, "satisfaction": l_r, "response": l_i}

    def response_logit(self, z_i: tf.Tensor) -> tf.Tensor:
        """logit p̂: the response head's logit, calibrated when its negatives were sub-sampled."""
        keep = self.params.survey.response_negative_keep
        return z_i if keep is None else calibrated_logit(z_i, keep)

    def outputs(self, logits):
        return {SATISFACTION: satisfaction_prediction(self.params.survey, logits["satisfaction"]),
                RESPONSE_RATE: tf.sigmoid(self.response_logit(logits["response"]))}


class SurveyStandalone(MultiTaskEstimator):
    towers = ("satisfaction",)
    terms = ("satisfaction",)

    def loss(self, y: Labels, logits):
        l_r = _masked_mean(satisfaction_error(self.params.survey, y, logits["satisfaction"]), y.o)
        return {"loss": l_r, "satisfaction": l_r}

    def outputs(self, logits):
        return {SATISFACTION: satisfaction_prediction(self.params.survey, logits["satisfaction"])}


def satisfaction_prediction(config: SurveyConfig, z_r: tf.Tensor) -> tf.Tensor:
    """ŝ: the rating in ``rating_range`` (regression) or P(rating > threshold) (classification)."""
    if config.satisfaction_task == "classification":
        return tf.sigmoid(z_r)
    lo, hi = config.rating_range
    return lo + (hi - lo) * tf.sigmoid(z_r)


def satisfaction_error(config: SurveyConfig, y: Labels, z_r: tf.Tensor) -> tf.Tensor:
    """ℓ_r(s, ŝ) per row; 0 where o = 0 (the rating there, possibly NaN, is never read)."""
    responded = y.o > 0.5
    s = tf.where(responded, y.r, tf.fill(tf.shape(y.r), config.rating_range[0]))
    if config.satisfaction_task == "classification":
        e = bce_with_logits(tf.cast(s > config.satisfied_threshold, z_r.dtype), z_r)
    else:
        e = tf.square(s - satisfaction_prediction(config, z_r))
    return tf.where(responded, e, tf.zeros_like(e))


def _keep_negatives(o: tf.Tensor, w: float, seed: Optional[int] = None) -> tf.Tensor:
    """1.0 for every response and for each non-response with probability w, else 0.0."""
    return tf.cast((o > 0.5) | (tf.random.uniform(tf.shape(o), seed=seed) < w), tf.float32)


def _masked_mean(values: tf.Tensor, mask: Optional[tf.Tensor]) -> tf.Tensor:
    if mask is None:
        return tf.reduce_mean(values)
    return tf.reduce_sum(values * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
