"""Multi-DR (Zhang et al., WWW 2020; seed 003 eq. 9): Multi-IPW plus an imputation tower for ê.

    L = 1/|D| Σ_D BCE(o, p̂)  +  1/|D| Σ_D [ê + o·(e − ê)/p̂]  +  w_e · 1/|D| Σ_D o·(e − ê)²/p̂

CTR, CVR and imputation towers share the embeddings Φ. The last term is the imputation model's
own loss L_e (Wang et al. 2019), weighted by ``model.imputation_weight``; in the DR term ê is a
target for the CVR tower. D may be under-sampled (``model.undersample_rate``, λ in seed 003 §5.3).
See :mod:`trainer.model.propensity` for ê and the weights.
"""
from __future__ import annotations

from trainer.estimators.interface import Labels, WeightedEstimator
from trainer.model.losses import mean_bce


class MultiDr(WeightedEstimator):
    towers = ("ctr", "cvr", "imp")
    terms = ("ctr", "cvr", "imputation")

    def loss(self, y: Labels, logits):
        l_ctr = mean_bce(y.o, logits["ctr"])
        l_dr, l_imp = self.weighting.dr_cvr_losses(y, logits)
        total = l_ctr + l_dr + self.params.imputation_weight * l_imp
        return {"loss": total, "ctr": l_ctr, "cvr": l_dr, "imputation": l_imp}
