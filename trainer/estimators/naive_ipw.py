"""Naive IPW (Schnabel et al. 2016; seed 003 §4.2.2, eq. 4): a separate propensity model.

    L = 1/|D| Σ_D BCE(o, p̂)  +  1/|D| Σ_D o·e(r, r̂)·w(p̂)

The propensity (CTR) tower and the CVR tower have separate embeddings: p̂ comes from an
independent model, and the CVR model learns from clicks only. w is set by ``model.ipw``.
"""
from __future__ import annotations

from trainer.estimators.base import Estimator, Labels
from trainer.losses import mean_bce
from trainer.propensity import PropensityWeighting


class NaiveIpw(Estimator):
    name = "naive_ipw"
    terms = ("ctr", "cvr")
    embeddings = {"ctr": "propensity", "cvr": "cvr"}

    def __init__(self, config):
        super().__init__(config)
        self.weighting = PropensityWeighting(config)

    def loss(self, y: Labels, logits):
        l_ctr = mean_bce(y.click, logits["ctr"])
        l_cvr = self.weighting.ipw_cvr_loss(y, logits)
        return {"loss": l_ctr + l_cvr, "ctr": l_ctr, "cvr": l_cvr}
