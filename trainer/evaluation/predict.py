"""Predictions of a trained model on one split, beside the labels, keys and ground truth: a DataFrame."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from trainer.config import TrainerSpec
from trainer.data import TrainingData


def predict_split(model, spec: TrainerSpec, data_dir, split: str = "eval", extra: Sequence[str] = ()) -> pd.DataFrame:
    """Named predictions next to labels, keys, ground truth and the ``extra`` columns, one row per example."""
    labels = spec.labels
    ds = TrainingData(spec, data_dir).dataset(split, spec.eval.batch_size)
    keep = [labels.selection, labels.outcome, *labels.ground_truth, *labels.keys, *extra]
    # traced once, explicitly, for the dataset's spec (batch dimension open: the last batch is smaller); a
    # tf.function called per batch would retrace on that last batch, and TensorFlow counts the traces of
    # every model's predict_named together, so a process that evaluates several models warns of retracing
    predict = tf.function(model.predict_named).get_concrete_function(ds.element_spec)
    columns: dict[str, list[np.ndarray]] = {}
    for batch in ds:
        outputs = {k: v.numpy() for k, v in predict(batch).items()}
        outputs.update({k: batch[k].numpy() for k in keep if k in batch})
        for k, v in outputs.items():
            columns.setdefault(k, []).append(v.reshape(len(v), -1)[:, 0])
    frame = pd.DataFrame({k: np.concatenate(v) for k, v in columns.items()})
    for key in labels.keys:
        if key in frame and frame[key].dtype == object:
            frame[key] = frame[key].str.decode("utf-8")
    return frame
