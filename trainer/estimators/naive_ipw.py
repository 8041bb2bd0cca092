"""Naive IPW (Schnabel et al. 2016; seed 003 §4.2.2, eq. 4): a separate propensity model.

    L = 1/|D| Σ_D BCE(o, p̂)  +  1/|D| Σ_D o·e(r, r̂)·w(p̂)

The propensity (CTR) tower and the CVR tower have separate embeddings: p̂ comes from an
independent model, and the CVR model learns from clicks only. w is set by ``model.ipw``.
"""
from __future__ import annotations

from trainer.estimators.multi_ipw import MultiIpw


class NaiveIpw(MultiIpw):
    """Multi-IPW's loss with nothing shared between the propensity and the CVR model."""

    embeddings = {"ctr": "propensity", "cvr": "cvr"}
