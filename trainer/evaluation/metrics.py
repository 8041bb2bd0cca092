"""Ranking and calibration metrics on numpy arrays (exact, tie-aware)."""
from __future__ import annotations

import numpy as np
import pandas as pd

BMSE_P_MIN = 0.01  # the propensity floor of the BMSE diagnostic: weights 1/p̂ at most 100


def auc(labels, scores) -> float:
    """ROC AUC via average ranks (Mann-Whitney U); NaN if only one class is present."""
    y = np.asarray(labels, dtype=np.float64) > 0.5
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(np.asarray(scores, dtype=np.float64)).rank(method="average").to_numpy()
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def gauc(groups, labels, scores) -> float:
    """Group AUC (seed 003 eq. 12): AUC per group weighted by the group's exposures.

    Groups whose labels are all equal have no AUC and are left out, as is standard.
    """
    frame = pd.DataFrame({"g": np.asarray(groups), "y": np.asarray(labels), "s": np.asarray(scores)})
    total, weight = 0.0, 0
    for _, part in frame.groupby("g", sort=False):
        value = auc(part["y"].to_numpy(), part["s"].to_numpy())
        if not np.isnan(value):
            total += value * len(part)
            weight += len(part)
    return total / weight if weight else float("nan")


def log_loss(labels, probs, eps: float = 1e-7) -> float:
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if len(y) else float("nan")


def expected_calibration_error(targets, probs, bins: int = 10) -> float:
    """Mean |mean target − mean prediction| over equal-count bins of the prediction, weighted by size.

    ``targets`` may be 0/1 outcomes or true probabilities (the simulator's ground truth).
    """
    p = np.asarray(probs, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    if len(p) == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    return float(sum(abs(t[idx].mean() - p[idx].mean()) * len(idx)
                     for idx in np.array_split(order, min(bins, len(p)))) / len(p))


def bmse(o, p_hat, phi=None, p_min: float = BMSE_P_MIN) -> float:
    """Balancing mean squared error of propensities (seed 002 §3.3), a diagnostic of p̂ = P(o = 1 | x):

        BMSE(φ, p̂) = ‖ 1/|D| Σ_{(u,i)∈D} [o/p̂ − (1 − o)/(1 − p̂)] · φ ‖²

    over every pair D, observed (o = 1) or not. With the true propensity the bracket has mean
    zero for any φ (Prop. 3.1), so BMSE → 0; a large value means the observed rows weighted by
    1/p̂ do not balance the unobserved ones weighted by 1/(1 − p̂) along φ. ``phi`` is [n] or [n, m]
    (None: φ ≡ 1). NaN without both observed and unobserved rows.

    Bounded: p̂ is clipped to [p_min, 1 − p_min] (default 0.01), so no weight exceeds 1/p_min = 100,
    the way ``model.ipw`` (``tau``, ``max_weight``) bounds the training weights. Unclipped, one observed
    row with p̂ = 1e-6 among a thousand makes the bracket's mean ~1000 and BMSE ~1e6: a tiny run
    reported 184,875, a number that says only that some p̂ was near 0. With the clip BMSE(φ ≡ 1)
    is at most (1/p_min)² = 10⁴ (more with a larger φ).
    """
    o = np.asarray(o, dtype=np.float64)
    if len(o) == 0 or o.min() == o.max():
        return float("nan")
    p = np.clip(np.asarray(p_hat, dtype=np.float64), p_min, 1 - p_min)
    phi = np.ones(len(o)) if phi is None else np.asarray(phi, dtype=np.float64)
    balance = o / p - (1 - o) / (1 - p)
    return float(np.sum(np.square((balance.reshape(-1, 1) * phi.reshape(len(o), -1)).mean(axis=0))))


def sliced_log_bias_sd(slices, predicted, truth) -> float:
    """Exposure-weighted standard deviation over slices s of b_s = log(mean predicted_s / mean truth_s).

    A model whose relative bias is the same in every slice scores 0 (a constant odds-like shift that
    leaves rankings alone); one that learnt a spurious effect of the slicing feature scores higher.
    """
    frame = pd.DataFrame({"s": np.asarray(slices), "p": np.asarray(predicted, np.float64),
                          "t": np.asarray(truth, np.float64)})
    grouped = frame.groupby("s", sort=False)
    stats = grouped.agg(p=("p", "mean"), t=("t", "mean"), n=("p", "size"))
    stats = stats[(stats.p > 0) & (stats.t > 0)]
    if stats.empty:
        return float("nan")
    b = np.log(stats.p / stats.t)
    mean = np.average(b, weights=stats.n)
    return float(np.sqrt(np.average((b - mean) ** 2, weights=stats.n)))


def rounded(metrics: dict) -> dict:
    """Floats to 6 decimals (counts stay ints), as every metrics.json holds them."""
    return {k: (round(float(v), 6) if isinstance(v, float) else v) for k, v in metrics.items()}
