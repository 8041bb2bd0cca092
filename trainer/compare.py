"""``ctrcvr compare``: several estimators × seeds on the SAME preprocessed data, tabulated as in a paper.

The data are simulated (when the source is simulated) and preprocessed once; then every model in
``compare.models`` is trained ``compare.seeds`` times (seeds ``config.seed``, ``config.seed + 1``, ...:
initialisation and shuffling change, the data do not) and evaluated on the eval split (ratings: and
the MAR test split). An entry is an estimator name or a named variant with config overrides,
``{label: "C-IPS K=1", model: c_ips, set: {model.c_ips.n_clusters: 1}}``; every run's config is
built and validated before anything is simulated or trained, so a typo fails at once, naming the
entry and the key. Optional sweeps train Multi-IPW over ``compare.tau_percent_sweep`` (τ%) and
Multi-DR over ``compare.undersample_sweep`` (λ), as in seed 003 Fig. 6.

Outputs under the output directory:
    data/                      raw and preprocessed data (unless ``data_dir`` is given)
    models/<run>/seed<k>/      weights, logs and metrics.json of each run
    runs.csv                   one row per (run, seed) with every metric (written as runs finish)
    summary.md, summary.csv    mean ± std per model and metric
    compare.png                the headline metrics per model, mean ± std
    sweep_tau_percent.png, sweep_undersample.png, sweeps.md    when the sweeps are configured
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Optional

import pandas as pd

from ctrcvr.config import Config, ConfigError, config_from_dict, set_dotted

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


def compare(config: Config, out_dir, data_dir=None) -> dict:
    """Prepares the data once (unless ``data_dir``), trains and evaluates every run, writes the outputs."""
    from ctrcvr import workflow
    out = Path(out_dir)
    runs = plan_runs(config)
    if data_dir is None:
        raw, data_dir = out / "data" / "raw", out / "data" / "transformed"
        simulated = config.data.source in workflow.SIMULATED_SOURCES
        if simulated:
            workflow.simulate(config, raw)
        workflow.preprocess(config, data_dir, raw_dir=raw if simulated else None)
    rows = train_runs(runs, data_dir, out)
    return write_outputs(pd.DataFrame(rows), config, out)


def plan_runs(config: Config) -> list[Run]:
    """Every (model or variant, seed) of ``compare.models``, then the sweep points; all validated."""
    from trainer.estimators import find_sweep, get_estimator
    c = config.compare
    runs = []
    for i, entry in enumerate(c.models):
        source = f"compare.models[{i}] ({entry.name!r})"
        try:
            get_estimator(entry.model)
        except KeyError as err:
            raise ConfigError(f"{source}: {err.args[0]}") from None
        runs += [Run(entry.name, _variant(config, k, entry.model, entry.set, source), k) for k in range(c.seeds)]
    sweep_seeds = c.sweep_seeds or c.seeds
    for knob, values in _sweeps(config).items():
        spec, sweep = find_sweep(knob)
        source = f"compare.{knob}_sweep"
        runs += [Run(f"{spec.name} {sweep.symbol}={value:g}", _variant(config, k, spec.name, sweep.overrides(value), source),
                     k, knob, value) for value in values for k in range(sweep_seeds)]
    return runs


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


def _sweeps(config: Config) -> dict[str, list[float]]:
    """Sweepable knob -> its values (the knob's estimator is the registry's to say)."""
    return {"tau_percent": config.compare.tau_percent_sweep, "undersample": config.compare.undersample_sweep}


def train_runs(runs: list[Run], data_dir, out: Path) -> list[dict]:
    """Trains and evaluates each run in turn; appends its metrics to ``runs.csv`` as soon as it is done."""
    from ctrcvr.workflow import trainer_spec
    from trainer.evaluation import evaluate
    from trainer.train import train
    rows: list[dict] = []
    for i, run in enumerate(runs, 1):
        model_dir = out / "models" / _slug(run.label) / f"seed{run.seed_index}"
        log.info("[%d/%d] %s, seed %d", i, len(runs), run.label, run.config.seed)
        started = time.time()
        spec = trainer_spec(run.config)
        model = train(spec, data_dir, model_dir)
        metrics = evaluate(model, spec, data_dir, model_dir)
        rows.append({"run": run.label, "model": run.config.model.name, "seed": run.config.seed,
                     "sweep": run.sweep, "value": run.value, "train_seconds": round(time.time() - started, 1),
                     **metrics})
        pd.DataFrame(rows).to_csv(out / "runs.csv", index=False)
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


def markdown_table(summary: pd.DataFrame, metrics: list[str]) -> str:
    """One row per model, one column per metric, cells ``mean ± std`` (seed 003 Table 3 style)."""
    metrics = [m for m in metrics if f"{m}_mean" in summary]
    lines = ["| model | seeds | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for label, row in summary.iterrows():
        cells = [_pm(row[f"{m}_mean"], row[f"{m}_std"]) for m in metrics]
        lines.append(f"| {label} | {int(row['seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(runs: pd.DataFrame, config: Config, out: Path) -> dict:
    metrics = config.compare.metrics
    main = runs[runs["sweep"].isna()] if "sweep" in runs else runs
    summary = summarise(main, metrics)
    summary.to_csv(out / "summary.csv", index_label="model")
    table = markdown_table(summary, metrics)
    (out / "summary.md").write_text(f"# ctrcvr compare: mean ± std over seeds on the eval split\n\n{table}\n")
    files = {"runs": out / "runs.csv", "summary_md": out / "summary.md", "summary_csv": out / "summary.csv"}
    shown = [m for m in metrics if f"{m}_mean" in summary][:4]
    if shown:
        files["plot"] = plot_summary(summary, shown, out / "compare.png")
    sweep_tables = []
    from trainer.estimators import find_sweep
    for sweep in _sweeps(config):
        spec, knob = find_sweep(sweep)
        axis = f"{knob.axis}, {spec.name}"
        points = runs[runs["sweep"] == sweep] if "sweep" in runs else runs.iloc[:0]
        if len(points):
            files[f"sweep_{sweep}"] = plot_sweep(points, shown, axis, out / f"sweep_{sweep}.png")
            sweep_tables.append(f"## {axis}\n\n" + markdown_table(summarise(points, metrics), metrics))
    if sweep_tables:
        (out / "sweeps.md").write_text("\n\n".join(sweep_tables) + "\n")
        files["sweeps_md"] = out / "sweeps.md"
    return {"table": table, "files": {k: str(v) for k, v in files.items()}}


def plot_summary(summary: pd.DataFrame, metrics: list[str], path: Path) -> Path:
    """One panel per metric: a bar per model with ±1 std error bars."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8), squeeze=False)
    labels = list(summary.index)
    for ax, metric in zip(axes[0], metrics):
        ax.bar(range(len(labels)), summary[f"{metric}_mean"], yerr=summary[f"{metric}_std"], capsize=3,
               color="#4c72b0")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_title(metric, fontsize=10)
        low, high = _limits(summary[f"{metric}_mean"], summary[f"{metric}_std"])
        ax.set_ylim(low, high)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"mean ± std over {int(summary['seeds'].max())} seed(s)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sweep(points: pd.DataFrame, metrics: list[str], axis: str, path: Path) -> Path:
    """One panel per metric: mean ± std against the swept value (seed 003 Fig. 6)."""
    plt = _pyplot()
    stats = points.groupby("value")[metrics].agg(["mean", "std"]).fillna(0.0)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        ax.errorbar(stats.index, stats[(metric, "mean")], yerr=stats[(metric, "std")], marker="o", capsize=3)
        ax.set_xlabel(axis, fontsize=9)
        ax.set_title(metric, fontsize=10)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _limits(mean: pd.Series, std: pd.Series) -> tuple[float, float]:
    low, high = float((mean - std).min()), float((mean + std).max())
    pad = max(high - low, 1e-6) * 0.25
    if low > 0.3:  # AUC-like metrics: zoom in on the differences
        return low - pad, high + pad
    return min(low - pad, 0.0), max(high + pad, 0.0)  # errors and biases: keep zero in view


def _pm(mean, std) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return f"{mean:.4f} ± {std:.4f}"


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in label.replace("τ%", "tau_percent")
                   .replace("λ", "lambda"))

