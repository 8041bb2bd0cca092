"""Joint-learning DR (Wang et al., ICML 2019; seed 003 §4.2.2), tailored to CVR.

Three models with nothing shared: propensity (CTR tower), prediction (CVR tower) and imputation,
each with its own embeddings. Every training step alternates two updates on the batch:

    prediction (θ_CTR, θ_CVR):  1/|D| Σ BCE(o, p̂) + 1/|D| Σ [ê + o·(e − ê)/p̂]     ê fixed
    imputation (θ_Imp):         1/|D| Σ o·(e − ê)²/p̂                              r̂, p̂ fixed
"""
from __future__ import annotations

from trainer.estimators.interface import Labels, WeightedEstimator, Update
from trainer.model.losses import mean_bce


class JointLearningDr(WeightedEstimator):
    towers = ("ctr", "cvr", "imp")
    terms = ("ctr", "cvr", "imputation", "prediction")
    embeddings = {"ctr": "propensity", "cvr": "prediction", "imp": "imputation"}
    updates = (Update("prediction", ("ctr", "cvr")), Update("imputation", ("imp",)))

    def loss(self, y: Labels, logits):
        l_ctr = mean_bce(y.o, logits["ctr"])
        l_dr, l_imp = self.weighting.dr_cvr_losses(y, logits)
        return {"loss": l_ctr + l_dr + l_imp, "prediction": l_ctr + l_dr, "imputation": l_imp,
                "ctr": l_ctr, "cvr": l_dr}
