"""``ctrcvr compare``: several estimators × seeds on the SAME preprocessed data, tabulated as in a paper.

The data are simulated (when the source is simulated) and preprocessed once; then every model in
``compare.models`` is trained ``compare.seeds`` times (seeds ``config.seed``, ``config.seed + 1``, ...:
initialisation and shuffling change, the data do not) and evaluated on the eval split (ratings: and
the MAR test split). An entry is an estimator name or a named variant with config overrides,
``{label: "C-IPS K=1", model: c_ips, set: {model.c_ips.n_clusters: 1}}``; every run's config is
built and validated before anything is simulated or trained, so a typo fails at once, naming the
entry and the key. ``compare.sweeps`` trains an estimator over the values of a knob it declares
(e.g. Multi-IPW's τ% and Multi-DR's λ, seed 003 Fig. 6); the estimator says what a knob sets.

Outputs under the output directory:
    data/                      raw and preprocessed data (unless ``data_dir`` is given)
    models/<run>/seed<k>/      weights, logs and metrics.json of each run
    runs.csv                   one row per (run, seed) with every metric (written as runs finish)
    summary.md, summary.csv    mean ± std per model and metric
    compare.png                the headline metrics per model, mean ± std
    sweep_<model>_<knob>.png, sweeps.md                         when sweeps are configured
    tuning/<run>/<point>/seed<k>/, tuning.csv, tuned.md         with ``compare.tune``: every entry is
                               first tuned (``tune.space`` + its ``space``, scored by ``tune.metric`` on
                               the validation split), then its seeds run at the chosen point
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Optional

import pandas as pd

from ctrcvr import tables, workflow
from ctrcvr import tune as tuning
from ctrcvr.plots import plot_summary, plot_sweep
from ctrcvr.config import Config, ConfigError, SweepConfig, dump_config
from ctrcvr.output_dir import prepare_output_dir
from ctrcvr.variants import variant

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Run:
    """One trained model: ``label`` names it in tables (the model name, or e.g. ``multi_ipw τ%=0.5``)."""

    label: str
    config: Config
    seed_index: int
    sweep: Optional[str] = None
    value: Optional[float] = None


def compare(config: Config, out_dir, overwrite: bool = False, data_dir=None) -> dict:
    """Plans and validates every run, prepares the data once (unless ``data_dir`` reuses a preprocess
    output), trains and evaluates every run, writes the tables and plots."""
    runs = plan_runs(config)
    tuning = plan_tuning(config) if config.compare.tune else []
    out = prepare_output_dir(out_dir, overwrite, inputs=[data_dir, *workflow.input_files(config)])
    dump_config(config, out / workflow.RESOLVED_CONFIG)
    if data_dir is None:
        data_dir = workflow.prepare_data(config, out / "data")
    if tuning:
        runs = plan_runs(config, tune_entries(config, tuning, data_dir, out))
    rows = train_runs(runs, data_dir, out)
    return write_outputs(pd.DataFrame(rows), config, out)


def plan_runs(config: Config, chosen: Optional[dict[int, dict]] = None) -> list[Run]:
    """Every (model or variant, seed) of ``compare.models`` (at its tuned point in ``chosen``, by entry
    index), then the sweep points; all validated."""
    c = config.compare
    if not c.models and not c.sweeps:
        raise ConfigError("compare.models is empty: name the estimators (or variants) to compare")
    runs = []
    for i, entry in enumerate(c.models):
        source = f"compare.models[{i}] ({entry.name!r})"
        _estimator(entry.model, source)
        overrides = {**entry.set, **(chosen or {}).get(i, {})}
        runs += [Run(entry.name, variant(config, k, entry.model, overrides, source), k) for k in range(c.seeds)]
    for i, sweep in enumerate(c.sweeps):
        source = f"compare.sweeps[{i}] ({sweep.model} {sweep.knob})"
        knob = _knob(sweep, source)
        for value in sweep.values:
            runs += [Run(f"{sweep.model} {sweep.knob}={value:g}", variant(
                config, k, sweep.model, knob.overrides(value), source), k, sweep_name(sweep), value)
                for k in range(sweep.seeds or c.seeds)]
    return runs


def sweep_name(sweep: SweepConfig) -> str:
    """How a sweep's runs, plot and table are named: ``<model>_<knob>``."""
    return f"{sweep.model}_{sweep.knob}"


def _estimator(name: str, source: str):
    from trainer.estimators import get_estimator
    try:
        return get_estimator(name)
    except KeyError as err:
        raise ConfigError(f"{source}: {err.args[0]}") from None


def _knob(sweep: SweepConfig, source: str):
    """The knob the estimator declares for ``sweep.knob``; an error listing its knobs otherwise."""
    knobs = _estimator(sweep.model, source).sweeps
    if sweep.knob not in knobs:
        raise ConfigError(f"{source}: {sweep.model} declares no knob {sweep.knob!r} "
                          f"(its knobs: {', '.join(knobs) or 'none'})")
    return knobs[sweep.knob]


def plan_tuning(config: Config) -> list[tuple[int, int, dict, Config]]:
    """(entry index, point index, point, config) of every tuning trial of every ``compare.models`` entry:
    ``tune.space`` + the entry's ``space`` on top of its ``set``; all validated before anything runs."""
    trials = []
    for i, entry in enumerate(config.compare.models):
        source = f"compare.models[{i}] ({entry.name!r}) tuning"
        for j, point, trial in tuning.plan_trials(config, entry.model, entry.set, entry.space, source):
            trials.append((i, j, point, trial))
    return trials


def tune_entries(config: Config, trials: list, data_dir, out: Path) -> dict[int, dict]:
    """Trains every tuning trial (``tuning/<entry>/<point>/seed<k>``), picks each entry's best point on
    ``tune.metric``; writes ``tuning.csv`` (every trial) and ``tuned.md`` (every entry's points, the chosen
    marked). Returns {entry index: chosen point}."""
    rows: dict[int, list[dict]] = {}
    flat: list[dict] = []

    def record(n: int, metrics: dict, seconds: float) -> None:
        i, j, point, trial = trials[n]
        row = tuning.trial_row(config, j, point, trial, metrics, seconds)
        rows.setdefault(i, []).append(row)
        flat.append({"run": config.compare.models[i].name, **row})
        pd.DataFrame(flat).to_csv(out / "tuning.csv", index=False)

    entries = config.compare.models
    jobs = [(f"tuning {entries[i].name} point {j + 1} {point} seed {trial.seed}", trial,
             out / "tuning" / _slug(entries[i].name) / str(j) / f"seed{trial.seed}") for i, j, point, trial in trials]
    workflow.train_many(jobs, data_dir, on_done=record)
    chosen, sections = {}, []
    for i, entry in enumerate(entries):
        keys = list({**config.tune.space, **entry.space})
        best, scores = tuning.score_points(config, rows[i], keys)
        chosen[i] = next(point for k, j, point, _ in trials if k == i and j == best)
        scores.insert(0, "chosen", ["←" if j == best else "" for j in scores.index])
        sections.append(f"## {entry.name}: chosen {chosen[i]}\n\n{tables.markdown(scores)}")
        log.info("compare: %s tuned on %s: %s", entry.name, config.tune.metric, chosen[i])
    (out / "tuned.md").write_text(f"# ctrcvr compare: each entry tuned on {config.tune.metric} "
                                  f"(mean over {config.tune.seeds} seed(s) per point)\n\n" + "\n\n".join(sections) + "\n")
    return chosen


def train_runs(runs: list[Run], data_dir, out: Path) -> list[dict]:
    """Trains and evaluates each run in turn (:func:`ctrcvr.workflow.train_many`); appends its metrics to
    ``runs.csv`` as soon as it is done."""
    rows: list[dict] = []

    def record(i: int, metrics: dict, seconds: float) -> None:
        run = runs[i]
        rows.append({"run": run.label, "model": run.config.model.name, "seed": run.config.seed,
                     "sweep": run.sweep, "value": run.value, "train_seconds": round(seconds, 1), **metrics})
        pd.DataFrame(rows).to_csv(out / "runs.csv", index=False)

    jobs = [(f"{run.label}, seed {run.config.seed}", run.config,
             out / "models" / _slug(run.label) / f"seed{run.seed_index}") for run in runs]
    workflow.train_many(jobs, data_dir, on_done=record)
    return rows


def summarise(runs: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Mean and std over seeds per run label (order of first appearance): columns ``<metric>_mean/_std``."""
    metrics = [m for m in metrics if m in runs]
    grouped = runs.groupby("run", sort=False)[metrics]
    mean, std = grouped.mean(), grouped.std(ddof=1).fillna(0.0)
    table = pd.concat({"mean": mean, "std": std}, axis=1)
    table.columns = [f"{metric}_{stat}" for stat, metric in table.columns]
    table.insert(0, "seeds", grouped.size())
    return table[["seeds"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]]


def write_outputs(runs: pd.DataFrame, config: Config, out: Path) -> dict:
    metrics = config.compare.metrics
    main = runs[runs["sweep"].isna()] if "sweep" in runs else runs
    files = {"runs": out / "runs.csv"}
    if config.compare.tune:
        files.update(tuning=out / "tuning.csv", tuned_md=out / "tuned.md")
    table = ""
    shown = [m for m in metrics if m in runs][:4]
    if len(main):
        summary = summarise(main, metrics)
        summary.to_csv(out / "summary.csv", index_label="model")
        table = tables.mean_std(summary, metrics)
        (out / "summary.md").write_text(f"# ctrcvr compare: mean ± std over seeds on the eval split\n\n{table}\n")
        files.update(summary_md=out / "summary.md", summary_csv=out / "summary.csv")
        if shown:
            files["plot"] = plot_summary(summary, shown, out / "compare.png")
    sweep_tables = []
    for sweep in config.compare.sweeps:
        name = sweep_name(sweep)
        points = runs[runs["sweep"] == name] if "sweep" in runs else runs.iloc[:0]
        if len(points):
            axis = f"{sweep.knob}: {_estimator(sweep.model, name).sweeps[sweep.knob].axis} ({sweep.model})"
            files[f"sweep_{name}"] = plot_sweep(points, shown, axis, out / f"sweep_{name}.png")
            sweep_tables.append(f"## {axis}\n\n" + tables.mean_std(summarise(points, metrics), metrics))
    if sweep_tables:
        (out / "sweeps.md").write_text("\n\n".join(sweep_tables) + "\n")
        files["sweeps_md"] = out / "sweeps.md"
    return {"table": table or "\n\n".join(sweep_tables), "files": {k: str(v) for k, v in files.items()}}


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "._-=" else "_" for c in label)

