"""IPS-V2 with co-training (Li et al., ICML 2023; seed 002 §4.1, §4.3), in the multi-task CVR setting.

    L = L_p + L_IPS + λ · BMSE(φ, p̂)
      = 1/|D| Σ BCE(o, p̂) + 1/|D| Σ o·e(r, r̂)/p̂ + λ ‖1/|D| Σ [o/p̂ − (1 − o)/(1 − p̂)] φ‖²

p̂ = pCTR of the shared-embedding CTR tower; λ = ``model.bmse.weight``; φ from the shared
representation (``model.bmse.phi``: 1, K = user ⊙ item embedding, 2K = [user : item], R = r̂).
BMSE trains p̂ and φ; the IPS term's weights are detached as ``model.ipw`` says.
"""
from __future__ import annotations

import tensorflow as tf

from trainer.estimators.interface import Labels
from trainer.estimators.multi_ipw import MultiIpw
from trainer.model.propensity import bmse_fields


class BalancingRegularised:
    """Mixin: adds λ·BMSE(φ, p̂) to the parent estimator's loss (seed 002 §4.3) and asks the model for φ."""

    def fields(self):
        return bmse_fields(self.params.bmse)

    def loss(self, y: Labels, logits):
        terms = super().loss(y, logits)
        l_bmse = self.weighting.bmse(y.o, tf.sigmoid(logits["ctr"]), logits)
        return {**terms, "loss": terms["loss"] + self.params.bmse.weight * l_bmse, "bmse": l_bmse}


class IpsV2(BalancingRegularised, MultiIpw):
    terms = ("ctr", "cvr", "bmse")
