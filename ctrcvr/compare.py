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
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Optional

import pandas as pd

from ctrcvr import tables, workflow
from ctrcvr.plots import plot_summary, plot_sweep
from ctrcvr.config import Config, ConfigError, SweepConfig, config_from_dict, dump_config, set_dotted
from ctrcvr.output_dir import prepare_output_dir

log = logging.getLogger(__name__)
VARIANT_SECTIONS = ("model.", "train.", "eval.")  # what a variant may set: the data are shared


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
    out = prepare_output_dir(out_dir, overwrite, inputs=[data_dir, *workflow.input_files(config)])
    dump_config(config, out / workflow.RESOLVED_CONFIG)
    if data_dir is None:
        data_dir = workflow.prepare_data(config, out / "data")
    rows = train_runs(runs, data_dir, out)
    return write_outputs(pd.DataFrame(rows), config, out)


def plan_runs(config: Config) -> list[Run]:
    """Every (model or variant, seed) of ``compare.models``, then the sweep points; all validated."""
    c = config.compare
    if not c.models and not c.sweeps:
        raise ConfigError("compare.models is empty: name the estimators (or variants) to compare")
    runs = []
    for i, entry in enumerate(c.models):
        source = f"compare.models[{i}] ({entry.name!r})"
        _estimator(entry.model, source)
        runs += [Run(entry.name, _variant(config, k, entry.model, entry.set, source), k) for k in range(c.seeds)]
    for i, sweep in enumerate(c.sweeps):
        source = f"compare.sweeps[{i}] ({sweep.model} {sweep.knob})"
        knob = _knob(sweep, source)
        for value in sweep.values:
            runs += [Run(f"{sweep.model} {sweep.knob}={value:g}", _variant(
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


def _variant(config: Config, seed_index: int, name: str, overrides: dict, source: str) -> Config:
    """The config of one run: ``name``, seed + ``seed_index``, the dotted ``overrides`` (under
    ``VARIANT_SECTIONS``), revalidated so that an unknown key or a bad value fails before any training."""
    raw = config.model_dump(mode="json")
    raw["seed"] = config.seed + seed_index
    raw["model"] = config.model.switch_to(name).model_dump(mode="json")  # the keys ``name`` reads
    for dotted, value in overrides.items():
        if not dotted.startswith(VARIANT_SECTIONS) or dotted == "model.name":
            raise ConfigError(f"{source}: cannot set {dotted!r}: a variant sets keys under "
                              f"{', '.join(VARIANT_SECTIONS)} (every run shares the data; the estimator is 'model')")
        set_dotted(raw, dotted, value, source)
    return config_from_dict(raw, source=source)


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

