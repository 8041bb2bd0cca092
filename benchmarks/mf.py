"""MF training throughput at the Yahoo! R3 size: ctrcvr's ``base`` estimator on the ``mf`` backbone over the
full matrix in blocks (``train.input: full_matrix``: :func:`trainer.pairs.full_matrix_dataset`, the
generic :class:`trainer.model.multitask.MultiTaskModel`, Keras fit) against a plain TF loop — a hand-written
``tf.function`` step of the same two MF models and the same loss on the same blocks — in the same run.

    .venv/bin/python benchmarks/mf.py                       # 15,400 x 1,000, 311k ratings, 2 timed epochs
    .venv/bin/python benchmarks/mf.py --users 4000 --epochs 1

The ratings are simulated (popularity-skewed MNAR observations, 311k of 15.4M pairs); examples are pairs
(every pair of the matrix is one training example per epoch). Prints examples/s of both and their ratio.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from ctrcvr.console import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # no native start-up noise in the benchmark's output
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from ctrcvr.config import config_from_dict  # noqa: E402
from trainer.estimators import get_estimator  # noqa: E402
from trainer.model.layers import FeatureEmbedding  # noqa: E402
from trainer.model.multitask import MultiTaskModel, build_backbones, group_dims  # noqa: E402
from trainer.pairs import ObservedMatrix, full_matrix_dataset  # noqa: E402

DIM, LR, WD = 64, 0.005, 1e-4


def simulated(n_users: int, n_items: int, n_ratings: int, seed: int = 0) -> ObservedMatrix:
    """``n_ratings`` distinct pairs: every user rates about the same number of items, drawn by a
    popularity ∝ 1/rank^0.8 (MNAR-like skew) without repeats."""
    rng = np.random.default_rng(seed)
    item_p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    scores = np.log(rng.random((n_users, n_items))) / item_p[rng.permutation(n_items)]  # Efraimidis–Spirakis keys
    per_user = n_ratings // n_users
    items = np.argsort(-scores, axis=1)[:, :per_user].reshape(-1)
    users = np.repeat(np.arange(n_users), per_user)
    return ObservedMatrix.from_pairs(users, items, rng.random(len(users)) < 0.4, n_users, n_items)


def ctrcvr_mf(matrix: ObservedMatrix, block, epochs: int) -> list[float]:
    config = config_from_dict({
        "features": [{"name": "user_id", "kind": "categorical"}, {"name": "item_id", "kind": "categorical"}],
        "model": {"name": "base", "backbone": "mf", "mf": {"embedding_dim": DIM, "weight_decay": WD}}})
    estimator = get_estimator("base").create(config.model)
    sizes, pair = {"user_id": matrix.shape[0], "item_id": matrix.shape[1]}, ("user_id", "item_id")
    dims = group_dims(estimator, config.features, sizes, pair)
    model = MultiTaskModel(lambda g: FeatureEmbedding(config.features, sizes, 8, dims=dims.get(g), name=f"emb_{g}"),
                           estimator, config.labels, backbones=build_backbones(estimator, config.features, sizes, pair))
    names = {"user": "user_id_xf", "item": "item_id_xf", "o": "click", "r": "conversion"}
    ds = full_matrix_dataset(matrix, block).map(lambda b: {names[k]: v for k, v in b.items()})
    model(next(iter(ds)))
    model.compile(optimizer=tf_keras.optimizers.legacy.Adam(LR))
    seconds = []

    class Timer(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    model.fit(ds, epochs=epochs + 1, callbacks=[Timer()], verbose=0)
    return seconds[1:]


def plain_tf_mf(matrix: ObservedMatrix, block, epochs: int) -> list[float]:
    """Two MFs (CTR over every pair, CVR over the observed ones), p, q, b_u, b_i, b each, one Adam."""
    n_users, n_items = matrix.shape
    init = tf.random.normal
    tables = [tf.Variable(init(shape, stddev=0.05)) for _ in range(2) for shape in ((n_users, DIM), (n_items, DIM))]
    biases = [tf.Variable(tf.zeros(shape)) for _ in range(2) for shape in ((n_users,), (n_items,), ())]
    variables = tables + biases
    optimizer = tf_keras.optimizers.legacy.Adam(LR)

    def logit(k, u, i):
        p, q = tf.gather(tables[2 * k], u), tf.gather(tables[2 * k + 1], i)
        b_u, b_i, b = biases[3 * k: 3 * k + 3]
        return tf.reduce_sum(p * q, -1) + tf.gather(b_u, u) + tf.gather(b_i, i) + b, p, q

    @tf.function
    def step(u, i, o, r):
        with tf.GradientTape() as tape:
            z_ctr, p0, q0 = logit(0, u, i)
            z_cvr, p1, q1 = logit(1, u, i)
            l_ctr = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=o, logits=z_ctr))
            e = tf.nn.sigmoid_cross_entropy_with_logits(labels=r, logits=z_cvr)
            l_cvr = tf.reduce_sum(o * e) / tf.maximum(tf.reduce_sum(o), 1e-12)
            l2 = sum(tf.reduce_mean(tf.reduce_sum(p ** 2, -1) + tf.reduce_sum(q ** 2, -1)) for p, q in ((p0, q0), (p1, q1)))
            loss = l_ctr + l_cvr + WD * l2
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients((tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g, v)
                                  for g, v in zip(grads, variables))
        return loss

    ds = full_matrix_dataset(matrix, block)
    seconds = []
    for _ in range(epochs + 1):
        start = time.perf_counter()
        for b in ds:
            step(b["user"], b["item"], tf.cast(b["o"], tf.float32), tf.cast(b["r"], tf.float32))
        seconds.append(time.perf_counter() - start)
    return seconds[1:]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=15_400)
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--ratings", type=int, default=311_704)
    parser.add_argument("--block", type=int, nargs=2, default=(1024, 100))
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up epoch)")
    args = parser.parse_args(argv)
    matrix = simulated(args.users, args.items, min(args.ratings, args.users * args.items // 2))
    pairs = args.users * args.items
    print(f"MF at {args.users:,} x {args.items:,} ({pairs:,} pairs per epoch, {int(matrix.o.sum()):,} observed), "
          f"block {args.block[0]} x {args.block[1]}, dim {DIM}, 2 MF towers (base)")
    rates = {}
    for name, fn in (("plain TF tf.function loop", plain_tf_mf), ("ctrcvr base, backbone mf, full_matrix", ctrcvr_mf)):
        seconds = fn(matrix, tuple(args.block), args.epochs)
        rates[name] = pairs / float(np.median(seconds))
        print(f"  {name:40s} {rates[name]:>12,.0f} examples/s   (epochs {', '.join(f'{s:.1f}' for s in seconds)} s)")
    plain, ours = rates.values()
    print(f"  ratio ctrcvr / plain TF: {ours / plain:.2f}")


if __name__ == "__main__":
    main()
