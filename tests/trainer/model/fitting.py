"""One tiny Keras epoch on a batch, for the tests that every estimator trains on every backbone."""
import numpy as np
import tensorflow as tf
import tf_keras


def fit_one_epoch(model, batch):
    """Builds ``model`` on ``batch``, fits one epoch on it (batches of 16, Adam 0.01, eagerly); returns
    (the trainable variables' values before, the training loss per step)."""
    model(batch)
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.compile(optimizer=tf_keras.optimizers.legacy.Adam(0.01), run_eagerly=True)
    history = model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(16), epochs=1, verbose=0)
    return before, np.asarray(history.history["loss"])


def changed_variables(model, before) -> int:
    """How many trainable variables moved away from their values in ``before``."""
    return sum(not np.allclose(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
