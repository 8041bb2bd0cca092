"""Heuristic DR (seed 003 §4.2.2): DR whose imputation is a constant guess, not a model.

Every exposure is assumed to convert with probability η (``model.heuristic_eta``; the paper
tries 0.0005 … 0.01), so ê = e(η, r̂) and

    L = 1/|D| Σ_D BCE(o, p̂)  +  1/|D| Σ_D [e(η, r̂) + o·(e(r, r̂) − e(η, r̂))/p̂]

with the shared-embedding CTR tower as propensity, as in Multi-DR.
"""
from __future__ import annotations

import tensorflow as tf

from trainer.estimators.interface import Labels, WeightedEstimator
from trainer.model.losses import bce_with_logits, mean_bce
from trainer.model.propensity import heuristic_imputation


class HeuristicDr(WeightedEstimator):
    terms = ("ctr", "cvr")

    def loss(self, y: Labels, logits):
        o, z_cvr = y.o, logits["cvr"]
        l_ctr = mean_bce(o, logits["ctr"])
        e = bce_with_logits(y.r, z_cvr)
        imputation = heuristic_imputation(z_cvr, self.params.heuristic_eta)
        l_dr = self.weighting.dr_loss(o, e, imputation, tf.sigmoid(logits["ctr"]), self.weighting.mask(o))
        return {"loss": l_ctr + l_dr, "ctr": l_ctr, "cvr": l_dr}
