"""Deterministic train / eval assignment: by a hash of a key, by day, or by file."""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from ctrcvr.config import SplitConfig

_HASH_BUCKETS = 10_000


def split_columns(config: SplitConfig) -> dict[str, str]:
    """Extra raw columns the split needs, with their kinds."""
    if config.by == "hash":
        return {config.key: "string"}
    if config.by == "day":
        return {config.day_column: "int"}
    return {}


def eval_mask(frame: pd.DataFrame, config: SplitConfig, file_split: Optional[str]) -> np.ndarray:
    """True for rows that belong to the eval split.

    Hash splits use pandas' keyed SipHash of the key's text, which is stable across runs,
    machines and runners, so a row lands in the same split every time.
    """
    if config.by == "files":
        return np.full(len(frame), file_split == "eval")
    if config.by == "day":
        return np.isin(frame[config.day_column].to_numpy(), config.eval_days)
    keys = frame[config.key].astype(str).to_numpy(dtype=object)
    buckets = pd.util.hash_array(keys, categorize=False) % _HASH_BUCKETS
    return buckets < int(round(config.eval_fraction * _HASH_BUCKETS))
