"""Loss building blocks and ESMM pinned to closed-form values on hand-computable batches."""
import math

import numpy as np
import pytest
import tensorflow as tf

from trainer.config import ModelConfig
from trainer.estimators import get_estimator
from trainer.estimators.interface import Labels
from trainer.model.losses import bce_of_product, bce_with_logits, log1mexp


def _sig(z):
    return 1 / (1 + math.exp(-z))


def test_log1mexp_matches_float64_reference_at_both_ends():
    x = np.array([-1e-8, -1e-3, -0.5, -0.7, -5.0, -40.0])
    expected = np.log(-np.expm1(x))
    got = log1mexp(tf.constant(x, tf.float64)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-15)


def test_bce_of_product_equals_bce_of_the_product_probability():
    za, zb, y = [0.3, -2.0, 4.0], [-1.0, 0.5, 3.0], [1.0, 0.0, 1.0]
    got = bce_of_product(tf.constant(y), tf.constant(za), tf.constant(zb)).numpy()
    p = np.array([_sig(a) * _sig(b) for a, b in zip(za, zb)])
    expected = -(np.array(y) * np.log(p) + (1 - np.array(y)) * np.log(1 - p))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_bce_of_product_stays_finite_where_the_naive_product_underflows():
    # σ(-60)·σ(-60) ≈ e^-120 underflows float32 to 0, so log(p) would be -inf.
    got = bce_of_product(tf.constant([1.0]), tf.constant([-60.0]), tf.constant([-60.0])).numpy()
    assert np.isfinite(got).all() and got[0] == pytest.approx(120.0, rel=1e-4)


def test_esmm_loss_is_ctr_bce_plus_ctcvr_bce():
    esmm = get_estimator("esmm").create(ModelConfig(name="esmm"))
    o, r = tf.constant([1.0, 0.0]), tf.constant([1.0, 0.0])
    z_ctr, z_cvr = tf.constant([0.5, -1.0]), tf.constant([1.0, 2.0])
    terms = esmm.loss(Labels(o, r), {"ctr": z_ctr, "cvr": z_cvr})
    p_ctr = [_sig(0.5), _sig(-1.0)]
    p_ctcvr = [_sig(0.5) * _sig(1.0), _sig(-1.0) * _sig(2.0)]
    l_ctr = (-math.log(p_ctr[0]) - math.log(1 - p_ctr[1])) / 2
    l_ctcvr = (-math.log(p_ctcvr[0]) - math.log(1 - p_ctcvr[1])) / 2
    assert terms["ctr"].numpy() == pytest.approx(l_ctr, rel=1e-5)
    assert terms["ctcvr"].numpy() == pytest.approx(l_ctcvr, rel=1e-5)
    assert terms["loss"].numpy() == pytest.approx(l_ctr + l_ctcvr, rel=1e-5)


def test_esmm_ctcvr_label_is_click_times_conversion():
    # A conversion recorded without a click must not count as a CTCVR positive.
    esmm = get_estimator("esmm").create(ModelConfig(name="esmm"))
    logits = {"ctr": tf.constant([0.0]), "cvr": tf.constant([0.0])}
    orphan = esmm.loss(Labels(tf.constant([0.0]), tf.constant([1.0])), logits)["ctcvr"].numpy()
    negative = esmm.loss(Labels(tf.constant([0.0]), tf.constant([0.0])), logits)["ctcvr"].numpy()
    assert orphan == pytest.approx(negative)


def test_bce_with_logits_sign():
    assert bce_with_logits(tf.constant([1.0]), tf.constant([5.0])).numpy()[0] < 0.01
    assert bce_with_logits(tf.constant([0.0]), tf.constant([5.0])).numpy()[0] > 4.9


def test_unknown_estimator_suggests_closest():
    with pytest.raises(KeyError, match="did you mean 'esmm'"):
        get_estimator("esm")
