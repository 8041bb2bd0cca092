"""Evaluation on explicit ratings, MNAR train + MAR test (Coat / Yahoo! R3 protocol; seeds 002, 004).

The relevance prediction r̂ = P(rating > threshold | u, v) is the model's ``relevance`` output
or its ``pcvr`` (the CVR family with o = observed, r = label, ``pctr`` = P(observed | u, v)). Metrics, with K in ``eval.ranking_ks``:

    mar_auc, mar_<m>@K     on the MAR ``test`` split (unbiased: items drawn at random per user):
                           AUC of r̂ against the binarised label, and per user m ∈ {ndcg, dcg, recall,
                           map} of the ranking by r̂ of the user's test items (:mod:`trainer.evaluation.ranking`:
                           ndcg = DCG/IDCG, dcg = Rel-MF's DCG normalised by the relevant items);
    snips_<m>@K            on the observed rows of the MNAR ``eval`` split: the self-normalised IPS
                           estimate of the same metrics with Rel-MF's popularity propensity
                           p̂(v) = (n(v)/max n)^eval.snips_power, n(v) = observed train rows of v (the
                           same weights for every model, so it ranks models, seed 004's model selection);
    propensity_auc,        models that predict a propensity p̂ = pctr = P(observed | u, v): on every eval
    bmse_1, bmse_r         row, observed or not, the AUC of p̂ against o and the balancing diagnostic
                           BMSE(φ, p̂) of seed 002 §3.3 with φ = 1 and φ = r̂ (:func:`trainer.evaluation.metrics.bmse`);
                           it needs unobserved eval rows (``data.ratings.unobserved``), NaN without.

    validation_auc         on the MAR ``validation`` slice (``eval.validation_fraction`` of the MAR test
                           shards, :mod:`trainer.pairs`), when there is one: what model selection reads;
    mar_rare_<m>@K         with ``eval.rare_items`` (e.g. 0.5): the MAR metrics over the test rows of the
                           least popular items only (seed 004's "non-popular" block).

``eval.test: false`` skips the MAR test split (``ctrcvr tune``'s trials never see it).
Counts: ``mar_rows``, ``validation_rows``, ``eval_rows`` (observed and not), ``eval_observed``.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from trainer.config import TrainerSpec
from trainer.data import PairColumns, TrainingData
from trainer.evaluation import metrics as m
from trainer.evaluation.predict import predict_split
from trainer.evaluation.ranking import popularity_propensity, ranking_metrics

log = logging.getLogger("trainer")
# The named prediction of P(relevant | u, v) = P(rating > labels.rating_threshold), first found: an own
# ratings model's ``relevance``, or the CVR family's ``pcvr``; ``pctr`` = P(observed | u, v) where served.
RELEVANCE_OUTPUTS = ("relevance", "pcvr")
PROPENSITY = "pctr"


def ratings_metrics(model, spec: TrainerSpec, data_dir) -> dict[str, float]:
    """The module's metrics for ``model`` on ``data_dir``'s test and eval splits."""
    data = TrainingData(spec, data_dir)
    columns = data.pair_columns()
    o, r = spec.labels.selection, spec.labels.outcome
    ks = spec.eval.ranking_ks
    pair = (columns.user, columns.item)
    out: dict[str, float] = {}
    if data.has_split("validation"):
        val = predict_split(model, spec, data_dir, "validation", extra=pair)
        out.update(validation_rows=int(len(val)), validation_auc=m.auc(val[r], relevance(val)))
    if not data.has_split("test"):
        log.warning("ratings evaluation: %s has no test split (MAR test_files), so no unbiased metrics", data_dir)
    elif spec.eval.test:
        test = predict_split(model, spec, data_dir, "test", extra=pair)
        r_hat = relevance(test)
        out.update(mar_rows=int(len(test)), mar_auc=m.auc(test[r], r_hat))
        out.update(_prefixed("mar", ranking_metrics(test[columns.user], r_hat, test[r], ks)))
        if spec.eval.rare_items is not None:
            rare = np.isin(test[columns.item].to_numpy().astype(np.int64), rare_items(data, columns, spec.eval.rare_items))
            out.update(mar_rare_rows=int(rare.sum()), mar_rare_auc=m.auc(test[r][rare], r_hat[rare]))
            out.update(_prefixed("mar_rare", ranking_metrics(test[columns.user][rare], r_hat[rare], test[r][rare], ks)))
    frame = predict_split(model, spec, data_dir, "eval", extra=pair)
    seen = frame[o].to_numpy() > 0.5
    out.update(eval_rows=int(len(frame)), eval_observed=int(seen.sum()))
    out.update(_prefixed("snips", snips_ranking(frame[seen], data, columns)))
    if PROPENSITY in frame:
        p_hat, r_hat = frame[PROPENSITY].to_numpy(), relevance(frame)
        out.update(propensity_auc=m.auc(frame[o], p_hat), bmse_1=m.bmse(frame[o], p_hat),
                   bmse_r=m.bmse(frame[o], p_hat, r_hat))
    return m.rounded(out)


def rare_items(data: TrainingData, columns: PairColumns, share: float) -> np.ndarray:
    """The ids of the ``share`` least popular items by observed train interactions (seed 004: 500 of
    Yahoo! R3's 1,000 songs; ties broken by id), counting items never seen in train as 0."""
    labels = data.spec.labels
    train = data.read_columns("train", [columns.item, labels.selection])
    counts = np.bincount(train[columns.item][train[labels.selection] > 0.5].astype(np.int64), minlength=columns.n_items)
    return np.argsort(counts, kind="stable")[:int(round(share * columns.n_items))]


def split_metric(model, spec: TrainerSpec, data_dir, split: str, metric: str) -> float:
    """One metric of ``model`` on ``split`` (model selection, ``train.select``): on ``validation`` (MAR)
    plain; on ``eval`` (MNAR) over the observed rows, ranking metrics as SNIPS estimates."""
    data = TrainingData(spec, data_dir)
    columns = data.pair_columns()
    frame = predict_split(model, spec, data_dir, split, extra=(columns.user, columns.item))
    if split == "eval":
        frame = frame[frame[spec.labels.selection].to_numpy() > 0.5]
    r, r_hat = frame[spec.labels.outcome].to_numpy(), relevance(frame)
    if metric == "auc":
        return m.auc(r, r_hat)
    if metric == "logloss":
        p = np.clip(r_hat, 1e-7, 1 - 1e-7)
        return float(-np.mean(r * np.log(p) + (1 - r) * np.log(1 - p)))
    name, k = metric.split("@")
    if split == "eval":
        ranked = snips_ranking(frame, data, columns, ks=(int(k),))
    else:
        ranked = ranking_metrics(frame[columns.user], r_hat, r, (int(k),))
    return float({key.lower(): v for key, v in ranked.items()}[metric])


def relevance(frame: pd.DataFrame) -> np.ndarray:
    """The relevance prediction among the model's outputs (``RELEVANCE_OUTPUTS``, first found)."""
    for name in RELEVANCE_OUTPUTS:
        if name in frame:
            return frame[name].to_numpy()
    raise KeyError(f"the model serves none of {', '.join(RELEVANCE_OUTPUTS)}: it cannot rank ratings")


def snips_ranking(observed: pd.DataFrame, data: TrainingData, columns: PairColumns, ks=None) -> dict[str, float]:
    """SNIPS ranking metrics on observed MNAR rows, weights 1/p̂(v) from the train split's item counts."""
    labels, ev = data.spec.labels, data.spec.eval
    train = data.read_columns("train", [columns.item, labels.selection])
    train_items = train[columns.item][train[labels.selection] > 0.5].astype(np.int64)
    items = observed[columns.item].to_numpy().astype(np.int64)
    if not len(items) or not len(train_items):
        return {}
    n_items = int(max(train_items.max(), items.max())) + 1
    weights = 1.0 / popularity_propensity(train_items, items, n_items, ev.snips_power)
    return ranking_metrics(observed[columns.user], relevance(observed), observed[labels.outcome],
                           ks or ev.ranking_ks, weights=weights)


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}_{name.lower()}": value for name, value in metrics.items()}
