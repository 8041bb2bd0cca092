"""Client-side encoding of raw rows: what a client sends to an exported model.

``serving_default`` takes serialized raw ``tf.Example``s (:func:`to_raw_examples`); ``predict_raw``
takes one named tensor per feature (:func:`to_raw_tensors`), a multivalued feature as a dense
``[batch, max values]`` string matrix padded with ``""`` (:data:`PADDING`). The export's warmup
requests, ``serve-check``, the dev server and the tests all encode rows here.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import pandas as pd

from transforms.schema import Schema
from transforms.schema import FeatureConfig

PADDING = b""  # pads the rows of a multivalued feature's predict_raw matrix; an empty value is no value


def to_raw_examples(rows: pd.DataFrame, schema: Schema) -> list[bytes]:
    """Serialized raw tf.Examples (features only) from a DataFrame of raw rows.

    What a client sends to ``serving_default``; also used for warmup requests and tests.
    Missing columns and null values are left out (the signature fills the defaults; a missing
    multivalued feature is an empty list). A multivalued cell is a list of values or text joined
    by the feature's ``separator``, as in the raw data.
    """
    import tensorflow as tf
    out = []
    for record in rows.to_dict("records"):
        feature = {}
        for f in schema.features:
            values = raw_values(record.get(f.name), f)
            if values is None:
                continue
            if f.kind == "categorical":
                feature[f.name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
            else:
                feature[f.name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        out.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return out


def to_raw_tensors(rows: pd.DataFrame, schema: Schema) -> dict[str, np.ndarray]:
    """``predict_raw``'s inputs for a DataFrame of raw rows: missing values take the feature's
    serving default, multivalued rows are padded with :data:`PADDING` to the longest row."""
    spec = schema.serving_feature_spec()
    records = rows.to_dict("records")
    out = {}
    for f in schema.features:
        cells = [raw_values(r.get(f.name), f) for r in records]
        if f.multivalued:
            out[f.name] = padded_matrix([c or [] for c in cells])
        else:
            default = spec[f.name].default_value
            column = [c[0] if c else default for c in cells]
            if f.kind == "categorical":
                column = [v if isinstance(v, bytes) else str(v).encode() for v in column]
            out[f.name] = np.array(column, dtype=object if f.kind == "categorical" else np.float32)
    return out


def padded_matrix(rows: list[list[bytes]]) -> np.ndarray:
    """Rows of values -> a ``[rows, longest]`` object matrix padded with :data:`PADDING`."""
    matrix = np.full((len(rows), max(map(len, rows), default=0)), PADDING, dtype=object)
    for i, values in enumerate(rows):
        matrix[i, :len(values)] = values
    return matrix


def raw_values(value: Any, feature: FeatureConfig) -> Optional[list]:
    """One raw cell -> its values (bytes for categorical features, floats for numeric ones), or None
    when it is missing. Multivalued text is split on the feature's separator, values are trimmed,
    empty ones left out (as preprocessing reads a text cell)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if feature.kind == "numeric":
        return [float(value)]
    if not feature.multivalued:
        return [value if isinstance(value, bytes) else str(value).encode()]
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    parts = value.split(feature.separator) if isinstance(value, str) else list(value)
    text = [p.decode("utf-8") if isinstance(p, bytes) else str(p) for p in parts]
    return [t.strip().encode() for t in text if t.strip()]
