"""Naive imputation (seed 003 §4.2.1): every unclicked exposure is a CVR negative.

    L_CVR = 1/|D| Σ_D e(o·r, r̂)

The CTR tower has its own embeddings and loss, as in Base.
"""
from __future__ import annotations

from trainer.estimators.interface import Labels
from trainer.estimators.naive_cvr import NaiveCvr
from trainer.model.losses import mean_bce


class NaiveImputation(NaiveCvr):

    def loss(self, y: Labels, logits):
        l_ctr = mean_bce(y.o, logits["ctr"])
        l_cvr = mean_bce(y.o * y.r, logits["cvr"])
        return {"loss": l_ctr + l_cvr, "ctr": l_ctr, "cvr": l_cvr}
