"""Oversampling (seed 003 §4.2.1): Base with every positive counted k times (k = ``model.oversample_k``).

    L_CVR = Σ_D o·k_r·e(r, r̂) / Σ_D o·k_r,   k_r = k if r = 1 else 1

Implemented as example weights: the same objective as repeating each clicked conversion k times
in the click space and averaging, without the copies (batches differ in composition only).
"""
from __future__ import annotations

from trainer.estimators.interface import Labels
from trainer.estimators.naive_cvr import NaiveCvr, click_space_mean
from trainer.model.losses import bce_with_logits, mean_bce


class Oversampling(NaiveCvr):

    def loss(self, y: Labels, logits):
        k = 1.0 + (self.params.oversample_k - 1.0) * y.r
        l_ctr = mean_bce(y.o, logits["ctr"])
        l_cvr = click_space_mean(y.o, bce_with_logits(y.r, logits["cvr"]), k)
        return {"loss": l_ctr + l_cvr, "ctr": l_ctr, "cvr": l_cvr}
