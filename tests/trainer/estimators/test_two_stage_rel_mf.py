"""ips / dr_jl train the propensity model first and then hold it fixed; Rel-MF's loss in closed form."""
import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from trainer.config import ModelConfig, TrainerSpec
from trainer.data import TrainingData
from trainer.estimators.rel_mf import ImplicitTrainer, popularity_theta
from trainer.pairs import ObservedMatrix
from trainer.progress import Progress
from tests.trainer.model.test_backbones import _batch, _config, _model


@pytest.mark.parametrize("name", ["ips", "dr_jl"])
def test_two_stage_fits_only_the_propensity_tower_then_everything_but_it(name, monkeypatch):
    model = _model(_config(name))
    batch = _batch([0, 1, 2, 0], [0, 1, 0, 1], [1, 0, 1, 0], [1, 0, 0, 0])
    model(batch)
    ids = lambda layers: {id(v) for layer in layers for v in layer.trainable_variables}  # noqa: E731
    ctr = ids([model.towers["ctr"], model.embeddings["propensity"]])
    moved = []

    def fit_on_the_batch(m, data, model_dir):
        """keras_fit on one batch: compiled once (as keras_fit does), a traced ``Model.fit`` per stage,
        so a train function cached from stage 1 would train stage 1's variables again in stage 2."""
        if m.optimizer is None:
            m.compile(optimizer=tf_keras.optimizers.legacy.Adam(0.1))
        before = [v.numpy().copy() for v in m.trainable_variables]
        m.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
        moved.append({id(v) for b, v in zip(before, m.trainable_variables) if not np.allclose(b, v.numpy())})

    monkeypatch.setattr("trainer.model.keras_fit.keras_fit", fit_on_the_batch)

    config = _config(name)
    spec = TrainerSpec(tuple(config.features), config.labels, config.model)
    model.estimator.fit(model, TrainingData(spec, "unused"), "/tmp/unused")
    assert moved[0] == ctr, "stage 1 trains the propensity model only"
    assert moved[1] and not moved[1] & ctr, "stage 2 never moves the propensity model"


def test_rel_mf_loss_is_the_bce_against_clicks_over_the_propensity():
    # 1 user x 2 items, item 0 clicked (rating > 3), item 1 not: θ = (n_i / max n)^0.5 = [1, 0] floored at τ = 0.25
    matrix = ObservedMatrix.from_pairs(np.array([0, 0]), np.array([0, 1]), np.array([1.0, 0.0]), 1, 2)
    np.testing.assert_allclose(popularity_theta(matrix, 0.5), [1.0, 0.0])
    z = tf.Variable([0.4, -1.2])
    theta = tf.constant([0.5, 1.0])
    params = ModelConfig(name="rel_mf", ipw={"tau": 0.25})
    trainer = ImplicitTrainer(lambda u, i: tf.gather(z, i), [z], tf_keras.optimizers.legacy.SGD(0.0),
                              lambda u, i: tf.gather(theta, i), params.ipw, 0.0)
    loss = trainer.epoch(matrix, (1, 2), 0, Progress("rel_mf"), "epoch")

    def soft_bce(t, logit):
        p = 1 / (1 + math.exp(-logit))
        return -(t * math.log(p) + (1 - t) * math.log(1 - p))
    assert loss == pytest.approx((soft_bce(1 / 0.5, 0.4) + soft_bce(0.0, -1.2)) / 2, rel=1e-5)
