"""LazyAdam (trainer.model.optimizers): Adam on the looked-up rows, nothing on the others."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from trainer.model.optimizers import LazyAdam, make_optimizer

LR = 0.01


def _table_and_step(optimizer, rows: int = 4, dim: int = 3):
    """An embedding table (fixed start values) and a traced train step: loss = Σ_batch w · table[ids]."""
    table = tf.Variable(np.arange(rows * dim, dtype=np.float32).reshape(rows, dim) / 10.0)
    weights = tf.constant(np.linspace(-1.0, 2.0, dim, dtype=np.float32))

    @tf.function
    def step(ids):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(table, ids) * weights * tf.cast(tf.shape(ids)[0], tf.float32))
        grad = tape.gradient(loss, table)  # IndexedSlices, one slice per looked-up id (duplicates included)
        optimizer.apply_gradients([(grad, table)])
    return table, step


def _slots(optimizer, var):
    return optimizer.get_slot(var, "m").numpy(), optimizer.get_slot(var, "v").numpy()


def test_rows_looked_up_every_step_follow_adam_exactly():
    """Every row in every batch (with duplicates): LazyAdam's values and moments equal Adam's."""
    batches = [[0, 1, 2, 3, 1], [3, 2, 1, 0], [0, 0, 1, 2, 3, 3]]
    lazy, adam = LazyAdam(LR), tf_keras.optimizers.legacy.Adam(LR)
    lazy_table, lazy_step = _table_and_step(lazy)
    adam_table, adam_step = _table_and_step(adam)
    for ids in batches:
        lazy_step(tf.constant(ids))
        adam_step(tf.constant(ids))
    np.testing.assert_allclose(lazy_table.numpy(), adam_table.numpy(), rtol=1e-6, atol=1e-7)
    for lazy_slot, adam_slot in zip(_slots(lazy, lazy_table), _slots(adam, adam_table)):
        np.testing.assert_allclose(lazy_slot, adam_slot, rtol=1e-6, atol=1e-10)
    assert not np.allclose(lazy_table.numpy(), _table_and_step(LazyAdam(LR))[0].numpy())  # it trained


def test_first_step_closed_form_and_duplicates_summed():
    """Step 1: m = (1-β₁)g, v = (1-β₂)g², θ -= lr·√(1-β₂)/(1-β₁)·m/(√v+ε); id 1 twice has gradient 2 × one."""
    optimizer = LazyAdam(LR)
    table, step = _table_and_step(optimizer)
    start = table.numpy().copy()
    step(tf.constant([1, 1, 2]))
    g_one = 3 * np.linspace(-1.0, 2.0, 3, dtype=np.float32)  # batch size 3 scales the loss
    b1, b2, eps = 0.9, 0.999, optimizer.epsilon
    m, v = _slots(optimizer, table)
    for row, g in ((1, 2 * g_one), (2, g_one)):
        np.testing.assert_allclose(m[row], (1 - b1) * g, rtol=1e-6)
        np.testing.assert_allclose(v[row], (1 - b2) * g * g, rtol=1e-4)  # 1 - β₂ in float32
        lr_t = LR * np.sqrt(1 - b2) / (1 - b1)
        expected = start[row] - lr_t * m[row] / (np.sqrt(v[row]) + eps)
        np.testing.assert_allclose(table.numpy()[row], expected, rtol=1e-6)


def test_rows_not_looked_up_keep_value_and_moments_where_adam_moves_them():
    lazy, adam = LazyAdam(LR), tf_keras.optimizers.legacy.Adam(LR)
    lazy_table, lazy_step = _table_and_step(lazy)
    adam_table, adam_step = _table_and_step(adam)
    for step in (lazy_step, adam_step):
        step(tf.constant([0, 1, 2, 3]))  # every row gets momentum
    lazy_before, lazy_slots = lazy_table.numpy().copy(), _slots(lazy, lazy_table)
    adam_before, adam_m = adam_table.numpy().copy(), adam.get_slot(adam_table, "m").numpy().copy()
    lazy_step(tf.constant([0, 1]))
    adam_step(tf.constant([0, 1]))
    np.testing.assert_array_equal(lazy_table.numpy()[2:], lazy_before[2:])
    for before, after in zip(lazy_slots, _slots(lazy, lazy_table)):
        np.testing.assert_array_equal(after[2:], before[2:])
        assert not np.allclose(after[:2], before[:2])  # the looked-up rows did move
    assert not np.allclose(lazy_table.numpy()[:2], lazy_before[:2])
    # Adam (sparse gradients) decays every row's moments and moves rows 2, 3 on their old momentum
    assert not np.allclose(adam_table.numpy()[2:], adam_before[2:])
    np.testing.assert_allclose(adam.get_slot(adam_table, "m").numpy()[2:], 0.9 * adam_m[2:], rtol=1e-6)


def test_dense_gradients_get_plain_adam():
    x = tf.constant([[1.0, -2.0], [0.5, 3.0]])
    results = []
    for optimizer in (LazyAdam(LR), tf_keras.optimizers.legacy.Adam(LR)):
        kernel = tf.Variable([[0.3], [-0.2]])
        for _ in range(3):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(x @ kernel - 1.0))
            optimizer.apply_gradients([(tape.gradient(loss, kernel), kernel)])
        results.append(kernel.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)


def test_make_optimizer_names():
    assert type(make_optimizer("adam", LR)) is tf_keras.optimizers.legacy.Adam
    assert isinstance(make_optimizer("lazy_adam", LR), LazyAdam)
    with pytest.raises(ValueError, match="train.optimizer='sgd'"):
        make_optimizer("sgd", LR)
    with pytest.raises(ValueError, match="amsgrad"):
        LazyAdam(LR, amsgrad=True)
