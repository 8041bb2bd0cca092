"""ESMM (Ma et al., SIGIR 2018; seed 003 §2 and §3.2): CVR learned through CTR and CTCVR.

    L_ESMM = 1/|D| Σ_D BCE(o, pCTR) + 1/|D| Σ_D BCE(o·r, pCTR·pCVR)

trained over the entire exposure space D; pCVR is never fitted to a label directly.
"""
from __future__ import annotations

import tensorflow as tf

from trainer.estimators.interface import Labels, MultiTaskEstimator
from trainer.model.losses import bce_of_product, bce_with_logits


class Esmm(MultiTaskEstimator):
    terms = ("ctr", "ctcvr")

    def loss(self, y: Labels, logits):
        o, r = y.o, y.r
        l_ctr = tf.reduce_mean(bce_with_logits(o, logits["ctr"]))
        l_ctcvr = tf.reduce_mean(bce_of_product(o * r, logits["ctr"], logits["cvr"]))
        return {"loss": l_ctr + l_ctcvr, "ctr": l_ctr, "ctcvr": l_ctcvr}
