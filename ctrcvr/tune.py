"""``ctrcvr tune``: grid or random search over named config keys (the ``tune`` section), seed 002's protocol.

    for each point of tune.space (every combination, or tune.trials random draws):
        train tune.seeds models with the point's keys set and eval.test off (trials never see the test split)
        score = mean over seeds of tune.metric (validation_auc by default: the MAR validation slice)
    the best point: its config written out (chosen.yaml), its first seed's model evaluated once on the test split

The loop is :func:`ctrcvr.workflow.train_many` (the one behind ``run`` and ``compare``); a point is a
``compare`` variant (:func:`ctrcvr.variants.variant`), validated before anything is trained.
No search library: optuna / keras-tuner are not in the pinned stack, and grid and random draws over
a handful of keys are a few lines; the model selection inside a trial is ``train.select``.

Outputs under the output directory:
    data/                              raw and preprocessed data (unless --data-dir reuses one)
    trials/<k>/seed<s>/                each trial's model, logs and metrics.json
    trials.csv                         one row per (point, seed): the keys' values and every metric
    results.md                         one row per point, mean score, the chosen one marked
    chosen.yaml, chosen_metrics.json   the chosen config (test on) and its test metrics
"""
from __future__ import annotations

import itertools
import json
import logging
import random
from typing import Optional

import pandas as pd

from ctrcvr import tables, workflow
from ctrcvr.variants import variant
from ctrcvr.config import Config, ConfigError, dump_config
from ctrcvr.output_dir import prepare_output_dir

log = logging.getLogger("ctrcvr")


def plan_points(config: Config, extra_space: Optional[dict] = None) -> list[dict]:
    """The search points: dicts {dotted key: value}, in the order they are tried (``extra_space``: keys
    searched besides ``tune.space``, a compare entry's own)."""
    t = config.tune
    space = {**t.space, **(extra_space or {})}
    if not space:
        raise ConfigError("tune.space is empty: name the config keys to search and their values")
    keys = list(space)
    grid = [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]
    if t.method == "random":
        rng = random.Random(config.seed)
        return [{k: rng.choice(space[k]) for k in keys} for _ in range(t.trials or len(grid))]
    return grid[:t.trials] if t.trials else grid


def plan_trials(config: Config, model: Optional[str] = None, fixed: Optional[dict] = None,
                extra_space: Optional[dict] = None, source: str = "tune") -> list[tuple[int, dict, Config]]:
    """(point index, point, config) for every point × seed, each validated (eval.test off): ``model``
    (default ``model.name``) with the ``fixed`` overrides and the point's keys."""
    trials = []
    for i, point in enumerate(plan_points(config, extra_space)):
        for k in range(config.tune.seeds):
            trials.append((i, point, variant(config, k, model or config.model.name,
                                              {**(fixed or {}), **point, "eval.test": False},
                                              f"{source} point {i} {point}")))
    return trials


def score_points(config: Config, rows: list[dict], keys: list[str]) -> tuple[int, pd.DataFrame]:
    """(best point, per-point table of ``tune.metric`` mean / std / seeds) from the trials' rows."""
    metric = config.tune.metric
    frame = pd.DataFrame(rows)
    scores = frame.groupby("point", sort=True).agg({**{k: "first" for k in keys}, metric: ["mean", "std", "size"]})
    scores.columns = keys + [f"{metric}_mean", f"{metric}_std", "seeds"]
    if scores[f"{metric}_mean"].isna().all():
        raise ValueError(f"tune.metric={metric!r} is undefined (NaN) for every point: the validation slice has "
                         "one class only; raise eval.validation_fraction or select on another metric")
    mean = scores[f"{metric}_mean"]
    best = int(mean.idxmax() if config.tune.higher_is_better else mean.idxmin())
    return best, scores


def trial_row(config: Config, point_index: int, point: dict, trial: Config, metrics: dict, seconds: float) -> dict:
    """One trials.csv row; the trial's metrics must hold ``tune.metric``."""
    metric = config.tune.metric
    if metric not in metrics:
        raise ConfigError(f"tune.metric={metric!r} is not among the trial's metrics: {', '.join(metrics)}")
    return {"point": point_index, **point, "seed": trial.seed, metric: metrics[metric],
            "train_seconds": round(seconds, 1), **{k: v for k, v in metrics.items() if k != metric}}


def tune(config: Config, out_dir, overwrite: bool = False, data_dir=None) -> dict:
    trials = plan_trials(config)
    out = prepare_output_dir(out_dir, overwrite)
    dump_config(config, out / workflow.RESOLVED_CONFIG)
    if data_dir is None:
        data_dir = workflow.prepare_data(config, out / "data")
    metric, rows = config.tune.metric, []

    def record(j: int, metrics: dict, seconds: float) -> None:
        i, point, cfg = trials[j]
        rows.append(trial_row(config, i, point, cfg, metrics, seconds))
        pd.DataFrame(rows).to_csv(out / "trials.csv", index=False)
        log.info("tune: point %d/%d %s seed %d: %s = %.4f", i + 1, trials[-1][0] + 1, point, cfg.seed, metric,
                 metrics[metric])

    jobs = [(f"tune point {i + 1} {point} seed {cfg.seed}", cfg, out / "trials" / str(i) / f"seed{cfg.seed}")
            for i, point, cfg in trials]
    workflow.train_many(jobs, data_dir, on_done=record)
    best, scores = score_points(config, rows, list(config.tune.space))
    _, point, trial = next(t for t in trials if t[0] == best)
    chosen = trial.model_copy(update={"eval": trial.eval.model_copy(update={"test": True}), "seed": config.seed})
    dump_config(chosen, out / "chosen.yaml")
    test = workflow.evaluate(chosen, data_dir, out / "trials" / str(best) / f"seed{trial.seed}", out_dir=out / "chosen")
    (out / "chosen_metrics.json").write_text(json.dumps({"point": point, **test}, indent=2))
    scores.insert(0, "chosen", ["←" if i == best else "" for i in scores.index])
    table = tables.markdown(scores)
    (out / "results.md").write_text(f"# ctrcvr tune: {metric} per point (mean over seeds)\n\n{table}\n\n"
                                    f"chosen: {point}\n\ntest split, evaluated once: {json.dumps(test)}\n")
    return {"table": table, "chosen": point, "test": test,
            "files": {name: str(out / name) for name in ("trials.csv", "results.md", "chosen.yaml",
                                                          "chosen_metrics.json")}}
