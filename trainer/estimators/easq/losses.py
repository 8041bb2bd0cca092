"""EASQ's losses (seed 001 eqs. 11, 15, 16, 17), on scores and index pairs.

A pair set is an int tensor [P, 2] of row indices: (i, j) = "row i is preferred to row j". Each loss
is the paper's sum divided by its pair count (``reduction="mean"``, so λ1, λ2 do not depend on how
many pairs a batch happens to hold; ``"sum"`` is the paper's literal Σ); an empty set gives 0.

    L_main  = −Σ_{(i,j)∈B+} log σ(ŷ_i − ŷ_j)                     (eq. 11, BPR over behaviour pairs)
    L_satis = −Σ_{(i,j)∈D+} log σ(ŝ_i − ŝ_j)                     (eq. 15, questionnaire pairs)
    L_DPO   = −Σ_{(+,−)∈D+} log σ(β[log π_θ(x⁺)/π_ref(x⁺) − log π_θ(x⁻)/π_ref(x⁻)])   (eq. 16)
              π_θ = ŷ, π_ref = stop_grad(ŝ), β = 0.1
    L_total = L_main + λ1 L_satis + λ2 L_DPO  (+ the routers' ReMoE L1)          (eq. 17)

What log π means for a ranker's score (the paper is silent; ``log_pi``):
    "softmax" (default): scores are logits of a softmax over the user's items, log π(x|u) = score(x) −
        log Z(u). In a same-user pair Z cancels, so β[(ŷ⁺ − ŷ⁻) − (ŝ⁺ − ŝ⁻)]. BPR and the pairwise
        logistic loss fix scores only up to a per-user shift, and this reading is invariant to it.
    "sigmoid": scores are logits of a per-item Bernoulli, log π(x) = log σ(score): β[(log σ(ŷ⁺) −
        log σ(ŝ⁺)) − (log σ(ŷ⁻) − log σ(ŝ⁻))]. Not shift-invariant; kept as the alternative.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from trainer.estimators.easq.model import SATISFACTION, SCORE

LOG_PI = ("softmax", "sigmoid")


@dataclass(frozen=True)
class EasqLossConfig:
    lambda1: float = 1.0          # λ1: weight of L_satis (eq. 17)
    lambda2: float = 1.0          # λ2: weight of L_DPO (eq. 17); 0 = the "w/o DPO" ablation
    beta: float = 0.1             # β of eq. 16 ("fixed to 0.1 following common practice")
    log_pi: str = "softmax"       # what log π(x) is for a score, see the module docstring
    reduction: str = "mean"       # "mean" over pairs, or "sum" (the paper's Σ)

    def __post_init__(self):
        if self.log_pi not in LOG_PI:
            raise ValueError(f"log_pi must be one of {LOG_PI}, got {self.log_pi!r}")
        if self.reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {self.reduction!r}")


def pairwise_logistic(scores: tf.Tensor, pairs: tf.Tensor, reduction: str = "mean") -> tf.Tensor:
    """−Σ_{(i,j)} log σ(score_i − score_j): BPR (eq. 11) on ŷ, the pairwise logistic loss (eq. 15) on ŝ."""
    pairs = tf.reshape(tf.cast(pairs, tf.int32), [-1, 2])
    margin = tf.gather(scores, pairs[:, 0]) - tf.gather(scores, pairs[:, 1])
    return _reduce(tf.nn.softplus(-margin), reduction)            # −log σ(m) = softplus(−m)


def bpr_loss(y_hat: tf.Tensor, behaviour_pairs: tf.Tensor, reduction: str = "mean") -> tf.Tensor:
    """L_main (eq. 11): −Σ_{(i,j)∈B+} log σ(ŷ_i − ŷ_j), B+ = behaviour pairs of one request or user."""
    return pairwise_logistic(y_hat, behaviour_pairs, reduction)


def satisfaction_loss(s_hat: tf.Tensor, satisfaction_pairs: tf.Tensor, reduction: str = "mean") -> tf.Tensor:
    """L_satis (eq. 15): −Σ_{(i,j)∈D+} log σ(ŝ_i − ŝ_j), D+ = questionnaire pairs with s_i > s_j."""
    return pairwise_logistic(s_hat, satisfaction_pairs, reduction)


def dpo_loss(y_hat: tf.Tensor, s_hat: tf.Tensor, satisfaction_pairs: tf.Tensor, beta: float = 0.1,
             log_pi: str = "softmax", reduction: str = "mean") -> tf.Tensor:
    """L_DPO (eq. 16) with π_θ = ŷ and π_ref = stop_grad(ŝ): the reference gets no gradient from it."""
    s_ref = tf.stop_gradient(s_hat)                                  # π_ref = stop_grad(ŝ)
    if log_pi == "softmax":      # log π(x|u) = score − log Z(u); Z(u) cancels inside a same-user pair
        log_ratio = y_hat - s_ref
    elif log_pi == "sigmoid":    # log π(x) = log σ(score)
        log_ratio = tf.math.log_sigmoid(y_hat) - tf.math.log_sigmoid(s_ref)
    else:
        raise ValueError(f"log_pi must be one of {LOG_PI}, got {log_pi!r}")
    pairs = tf.reshape(tf.cast(satisfaction_pairs, tf.int32), [-1, 2])
    margin = beta * (tf.gather(log_ratio, pairs[:, 0]) - tf.gather(log_ratio, pairs[:, 1]))
    return _reduce(tf.nn.softplus(-margin), reduction)


def easq_loss(outputs: dict, behaviour_pairs: tf.Tensor, satisfaction_pairs: tf.Tensor,
              config: EasqLossConfig = EasqLossConfig()) -> dict[str, tf.Tensor]:
    """L_total = L_main + λ1 L_satis + λ2 L_DPO (eq. 17) + router L1; every term is returned by name.

    ``outputs`` is the model's dict (``score`` = ŷ, ``satisfaction`` = ŝ, the routers' L1). The
    satisfaction router's L1 is part of the satisfaction task: weighted by λ1 and counted only in a
    batch with questionnaire pairs. With no questionnaire pairs L_satis = L_DPO = 0 and the total is
    L_main + the main router's L1, so nothing trains the LoRA or the satisfaction pathway: EASQ then
    trains exactly as behaviour-only (a test pins it).
    """
    y_hat, s_hat = outputs[SCORE], outputs[SATISFACTION]
    l_main = bpr_loss(y_hat, behaviour_pairs, config.reduction)
    l_satis = satisfaction_loss(s_hat, satisfaction_pairs, config.reduction)
    l_dpo = dpo_loss(y_hat, s_hat, satisfaction_pairs, config.beta, config.log_pi, config.reduction)
    if "satisfaction/router_l1" in outputs:  # the satisfaction router's L1 belongs to the satisfaction task
        has_pairs = tf.cast(tf.size(satisfaction_pairs) > 0, y_hat.dtype)
        router_l1 = outputs["main/router_l1"] + config.lambda1 * has_pairs * outputs["satisfaction/router_l1"]
    else:
        router_l1 = outputs.get("router_l1", tf.zeros((), y_hat.dtype))
    total = l_main + config.lambda1 * l_satis + config.lambda2 * l_dpo + router_l1
    return {"loss": total, "main": l_main, "satis": l_satis, "dpo": l_dpo, "router_l1": router_l1}


def _reduce(per_pair: tf.Tensor, reduction: str) -> tf.Tensor:
    total = tf.reduce_sum(per_pair)
    if reduction == "sum":
        return total
    return tf.math.divide_no_nan(total, tf.cast(tf.size(per_pair), per_pair.dtype))
