"""Evaluation on explicit ratings, MNAR train + MAR test (Coat / Yahoo! R3 protocol; seeds 002, 004).

The relevance prediction r̂ = P(rating > threshold | u, v) is the model's ``relevance`` output
(c_ips) or its ``pcvr`` (the CVR family with o = observed, r = label); see
:mod:`trainer.ratings_data`. Metrics, with K in ``eval.ranking_ks``:

    mar_auc, mar_<m>@K     on the MAR ``test`` split (unbiased: items drawn at random per user):
                           AUC of r̂ against the binarised label, and per user m ∈ {ndcg, dcg, recall,
                           map} of the ranking by r̂ of the user's test items (:mod:`trainer.ranking`:
                           ndcg = DCG/IDCG, dcg = Rel-MF's DCG normalised by the relevant items);
    snips_<m>@K            on the observed rows of the MNAR ``eval`` split: the self-normalised IPS
                           estimate of the same metrics with Rel-MF's popularity propensity
                           p̂(v) = (n(v)/max n)^eval.snips_power, n(v) = observed train rows of v (the
                           same weights for every model, so it ranks models, seed 004's model selection);
    propensity_auc,        models that predict a propensity p̂ = pctr = P(observed | u, v): on every eval
    bmse_1, bmse_r         row, observed or not, the AUC of p̂ against o and the balancing diagnostic
                           BMSE(φ, p̂) of seed 002 §3.3 with φ = 1 and φ = r̂ (:func:`trainer.metrics.bmse`);
                           it needs unobserved eval rows (``data.ratings.unobserved``), NaN without.

Counts: ``mar_rows``, ``eval_rows`` (observed and not), ``eval_observed``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow_transform as tft

from ctrcvr.config import Config
from trainer import metrics as m
from trainer.evaluate import predict_split
from trainer.ranking import popularity_propensity, ranking_metrics
from trainer.ratings_data import PROPENSITY, RELEVANCE_OUTPUTS, PairColumns, read_columns

log = logging.getLogger(__name__)


def ratings_metrics(model, config: Config, data_dir) -> dict[str, float]:
    """The module's metrics for ``model`` on ``data_dir``'s test and eval splits."""
    columns = PairColumns.from_config(config, tft.TFTransformOutput(str(data_dir)))
    o, r = config.labels.selection, config.labels.outcome
    ks = config.eval.ranking_ks
    out: dict[str, float] = {}
    if _has_split(data_dir, "test"):
        test = predict_split(model, config, data_dir, "test", extra=(columns.user, columns.item))
        r_hat = relevance(test)
        out.update(mar_rows=int(len(test)), mar_auc=m.auc(test[r], r_hat))
        out.update(_prefixed("mar", ranking_metrics(test[columns.user], r_hat, test[r], ks)))
    else:
        log.warning("ratings evaluation: %s has no test split (MAR test_files), so no unbiased metrics", data_dir)
    frame = predict_split(model, config, data_dir, "eval", extra=(columns.user, columns.item))
    seen = frame[o].to_numpy() > 0.5
    out.update(eval_rows=int(len(frame)), eval_observed=int(seen.sum()))
    out.update(_prefixed("snips", snips_ranking(frame[seen], config, data_dir, columns)))
    if PROPENSITY in frame:
        p_hat, r_hat = frame[PROPENSITY].to_numpy(), relevance(frame)
        out.update(propensity_auc=m.auc(frame[o], p_hat), bmse_1=m.bmse(frame[o], p_hat),
                   bmse_r=m.bmse(frame[o], p_hat, r_hat))
    return {k: (round(float(v), 6) if isinstance(v, float) else v) for k, v in out.items()}


def relevance(frame: pd.DataFrame) -> np.ndarray:
    """The relevance prediction among the model's outputs (``RELEVANCE_OUTPUTS``, first found)."""
    for name in RELEVANCE_OUTPUTS:
        if name in frame:
            return frame[name].to_numpy()
    raise KeyError(f"the model serves none of {', '.join(RELEVANCE_OUTPUTS)}: it cannot rank ratings")


def snips_ranking(observed: pd.DataFrame, config: Config, data_dir, columns: PairColumns) -> dict[str, float]:
    """SNIPS ranking metrics on observed MNAR rows, weights 1/p̂(v) from the train split's item counts."""
    train = read_columns(data_dir, "train", [columns.item, config.labels.selection])
    train_items = train[columns.item][train[config.labels.selection] > 0.5].astype(np.int64)
    items = observed[columns.item].to_numpy().astype(np.int64)
    if not len(items) or not len(train_items):
        return {}
    n_items = int(max(train_items.max(), items.max())) + 1
    weights = 1.0 / popularity_propensity(train_items, items, n_items, config.eval.snips_power)
    return ranking_metrics(observed[columns.user], relevance(observed), observed[config.labels.outcome],
                           config.eval.ranking_ks, weights=weights)


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}_{name.lower()}": value for name, value in metrics.items()}


def _has_split(data_dir, split: str) -> bool:
    return any(Path(data_dir, split).glob("*.tfrecord.gz"))
