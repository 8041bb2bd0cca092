"""Multi-IPW (Zhang et al., WWW 2020; seed 003 eq. 5): propensity = pCTR of the shared-embedding CTR tower.

    L = 1/|D| Σ_D BCE(o, p̂(x; θ_CTR, Φ))  +  1/|D| Σ_D o·e(r, r̂(x; θ_CVR, Φ)) / p̂(x; θ_CTR, Φ)

trained over the exposure space D; 1/p̂ is bounded and (by default) detached as ``model.ipw`` says.
"""
from __future__ import annotations

from trainer.estimators.interface import Labels, WeightedEstimator
from trainer.model.losses import mean_bce


class MultiIpw(WeightedEstimator):
    terms = ("ctr", "cvr")

    def loss(self, y: Labels, logits):
        l_ctr = mean_bce(y.o, logits["ctr"])
        l_cvr = self.weighting.ipw_cvr_loss(y, logits)
        return {"loss": l_ctr + l_cvr, "ctr": l_ctr, "cvr": l_cvr}
