"""The one Markdown table writer: metrics of a run, compare summaries, benchmark results.

No tabulate dependency: GitHub Markdown, floats to four decimals unless told otherwise,
``-`` for a missing value, ``mean ± std`` cells for seed summaries.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd


def markdown(frame: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """The frame as a GitHub Markdown table, its index as the first column."""
    head = [str(frame.index.name or "")] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([cell(i, floatfmt)] + [cell(v, floatfmt) for v in row]) + " |"
              for i, row in zip(frame.index, frame.itertuples(index=False))]
    return "\n".join(lines)


def metrics_by_model(results: dict[str, dict[str, Any]]) -> str:
    """One column per model, one row per metric (the metrics of the first model, in its order)."""
    keys = list(next(iter(results.values()), {}))
    frame = pd.DataFrame({name: pd.Series([metrics.get(k) for k in keys], dtype=object)
                          for name, metrics in results.items()})
    frame.index = pd.Index(keys, name="metric")
    return markdown(frame)


def mean_std(summary: pd.DataFrame, metrics: Sequence[str]) -> str:
    """A seed summary (columns ``seeds``, ``<metric>_mean``, ``<metric>_std``): one row per model,
    one column per metric, cells ``mean ± std`` (seed 003 Table 3 style)."""
    shown = [m for m in metrics if f"{m}_mean" in summary]
    frame = pd.DataFrame({"seeds": summary["seeds"].astype(int),
                          **{m: [plus_minus(a, b) for a, b in zip(summary[f"{m}_mean"], summary[f"{m}_std"])]
                             for m in shown}}, index=pd.Index(summary.index, name="model"))
    return markdown(frame)


def plus_minus(mean, std) -> str:
    """``0.7000 ± 0.0100``, or ``-`` when the mean is missing."""
    if _missing(mean):
        return "-"
    return f"{mean:.4f} ± {0.0 if _missing(std) else std:.4f}"


def cell(value, floatfmt: str = ".4f") -> str:
    if _missing(value):
        return "-"
    return format(value, floatfmt) if isinstance(value, float) else str(value)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
