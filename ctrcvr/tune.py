"""``ctrcvr tune``: grid or random search over named config keys (the ``tune`` section), seed 002's protocol.

    for each point of tune.space (every combination, or tune.trials random draws):
        train tune.seeds models with the point's keys set and eval.test off (trials never see the test split)
        score = mean over seeds of tune.metric (validation_auc by default: the MAR validation slice)
    the best point: its config written out (chosen.yaml), its first seed's model evaluated once on the test split

The loop is :func:`ctrcvr.workflow.train_many` (the one behind ``run`` and ``compare``); a point is a
``compare`` variant (:func:`ctrcvr.compare._variant`), validated before anything is trained.
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

import pandas as pd

from ctrcvr import tables, workflow
from ctrcvr.compare import _variant
from ctrcvr.config import Config, ConfigError, dump_config
from ctrcvr.output_dir import prepare_output_dir

log = logging.getLogger("ctrcvr")


def plan_points(config: Config) -> list[dict]:
    """The search points: dicts {dotted key: value}, in the order they are tried."""
    t = config.tune
    if not t.space:
        raise ConfigError("tune.space is empty: name the config keys to search and their values")
    keys = list(t.space)
    grid = [dict(zip(keys, values)) for values in itertools.product(*(t.space[k] for k in keys))]
    if t.method == "random":
        rng = random.Random(config.seed)
        return [{k: rng.choice(t.space[k]) for k in keys} for _ in range(t.trials or len(grid))]
    return grid[:t.trials] if t.trials else grid


def plan_trials(config: Config) -> list[tuple[int, dict, Config]]:
    """(point index, point, config) for every point × seed, each validated (eval.test off)."""
    trials = []
    for i, point in enumerate(plan_points(config)):
        for k in range(config.tune.seeds):
            trials.append((i, point, _variant(config, k, config.model.name, {**point, "eval.test": False},
                                              f"tune point {i} {point}")))
    return trials


def tune(config: Config, out_dir, overwrite: bool = False, data_dir=None) -> dict:
    trials = plan_trials(config)
    out = prepare_output_dir(out_dir, overwrite)
    dump_config(config, out / workflow.RESOLVED_CONFIG)
    if data_dir is None:
        data_dir = workflow.prepare_data(config, out / "data")
    metric, rows = config.tune.metric, []

    def record(j: int, metrics: dict, seconds: float) -> None:
        i, point, cfg = trials[j]
        if metric not in metrics:
            raise ConfigError(f"tune.metric={metric!r} is not among the trial's metrics: {', '.join(metrics)}")
        rows.append({"point": i, **point, "seed": cfg.seed, metric: metrics[metric], "train_seconds": round(seconds, 1),
                     **{k: v for k, v in metrics.items() if k != metric}})
        pd.DataFrame(rows).to_csv(out / "trials.csv", index=False)
        log.info("tune: point %d/%d %s seed %d: %s = %.4f", i + 1, trials[-1][0] + 1, point, cfg.seed, metric,
                 metrics[metric])

    jobs = [(f"tune point {i + 1} {point} seed {cfg.seed}", cfg, out / "trials" / str(i) / f"seed{cfg.seed}")
            for i, point, cfg in trials]
    workflow.train_many(jobs, data_dir, on_done=record)
    frame = pd.DataFrame(rows)
    keys = list(config.tune.space)
    scores = frame.groupby("point", sort=True).agg({**{k: "first" for k in keys}, metric: ["mean", "std", "size"]})
    scores.columns = keys + [f"{metric}_mean", f"{metric}_std", "seeds"]
    if scores[f"{metric}_mean"].isna().all():
        raise ValueError(f"tune.metric={metric!r} is undefined (NaN) for every point: the validation slice has "
                         "one class only; raise eval.validation_fraction or select on another metric")
    best = int(scores[f"{metric}_mean"].idxmax() if config.tune.higher_is_better else scores[f"{metric}_mean"].idxmin())
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
