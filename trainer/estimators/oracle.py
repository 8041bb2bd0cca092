"""Oracle: the upper bound — CVR fitted on the potential outcome r* of EVERY exposure.

    L = 1/|D| Σ_D BCE(o, pCTR) + 1/|D| Σ_D e(r*, r̂)

r* (``gt_conversion``) is whether the exposure would have converted had it been clicked; only
the simulator knows it, so this estimator refuses data without it. Same towers and shared
embeddings as ESMM / Multi-IPW: the gap to it is what selection bias and sparsity cost.
"""
from __future__ import annotations

from trainer.estimators.interface import POTENTIAL_OUTCOME, Labels, MultiTaskEstimator
from trainer.model.losses import mean_bce


class Oracle(MultiTaskEstimator):
    terms = ("ctr", "cvr")
    needs_potential_outcome = True

    def loss(self, y: Labels, logits):
        if y.r_star is None:
            raise ValueError(f"model.name=oracle trains on the potential outcome {POTENTIAL_OUTCOME!r} of every "
                             "exposure, which only simulated data has; this data has no such column "
                             "(use data.source: simulated, or another estimator)")
        l_ctr = mean_bce(y.o, logits["ctr"])
        l_cvr = mean_bce(y.r_star, logits["cvr"])
        return {"loss": l_ctr + l_cvr, "ctr": l_ctr, "cvr": l_cvr}
