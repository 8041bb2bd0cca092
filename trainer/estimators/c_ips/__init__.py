"""C-IPS (seed 004, Algorithm 2): IPS with cluster-level propensities from neural user stratification.

    h_u = φ(x_u)          x_u the user's 0/1 vector of rated items, φ an MLP; s_u = h_u (shared)
    for round in 1..M:    Algorithm 2
        T epochs of DEC on φ and the centres μ_k (eqs. 5–7, Algorithm 1; see :mod:`.stratification`)
        p̂(u, v) from the hard clusters c_u = argmax_k a_uk (eq. 8)
        recommender epochs on eq. 9, over the observed pairs O:
            L_rec = Σ_O w(p̂)·BCE(y_uv, σ(mf(s_u, s_v))) / Σ_O w(p̂)      w = 1/p̂ bounded by ``model.ipw``
(mf = ⟨s_u, s_v⟩ + b_u + b_v + b, the MF of :mod:`trainer.model.mf` with p_u = s_u = φ(x_u))
(eq. 9 is a plain sum; dividing by Σ w keeps the learning rate comparable across propensity models.)

``model.c_ips.propensity`` swaps the propensity and keeps everything else:
    cluster  C-IPS as above (K = 1: item popularity n(v)/max n(v'), Rel-MF's propensity without its power);
    user     user-level IPS: p̂(u, v) = σ(α_u + β_v + a_u·b_v), a logistic model of the observation
             matrix fitted per (user, item) pair (Schnabel et al. 2016). Eq. 8 itself at K = |U| is
             constant (= 1) on observed pairs when each pair is rated at most once, i.e. plain MF;
    none     plain MF (w ≡ 1).
It has its own training loop: the alternating algorithm trains on users (DEC) and on pairs (eq. 9)
in turns, which the per-example multi-task trainer does not express, so :class:`CIps` implements the
estimator protocol (:mod:`trainer.estimators.interface`) itself: ``build`` sizes φ's input x_u and the
item table from the transform output (vocabulary + OOV ids of the ratings' user and item columns),
``fit`` reads the observed pairs (o = 1) of the train shards, builds x_u from them and runs Algorithm 2
(:mod:`.fit`), reporting progress per DEC and recommender epoch. x_u is a
non-trainable weight, so the saved weights and the SavedModel carry it; an unseen user (OOV id) has
x_u = 0 and gets φ(0). Served output (the stable contract):

    relevance = σ(mf(s_u, s_v)) = P(rating > labels.rating_threshold | u, v), the score the ranking uses.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.data import TrainingData
from trainer.estimators.c_ips.fit import CIpsResult, fit_c_ips, score
from trainer.estimators.c_ips.model import RELEVANCE, CIpsModel, RatingsData
from trainer.estimators.interface import Estimator
from trainer.progress import Progress

__all__ = ["CIps", "CIpsModel", "CIpsResult", "RELEVANCE", "RatingsData", "fit_c_ips", "score"]


class CIps(Estimator):
    """``model.name: c_ips``: Algorithm 2 on the observed pairs of the train shards."""

    def build(self, data: TrainingData) -> CIpsModel:
        columns = data.pair_columns()
        c = self.params.c_ips
        return CIpsModel(columns.n_users, columns.n_items, self.params.embedding_dim, c.hidden_units,
                         c.n_clusters, columns.user, columns.item, name=self.name)

    def fit(self, model: CIpsModel, data: TrainingData, model_dir: Path) -> None:
        c = self.params.c_ips
        epochs = c.rounds * (c.rec_epochs + (c.cluster_epochs if c.propensity == "cluster" else 0))
        pairs = observed_pairs(data, model)
        if c.feedback == "implicit":  # the clicks only: x_u and eq. 8 count them, every other pair is unlabeled
            clicked = pairs.labels > 0.5
            pairs = RatingsData(pairs.users[clicked], pairs.items[clicked], pairs.labels[clicked], pairs.n_users,
                                pairs.n_items)
        fit_c_ips(pairs, self.params, data.spec.seed, model=model,
                  progress=Progress(self.name, model_dir, total_epochs=epochs), block=data.spec.train.block)


def observed_pairs(data: TrainingData, model: CIpsModel) -> RatingsData:
    """The train split's observed pairs (o = 1) with their labels r, as ``model``'s ids."""
    o, r = data.spec.labels.selection, data.spec.labels.outcome
    rows = data.read_columns("train", [model.user_feature, model.item_feature, o, r])
    seen = rows[o] > 0.5
    if not seen.any():
        raise ValueError(f"{data.data_dir}/train holds no observed rating ({o} = 1) to train c_ips on")
    n_users, n_items = model.x.shape
    return RatingsData(rows[model.user_feature][seen].astype(np.int64), rows[model.item_feature][seen].astype(np.int64),
                       (rows[r][seen] > 0.5).astype(np.float32), int(n_users), int(n_items))
