"""C-IPS (seed 004): DEC (eqs. 5–7), cluster-level propensities (eq. 8) and the alternating fit."""
import math

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from pipeline.config import SimulateRatingsConfig
from trainer.config import ModelConfig
from pipeline.simulators.ratings import simulate_ratings
from trainer.estimators.c_ips import RatingsData, fit_c_ips, score
from trainer.estimators.c_ips.stratification import cluster_propensities, clustering_loss, soft_assignment, target_distribution

# Observed pairs with repeats (implicit logs): user 0 saw item 0 twice and item 1 once, ...
USERS = np.array([0, 0, 0, 1, 1, 2])
ITEMS = np.array([0, 0, 1, 1, 2, 1])


def test_soft_assignment_is_the_student_t_kernel_normalised():
    a = soft_assignment(tf.constant([[0.0, 0.0]]), tf.constant([[0.0, 0.0], [1.0, 0.0]])).numpy()
    np.testing.assert_allclose(a, [[1 / 1.5, 0.5 / 1.5]], rtol=1e-6)  # kernels 1/(1+0), 1/(1+1)


def test_target_distribution_and_kl_on_a_hand_computed_case():
    a = tf.constant([[0.6, 0.4], [0.4, 0.6]])  # s_k = 1 for both clusters
    t = target_distribution(a).numpy()
    np.testing.assert_allclose(t, [[0.36 / 0.52, 0.16 / 0.52], [0.16 / 0.52, 0.36 / 0.52]], rtol=1e-6)
    kl = sum(tk * math.log(tk / ak) for tk, ak in zip(t[0], [0.6, 0.4]))
    assert clustering_loss(tf.constant(t), a).numpy() == pytest.approx(kl, rel=1e-5)


def test_target_sharpens_assignments():
    a = tf.nn.softmax(tf.random.stateless_normal((200, 5), seed=(1, 2)), axis=1)
    t = target_distribution(a)

    def entropy(p):
        return -tf.reduce_sum(p * tf.math.log(p), axis=1).numpy()

    assert np.all(entropy(t) < entropy(a))
    assert np.mean(tf.reduce_max(t, 1).numpy() >= tf.reduce_max(a, 1).numpy()) > 0.95
    assert tf.reduce_max(t).numpy() >= tf.reduce_max(a).numpy()
    np.testing.assert_allclose(tf.reduce_sum(t, 1).numpy(), 1.0, rtol=1e-5)


def test_one_user_per_cluster_gives_user_level_propensities():
    p = cluster_propensities(np.arange(3), USERS, ITEMS, n_items=3)
    # user 0: n(0)=2, n(1)=1 -> 1, 1, 0.5; user 1: n(1)=n(2)=1 -> 1, 1; user 2 -> 1
    np.testing.assert_allclose(p, [1.0, 1.0, 0.5, 1.0, 1.0, 1.0])
    frame = pd.DataFrame({"u": USERS, "v": ITEMS})
    n = frame.groupby(["u", "v"]).size()
    expected = [n[(u, v)] / n[u].max() for u, v in zip(USERS, ITEMS)]
    np.testing.assert_allclose(p, expected)


def test_one_cluster_gives_item_popularity_propensities():
    p = cluster_propensities(np.zeros(3, int), USERS, ITEMS, n_items=3)
    counts = np.bincount(ITEMS, minlength=3)  # [2, 3, 1]
    np.testing.assert_allclose(p, counts[ITEMS] / counts.max())
    np.testing.assert_allclose(p, [2 / 3, 2 / 3, 1.0, 1.0, 1 / 3, 1.0])


def _tiny_data():
    frames = simulate_ratings(SimulateRatingsConfig(n_users=40, n_items=20, n_groups=2, density=0.2), seed=0)
    return RatingsData.from_frame(frames["train"], 40, 20, threshold=3.0)


def _config(**c_ips):
    return ModelConfig(name="c_ips", embedding_dim=4, c_ips={
        "rounds": 1, "cluster_epochs": 1, "rec_epochs": 1, "hidden_units": [8], **c_ips})


def test_fit_with_one_cluster_weights_by_item_popularity():
    data = _tiny_data()
    result = fit_c_ips(data, _config(n_clusters=1), seed=0)
    counts = np.bincount(data.items, minlength=data.n_items)
    np.testing.assert_allclose(result.propensity, counts[data.items] / counts.max(), rtol=1e-6)
    assert np.all(result.clusters == 0)
    assert np.isfinite(score(result.model, data.users[:5], data.items[:5])).all()


def test_fit_with_k_clusters_uses_its_clusters_in_eq_8():
    data = _tiny_data()
    result = fit_c_ips(data, _config(n_clusters=3), seed=0)
    np.testing.assert_allclose(result.propensity,
                               cluster_propensities(result.clusters, data.users, data.items, data.n_items))
    assert result.propensity.max() == 1.0 and result.propensity.min() > 0


def test_plain_mf_and_user_level_ips_propensities():
    data = _tiny_data()
    assert np.all(fit_c_ips(data, _config(propensity="none"), seed=0).propensity == 1.0)
    p = fit_c_ips(data, _config(propensity="user"), seed=0).propensity
    assert p.shape == data.users.shape and np.all((p > 0) & (p < 1))


def test_the_own_loop_reports_progress_per_epoch_with_eta(caplog):
    import logging

    from trainer.progress import Progress
    data = _tiny_data()
    with caplog.at_level(logging.INFO, logger="trainer"):
        fit_c_ips(data, _config(n_clusters=2, rounds=2), seed=0,
                  progress=Progress("c_ips", total_epochs=4, every_seconds=0.0))
    lines = [r.getMessage() for r in caplog.records if r.name == "trainer"]
    done = [line for line in lines if " done in " in line]
    assert len(done) == 4 and "round 2/2 recommender epoch 1" in done[-1]
    assert all("examples/s" in line for line in lines) and "ETA" in done[0]
    assert any("DEC" in line and "clustering=" in line for line in done)
    assert any(" step " in line for line in lines), "a line within the epoch, not only at its end"
