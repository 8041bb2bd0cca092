"""Top-K ranking metrics per user, plain (on a MAR test split) or self-normalised IPS (on a biased split).

For one user, items ranked by score (rank k = 1, 2, ...; ties keep the input order), rel_k ∈ {0, 1},
and a weight w_k per item (w ≡ 1 on MAR data; w = 1/p̂ for the SNIPS estimate on MNAR data,
Swaminathan & Joachims 2015):

    DCG@K     = Σ_{k≤K} w_k·rel_k / log2(k + 1)      / Σ_k w_k·rel_k
    Recall@K  = Σ_{k≤K} w_k·rel_k                    / Σ_k w_k·rel_k
    MAP@K     = Σ_{k≤K} w_k·rel_k·Prec@k             / Σ_k w_k·rel_k,   Prec@k = Σ_{j≤k} rel_j / k
    NDCG@K    = Σ_{k≤K} w_k·rel_k / log2(k + 1)      / IDCG@K,   IDCG@K = Σ_{j≤K} g_(j) / log2(j + 1)

DCG, Recall and MAP are normalised by the user's (weighted) relevant items, as in Rel-MF's
evaluation (seed 004's protocol): that DCG is *not* the textbook NDCG, its maximum is below 1 when a
user has several relevant items. NDCG is the standard one, DCG over the ideal DCG of the same items,
g_(j) the j-th largest w·rel of the user (with w ≡ 1: IDCG@K = Σ_{j ≤ min(K, #relevant)} 1/log2(j + 1)),
so a perfect ranking scores 1 (seed 002 reports it as N@K). Every metric is the mean over users
with at least one relevant item; all are invariant to scaling the weights (self-normalised).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd


def ranking_metrics(users, scores, relevance, ks: Sequence[int] = (1, 3, 5),
                    weights: Optional[np.ndarray] = None) -> dict[str, float]:
    """{'NDCG@K', 'DCG@K', 'Recall@K', 'MAP@K'} for each K; SNIPS estimates when ``weights`` (1/p̂) are given."""
    frame = pd.DataFrame({"user": np.asarray(users), "score": np.asarray(scores, np.float64),
                          "rel": (np.asarray(relevance, np.float64) > 0.5).astype(np.float64),
                          "w": np.ones(len(users)) if weights is None else np.asarray(weights, np.float64)})
    frame["wrel"] = frame["w"] * frame["rel"]
    frame["ideal"] = frame.sort_values(["user", "wrel"], ascending=[True, False], kind="stable") \
        .groupby("user").cumcount() + 1  # rank of the item in the user's ideal ordering
    frame = frame.sort_values(["user", "score"], ascending=[True, False], kind="stable")
    frame["rank"] = frame.groupby("user").cumcount() + 1
    frame["hits"] = frame.groupby("user")["rel"].cumsum()
    norm = frame.groupby("user")["wrel"].sum()
    users_with_rel = norm.index[norm > 0]
    out = {}
    for k in ks:
        top = frame[frame["rank"] <= k]
        dcg = (top["wrel"] / np.log2(top["rank"] + 1)).groupby(top["user"]).sum().reindex(users_with_rel,
                                                                                           fill_value=0.0)
        ideal = frame[frame["ideal"] <= k]
        idcg = (ideal["wrel"] / np.log2(ideal["ideal"] + 1)).groupby(ideal["user"]).sum().reindex(users_with_rel)
        out[f"NDCG@{k}"] = float((dcg / idcg).mean())
        parts = {"DCG": top["wrel"] / np.log2(top["rank"] + 1),
                 "Recall": top["wrel"],
                 "MAP": top["wrel"] * top["hits"] / top["rank"]}
        for name, values in parts.items():
            per_user = values.groupby(top["user"]).sum().reindex(users_with_rel, fill_value=0.0)
            out[f"{name}@{k}"] = float((per_user / norm.loc[users_with_rel]).mean())
    return out


def popularity_propensity(train_items: np.ndarray, items: np.ndarray, n_items: int, power: float = 0.5) -> np.ndarray:
    """p̂(v) = (n(v) / max_v' n(v'))^power from training counts (Rel-MF's SNIPS propensity), floored at 1/max n."""
    counts = np.bincount(np.asarray(train_items), minlength=n_items).astype(np.float64)
    p = np.maximum(counts, 1.0) / counts.max()
    return p[np.asarray(items)] ** power
