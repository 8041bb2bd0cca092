"""The generic model and trainer: every registered estimator trains, alternating updates touch only
their own variables, the detach switch reaches the CTR tower's weights, ground truth is enforced."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tests.trainer.model.fitting import changed_variables, fit_one_epoch
from ctrcvr.config import config_from_dict
from trainer.estimators import ESTIMATORS, get_estimator
from trainer.estimators.interface import MultiTaskEstimator
from trainer.model.layers import FeatureEmbedding
from trainer.model.multitask import MultiTaskModel

N = 64
MULTI_TASK = sorted(n for n, spec in ESTIMATORS.items() if issubclass(spec.load(), MultiTaskEstimator))


def _config(name, **model):
    return config_from_dict({
        "features": [{"name": "user_id", "kind": "categorical"}, {"name": "item_id", "kind": "categorical"},
                     {"name": "item_price", "kind": "numeric"}],
        "model": {"name": name, "embedding_dim": 4, "tower": {"units": [8]}, **model},
        "train": {"batch_size": 16}})


def _model(config):
    estimator = get_estimator(config.model.name).create(config.model)
    sizes = {"user_id": 7, "item_id": 5}
    return MultiTaskModel(lambda g: FeatureEmbedding(config.features, sizes, 4, name=f"emb_{g}"),
                          estimator, config.labels, name=config.model.name)


def _batch(n=N, ground_truth=True, seed=0):
    rng = np.random.default_rng(seed)
    click = (rng.random(n) < 0.4).astype(np.int64)
    potential = (rng.random(n) < 0.3).astype(np.int64)
    batch = {"user_id_xf": rng.integers(0, 7, n), "item_id_xf": rng.integers(0, 5, n),
             "item_price_xf": rng.normal(size=n).astype(np.float32), "click": click,
             "conversion": click * potential}
    if ground_truth:
        batch["gt_conversion"] = potential.astype(np.float32)
    return {k: tf.constant(v) for k, v in batch.items()}


@pytest.mark.parametrize("name", MULTI_TASK)
def test_every_registered_estimator_trains_to_a_finite_loss(name):
    tf_keras.utils.set_random_seed(0)
    knobs = {"bmse": {"phi": "2K"}, "undersample_rate": 1.5, "ipw": {"tau_percent": 0.5}}
    config = _config(name, **{k: v for k, v in knobs.items() if get_estimator(name).reads(k)})
    model = _model(config)
    batch = _batch()
    before, loss = fit_one_epoch(model, batch)
    assert np.isfinite(loss).all()
    changed = changed_variables(model, before)
    assert changed == len(before), f"{len(before) - changed} variable(s) never updated"
    outputs = model.predict_named(batch)
    assert outputs and all(np.isfinite(v.numpy()).all() for v in outputs.values())
    if {"ctr", "cvr"} <= set(model.towers):
        assert set(outputs) == {"pctr", "pcvr", "pctcvr"}


def test_alternating_updates_train_only_their_towers_and_embeddings():
    model = _model(_config("joint_learning_dr"))
    batch = _batch()
    model(batch)
    ids = lambda variables: {id(v) for v in variables}  # noqa: E731
    imputation = ids(model.update_variables(get_estimator("joint_learning_dr").load().updates[1]))
    own = ids(model.towers["imp"].trainable_variables) | ids(model.embeddings["imputation"].trainable_variables)
    assert imputation == own
    prediction = ids(model.update_variables(get_estimator("joint_learning_dr").load().updates[0]))
    assert not imputation & prediction and prediction | imputation == ids(model.trainable_variables)
    model.compile(optimizer=tf_keras.optimizers.legacy.Adam(0.01), run_eagerly=True)
    model.train_step(batch)
    assert int(model.optimizer.iterations.numpy()) == 2, "one optimiser step per update"


@pytest.mark.parametrize("detach", [True, False])
def test_ipw_term_reaches_the_ctr_tower_only_without_detach(detach):
    model = _model(_config("multi_ipw", ipw={"detach_propensity": detach}))
    batch = _batch()
    with tf.GradientTape() as tape:
        terms = model.estimator.loss(model.labels(batch), model(batch, training=True))
    ctr_vars = model.towers["ctr"].trainable_variables
    grads = tape.gradient(terms["cvr"], ctr_vars, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    norm = sum(float(tf.reduce_sum(tf.abs(g))) for g in grads)
    assert (norm == 0.0) if detach else (norm > 0.0)


def test_oracle_fails_clearly_on_data_without_ground_truth():
    model = _model(_config("oracle"))
    batch = _batch(ground_truth=False)
    model(batch)
    model.compile(optimizer=tf_keras.optimizers.legacy.Adam(0.01), run_eagerly=True)
    with pytest.raises(ValueError, match="gt_conversion"):
        model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(16), epochs=1, verbose=0)


def test_bmse_phi_needs_embedded_user_and_item_fields():
    model = _model(_config("ips_v2", bmse={"phi": "K", "user_feature": "user_city"}))
    with pytest.raises(ValueError, match="user_city"):
        model(_batch())


def test_validation_reports_the_ctcvr_log_loss_of_the_served_outputs():
    model = _model(_config("multi_ipw"))
    batch = _batch()
    model(batch)
    model.compile(optimizer=tf_keras.optimizers.legacy.Adam(0.01), run_eagerly=True)
    logs = model.evaluate(tf.data.Dataset.from_tensor_slices(batch).batch(N), return_dict=True, verbose=0)
    p = model.predict_named(batch)["pctcvr"].numpy().astype(np.float64)
    y = (batch["click"].numpy() * batch["conversion"].numpy()).astype(np.float64)
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert logs["ctcvr_logloss"] == pytest.approx(expected, rel=1e-4)


def test_validation_reports_the_snips_cvr_log_loss_over_every_batch_with_bounded_weights():
    model = _model(_config("esmm", ipw={"max_weight": 2.0}))
    batch = _batch()
    model(batch)
    model.compile(optimizer=tf_keras.optimizers.legacy.Adam(0.01), run_eagerly=True)
    logs = model.evaluate(tf.data.Dataset.from_tensor_slices(batch).batch(N // 4), return_dict=True, verbose=0)
    out = {k: v.numpy().astype(np.float64) for k, v in model.predict_named(batch).items()}
    o, r = batch["click"].numpy(), batch["conversion"].numpy()
    w = o * np.minimum(1.0 / out["pctr"], 2.0)  # model.ipw bounds the weights here too
    e = -(r * np.log(out["pcvr"]) + (1 - r) * np.log(1 - out["pcvr"]))
    assert logs["cvr_snips_logloss"] == pytest.approx(np.sum(w * e) / np.sum(w), rel=1e-4)  # ratio of sums
    assert np.any(1.0 / out["pctr"][o == 1] > 2.0), "the bound must bind for this test to mean anything"


def test_early_stopping_monitor_must_be_a_reported_validation_metric():
    from trainer.model.keras_fit import check_monitor
    good = _config("multi_ipw")
    good.train.early_stopping_patience = 1
    good.train.early_stopping_monitor = "val_ctcvr_logloss"
    check_monitor(_model(good), good.train)
    bad = _config("multi_ipw")
    bad.train.early_stopping_patience = 1
    bad.train.early_stopping_monitor = "val_ctcvr"  # a term ESMM reports, not Multi-IPW
    with pytest.raises(ValueError, match="val_ctcvr_logloss"):
        check_monitor(_model(bad), bad.train)


def test_early_stopping_reports_in_the_log_not_on_stdout(caplog, capsys):
    """The best epoch's weights are restored and said so through the trainer's log (no bare Keras prints)."""
    import logging

    import numpy as np
    import tf_keras

    from trainer.model.keras_fit import LoggedEarlyStopping
    model = tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(1,))])
    model.compile(optimizer=tf_keras.optimizers.legacy.SGD(0.0), loss="mse")  # no progress: stops at once
    x = np.ones((8, 1), np.float32)
    with caplog.at_level(logging.INFO, logger="trainer"):
        model.fit(x, x, validation_data=(x, x), epochs=5, verbose=0,
                  callbacks=[LoggedEarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)])
    assert "early stopping after epoch 2: val_loss has not improved for 1 epoch(s)" in caplog.text
    assert "keeping the weights of epoch 1, the best val_loss" in caplog.text
    assert capsys.readouterr().out == ""
