"""Run as a script by test_distributed.py (two logical CPU devices must be configured before TensorFlow
starts): one training step of ``argv[1]`` under MirroredStrategy on 2 replicas and one in a single
process, same initial weights, same 64-row batch, SGD; prints the largest weight difference and the largest difference
of the logged loss terms."""
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)
import tf_keras  # noqa: E402

from ctrcvr.config import config_from_dict  # noqa: E402
from trainer.estimators import get_estimator  # noqa: E402
from trainer.model.layers import FeatureEmbedding  # noqa: E402
from trainer.model.multitask import MultiTaskModel  # noqa: E402

FIELDS, ROWS = ("a", "b"), 64


def model_and_batch(name):
    config = config_from_dict({"features": [{"name": f, "kind": "categorical"} for f in FIELDS],
                               "model": {"name": name, "embedding_dim": 4, "tower": {"units": [8]}}})
    estimator = get_estimator(name).create(config.model.switch_to(name))
    tf_keras.utils.set_random_seed(0)
    model = MultiTaskModel(lambda g: FeatureEmbedding(config.features, {"a": 10, "b": 7}, 4, name=f"e_{g}"),
                           estimator, config.labels, True, name=name)
    rng = np.random.default_rng(0)
    batch = {"a_xf": rng.integers(0, 10, ROWS), "b_xf": rng.integers(0, 7, ROWS),
             "click": rng.integers(0, 2, ROWS), "conversion": rng.integers(0, 2, ROWS)}
    batch["conversion"] *= batch["click"]
    model(batch)
    model.compile(optimizer=tf_keras.optimizers.legacy.SGD(0.5))
    return model, tf.data.Dataset.from_tensor_slices(batch).batch(ROWS)


class BatchLogs(tf_keras.callbacks.Callback):
    """The last step's logs as the step function returned them (the epoch's logs may be re-read metrics)."""

    def on_train_batch_end(self, batch, logs=None):
        self.logs = {k: float(v) for k, v in (logs or {}).items()}


name = sys.argv[1]
single, data = model_and_batch(name)
before = [v.numpy() for v in single.weights]  # every variable, metric state included, for the copy
single_logs = BatchLogs()
single.fit(data, epochs=1, verbose=0, callbacks=[single_logs])
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
with strategy.scope():
    mirrored, _ = model_and_batch(name)
    for v, value in zip(mirrored.weights, before):
        v.assign(value)
    mirrored_logs = BatchLogs()
    mirrored.fit(data, epochs=1, verbose=0, callbacks=[mirrored_logs])
start = dict(zip([v.name for v in single.weights], before))
moved = max(float(np.abs(v.numpy() - start[v.name]).max()) for v in single.trainable_variables)
diff = max(float(np.abs(a.numpy() - b.numpy()).max())
           for a, b in zip(single.trainable_variables, mirrored.trainable_variables))
# a step's logs (each replica's returned values, summed by Keras: what progress lines print) are the
# single-process batch's terms
logged = max(abs(single_logs.logs[k] - mirrored_logs.logs[k]) for k in single_logs.logs)
print(f"RESULT moved={moved:.6g} diff={diff:.6g} logged={logged:.6g}")
