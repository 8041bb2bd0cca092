"""Base, the naive post-click CVR model (seed 003 §4.2.1): an MLP fitted on clicks only.

    L_CVR = Σ_D o·e(r, r̂) / Σ_D o          (mean over the clicked rows)

The CTR tower (for pCTR and pCTCVR) has its own embeddings and its own loss 1/|D| Σ BCE(o, pCTR):
nothing is shared, so the CVR model sees the click space and nothing else.
"""
from __future__ import annotations

import tensorflow as tf

from trainer.estimators.interface import Labels, MultiTaskEstimator
from trainer.model.losses import bce_with_logits, mean_bce


def click_space_mean(o: tf.Tensor, values: tf.Tensor, weights=1.0) -> tf.Tensor:
    """Σ o·w·v / Σ o·w: a (weighted) mean over the clicked rows, 0 for a batch without clicks."""
    w = o * weights
    return tf.reduce_sum(w * values) / tf.maximum(tf.reduce_sum(w), 1e-12)


class NaiveCvr(MultiTaskEstimator):
    terms = ("ctr", "cvr")
    embeddings = {"ctr": "ctr", "cvr": "cvr"}

    def loss(self, y: Labels, logits):
        l_ctr = mean_bce(y.o, logits["ctr"])
        l_cvr = click_space_mean(y.o, bce_with_logits(y.r, logits["cvr"]))
        return {"loss": l_ctr + l_cvr, "ctr": l_ctr, "cvr": l_cvr}
