"""The shared weighting machinery pinned to hand-computed values: τ (absolute and τ%), percentile
clipping, the upper bound, detaching, λ under-sampling, BMSE, and the IPW / DR / L_e losses."""
import math

import numpy as np
import pytest
import tensorflow as tf

from trainer.config import IpwConfig, ModelConfig
from ctrcvr.config import ConfigError, config_from_dict
from trainer.estimators.interface import Labels
from trainer.model.propensity import (PropensityWeighting, bmse, heuristic_imputation, imputed_error,
                                inverse_propensity_weights, percentile, undersample_mask)


def _w(p, **ipw):
    return inverse_propensity_weights(tf.constant(p, tf.float32), IpwConfig(**ipw)).numpy()


def test_plain_weights_are_inverse_propensities():
    np.testing.assert_allclose(_w([0.5, 0.25, 0.1]), [2.0, 4.0, 10.0], rtol=1e-6)


def test_absolute_tau_floors_the_propensity():
    np.testing.assert_allclose(_w([0.01, 0.05, 0.5], tau=0.1), [10.0, 10.0, 2.0], rtol=1e-6)


def test_tau_percent_is_relative_to_the_batch_range():
    # p_min = 0.1, p_mean = 0.3 -> τ = 0.1 + 0.5·(0.3 − 0.1) = 0.2
    np.testing.assert_allclose(_w([0.1, 0.2, 0.6], tau_percent=0.5), [5.0, 5.0, 1 / 0.6], rtol=1e-6)
    # τ% = 0 is the minimum: nothing is floored; τ% = 1 floors at the mean
    np.testing.assert_allclose(_w([0.1, 0.2, 0.6], tau_percent=0.0), [10.0, 5.0, 1 / 0.6], rtol=1e-6)
    np.testing.assert_allclose(_w([0.1, 0.2, 0.6], tau_percent=1.0), [1 / 0.3, 1 / 0.3, 1 / 0.6], rtol=1e-6)


def test_percentile_clipping_keeps_weights_between_inverse_quartiles():
    # p25 = 0.2, p75 = 0.4 -> weights within [2.5, 5]
    got = _w([0.1, 0.2, 0.3, 0.4, 0.5], clip_percentiles=(25, 75))
    np.testing.assert_allclose(got, [5.0, 5.0, 1 / 0.3, 2.5, 2.5], rtol=1e-6)
    assert percentile(tf.constant([4.0, 1.0, 3.0, 2.0]), 50).numpy() == pytest.approx(np.percentile([1, 2, 3, 4], 50))


def test_upper_weight_bound_applies_after_the_floor():
    np.testing.assert_allclose(_w([0.01, 0.2, 0.5], tau=0.05, max_weight=4.0), [4.0, 4.0, 2.0], rtol=1e-6)


def test_tau_and_tau_percent_are_mutually_exclusive():
    with pytest.raises(ConfigError, match="either tau"):
        config_from_dict({"model": {"ipw": {"tau": 0.01, "tau_percent": 0.5}}})
    with pytest.raises(ConfigError, match="clip_percentiles"):
        config_from_dict({"model": {"ipw": {"clip_percentiles": [75, 25]}}})


@pytest.mark.parametrize("detach", [True, False])
def test_detach_switch_controls_the_gradient_into_the_propensity_logit(detach):
    o, e = tf.constant([1.0, 1.0, 0.0]), tf.constant([0.7, 1.3, 2.0])
    z_ctr = tf.Variable([0.0, -1.0, 0.5])
    weighting = PropensityWeighting(ModelConfig(ipw={"detach_propensity": detach}))
    with tf.GradientTape() as tape:
        loss = weighting.ipw_loss(o, e, tf.sigmoid(z_ctr))
    grad = tape.gradient(loss, z_ctr, unconnected_gradients=tf.UnconnectedGradients.ZERO).numpy()
    if detach:
        np.testing.assert_array_equal(grad, [0.0, 0.0, 0.0])
    else:  # d/dz (o·e/σ(z))/N = −o·e·(1 − σ(z))/σ(z) / N = −o·e·exp(−z)/N
        expected = -np.array([1, 1, 0]) * np.array([0.7, 1.3, 2.0]) * np.exp(-np.array([0.0, -1.0, 0.5])) / 3
        np.testing.assert_allclose(grad, expected, rtol=1e-5)


def test_undersampling_keeps_every_click_and_lambda_times_as_many_unclicked_rows():
    o = tf.constant([1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0], tf.float32)  # 3 clicked, 9 unclicked
    seen = set()
    for _ in range(5):
        mask = undersample_mask(o, rate=2.0).numpy()
        assert set(np.unique(mask)) <= {0.0, 1.0}
        assert mask[o.numpy() == 1].tolist() == [1.0, 1.0, 1.0]
        assert mask[o.numpy() == 0].sum() == 6
        seen.add(tuple(mask))
    assert len(seen) > 1, "the unclicked rows kept must be drawn at random"
    assert undersample_mask(o, rate=10.0).numpy().sum() == 12  # more than available: keep all
    assert undersample_mask(o, rate=1 / 3).numpy().sum() == 4  # round(1/3 · 3) = 1 unclicked


def test_bmse_is_zero_with_true_propensities_on_a_balanced_set_and_positive_with_wrong_ones():
    # group A: p = 1/2, one click in two; group B: p = 1/4, one click in four
    o = tf.constant([1, 0, 1, 0, 0, 0], tf.float32)
    p_true = tf.constant([0.5, 0.5, 0.25, 0.25, 0.25, 0.25])
    phi = tf.constant([[1.0, 2.0]] * 2 + [[3.0, -1.0]] * 4)
    assert bmse(o, p_true, tf.ones([6])).numpy() == pytest.approx(0.0, abs=1e-10)
    assert bmse(o, p_true, phi).numpy() == pytest.approx(0.0, abs=1e-10)
    wrong = tf.constant([0.5] * 6)
    # group B balance: 1/0.5 − 3/(1 − 0.5) = −4 -> mean over 6 rows −4/6, times φ
    assert bmse(o, wrong, tf.ones([6])).numpy() == pytest.approx((4 / 6) ** 2, rel=1e-5)
    assert bmse(o, wrong, phi).numpy() == pytest.approx((4 * 3 / 6) ** 2 + (4 / 6) ** 2, rel=1e-5)


def _sig(z):
    return 1 / (1 + math.exp(-z))


def _bce(y, p):
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_dr_and_imputation_losses_match_their_equations_with_the_label_imputation():
    o, r = tf.constant([1.0, 0.0, 1.0]), tf.constant([1.0, 0.0, 0.0])
    z_ctr, z_cvr, z_imp = [0.0, -1.0, math.log(1 / 3)], [0.4, -0.3, 1.1], [-2.0, 0.5, 0.0]
    weighting = PropensityWeighting(ModelConfig())
    logits = {"ctr": tf.constant(z_ctr), "cvr": tf.constant(z_cvr), "imp": tf.constant(z_imp)}
    l_dr, l_imp = weighting.dr_cvr_losses(Labels(o, r), logits)
    p = [_sig(z) for z in z_ctr]
    e = [_bce(y, _sig(z)) for y, z in zip([1, 0, 0], z_cvr)]
    e_hat = [_bce(_sig(zi), _sig(zc)) for zi, zc in zip(z_imp, z_cvr)]  # e(r̃, r̂), r̃ = σ(z_imp)
    clicks = [1, 0, 1]
    dr = sum(eh + c * (ee - eh) / pp for eh, c, ee, pp in zip(e_hat, clicks, e, p)) / 3
    imp = sum(c * (ee - eh) ** 2 / pp for c, ee, eh, pp in zip(clicks, e, e_hat, p)) / 3
    assert l_dr.numpy() == pytest.approx(dr, rel=1e-5)
    assert l_imp.numpy() == pytest.approx(imp, rel=1e-5)


def test_error_imputation_regresses_the_error_and_is_constant_for_the_prediction():
    z_cvr, z_imp = tf.Variable([0.3, -0.2]), tf.Variable([0.5, -1.0])
    with tf.GradientTape(persistent=True) as tape:
        imp = imputed_error(z_cvr, z_imp, "error")
        total = tf.reduce_sum(imp.for_prediction)
        own = tf.reduce_sum(imp.for_imputation)
    np.testing.assert_allclose(imp.for_prediction.numpy(), np.log1p(np.exp([0.5, -1.0])), rtol=1e-6)
    assert tape.gradient(total, z_imp) is None and tape.gradient(own, z_cvr) is None
    assert tape.gradient(own, z_imp) is not None


def test_label_imputation_sends_dr_gradients_to_the_cvr_tower_only():
    z_cvr, z_imp = tf.Variable([0.3, -0.2]), tf.Variable([0.5, -1.0])
    with tf.GradientTape(persistent=True) as tape:
        imp = imputed_error(z_cvr, z_imp, "label")
        for_prediction, for_imputation = tf.reduce_sum(imp.for_prediction), tf.reduce_sum(imp.for_imputation)
    assert tape.gradient(for_prediction, z_imp) is None and tape.gradient(for_prediction, z_cvr) is not None
    assert tape.gradient(for_imputation, z_cvr) is None and tape.gradient(for_imputation, z_imp) is not None


def test_undersampled_dr_drops_unclicked_imputed_terms_but_keeps_the_batch_normaliser():
    o, e = tf.constant([1.0, 0.0, 0.0, 0.0]), tf.constant([0.5, 0.2, 0.3, 0.4])
    p = tf.constant([0.5, 0.1, 0.1, 0.1])
    imp = heuristic_imputation(tf.zeros([4]), 0.5)  # ê = e(0.5, σ(0)) = log 2 on every row
    mask = tf.constant([1.0, 1.0, 0.0, 0.0])
    weighting = PropensityWeighting(ModelConfig())
    log2 = math.log(2.0)
    full = (log2 + (0.5 - log2) / 0.5 + 3 * log2) / 4
    kept = (log2 + (0.5 - log2) / 0.5 + log2) / 4
    assert weighting.dr_loss(o, e, imp, p).numpy() == pytest.approx(full, rel=1e-5)
    assert weighting.dr_loss(o, e, imp, p, mask).numpy() == pytest.approx(kept, rel=1e-5)
