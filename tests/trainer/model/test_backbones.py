"""Backbones (trainer/model/backbones.py): the mf forward pass in closed form, shapes, and every
multi-task CVR estimator training on mf with its loss unchanged."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tests.trainer.model.fitting import changed_variables, estimator_knobs, fit_one_epoch, random_batch
from ctrcvr.config import config_from_dict
from trainer.estimators import ESTIMATORS, get_estimator
from trainer.estimators.interface import MultiTaskEstimator
from trainer.model.layers import FeatureEmbedding
from trainer.model.multitask import MultiTaskModel, build_backbones, group_dims

SIZES = {"user_id": 3, "item_id": 2}
CVR_FAMILY = sorted(n for n, spec in ESTIMATORS.items() if issubclass(spec.load(), MultiTaskEstimator)
                    and {"ctr", "cvr"} <= set(spec.load().towers))


def _config(name="base", **model):
    return config_from_dict({
        "features": [{"name": "user_id", "kind": "categorical"}, {"name": "item_id", "kind": "categorical"}],
        "model": {"name": name, "embedding_dim": 4, "backbone": "mf", "mf": {"embedding_dim": 2}, **model}})


def _model(config):
    estimator = get_estimator(config.model.name).create(config.model)
    pair = ("user_id", "item_id")
    dims = group_dims(estimator, config.features, SIZES, pair)
    return MultiTaskModel(lambda g: FeatureEmbedding(config.features, SIZES, 4, dims=dims.get(g), name=f"emb_{g}"),
                          estimator, config.labels, backbones=build_backbones(estimator, config.features, SIZES, pair),
                          name=config.model.name)


def _batch(users, items, o=None, r=None):
    n = len(users)
    return {"user_id_xf": tf.constant(users, tf.int64), "item_id_xf": tf.constant(items, tf.int64),
            "click": tf.constant(o if o is not None else [1] * n, tf.int64),
            "conversion": tf.constant(r if r is not None else [0] * n, tf.int64)}


def test_mf_logit_is_the_dot_product_plus_the_biases_on_hand_set_embeddings():
    model = _model(_config("base", mf={"embedding_dim": 2, "weight_decay": 0.5}))
    batch = _batch([0, 2], [1, 0])
    model(batch)
    cvr = model.towers["cvr"]
    emb = model.embeddings["cvr"]
    p = np.array([[1.0, 2.0], [0.0, 0.0], [-1.0, 0.5]], np.float32)
    q = np.array([[3.0, -1.0], [0.5, 0.25]], np.float32)
    emb.tables["user_id"].embeddings.assign(p)
    emb.tables["item_id"].embeddings.assign(q)
    cvr.score.user_bias.embeddings.assign([[0.1], [0.2], [0.3]])
    cvr.score.item_bias.embeddings.assign([[-0.4], [0.7]])
    cvr.score.bias.assign(0.05)
    logits = model(batch)
    # (u=0, i=1): 1·0.5 + 2·0.25 + 0.1 + 0.7 + 0.05; (u=2, i=0): −3 − 0.5 + 0.3 − 0.4 + 0.05
    np.testing.assert_allclose(logits["cvr"].numpy(), [1.85, -3.55], rtol=1e-6)
    assert logits["cvr"].shape == (2,) and logits["ctr"].shape == (2,)
    # the weight decay of both towers: 0.5 · mean(‖p_u‖² + ‖q_i‖²) each, on its own group's vectors
    cvr_penalty = 0.5 * np.mean([5.0 + 0.3125, 1.25 + 10.0])
    assert any(abs(float(v) - cvr_penalty) < 1e-5 for v in model.losses)


def test_mf_tables_take_its_own_size_and_other_fields_keep_the_embedding_dim():
    model = _model(_config("multi_ipw", mf={"embedding_dim": 6}))
    model(_batch([0], [1]))
    tables = model.embeddings["shared"].tables
    assert tables["user_id"].embeddings.shape == (3, 6) and tables["item_id"].embeddings.shape == (2, 6)


def test_towers_sharing_p_and_q_get_a_gmf_head_each_and_separate_towers_a_plain_dot():
    """head auto: Multi-IPW's CTR and CVR towers share p, q, so each weights p ⊙ q by its own w_t (without
    it both would rank by one ⟨p_u, q_i⟩); base's towers have their own tables and keep the dot product."""
    shared = _model(_config("multi_ipw"))
    shared(_batch([0], [1]))
    assert all(shared.towers[t].score.head is not None for t in ("ctr", "cvr"))
    assert shared.towers["ctr"].score.head is not shared.towers["cvr"].score.head
    separate = _model(_config("base"))
    separate(_batch([0], [1]))
    assert all(separate.towers[t].score.head is None for t in ("ctr", "cvr"))
    forced = _model(_config("base", mf={"embedding_dim": 2, "head": "gmf"}))
    forced(_batch([0], [1]))
    assert forced.towers["cvr"].score.head is not None


def test_gmf_logit_is_the_weighted_product_plus_the_biases_and_starts_as_the_dot_product():
    model = _model(_config("multi_ipw", mf={"embedding_dim": 2}))
    batch = _batch([0, 2], [1, 0])
    model(batch)
    emb = model.embeddings["shared"]
    emb.tables["user_id"].embeddings.assign([[1.0, 2.0], [0.0, 0.0], [-1.0, 0.5]])
    emb.tables["item_id"].embeddings.assign([[3.0, -1.0], [0.5, 0.25]])
    np.testing.assert_allclose(model(batch)["cvr"].numpy(), [1.0, -3.5], rtol=1e-6)  # w_t = 1: ⟨p, q⟩, biases 0
    model.towers["cvr"].score.head.assign([2.0, -1.0])
    # (0, 1): 2·0.5 − 0.5 = 0.5; (2, 0): 2·(−3) + 0.5 = −5.5; the CTR tower keeps its own w_t = 1
    np.testing.assert_allclose(model(batch)["cvr"].numpy(), [0.5, -5.5], rtol=1e-6)
    np.testing.assert_allclose(model(batch)["ctr"].numpy(), [1.0, -3.5], rtol=1e-6)


def test_separate_embeddings_give_every_tower_its_own_tables():
    model = _model(_config("multi_ipw", separate_embeddings=True))
    model(_batch([0], [1]))
    assert sorted(model.embeddings) == ["ctr", "cvr"]
    assert all(model.towers[t].score.head is None for t in ("ctr", "cvr"))
    assert sorted(_model(_config("multi_ipw")).embeddings) == ["shared"]


def test_mlp_backbone_stays_the_default():
    config = config_from_dict({"features": [{"name": "user_id", "kind": "categorical"}],
                               "model": {"name": "esmm"}})
    assert config.model.backbone == "mlp" and config.model.backbone_of("ctr") == "mlp"


def test_unknown_backbone_fails_naming_the_known_ones():
    from ctrcvr.config import ConfigError
    with pytest.raises((ConfigError, ValueError), match="did you mean 'mf'"):
        _config(backbone="mff")


def test_mf_needs_declared_user_and_item_features():
    with pytest.raises(ValueError, match="user_feature='user_city'"):
        _model(_config(mf={"user_feature": "user_city"}))


@pytest.mark.parametrize("name", CVR_FAMILY)
def test_every_cvr_estimator_trains_one_tiny_epoch_on_mf(name):
    tf_keras.utils.set_random_seed(0)
    model = _model(_config(name, **estimator_knobs(name)))
    batch = random_batch(name, _batch, 32, 0.4)
    before, loss = fit_one_epoch(model, batch)
    assert np.isfinite(loss).all()
    changed = changed_variables(model, before)
    assert changed == len(before)
    assert set(model.predict_named(batch)) == {"pctr", "pcvr", "pctcvr"}
