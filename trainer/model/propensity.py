"""Propensity weighting, written once, for every IPW / DR estimator (seeds 000, 002, 003).

With o = click, r = conversion, e = e(r, r̂) the per-row CVR loss, p̂ = pCTR the propensity:

    weights        w = 1 / p̂, bounded as configured in ``model.ipw`` (in this order):
                   detach  p̂ ← stop_gradient(p̂) when ``detach_propensity`` (the default), so the
                           weighted CVR loss never trains the CTR tower through its weights;
                   floor   p̂ ← max(p̂, τ), τ absolute (``tau``) or τ = p_min + τ%·(p_mean − p_min)
                           of the batch's predicted propensities (``tau_percent``, seed 003 §5.3);
                   clip    w ← clip(w, 1/p̂_hi, 1/p̂_lo), percentiles of the batch's p̂ (seed 000 §4);
                   bound   w ← min(w, max_weight).
    IPW  (003 eq. 4/5)   L = 1/|D| Σ_D o·e·w
    DR   (003 eq. 8/9)   L = 1/|D| Σ_D [ê + o·(e − ê)·w]
    L_e  (002 §3.1)      L = 1/|D| Σ_D o·(e − ê)²·w       imputation model only (e, w constant)
    BMSE (002 §3.3)      ‖1/|D| Σ_D [o/p̂ − (1 − o)/(1 − p̂)]·φ‖²_F
    under-sampling λ (003 §5.3): per batch keep every clicked row and round(λ·N_clicked) randomly
                   chosen unclicked rows; the other unclicked rows drop out of the sums, while |D|
                   stays the batch size, so the clicked rows' IPW terms keep their scale and only
                   the imputed terms of unclicked rows thin out (λ → ∞ is plain DR; λ → 0 leaves
                   DR on the clicked rows alone). Normalising by the kept rows instead would
                   multiply the clicked terms by |D|/|kept| (≈ 1/(CTR·(1 + λ))), a different
                   learning rate per λ.

The imputed error ê (``model.imputation_target``):
    "label" (default)  the imputation tower predicts a conversion probability r̃ and ê = e(r̃, r̂),
                       so ê depends on r̂ and the DR loss teaches the CVR tower on unclicked rows
                       (the form DR-JL implementations use; heuristic DR is r̃ ≡ η);
    "error"            the tower regresses e directly, ê = softplus(z) ≥ 0 (Wang et al. 2019 as
                       written); ê is then constant for the CVR tower, whose DR gradient equals IPW's.
In the DR loss ê is a target for the prediction model (no gradient into the imputation tower);
the imputation tower learns from L_e only — minimising eq. 9 over ê itself has no lower bound.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow as tf

from trainer.estimators.params import BmseConfig, IpwConfig
from trainer.model.losses import bce_with_logits

EPS = 1e-6  # last-resort floor on p̂ and on 1 − p̂, below any sensible τ


def propensity_floor(p_hat: tf.Tensor, config: IpwConfig) -> tf.Tensor:
    """τ for this batch: the absolute ``tau``, or p_min + τ%·(p_mean − p_min), or EPS."""
    if config.tau is not None:
        return tf.constant(config.tau, p_hat.dtype)
    if config.tau_percent is not None:
        p = tf.stop_gradient(p_hat)
        p_min = tf.reduce_min(p)
        return tf.maximum(p_min + config.tau_percent * (tf.reduce_mean(p) - p_min), EPS)
    return tf.constant(EPS, p_hat.dtype)


def bounded_propensity(p_hat: tf.Tensor, config: IpwConfig, detach: bool) -> tf.Tensor:
    """max(p̂, τ), detached or not; below τ the gradient is zero, as for any clamp."""
    p = tf.stop_gradient(p_hat) if detach else p_hat
    return tf.maximum(p, propensity_floor(p_hat, config))


def inverse_propensity_weights(p_hat: tf.Tensor, config: IpwConfig) -> tf.Tensor:
    """w = 1/p̂ after detach, floor τ, percentile clipping and the upper bound (module docstring)."""
    w = 1.0 / bounded_propensity(p_hat, config, config.detach_propensity)
    if config.clip_percentiles is not None:
        lo, hi = config.clip_percentiles
        ref = tf.stop_gradient(p_hat)
        w = tf.clip_by_value(w, 1.0 / percentile(ref, hi), 1.0 / tf.maximum(percentile(ref, lo), EPS))
    if config.max_weight is not None:
        w = tf.minimum(w, config.max_weight)
    return w


def percentile(x: tf.Tensor, q: float) -> tf.Tensor:
    """The q-th percentile of x with linear interpolation (numpy's default)."""
    x = tf.sort(tf.reshape(x, [-1]))
    n = tf.size(x)
    pos = q / 100.0 * tf.cast(n - 1, x.dtype)
    lo = tf.cast(tf.floor(pos), tf.int32)
    hi = tf.minimum(lo + 1, n - 1)
    frac = pos - tf.floor(pos)
    return tf.gather(x, lo) * (1.0 - frac) + tf.gather(x, hi) * frac


def calibrate_subsampled(p_s: tf.Tensor, w: float) -> tf.Tensor:
    """p = p_s·w / (p_s·w + 1 − p_s) (seed 000 §4): a probability learnt on every positive and a kept
    fraction w of the negatives, mapped back to the full data's rate."""
    return p_s * w / (p_s * w + 1.0 - p_s)


def calibrated_logit(z_s: tf.Tensor, w: float) -> tf.Tensor:
    """The same map in logit space, z = z_s + log w (σ(z) = calibrate_subsampled(σ(z_s), w)), stable at any z_s."""
    return z_s + tf.math.log(tf.constant(w, z_s.dtype))


def undersample_mask(o: tf.Tensor, rate: float, seed: Optional[int] = None) -> tf.Tensor:
    """1.0 for every clicked row and for round(rate·N_clicked) random unclicked rows, else 0.0."""
    clicked = o > 0.5
    n_keep = tf.cast(tf.round(rate * tf.reduce_sum(tf.cast(clicked, tf.float32))), tf.int32)
    score = tf.where(clicked, 2.0, tf.random.uniform(tf.shape(o), seed=seed))  # clicked rows rank last
    rank = tf.argsort(tf.argsort(score))
    return tf.cast(clicked | (rank < n_keep), tf.float32)


def bmse(o: tf.Tensor, p_hat: tf.Tensor, phi: tf.Tensor) -> tf.Tensor:
    """BMSE(φ, p̂) = ‖1/|D| Σ [o/p̂ − (1 − o)/(1 − p̂)]·φ‖²_F; φ is [batch] or [batch, m]."""
    p = tf.clip_by_value(p_hat, EPS, 1.0 - EPS)
    balance = o / p - (1.0 - o) / (1.0 - p)
    phi = tf.reshape(phi, [tf.shape(o)[0], -1])
    return tf.reduce_sum(tf.square(tf.reduce_mean(balance[:, None] * phi, axis=0)))


def balancing_phi(logits: dict, config: BmseConfig) -> tf.Tensor:
    """φ read from the shared representation (see :class:`trainer.estimators.params.BmseConfig`)."""
    if config.phi == "1":
        return tf.ones_like(logits["cvr"])
    if config.phi == "R":
        return tf.sigmoid(logits["cvr"])
    user, item = logits[field_key(config.user_feature)], logits[field_key(config.item_feature)]
    return user * item if config.phi == "K" else tf.concat([user, item], axis=-1)


def bmse_fields(config: BmseConfig) -> tuple[str, ...]:
    """The embedded fields whose vectors φ needs from the model."""
    return (config.user_feature, config.item_feature) if config.phi in ("K", "2K") else ()


def field_key(name: str) -> str:
    """Key of a field's shared-embedding vector in the model's outputs."""
    return f"field/{name}"


@dataclasses.dataclass(frozen=True)
class Imputation:
    """ê twice: ``for_prediction`` (gradient to r̂ only) and ``for_imputation`` (to the imputation tower only)."""

    for_prediction: tf.Tensor
    for_imputation: Optional[tf.Tensor] = None


def imputed_error(z_cvr: tf.Tensor, z_imp: tf.Tensor, target: str) -> Imputation:
    """ê from the imputation tower's logit, as ``model.imputation_target`` says."""
    if target == "label":
        r_tilde = tf.sigmoid(z_imp)
        return Imputation(bce_with_logits(tf.stop_gradient(r_tilde), z_cvr),
                          bce_with_logits(r_tilde, tf.stop_gradient(z_cvr)))
    e_hat = tf.nn.softplus(z_imp)
    return Imputation(tf.stop_gradient(e_hat), e_hat)


def heuristic_imputation(z_cvr: tf.Tensor, eta: float) -> Imputation:
    """Heuristic DR: every row converts with probability η, ê = e(η, r̂); nothing to learn."""
    return Imputation(bce_with_logits(tf.fill(tf.shape(z_cvr), eta), z_cvr))


class PropensityWeighting:
    """The IPW / DR / L_e / BMSE losses with the configured weights and under-sampling."""

    def __init__(self, config):
        self.config = config

    def weights(self, p_hat: tf.Tensor) -> tf.Tensor:
        return inverse_propensity_weights(p_hat, self.config.ipw)

    def mask(self, o: tf.Tensor) -> Optional[tf.Tensor]:
        rate = self.config.undersample_rate
        return None if rate is None else undersample_mask(o, rate)

    def ipw_loss(self, o, e, p_hat, mask=None) -> tf.Tensor:
        """1/|D| Σ o·e·w."""
        return _mean(o * e * self.weights(p_hat), mask)

    def dr_loss(self, o, e, imputation: Imputation, p_hat, mask=None) -> tf.Tensor:
        """1/|D| Σ [ê + o·(e − ê)·w]."""
        e_hat = imputation.for_prediction
        return _mean(e_hat + o * (e - e_hat) * self.weights(p_hat), mask)

    def imputation_loss(self, o, e, imputation: Imputation, p_hat, mask=None) -> tf.Tensor:
        """L_e = 1/|D| Σ o·(e − ê)²·w with e and w held constant."""
        w = tf.stop_gradient(self.weights(p_hat))
        return _mean(o * tf.square(tf.stop_gradient(e) - imputation.for_imputation) * w, mask)

    def ipw_cvr_loss(self, y, logits) -> tf.Tensor:
        """Multi-IPW's CVR term (003 eq. 5) from the towers' logits, p̂ = σ(z_ctr)."""
        e = bce_with_logits(y.r, logits["cvr"])
        return self.ipw_loss(y.o, e, tf.sigmoid(logits["ctr"]))

    def dr_cvr_losses(self, y, logits) -> tuple[tf.Tensor, tf.Tensor]:
        """Multi-DR's CVR term (003 eq. 9) and the imputation loss L_e, with under-sampling."""
        o, z_cvr = y.o, logits["cvr"]
        mask, p_hat = self.mask(o), tf.sigmoid(logits["ctr"])
        e = bce_with_logits(y.r, z_cvr)
        imputation = imputed_error(z_cvr, logits["imp"], self.config.imputation_target)
        return (self.dr_loss(o, e, imputation, p_hat, mask),
                self.imputation_loss(o, e, imputation, p_hat, mask))

    def bmse(self, o, p_hat, logits) -> tf.Tensor:
        """BMSE(φ, p̂) on the floored, never detached p̂: it exists to train the propensity."""
        p = bounded_propensity(p_hat, self.config.ipw, detach=False)
        return bmse(o, p, balancing_phi(logits, self.config.bmse))


def _mean(values: tf.Tensor, mask: Optional[tf.Tensor]) -> tf.Tensor:
    """1/|D| Σ_D mask·values, |D| the batch size (see under-sampling in the module docstring)."""
    return tf.reduce_mean(values if mask is None else values * mask)
