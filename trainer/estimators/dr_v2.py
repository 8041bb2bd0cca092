"""DR-V2 with co-training (Li et al., ICML 2023; seed 002 §4.1, §4.3), in the multi-task CVR setting.

    L = L_p + L_DR + w_e·L_e + λ · BMSE(φ, p̂)

Multi-DR's loss (:mod:`trainer.estimators.multi_dr`) plus the balancing regulariser of IPS-V2
(:mod:`trainer.estimators.ips_v2`): λ = ``model.bmse.weight``, φ = ``model.bmse.phi``.
"""
from __future__ import annotations

from trainer.estimators.ips_v2 import BalancingRegularised
from trainer.estimators.multi_dr import MultiDr


class DrV2(BalancingRegularised, MultiDr):
    terms = ("ctr", "cvr", "imputation", "bmse")
