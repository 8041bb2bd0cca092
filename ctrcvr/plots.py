"""The plots the commands write (matplotlib, Agg backend, PNG): compare summaries and sweeps, and the
calibration of each model's pCVR by a feature's values (``ctrcvr run``, e.g. by position)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd


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


def calibration_by_slice(stats: dict[str, pd.DataFrame], feature: str, path: Path) -> Path:
    """One line per model: mean predicted pCVR / mean true CVR in each value of ``feature`` (1 = calibrated;
    a line that climbs with the position is a model that learnt the click-selection as a position effect).
    ``stats[model]`` has columns ``value``, ``predicted``, ``truth``, ``rows``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for name, frame in stats.items():
        frame = frame.sort_values("value")
        ax.plot(frame["value"], frame["predicted"] / frame["truth"], marker="o", markersize=3, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    if all(pd.api.types.is_numeric_dtype(f["value"]) for f in stats.values()):
        from matplotlib.ticker import MaxNLocator
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(feature)
    ax.set_ylabel("mean pCVR / mean true CVR")
    ax.set_title(f"calibration of pCVR by {feature} (eval split, every exposure)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def slice_stats(frame: pd.DataFrame, slice_column: str, vocabulary: Optional[list[str]], predicted: str = "pcvr",
                truth: str = "gt_cvr") -> pd.DataFrame:
    """Per value of a vocabulary-encoded feature: mean ``predicted``, mean ``truth``, row count; the value is
    the token (as a number when every token is one, so positions plot in their order), or the id itself
    when the feature has no vocabulary (hashed, bucketized)."""
    grouped = frame.groupby(slice_column).agg(predicted=(predicted, "mean"), truth=(truth, "mean"),
                                              rows=(predicted, "size")).reset_index()
    ids = grouped[slice_column].astype(int)
    tokens = [str(i) for i in ids] if vocabulary is None else [
        vocabulary[i] if 0 <= i < len(vocabulary) else "<oov>" for i in ids]
    numeric = all(t.lstrip("-").isdigit() for t in tokens)
    grouped["value"] = [int(t) for t in tokens] if numeric else tokens
    return grouped[["value", "predicted", "truth", "rows"]]
