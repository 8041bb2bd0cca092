"""Warmup requests: TF Serving replays ``assets.extra/tf_serving_warmup_requests`` at load time.

They are built from real raw rows: ``serving_default`` with one row and with all of them, and
``predict_raw`` with the same rows, so ``serve-check`` can also check that both signatures agree.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ctrcvr.serving.client import to_raw_examples, to_raw_tensors
from transforms.schema import Schema

EXAMPLES_INPUT = "examples"  # the input name of serving_default (trainer.export)
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"


def warmup_requests(rows: pd.DataFrame, schema: Schema) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(signature, inputs) pairs for real raw rows: ``serving_default`` on the first row and on all of
    them, ``predict_raw`` on all of them (the same rows: ``serve-check`` compares the two)."""
    examples = np.array(to_raw_examples(rows, schema), dtype=object)
    return [("serving_default", {EXAMPLES_INPUT: examples[:1]}), ("serving_default", {EXAMPLES_INPUT: examples}),
            ("predict_raw", to_raw_tensors(rows, schema))]


def write_warmup_requests(version_dir, model_name: str, requests: list[tuple[str, dict[str, np.ndarray]]]) -> Path:
    """TF Serving replays these PredictionLogs at load time, so the first real request is fast."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    path = Path(version_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            for name, value in inputs.items():
                dtype = tf.string if value.dtype == object else tf.as_dtype(value.dtype)
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value, dtype=dtype, shape=value.shape))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(version_dir) -> list:
    """The PredictRequests stored in a version's warmup file."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2
    requests = []
    for record in tf.data.TFRecordDataset(str(Path(version_dir) / WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        requests.append(log.predict_log.request)
    return requests
