"""DR-V2 with co-training (Li et al., ICML 2023; seed 002 §4.1, §4.3), in the multi-task CVR setting.

    L = L_p + L_DR + w_e·L_e + λ · BMSE(φ, p̂)

Multi-DR's loss (:mod:`trainer.estimators.multi_dr`) plus the balancing regulariser of IPS-V2
(:mod:`trainer.estimators.ips_v2`): λ = ``model.bmse.weight``, φ = ``model.bmse.phi``.
"""
from __future__ import annotations

import tensorflow as tf

from trainer.estimators.base import Labels
from trainer.estimators.multi_dr import MultiDr
from trainer.propensity import bmse_fields


class DrV2(MultiDr):
    name = "dr_v2"
    terms = ("ctr", "cvr", "imputation", "bmse")

    def fields(self):
        return bmse_fields(self.config.bmse)

    def loss(self, y: Labels, logits):
        terms = super().loss(y, logits)
        l_bmse = self.weighting.bmse(y.click, tf.sigmoid(logits["ctr"]), logits)
        return {**terms, "loss": terms["loss"] + self.config.bmse.weight * l_bmse, "bmse": l_bmse}
