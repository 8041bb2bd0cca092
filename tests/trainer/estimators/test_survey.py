"""survey_ipw / survey_standalone (seed 000 §4) pinned on hand-computed 4-row batches.

Batch: o = [1, 1, 0, 0], ratings [5, 2, -, -] (missing as NaN), z_r = 0 so ŝ = 3 (regression on
[1, 5]) and e = (s − ŝ)² = [4, 1, 0, 0]; the response head predicts p̂ = [0.5, 0.25, 0.2, 0.1].
"""
import math

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from trainer.config import IpwConfig, ModelConfig, SurveyConfig
from trainer.estimators import get_estimator
from trainer.estimators.interface import Labels
from trainer.model.propensity import calibrate_subsampled, calibrated_logit, inverse_propensity_weights
from trainer.evaluation.survey import mse_by_decile, survey_metrics

O = tf.constant([1.0, 1.0, 0.0, 0.0])
RATING = tf.constant([5.0, 2.0, float("nan"), float("nan")])
P_HAT = np.array([0.5, 0.25, 0.2, 0.1])


def _logit(p):
    return np.log(p / (1 - p)).astype(np.float32)


def _logits(p=P_HAT):
    return {"satisfaction": tf.zeros(4), "response": tf.constant(_logit(p))}


def _bce_mean(o, p):
    return float(np.mean(-(o * np.log(p) + (1 - o) * np.log(1 - p))))


def _estimator(name="survey_ipw", **model):
    return get_estimator(name).create(ModelConfig(name=name, **model))


def test_calibration_formula_on_hand_computed_cases():
    # p = p_s·w / (p_s·w + 1 − p_s)
    got = calibrate_subsampled(tf.constant([0.5, 0.8, 0.0, 1.0]), 0.25).numpy()
    np.testing.assert_allclose(got, [0.125 / 0.625, 0.2 / 0.4, 0.0, 1.0], rtol=1e-6)
    assert calibrate_subsampled(tf.constant(0.5), 1.0).numpy() == pytest.approx(0.5)  # nothing dropped
    z = tf.constant([-3.0, 0.0, 2.0])
    np.testing.assert_allclose(tf.sigmoid(calibrated_logit(z, 0.1)).numpy(),
                               calibrate_subsampled(tf.sigmoid(z), 0.1).numpy(), rtol=1e-5)


def test_percentile_clipping_bounds_weights_to_inverse_p75_and_p25():
    p = tf.constant([0.1, 0.2, 0.3, 0.4, 0.5])  # p25 = 0.2, p75 = 0.4 -> w in [2.5, 5]
    w = inverse_propensity_weights(p, IpwConfig(clip_percentiles=(25, 75))).numpy()
    np.testing.assert_allclose(w, [5.0, 5.0, 1 / 0.3, 2.5, 2.5], rtol=1e-5)


def test_survey_ipw_loss_weights_responses_by_inverse_propensity():
    terms = _estimator().loss(Labels(O, RATING), _logits())
    assert terms["satisfaction"].numpy() == pytest.approx((4 * 2 + 1 * 4) / 4, rel=1e-5)
    assert terms["response"].numpy() == pytest.approx(_bce_mean(np.array([1, 1, 0, 0]), P_HAT), rel=1e-5)
    assert terms["loss"].numpy() == pytest.approx(terms["satisfaction"].numpy() + terms["response"].numpy())


def test_survey_ipw_loss_with_the_papers_percentile_clipping():
    # p̂ sorted [0.1, 0.2, 0.25, 0.5]: p25 = 0.175, p75 = 0.3125 -> w = clip(1/p̂, 3.2, 5.714...)
    est = _estimator(ipw={"clip_percentiles": [25, 75]})
    terms = est.loss(Labels(O, RATING), _logits())
    assert terms["satisfaction"].numpy() == pytest.approx((4 * 3.2 + 1 * 4) / 4, rel=1e-5)


def test_survey_ipw_weights_use_the_calibrated_propensity():
    # z_i = 0 -> p_s = 0.5, calibrated with w = 0.25 to p̂ = 0.2, so each response weighs 5.
    est = _estimator(survey={"response_negative_keep": 0.25})
    terms = est.loss(Labels(O, RATING), {"satisfaction": tf.zeros(4), "response": tf.zeros(4)})
    assert terms["satisfaction"].numpy() == pytest.approx((4 * 5 + 1 * 5) / 4, rel=1e-5)
    out = est.outputs({"satisfaction": tf.zeros(4), "response": tf.zeros(4)})
    np.testing.assert_allclose(out["response_rate"].numpy(), 0.2, rtol=1e-5)


def test_balanced_response_loss_keeps_every_response_and_about_w_of_the_rest():
    est = _estimator(survey={"response_negative_keep": 0.25})
    o = tf.constant([1.0] * 10 + [0.0] * 9990)
    tf.random.set_seed(0)
    # z_i = 0: per-row BCE is ln 2 whatever is kept; the kept set is what the mask says.
    terms = est.loss(Labels(o, tf.fill([10000], 3.0)), {"satisfaction": tf.zeros(10000), "response": tf.zeros(10000)})
    assert terms["response"].numpy() == pytest.approx(math.log(2), rel=1e-5)
    from trainer.estimators.survey import _keep_negatives
    mask = _keep_negatives(o, 0.25, seed=1).numpy()
    assert mask[:10].sum() == 10 and 0.22 < mask[10:].mean() < 0.28


def test_survey_standalone_is_the_unweighted_mean_over_responses():
    terms = _estimator("survey_standalone").loss(Labels(O, RATING), {"satisfaction": tf.zeros(4)})
    assert terms["loss"].numpy() == pytest.approx((4 + 1) / 2, rel=1e-5)


def test_classification_task_uses_bce_on_rating_above_threshold():
    est = _estimator(survey={"satisfaction_task": "classification", "satisfied_threshold": 3.0})
    z_r = tf.constant([1.0, 1.0, 0.0, 0.0])  # rating 5 -> satisfied, rating 2 -> not
    terms = est.loss(Labels(O, RATING), {"satisfaction": z_r, "response": tf.constant(_logit(P_HAT))})
    e = [-math.log(1 / (1 + math.exp(-1))), -math.log(1 - 1 / (1 + math.exp(-1)))]
    assert terms["satisfaction"].numpy() == pytest.approx((e[0] * 2 + e[1] * 4) / 4, rel=1e-5)


@pytest.mark.parametrize("detach", [True, False])
def test_detach_switch_controls_the_gradient_from_satisfaction_loss_into_the_response_head(detach):
    est = _estimator(ipw={"detach_propensity": detach})
    z_i = tf.Variable(_logit(P_HAT))
    with tf.GradientTape() as tape:
        l_r = est.loss(Labels(O, RATING), {"satisfaction": tf.zeros(4), "response": z_i})["satisfaction"]
    grad = tape.gradient(l_r, z_i)
    assert (grad is None or np.allclose(grad.numpy(), 0.0)) == detach


def test_losses_stay_finite_with_missing_ratings():
    terms = _estimator().loss(Labels(O, RATING), _logits())
    assert all(np.isfinite(v.numpy()) for v in terms.values())


def test_serving_output_names_are_the_contract():
    out = _estimator().outputs(_logits())
    assert set(out) == {"satisfaction", "response_rate"}
    np.testing.assert_allclose(out["satisfaction"].numpy(), 3.0)
    np.testing.assert_allclose(out["response_rate"].numpy(), P_HAT, rtol=1e-5)
    assert set(_estimator("survey_standalone").outputs({"satisfaction": tf.zeros(2)})) == {"satisfaction"}


def test_mse_by_decile_and_metrics_against_truth_for_every_impression():
    frame = pd.DataFrame({"satisfaction": [3.0, 3.0, 4.0, 4.0], "gt_satisfaction": [1.0, 3.0, 4.0, 5.0],
                          "responded": [0, 0, 1, 1], "response_rate": [0.1, 0.2, 0.6, 0.9],
                          "gt_response_prob": [0.1, 0.2, 0.6, 0.9]})
    table = mse_by_decile(frame, SurveyConfig(), frame["response_rate"], bins=2)
    assert table["mse"].tolist() == pytest.approx([(4 + 0) / 2, (0 + 1) / 2])
    got = survey_metrics(frame, SurveyConfig())
    assert got["satisfaction_mse"] == pytest.approx(5 / 4)
    assert got["satisfaction_mse_nonresponders"] == pytest.approx(2.0)
    assert got["response_auc"] == pytest.approx(1.0)


def test_survey_ipw_trains_in_the_generic_multitask_model():
    import tf_keras

    from ctrcvr.config import Config
    from trainer.model.layers import FeatureEmbedding
    from trainer.model.multitask import MultiTaskModel
    from transforms.schema import transformed_name

    config = Config.model_validate({
        "features": [{"name": "user_id", "kind": "categorical"}, {"name": "item_price", "kind": "numeric"}],
        "labels": {"task": "survey"}, "model": {"name": "survey_ipw", "tower": {"units": [4]},
                                                "survey": {"response_negative_keep": 0.5}}})
    estimator = get_estimator("survey_ipw").create(config.model)
    model = MultiTaskModel(lambda g: FeatureEmbedding(config.features, {"user_id": 5}, 2, name=f"emb_{g}"),
                           estimator, config.labels)
    rng = np.random.default_rng(0)
    responded = (rng.random(64) < 0.3).astype(np.float32)
    batch = {transformed_name("user_id"): rng.integers(5, size=64), transformed_name("item_price"):
             rng.normal(size=64).astype(np.float32), "responded": responded,
             "rating": np.where(responded > 0, rng.integers(1, 6, size=64), 0).astype(np.float32)}
    model.compile(optimizer=tf_keras.optimizers.legacy.Adam(0.01))
    history = model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(16), epochs=2, verbose=0)
    assert set(history.history) == {"loss", "satisfaction", "response"}
    assert all(np.isfinite(v).all() for v in history.history.values())
    out = model.predict_named(batch)
    assert set(out) == {"satisfaction", "response_rate"}
    s, p = out["satisfaction"].numpy(), out["response_rate"].numpy()
    assert np.all((s >= 1.0) & (s <= 5.0)) and np.all((p > 0) & (p < 1))
