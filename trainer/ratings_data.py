"""(user, item) pairs of explicit-ratings data, read back from the preprocessed TFRecord shards.

The ratings task's rows carry o = ``labels.selection`` (observed) and r = ``labels.outcome`` (label =
1[rating > threshold]); the user and item are the first two ``data.ratings.columns``, as features
whose transformed ids (``<name>_xf``, vocabulary + OOV) index the models' tables. Table sizes come
from the transform output, never from the config.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import tensorflow_transform as tft

from ctrcvr.config import Config
from transforms.schema import cardinality, transformed_name
from trainer.input import make_dataset, split_files

# The named prediction of P(relevant | u, v) = P(rating > labels.rating_threshold) that ratings models
# serve. c_ips serves it as ``relevance``; on ratings data the CVR family's ``pcvr`` means the same
# (o = observed, r = relevant), with ``pctr`` = P(observed | u, v) and ``pctcvr`` = P(observed and relevant).
RELEVANCE = "relevance"
RELEVANCE_OUTPUTS = (RELEVANCE, "pcvr")  # looked up in this order
PROPENSITY = "pctr"

@dataclasses.dataclass(frozen=True)
class PairColumns:
    """The transformed id columns of the user and the item, and their table sizes."""

    user: str
    item: str
    n_users: int
    n_items: int

    @classmethod
    def from_config(cls, config: Config, tft_output: tft.TFTransformOutput) -> "PairColumns":
        user, item = config.data.ratings.columns[:2]
        features = {f.name: f for f in config.features}
        for name in (user, item):
            if name not in features or features[name].kind != "categorical" or features[name].multivalued:
                raise ValueError(f"data.ratings.columns names {name!r} as the user / item column: declare it "
                                 f"in features as a (single-valued) categorical feature")
        return cls(transformed_name(user), transformed_name(item),
                   cardinality(features[user], tft_output), cardinality(features[item], tft_output))


def read_columns(data_dir, split: str, columns: Sequence[str], batch_size: int = 65_536) -> dict[str, np.ndarray]:
    """The named columns of every row of ``split``, in file order, as flat numpy arrays."""
    spec = tft.TFTransformOutput(str(data_dir)).transformed_feature_spec()
    missing = [c for c in columns if c not in spec]
    if missing:
        raise KeyError(f"the preprocessed data has no column(s) {', '.join(missing)}")
    ds = make_dataset(split_files(data_dir, split), {c: spec[c] for c in columns}, batch_size)
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    for batch in ds:
        for c in columns:
            parts[c].append(batch[c].numpy().reshape(-1))
    return {c: np.concatenate(v) if v else np.array([]) for c, v in parts.items()}
