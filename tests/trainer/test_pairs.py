"""trainer/pairs.py: the validation slice's hash agrees in numpy and TensorFlow; the full matrix is every
pair once, observed ratings marked."""
import numpy as np
import tensorflow as tf

from trainer.pairs import ObservedMatrix, full_matrix_dataset, pair_bucket, tf_pair_bucket, validation_mask


def test_pair_bucket_is_the_same_in_numpy_and_tensorflow_and_spreads_evenly():
    users, items = np.repeat(np.arange(300), 200), np.tile(np.arange(200), 300)
    np.testing.assert_array_equal(pair_bucket(users, items), tf_pair_bucket(tf.constant(users), tf.constant(items)).numpy())
    share = validation_mask(users, items, 0.05).mean()
    assert 0.045 < share < 0.055
    assert not np.array_equal(validation_mask(users, items, 0.05), validation_mask(items, users, 0.05))


def test_full_matrix_yields_every_pair_once_with_the_observed_ratings_marked():
    matrix = ObservedMatrix.from_pairs(np.array([0, 2, 4]), np.array([1, 0, 2]), np.array([1.0, 0.0, 1.0]), 5, 3)
    seen = {}
    for batch in full_matrix_dataset(matrix, (2, 2), seed=0):
        for u, i, o, r in zip(*(batch[k].numpy() for k in ("user", "item", "o", "r"))):
            assert (u, i) not in seen
            seen[(u, i)] = (o, r)
    assert len(seen) == 15
    assert {k: v for k, v in seen.items() if v[0]} == {(0, 1): (1, 1), (2, 0): (1, 0), (4, 2): (1, 1)}
