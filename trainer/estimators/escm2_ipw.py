"""ESCM²-IPW (Wang et al., SIGIR 2022; seed 002 baselines): ESMM plus a counterfactual CVR regulariser.

    L = 1/|D| Σ_D BCE(o, pCTR) + 1/|D| Σ_D BCE(o·r, pCTR·pCVR) + λ_c · 1/|D| Σ_D o·e(r, r̂)/p̂

with p̂ = pCTR of the shared-embedding CTR tower and λ_c = ``model.counterfactual_weight``.
"""
from __future__ import annotations

import tensorflow as tf

from trainer.estimators.interface import Labels, WeightedEstimator
from trainer.model.losses import bce_of_product, mean_bce


class Escm2Ipw(WeightedEstimator):
    terms = ("ctr", "ctcvr", "cvr")

    def loss(self, y: Labels, logits):
        l_ctr = mean_bce(y.o, logits["ctr"])
        l_ctcvr = tf.reduce_mean(bce_of_product(y.o * y.r, logits["ctr"], logits["cvr"]))
        l_cvr = self.weighting.ipw_cvr_loss(y, logits)
        total = l_ctr + l_ctcvr + self.params.counterfactual_weight * l_cvr
        return {"loss": total, "ctr": l_ctr, "ctcvr": l_ctcvr, "cvr": l_cvr}
