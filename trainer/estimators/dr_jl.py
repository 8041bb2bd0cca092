"""DR-JL (Wang et al., ICML 2019, Algorithm 1; seed 002's "DR-JL" baseline): doubly robust joint learning
with a propensity model fitted beforehand.

    stage 1   p̂ = argmin 1/|D| Σ_D BCE(o, p̂)
    stage 2   alternate per step, p̂ fixed:
              prediction  L_DR = 1/|D| Σ_D [ê + o·(e − ê)/p̂]        ê fixed
              imputation  L_e  = 1/|D| Σ_D o·(e − ê)²/p̂             r̂ fixed

The losses and the three unshared models of :mod:`trainer.estimators.joint_learning_dr` (which co-trains
p̂ instead), trained in two stages (:mod:`trainer.estimators.two_stage`).
"""
from __future__ import annotations

from trainer.estimators.joint_learning_dr import JointLearningDr
from trainer.estimators.two_stage import TwoStage


class DrJl(TwoStage, JointLearningDr):
    pass
