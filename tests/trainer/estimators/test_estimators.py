"""Each estimator's loss pinned to its equation on 2–4-row batches with closed-form values."""
import math

import numpy as np
import pytest
import tensorflow as tf

from trainer.config import ModelConfig
from trainer.estimators import get_estimator
from trainer.estimators.interface import Labels


def _sig(z):
    return 1 / (1 + math.exp(-z))


def _bce(y, p):
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


O, R = [1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]
R_STAR = [1.0, 0.0, 1.0, 0.0]  # the potential outcome: row 2 would have converted had it been clicked
Z_CTR, Z_CVR, Z_IMP = [0.0, math.log(1 / 3), -1.0, 2.0], [0.5, -1.0, 1.5, -0.5], [-1.0, 0.0, 0.3, -2.0]
P = [_sig(z) for z in Z_CTR]                      # 0.5, 0.25, ...
E = [_bce(r, _sig(z)) for r, z in zip(R, Z_CVR)]  # e(r, r̂)
L_CTR = sum(_bce(o, p) for o, p in zip(O, P)) / 4


def _loss(name, potential=None, **model):
    est = get_estimator(name).create(ModelConfig(name=name, **model))
    y = Labels(tf.constant(O), tf.constant(R), None if potential is None else tf.constant(potential))
    logits = {"ctr": tf.constant(Z_CTR), "cvr": tf.constant(Z_CVR), "imp": tf.constant(Z_IMP)}
    return {k: float(v.numpy()) for k, v in est.loss(y, logits).items()}


def test_base_is_the_mean_loss_over_clicks_only():
    got = _loss("base")
    assert got["cvr"] == pytest.approx((E[0] + E[1]) / 2, rel=1e-5)
    assert got["loss"] == pytest.approx(L_CTR + (E[0] + E[1]) / 2, rel=1e-5)


def test_oversampling_equals_base_on_the_click_space_with_positives_repeated_k_times():
    k = 5
    assert _loss("oversampling", oversample_k=k)["cvr"] == pytest.approx((k * E[0] + E[1]) / (k + 1), rel=1e-5)
    assert _loss("oversampling", oversample_k=1)["cvr"] == pytest.approx(_loss("base")["cvr"], rel=1e-6)


def test_naive_imputation_labels_unclicked_rows_negative():
    expected = sum(_bce(o * r, _sig(z)) for o, r, z in zip(O, R, Z_CVR)) / 4
    assert _loss("naive_imputation")["cvr"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", ["naive_ipw", "multi_ipw"])
def test_ipw_is_click_loss_over_propensity_averaged_over_exposures(name):
    got = _loss(name)
    ipw = (E[0] / P[0] + E[1] / P[1]) / 4  # (1/|D|) Σ o·e/p̂
    assert got["cvr"] == pytest.approx(ipw, rel=1e-5)
    assert got["loss"] == pytest.approx(L_CTR + ipw, rel=1e-5)


def test_multi_ipw_respects_the_configured_floor():
    got = _loss("multi_ipw", ipw={"tau": 0.4})  # p̂ = 0.25 is floored to 0.4
    assert got["cvr"] == pytest.approx((E[0] / 0.5 + E[1] / 0.4) / 4, rel=1e-5)


def _dr_terms(e_hat):
    dr = sum(eh + o * (e - eh) / p for eh, o, e, p in zip(e_hat, O, E, P)) / 4
    imp = sum(o * (e - eh) ** 2 / p for o, e, eh, p in zip(O, E, e_hat, P)) / 4
    return dr, imp


def test_multi_dr_is_ctr_plus_dr_plus_weighted_imputation_loss():
    e_hat = [_bce(_sig(zi), _sig(zc)) for zi, zc in zip(Z_IMP, Z_CVR)]
    dr, imp = _dr_terms(e_hat)
    got = _loss("multi_dr", imputation_weight=0.5)
    assert got["cvr"] == pytest.approx(dr, rel=1e-5)
    assert got["imputation"] == pytest.approx(imp, rel=1e-5)
    assert got["loss"] == pytest.approx(L_CTR + dr + 0.5 * imp, rel=1e-5)


def test_multi_dr_with_error_imputation_uses_softplus_of_the_imputation_logit():
    dr, imp = _dr_terms([math.log1p(math.exp(z)) for z in Z_IMP])
    got = _loss("multi_dr", imputation_target="error")
    assert got["cvr"] == pytest.approx(dr, rel=1e-5) and got["imputation"] == pytest.approx(imp, rel=1e-5)


def test_heuristic_dr_imputes_conversion_probability_eta_everywhere():
    eta = 0.01
    dr, _ = _dr_terms([_bce(eta, _sig(z)) for z in Z_CVR])
    assert _loss("heuristic_dr", heuristic_eta=eta)["cvr"] == pytest.approx(dr, rel=1e-5)


def test_joint_learning_dr_reports_its_two_alternating_objectives():
    e_hat = [_bce(_sig(zi), _sig(zc)) for zi, zc in zip(Z_IMP, Z_CVR)]
    dr, imp = _dr_terms(e_hat)
    got = _loss("joint_learning_dr")
    assert got["prediction"] == pytest.approx(L_CTR + dr, rel=1e-5)
    assert got["imputation"] == pytest.approx(imp, rel=1e-5)
    est = get_estimator("joint_learning_dr").create(ModelConfig(name="joint_learning_dr"))
    assert [(u.loss, u.towers) for u in est.updates] == [("prediction", ("ctr", "cvr")), ("imputation", ("imp",))]
    assert len({est.embedding_group(t) for t in est.towers}) == 3, "nothing shared"


def test_escm2_adds_a_weighted_counterfactual_term_to_esmm():
    esmm = _loss("esmm")
    ipw = (E[0] / P[0] + E[1] / P[1]) / 4
    got = _loss("escm2_ipw", counterfactual_weight=0.1)
    assert got["loss"] == pytest.approx(esmm["loss"] + 0.1 * ipw, rel=1e-5)
    e_hat = [_bce(_sig(zi), _sig(zc)) for zi, zc in zip(Z_IMP, Z_CVR)]
    dr, imp = _dr_terms(e_hat)
    got = _loss("escm2_dr", counterfactual_weight=0.1, imputation_weight=2.0)
    assert got["loss"] == pytest.approx(esmm["loss"] + 0.1 * dr + 2.0 * imp, rel=1e-5)


@pytest.mark.parametrize("name,base", [("ips_v2", "multi_ipw"), ("dr_v2", "multi_dr")])
def test_v2_estimators_add_lambda_times_bmse(name, base):
    # φ = 1: BMSE = (1/|D| Σ [o/p̂ − (1 − o)/(1 − p̂)])²
    balance = sum(o / p - (1 - o) / (1 - p) for o, p in zip(O, P)) / 4
    got = _loss(name, bmse={"phi": "1", "weight": 0.3})
    assert got["bmse"] == pytest.approx(balance ** 2, rel=1e-5)
    assert got["loss"] == pytest.approx(_loss(base)["loss"] + 0.3 * balance ** 2, rel=1e-5)
    r_hat = [_sig(z) for z in Z_CVR]  # φ = R: the predicted CVR
    bal_r = sum((o / p - (1 - o) / (1 - p)) * rh for o, p, rh in zip(O, P, r_hat)) / 4
    assert _loss(name, bmse={"phi": "R"})["bmse"] == pytest.approx(bal_r ** 2, rel=1e-5)


def test_oracle_fits_the_potential_outcome_of_every_exposure():
    expected = sum(_bce(r, _sig(z)) for r, z in zip(R_STAR, Z_CVR)) / 4
    got = _loss("oracle", potential=R_STAR)
    assert got["cvr"] == pytest.approx(expected, rel=1e-5)
    assert got["loss"] == pytest.approx(L_CTR + expected, rel=1e-5)


def test_oracle_refuses_data_without_ground_truth():
    with pytest.raises(ValueError, match="gt_conversion.*only simulated data"):
        _loss("oracle")


def test_outputs_are_named_and_pctcvr_is_the_product():
    est = get_estimator("multi_dr").create(ModelConfig(name="multi_dr"))
    out = est.outputs({"ctr": tf.constant([0.0]), "cvr": tf.constant([1.0]), "imp": tf.constant([3.0])})
    assert set(out) == {"pctr", "pcvr", "pctcvr"}
    np.testing.assert_allclose(out["pctcvr"].numpy(), [0.5 * _sig(1.0)], rtol=1e-6)
