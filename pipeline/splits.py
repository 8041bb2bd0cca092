"""Deterministic split assignment: by a hash of a key, by day, or by file; ``test`` files stay ``test``."""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import SplitConfig

_HASH_BUCKETS = 10_000
KEY_SEPARATOR = "\x1f"  # joins the columns of a multi-column split key


def split_columns(config: SplitConfig) -> dict[str, str]:
    """Extra raw columns the split needs, with their kinds."""
    if config.by == "hash":
        return {key: "string" for key in key_columns(config)}
    if config.by == "day":
        return {config.day_column: "int"}
    return {}


def assign(table: pa.Table, config: SplitConfig, file_split: Optional[str]) -> dict[str, np.ndarray]:
    """``{split: row mask}`` for train / eval / test; every row is in exactly one split.

    Rows of ``test`` files are test; with ``by: files`` the file decides; otherwise the row's
    day, or the hash of its key, decides between train and eval.
    """
    n = table.num_rows
    if file_split == "test":
        return {"test": np.ones(n, dtype=bool)}
    is_eval = eval_mask(table, config, file_split)
    return {"train": ~is_eval, "eval": is_eval}


def eval_mask(table: pa.Table, config: SplitConfig, file_split: Optional[str]) -> np.ndarray:
    """True for rows that belong to the eval split.

    Hash splits use pandas' keyed SipHash of the key's UTF-8 text, which is stable across
    runs, machines, runners and chunkings, so a row lands in the same split every time. A list
    of key columns is hashed as their texts joined by the unit separator U+001F (one column
    hashes exactly as the plain key), e.g. ``[user_id, item_id]`` splits per rating.
    """
    if config.by == "files":
        return np.full(table.num_rows, file_split == "eval")
    if config.by == "day":
        days = table.column(config.day_column).to_numpy()
        return np.isin(days, config.eval_days)
    columns = [table.column(k).cast(pa.string()) for k in key_columns(config)]
    keys = columns[0] if len(columns) == 1 else pc.binary_join_element_wise(*columns, KEY_SEPARATOR)
    keys = keys.to_numpy(zero_copy_only=False)
    buckets = pd.util.hash_array(keys.astype(object), categorize=False) % _HASH_BUCKETS
    return buckets < int(round(config.eval_fraction * _HASH_BUCKETS))


def key_columns(config: SplitConfig) -> list[str]:
    """The columns a hash split reads: ``split.key`` as a list."""
    return [config.key] if isinstance(config.key, str) else list(config.key)
