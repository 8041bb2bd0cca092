"""Markdown tables for the benchmark scripts (no tabulate dependency)."""
from __future__ import annotations

import pandas as pd


def markdown(frame: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """The frame as a GitHub Markdown table, index as the first column."""
    def cell(v) -> str:
        return format(v, floatfmt) if isinstance(v, float) else str(v)

    head = [str(frame.index.name or "")] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([cell(i)] + [cell(v) for v in row]) + " |"
              for i, row in zip(frame.index, frame.itertuples(index=False))]
    return "\n".join(lines)
