"""IPS with a separately trained propensity model (Schnabel et al., ICML 2016; seed 002's "IPS" baseline).

    stage 1   p̂ = argmin 1/|D| Σ_D BCE(o, p̂(u, i))                  over every pair D
    stage 2   L_IPS = 1/|D| Σ_D o·e(r, r̂)·w(p̂),  w = 1/p̂ (``model.ipw``), p̂ fixed

Naive IPW's loss and towers (:mod:`trainer.estimators.naive_ipw`: nothing shared) trained in two stages
(:mod:`trainer.estimators.two_stage`); with ``model.backbone: mf`` both models are MF.
"""
from __future__ import annotations

from trainer.estimators.naive_ipw import NaiveIpw
from trainer.estimators.two_stage import TwoStage


class Ips(TwoStage, NaiveIpw):
    pass
