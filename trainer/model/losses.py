"""Numerically stable building blocks shared by every estimator's loss.

All losses work on logits. The CTCVR probability pCTR·pCVR is never formed and then
logged: log pCTCVR = log σ(z_ctr) + log σ(z_cvr), and log(1 − pCTCVR) = log1mexp(log pCTCVR).
"""
from __future__ import annotations

import tensorflow as tf


def bce_with_logits(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per-example binary cross-entropy e(y, σ(z))."""
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, logits.dtype), logits=logits)


def mean_bce(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """1/|D| Σ e(y, σ(z)) over the batch (the CTR loss L_p of every estimator)."""
    return tf.reduce_mean(bce_with_logits(labels, logits))


def log1mexp(log_p: tf.Tensor) -> tf.Tensor:
    """log(1 − exp(x)) for x ≤ 0, accurate at both ends (Mächler 2012)."""
    log_p = tf.minimum(log_p, -1e-12)
    return tf.where(log_p > -0.6931471805599453,
                    tf.math.log(-tf.math.expm1(log_p)),
                    tf.math.log1p(-tf.exp(log_p)))


def bce_of_product(labels: tf.Tensor, logits_a: tf.Tensor, logits_b: tf.Tensor) -> tf.Tensor:
    """Per-example BCE of y against σ(a)·σ(b), computed in log space."""
    y = tf.cast(labels, logits_a.dtype)
    log_p = tf.math.log_sigmoid(logits_a) + tf.math.log_sigmoid(logits_b)
    return -(y * log_p + (1.0 - y) * log1mexp(log_p))
