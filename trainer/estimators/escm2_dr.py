"""ESCM²-DR (Wang et al., SIGIR 2022; seed 002 baselines): ESMM plus a counterfactual DR regulariser.

    L = 1/|D| Σ BCE(o, pCTR) + 1/|D| Σ BCE(o·r, pCTR·pCVR)
        + λ_c · 1/|D| Σ [ê + o·(e − ê)/p̂]  +  w_e · 1/|D| Σ o·(e − ê)²/p̂

λ_c = ``model.counterfactual_weight``, w_e = ``model.imputation_weight``; the DR and imputation
terms are Multi-DR's (:mod:`trainer.model.propensity`), on the shared embeddings.
"""
from __future__ import annotations

import tensorflow as tf

from trainer.estimators.interface import Labels, WeightedEstimator
from trainer.model.losses import bce_of_product, mean_bce


class Escm2Dr(WeightedEstimator):
    towers = ("ctr", "cvr", "imp")
    terms = ("ctr", "ctcvr", "cvr", "imputation")

    def loss(self, y: Labels, logits):
        l_ctr = mean_bce(y.o, logits["ctr"])
        l_ctcvr = tf.reduce_mean(bce_of_product(y.o * y.r, logits["ctr"], logits["cvr"]))
        l_dr, l_imp = self.weighting.dr_cvr_losses(y, logits)
        total = (l_ctr + l_ctcvr + self.params.counterfactual_weight * l_dr
                 + self.params.imputation_weight * l_imp)
        return {"loss": total, "ctr": l_ctr, "ctcvr": l_ctcvr, "cvr": l_dr, "imputation": l_imp}
