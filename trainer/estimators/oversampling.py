"""Oversampling (seed 003 §4.2.1): Base with every positive counted k times (k = ``model.oversample_k``).

    L_CVR = Σ_D o·k_r·e(r, r̂) / Σ_D o·k_r,   k_r = k if r = 1 else 1

Implemented as example weights: the same objective as repeating each clicked conversion k times
in the click space and averaging, without the copies (batches differ in composition only).
"""
from __future__ import annotations

from trainer.estimators.base import Labels
from trainer.estimators.base_cvr import BaseCvr, click_space_mean
from trainer.losses import bce_with_logits, mean_bce


class Oversampling(BaseCvr):
    name = "oversampling"

    def loss(self, y: Labels, logits):
        k = 1.0 + (self.config.oversample_k - 1.0) * y.conversion
        l_ctr = mean_bce(y.click, logits["ctr"])
        l_cvr = click_space_mean(y.click, bce_with_logits(y.conversion, logits["cvr"]), k)
        return {"loss": l_ctr + l_cvr, "ctr": l_ctr, "cvr": l_cvr}
