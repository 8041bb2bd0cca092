"""Metric functions on hand-computed cases: BMSE (seed 002 §3.3), AUC."""
import numpy as np
import pytest

from trainer.evaluation.metrics import auc, bmse

# o/p̂ − (1 − o)/(1 − p̂) per row: 1/0.5 = 2, −1/0.5 = −2, 1/0.25 = 4, −1/0.25 = −4
O = np.array([1, 0, 1, 0])
P = np.array([0.5, 0.5, 0.25, 0.75])


def test_bmse_with_constant_phi_is_the_squared_mean_balance():
    assert bmse(O, P) == pytest.approx(0.0)
    assert bmse(O, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.0)
    assert bmse(O, np.array([0.25, 0.5, 0.25, 0.5])) == pytest.approx(((4 - 2 + 4 - 2) / 4) ** 2)


def test_bmse_with_vector_phi_sums_the_squared_means_over_its_components():
    phi = np.array([[1.0, 0.0], [1.0, 2.0], [1.0, 0.0], [0.0, 1.0]])
    # component 1: (2 − 2 + 4 + 0)/4 = 1; component 2: (0 − 4 + 0 − 4)/4 = −2
    assert bmse(O, P, phi) == pytest.approx(1.0 + 4.0)
    assert bmse(O, P, phi[:, 0]) == pytest.approx(1.0)


def test_bmse_vanishes_for_the_true_propensity_and_not_for_a_wrong_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200_000)
    p = 1 / (1 + np.exp(-(x - 1)))
    o = (rng.random(len(x)) < p).astype(float)
    true, flat = bmse(o, p, x), bmse(o, np.full(len(x), o.mean()), x)
    assert true < 1e-4 < 0.01 < flat


def test_bmse_needs_observed_and_unobserved_rows():
    assert np.isnan(bmse(np.ones(3), np.full(3, 0.5)))
    assert np.isnan(bmse(np.array([]), np.array([])))


def test_auc_counts_ties_as_half():
    assert auc([0, 1, 0, 1], [0.1, 0.9, 0.5, 0.5]) == pytest.approx((1 + 1 + 1 + 0.5) / 4)


def test_sliced_log_bias_sd_is_zero_for_a_constant_relative_bias_and_grows_with_a_spurious_effect():
    from trainer.evaluation.metrics import sliced_log_bias_sd
    slices = np.array([1, 1, 2, 2, 2, 2])  # slice 1: 2 exposures, slice 2: 4
    truth = np.array([0.1, 0.3, 0.2, 0.2, 0.1, 0.3])
    assert sliced_log_bias_sd(slices, 1.5 * truth, truth) == pytest.approx(0.0, abs=1e-12)
    # slice 1 overestimated ×2 (b = log 2), slice 2 exact (b = 0): weighted mean log2/3, weights 1/3, 2/3
    predicted = np.where(slices == 1, 2 * truth, truth)
    b, w = np.array([np.log(2), 0.0]), np.array([1 / 3, 2 / 3])
    expected = np.sqrt(np.sum(w * (b - np.sum(w * b)) ** 2))
    assert sliced_log_bias_sd(slices, predicted, truth) == pytest.approx(expected)
