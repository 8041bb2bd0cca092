"""One tiny Keras epoch on a batch, for the tests that every estimator trains on every backbone."""
import numpy as np
import tensorflow as tf
import tf_keras

from trainer.estimators import get_estimator

TINY_KNOBS = {"bmse": {"phi": "K"}, "ipw": {"max_weight": 20.0}}


def estimator_knobs(name: str) -> dict:
    """The non-default knobs of the tiny-epoch tests that estimator ``name`` reads (BMSE on K, IPW cap)."""
    return {k: v for k, v in TINY_KNOBS.items() if get_estimator(name).reads(k)}


def random_batch(name: str, make_batch, n: int, click_rate: float) -> dict:
    """``n`` rows over 3 users × 2 items with random clicks (rate ``click_rate``) and conversions among
    them, built by ``make_batch(users, items, o, r)``; plus the potential outcome when ``name`` reads it."""
    rng = np.random.default_rng(0)
    o = (rng.random(n) < click_rate).astype(np.int64)
    batch = make_batch(rng.integers(0, 3, n), rng.integers(0, 2, n), o, o * (rng.random(n) < 0.5))
    if get_estimator(name).needs_potential_outcome:
        batch["gt_conversion"] = tf.cast(batch["conversion"], tf.float32)
    return batch


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
