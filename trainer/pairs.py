"""(user, item) data beyond the shards: the MAR validation slice, and the full matrix in blocks.

**Validation slice.** The MAR ``test`` shards are split by a hash of the (transformed) user and item
ids into ``validation`` (``eval.validation_fraction``, default 5 %) and the rest, which the trainer
and the evaluation then call ``test`` (seed 002's reference code: MAR ratings 5 % / 5 % / 90 %; here
the small unbiased training slice is left out). The hash is integer arithmetic modulo the prime
2³¹ − 1, the same in TensorFlow and numpy, so a pair is in the same slice in every run:

    h = ((u·A + i·B) mod P)·C mod P,   validation ⇔ h mod 10 000 < round(fraction · 10 000)

**Full matrix.** :func:`full_matrix_dataset` streams every (user, item) pair of an n_users × n_items
matrix in blocks of ``block = (users, items)`` (one batch per block, blocks in a shuffled order per
epoch), with the observed ratings marked: o = 1 and r = label on the pairs of the train split, 0
elsewhere. The prediction, propensity and imputation models of seed 002 train over every pair this
way (its reference code's ``Block`` loader); nothing but the observed ratings goes through Beam.
Pairs of the MNAR eval split are unobserved in train, so they appear with o = 0 here.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

_P, _A, _B, _C = 2_147_483_647, 1_103_515_245, 12_345_679, 48_271
BUCKETS = 10_000


def pair_bucket(users, items) -> np.ndarray:
    """The hash bucket in [0, 10 000) of each (user, item) id pair (numpy)."""
    u, i = np.asarray(users, np.int64) % _P, np.asarray(items, np.int64) % _P
    return ((u * _A + i * _B) % _P * _C % _P) % BUCKETS


def tf_pair_bucket(users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
    """:func:`pair_bucket` in TensorFlow (int64)."""
    u, i = tf.math.floormod(tf.cast(users, tf.int64), _P), tf.math.floormod(tf.cast(items, tf.int64), _P)
    return tf.math.floormod(tf.math.floormod(tf.math.floormod(u * _A + i * _B, _P) * _C, _P), BUCKETS)


def validation_mask(users, items, fraction: float) -> np.ndarray:
    return pair_bucket(users, items) < int(round(fraction * BUCKETS))


@dataclasses.dataclass(frozen=True)
class ObservedMatrix:
    """The observed ratings of a split as dense n_users × n_items 0/1 matrices o and r (int8)."""

    o: np.ndarray
    r: np.ndarray

    @classmethod
    def from_pairs(cls, users, items, labels, n_users: int, n_items: int) -> "ObservedMatrix":
        o, r = np.zeros((n_users, n_items), np.int8), np.zeros((n_users, n_items), np.int8)
        o[users, items] = 1
        r[users, items] = (np.asarray(labels) > 0.5).astype(np.int8)
        return cls(o, r)

    @property
    def shape(self) -> tuple[int, int]:
        return self.o.shape


def full_matrix_dataset(matrix: ObservedMatrix, block: tuple[int, int], seed: int = 0,
                        shuffle: bool = True) -> tf.data.Dataset:
    """Batches ``{"user", "item", "o", "r"}`` (int64 [block_u · block_i], fewer at the edges) covering every
    pair once per pass; with ``shuffle`` the block order changes each epoch (and repeats don't)."""
    n_users, n_items = matrix.shape
    bu, bi = min(block[0], n_users), min(block[1], n_items)
    starts = np.array([(u, i) for u in range(0, n_users, bu) for i in range(0, n_items, bi)], np.int64)
    o, r = tf.constant(matrix.o), tf.constant(matrix.r)

    def cells(start):
        users = tf.range(start[0], tf.minimum(start[0] + bu, n_users))
        items = tf.range(start[1], tf.minimum(start[1] + bi, n_items))
        uu, ii = tf.meshgrid(users, items, indexing="ij")
        uu, ii = tf.reshape(uu, [-1]), tf.reshape(ii, [-1])
        idx = tf.stack([uu, ii], axis=1)
        return {"user": uu, "item": ii, "o": tf.cast(tf.gather_nd(o, idx), tf.int64),
                "r": tf.cast(tf.gather_nd(r, idx), tf.int64)}

    ds = tf.data.Dataset.from_tensor_slices(starts)
    if shuffle:
        ds = ds.shuffle(len(starts), seed=seed, reshuffle_each_iteration=True)
    return ds.map(cells, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
