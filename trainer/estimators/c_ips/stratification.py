"""Neural stratification (seed 004 §3.1–3.2): deep embedded clustering of users, cluster-level propensities.

With h_u = φ(x_u) the user representation and μ_k the K cluster centres:

    soft assignment  (eq. 5)  a_uk = (1 + ‖h_u − μ_k‖²)⁻¹ / Σ_i (1 + ‖h_u − μ_i‖²)⁻¹
    target           (eq. 7)  t_uk = (a_uk² / s_k) / Σ_i (a_ui² / s_i),   s_k = Σ_u a_uk
    clustering loss  (eq. 6)  L_cluster = Σ_u KL(t_u ‖ a_u) = Σ_u Σ_k t_uk log(t_uk / a_uk)
    propensity       (eq. 8)  p̂(u, v) = n(c_u, v) / max_v' n(c_u, v'),   c_u = argmax_k a_uk,
                              n(c, v) = #observed pairs (u', v) with c_u' = c

Eq. 5 is the Student-t kernel with one degree of freedom of DEC (Xie et al. 2016, the seed's [14]),
whose distance is squared; the seed prints ‖·‖ without the square. Eq. 8 with K = |U| is the
per-user frequency ratio and with K = 1 item popularity n(v) / max_v' n(v').
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def soft_assignment(h: tf.Tensor, mu: tf.Tensor) -> tf.Tensor:
    """a [users, K], eq. 5."""
    d2 = tf.reduce_sum(tf.square(h[:, None, :] - mu[None, :, :]), axis=-1)
    kernel = 1.0 / (1.0 + d2)
    return kernel / tf.reduce_sum(kernel, axis=1, keepdims=True)


def target_distribution(a: tf.Tensor) -> tf.Tensor:
    """t [users, K], eq. 7: squares a, divides by the cluster frequency s_k, renormalises per user."""
    weight = tf.square(a) / tf.reduce_sum(a, axis=0, keepdims=True)
    return weight / tf.reduce_sum(weight, axis=1, keepdims=True)


def clustering_loss(t: tf.Tensor, a: tf.Tensor, eps: float = 1e-10) -> tf.Tensor:
    """Σ_u KL(t_u ‖ a_u), eq. 6, averaged over the users of the batch."""
    return tf.reduce_mean(tf.reduce_sum(t * (tf.math.log(t + eps) - tf.math.log(a + eps)), axis=1))


def cluster_propensities(cluster_of_user: np.ndarray, users: np.ndarray, items: np.ndarray,
                         n_items: int) -> np.ndarray:
    """p̂(u, v) of eq. 8 for each listed (user, item) pair, counted over those same observed pairs.

    ``cluster_of_user[u]`` is c_u; ``users`` / ``items`` are the observed pairs O (repeats count).
    """
    cluster = np.asarray(cluster_of_user)[users]
    n_clusters = int(np.max(cluster_of_user)) + 1
    counts = np.zeros((n_clusters, n_items))
    np.add.at(counts, (cluster, items), 1.0)
    return counts[cluster, items] / counts.max(axis=1)[cluster]


def kmeans_centres(h: np.ndarray, k: int, seed: int, iterations: int = 20) -> np.ndarray:
    """Initial μ (as DEC does): Lloyd's k-means on h from k-means++ seeds."""
    rng = np.random.default_rng(seed)
    centres = [h[rng.integers(len(h))]]
    for _ in range(1, k):
        d2 = np.min(((h[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        centres.append(h[rng.choice(len(h), p=d2 / d2.sum())] if d2.sum() > 0 else h[rng.integers(len(h))])
    mu = np.array(centres)
    for _ in range(iterations):
        label = ((h[:, None, :] - mu[None]) ** 2).sum(-1).argmin(1)
        mu = np.array([h[label == j].mean(0) if np.any(label == j) else mu[j] for j in range(k)])
    return mu.astype(np.float32)
