"""Questionnaire evaluation (seed 001 §5.1.2, Table 1), plus what only a simulator can give.

Table 1 protocol, per user, on the ranking score ŷ (``score``): every answered item of a user that is
graded above some other answered item of the same user is a *positive*; its group is the positive and
the user's answered items graded below it (the *negatives*). The group is ranked by ŷ (a tie counts
against the positive) and, with gains 2^rel − 1 (SAQRec; rel = the answer grade, satisfied 1 and
dissatisfied 0 when ``uncertain`` answers are excluded, 2 / 1 / 0 when they sit in the middle):

    q_hr@K    1[rank of the positive ≤ K]          q_mrr   1 / rank of the positive
    q_ndcg@K  DCG@K / IDCG@K of the group

averaged over a user's groups, then over users (users with at least one group). Simulated data only:

    gt_ndcg@K            NDCG@K of ŷ over each whole request with gains gt_satisfaction, mean over requests
    sat_gt_ndcg@K        the same for ŝ (``satisfaction``): how well the satisfaction pathway ranks
    top_gt_satisfaction  mean gt_satisfaction of each request's top-ranked item
Behaviour (the main task must not regress): ``play_auc`` (AUC of ŷ on valid plays), ``top_watch_seconds``
and ``top_play_rate`` (watch time and play of each request's top-ranked item).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from trainer.evaluation import metrics as m

USER, REQUEST = "user_id", "request_id"
EXTRA = ("request_id", "play", "like", "watch_seconds", "watch_ratio", "day")  # read beside the labels


def questionnaire_task_metrics(model, spec, data_dir) -> dict[str, float]:
    """:func:`questionnaire_metrics` of ``model``'s predictions on the eval split."""
    from trainer.evaluation.predict import predict_split
    frame = predict_split(model, spec, data_dir, "eval", extra=EXTRA)
    return questionnaire_metrics(frame, spec.model.easq.uncertain, spec.labels.selection, spec.labels.outcome)


def questionnaire_metrics(frame: pd.DataFrame, uncertain: str = "exclude", answered: str = "answered",
                          grade: str = "answer_grade", ks=(5, 10), hr_ks=(1, 5, 10)) -> dict[str, float]:
    """The metrics above from one row per (request, candidate) with ``score`` (and ``satisfaction``)."""
    out: dict[str, float] = {"rows": int(len(frame)), "answers": int(frame[answered].sum())}
    out.update(table1_metrics(frame, uncertain, answered, grade, ks, hr_ks))
    request = _codes(frame[REQUEST])
    if "gt_satisfaction" in frame:
        gt = frame["gt_satisfaction"].to_numpy(np.float64)
        for k in ks:
            out[f"gt_ndcg@{k}"] = request_ndcg(request, frame["score"].to_numpy(np.float64), gt, k)
            if "satisfaction" in frame:
                out[f"sat_gt_ndcg@{k}"] = request_ndcg(request, frame["satisfaction"].to_numpy(np.float64), gt, k)
        out["top_gt_satisfaction"] = float(_top(request, frame["score"].to_numpy(np.float64), gt).mean())
    if "play" in frame:
        play = frame["play"].to_numpy(np.float64)
        out["play_auc"] = m.auc(play, frame["score"].to_numpy(np.float64))
        out["top_play_rate"] = float(_top(request, frame["score"].to_numpy(np.float64), play).mean())
    if "watch_seconds" in frame:
        out["top_watch_seconds"] = float(_top(request, frame["score"].to_numpy(np.float64),
                                              frame["watch_seconds"].to_numpy(np.float64)).mean())
    return m.rounded(out)


def table1_metrics(frame: pd.DataFrame, uncertain: str = "exclude", answered: str = "answered",
                   grade: str = "answer_grade", ks=(5, 10), hr_ks=(1, 5, 10)) -> dict[str, float]:
    """q_ndcg@K, q_hr@K, q_mrr per user on positive–negative questionnaire groups (module docstring)."""
    names = [f"q_ndcg@{k}" for k in ks] + [f"q_hr@{k}" for k in hr_ks] + ["q_mrr"]
    rel = frame[grade].to_numpy(np.float64)
    keep = frame[answered].to_numpy() == 1
    if uncertain == "exclude":
        keep &= rel != 1
        rel = np.where(rel == 2, 1.0, rel)
    users, scores, rel = _codes(frame[USER])[keep], frame["score"].to_numpy(np.float64)[keep], rel[keep]
    per_user: dict[int, list[list[float]]] = {}
    order = np.argsort(users, kind="stable")
    bounds = np.flatnonzero(np.diff(users[order])) + 1
    for idx in np.split(order, bounds) if len(order) else []:
        s, r = scores[idx], rel[idx]
        for p in np.flatnonzero(r > r.min()):
            group = np.append(p, np.flatnonzero(r < r[p]))
            per_user.setdefault(int(users[idx[0]]), []).append(_group_metrics(s[group], r[group], ks, hr_ks))
    if not per_user:
        return {name: float("nan") for name in names} | {"q_users": 0, "q_groups": 0}
    means = np.array([np.mean(groups, axis=0) for groups in per_user.values()])
    return {**dict(zip(names, means.mean(axis=0).tolist())), "q_users": len(per_user),
            "q_groups": int(sum(len(g) for g in per_user.values()))}


def _group_metrics(s: np.ndarray, rel: np.ndarray, ks, hr_ks) -> list[float]:
    """Group with the positive first: [NDCG@K..., HR@K..., RR] (ties rank below the positive's rivals)."""
    rank = 1 + int(np.sum(s[1:] >= s[0]))
    order = np.lexsort((rel, -s))                      # by score; ties: the lower grade first (pessimistic)
    gains, ideal = 2.0 ** rel[order] - 1.0, np.sort(2.0 ** rel - 1.0)[::-1]
    discount = 1.0 / np.log2(np.arange(2, len(s) + 2))
    ndcg = [float(np.sum((gains * discount)[:k]) / np.sum((ideal * discount)[:k])) for k in ks]
    return ndcg + [float(rank <= k) for k in hr_ks] + [1.0 / rank]


def request_ndcg(request: np.ndarray, scores: np.ndarray, gains: np.ndarray, k: int) -> float:
    """Mean over requests of NDCG@k of ``scores`` with linear ``gains`` (requests with a positive gain)."""
    frame = pd.DataFrame({"q": request, "s": scores, "g": gains})
    frame["rank"] = frame.sort_values(["q", "s"], ascending=[True, False], kind="stable").groupby("q").cumcount() + 1
    frame["ideal"] = frame.sort_values(["q", "g"], ascending=[True, False], kind="stable").groupby("q").cumcount() + 1
    dcg = (frame["g"] / np.log2(frame["rank"] + 1)).where(frame["rank"] <= k, 0.0).groupby(frame["q"]).sum()
    idcg = (frame["g"] / np.log2(frame["ideal"] + 1)).where(frame["ideal"] <= k, 0.0).groupby(frame["q"]).sum()
    ok = idcg > 0
    return float((dcg[ok] / idcg[ok]).mean()) if ok.any() else float("nan")


def _top(request: np.ndarray, scores: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` of each request's highest-scored row."""
    order = np.lexsort((-scores, request))
    first = np.ones(len(order), bool)
    first[1:] = request[order][1:] != request[order][:-1]
    return values[order][first]


def _codes(values) -> np.ndarray:
    values = pd.Series(values).map(lambda v: v.decode("utf-8") if isinstance(v, bytes) else v)
    return pd.factorize(values)[0]
