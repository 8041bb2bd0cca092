"""The TFRS backbones (dcn, dlrm) and the shared-expert ones (mmoe, ple): shapes, one closed-form forward pass
each on hand-set weights, config errors, and every estimator of the Keras multi-task family training one tiny
epoch on each."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tests.trainer.model.fitting import changed_variables, estimator_knobs, fit_one_epoch, random_batch
from ctrcvr.config import config_from_dict
from trainer.estimators import ESTIMATORS, get_estimator
from trainer.estimators.easq.layers import MixtureOfExperts, SoftmaxRouter
from trainer.estimators.interface import MultiTaskEstimator
from trainer.model.layers import FeatureEmbedding
from trainer.model.multitask import MultiTaskModel, build_backbones, group_dims

SIZES = {"user_id": 3, "item_id": 2}
FAMILY = sorted(n for n, spec in ESTIMATORS.items() if issubclass(spec.load(), MultiTaskEstimator)  # the CVR family
                and {"ctr", "cvr"} <= set(spec.load().towers))
BACKBONES = ("dcn", "dlrm", "mmoe", "ple")
SMALL = {"tower": {"units": [4]}, "dcn": {"cross_layers": 1}, "dlrm": {"bottom_units": [3]},
         "mmoe": {"experts": 2, "expert_units": [4]}, "ple": {"shared_experts": 2, "task_experts": 1,
                                                            "expert_units": [4]}}
USER = np.array([[1.0, 2.0], [0.0, 0.0], [-1.0, 0.5]], np.float32)
ITEM = np.array([[3.0, -1.0], [0.5, 0.25]], np.float32)


def _config(backbone, name="esmm", numeric=False, features=None, **model):
    features = features or [{"name": "user_id", "kind": "categorical"}, {"name": "item_id", "kind": "categorical"}]
    if numeric:
        features = [*features, {"name": "price", "kind": "numeric"}]
    return config_from_dict({"features": features,
                             "model": {"name": name, "embedding_dim": 2, "backbone": backbone, **SMALL, **model}})


def _model(config):
    estimator = get_estimator(config.model.name).create(config.model)
    dims = group_dims(estimator, config.features, SIZES)
    return MultiTaskModel(lambda g: FeatureEmbedding(config.features, SIZES, 2, dims=dims.get(g), name=f"emb_{g}"),
                          estimator, config.labels, backbones=build_backbones(estimator, config.features, SIZES),
                          name=config.model.name)


def _batch(users, items, o=None, r=None, price=None):
    n = len(users)
    batch = {"user_id_xf": tf.constant(users, tf.int64), "item_id_xf": tf.constant(items, tf.int64),
             "click": tf.constant(o if o is not None else [1] * n, tf.int64),
             "conversion": tf.constant(r if r is not None else [0] * n, tf.int64)}
    batch["price_xf"] = tf.constant(price if price is not None else [0.5] * n, tf.float32)
    return batch


def _hand_set_embeddings(model):
    for emb in model.embeddings.values():
        emb.tables["user_id"].embeddings.assign(USER)
        emb.tables["item_id"].embeddings.assign(ITEM)


def _fill(layer, value):
    for v in layer.trainable_variables:
        v.assign(tf.fill(v.shape, float(value)))


# rows: (u=0, i=1) -> fields [1, 2] and [0.5, 0.25]; (u=2, i=0) -> [-1, 0.5] and [3, -1]
BATCH = dict(users=[0, 2], items=[1, 0])


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("numeric", [False, True])
def test_shapes(backbone, numeric):
    model = _model(_config(backbone, numeric=numeric))
    out = model(_batch(**BATCH))
    assert out["ctr"].shape == (2,) and out["cvr"].shape == (2,)
    if backbone in ("mmoe", "ple"):
        assert model.towers["ctr"] is model.towers["cvr"]        # one layer per embedding group
    else:
        assert model.towers["ctr"] is not model.towers["cvr"]


def test_dcn_stacked_closed_form():
    # one Cross layer, W = 1, b = 0: x1 = x0 ⊙ (Σx0) + x0 = x0 (1 + Σx0); no MLP; logit = Σ x1 (w = 1, b = 0)
    model = _model(_config("dcn", tower={"units": []}))
    batch = _batch(**BATCH)
    model(batch)
    _hand_set_embeddings(model)
    tower = model.towers["cvr"]
    cross = tower.cross[0]
    cross._dense.kernel.assign(tf.ones_like(cross._dense.kernel))
    cross._dense.bias.assign(tf.zeros_like(cross._dense.bias))
    tower.logit.kernel.assign(tf.ones_like(tower.logit.kernel))
    tower.logit.bias.assign([0.0])
    # row 1: x0 = [1, 2, .5, .25], Σ = 3.75, Σx1 = 3.75 · 4.75 = 17.8125
    # row 2: x0 = [-1, .5, 3, -1], Σ = 1.5,  Σx1 = 1.5 · 2.5 = 3.75
    np.testing.assert_allclose(model(batch)["cvr"].numpy(), [17.8125, 3.75], rtol=1e-6)


def test_dcn_parallel_concatenates_the_cross_and_the_mlp():
    # parallel, MLP one ReLU unit with w = 1, b = 0: h = [x1 : relu(Σx0)], logit = Σx1 + relu(Σx0)
    model = _model(_config("dcn", tower={"units": [1]}, dcn={"cross_layers": 1, "structure": "parallel"}))
    batch = _batch(**BATCH)
    model(batch)
    _hand_set_embeddings(model)
    tower = model.towers["cvr"]
    _fill(tower, 1.0)
    for layer in (tower.cross[0]._dense, tower.logit, tower.mlp.layers[0]):
        layer.bias.assign(tf.zeros_like(layer.bias))
    assert tower.logit.kernel.shape == (5, 1)
    np.testing.assert_allclose(model(batch)["cvr"].numpy(), [17.8125 + 3.75, 3.75 + 1.5], rtol=1e-6)


def test_dlrm_closed_form():
    # no numeric fields, no top MLP: pairs = ⟨u, i⟩; logit = 2 ⟨u, i⟩ + 0.5
    model = _model(_config("dlrm", tower={"units": []}))
    batch = _batch(**BATCH)
    model(batch)
    _hand_set_embeddings(model)
    tower = model.towers["ctr"]
    tower.logit.kernel.assign([[2.0]])
    tower.logit.bias.assign([0.5])
    # ⟨[1, 2], [.5, .25]⟩ = 1; ⟨[-1, .5], [3, -1]⟩ = -3.5
    np.testing.assert_allclose(model(batch)["ctr"].numpy(), [2.5, -6.5], rtol=1e-6)


def test_dlrm_bottom_mlp_joins_the_interactions():
    # price through the bottom MLP (3 ReLU units, then 2; weights 1, biases 0): z = [3p, 3p];
    # pairs over [z, u, i]: ⟨z,u⟩, ⟨z,i⟩, ⟨u,i⟩; top input [z : pairs] (5 wide), logit = Σ (w = 1, b = 0)
    model = _model(_config("dlrm", numeric=True, tower={"units": []}))
    batch = _batch(**BATCH, price=[1.0, -1.0])
    model(batch)
    _hand_set_embeddings(model)
    tower = model.towers["ctr"]
    _fill(tower, 1.0)
    for layer in [*tower.bottom.layers, tower.logit]:
        layer.bias.assign(tf.zeros_like(layer.bias))
    assert tower.logit.kernel.shape == (5, 1)
    # row 1 (p = 1): z = [3, 3]: 6 + ⟨z,u⟩ 9 + ⟨z,i⟩ 2.25 + ⟨u,i⟩ 1 = 18.25; row 2 (p = -1): z = 0: -3.5
    np.testing.assert_allclose(model(batch)["ctr"].numpy(), [18.25, -3.5], rtol=1e-6)


def test_mmoe_closed_form():
    # 2 experts of one ReLU unit; expert 0 kernel 1, expert 1 kernel 0 (biases 0); gates W = 0 -> softmax 1/2;
    # mixed = ½ relu(Σx) ; head: no hidden layer, w = 1 + tower index, b = 0
    model = _model(_config("mmoe", tower={"units": []}, mmoe={"experts": 2, "expert_units": [1]}))
    batch = _batch(**BATCH)
    model(batch)
    _hand_set_embeddings(model)
    mmoe = model.towers["ctr"]
    mmoe.experts.kernels[0].assign([[[1.0]] * 4, [[0.0]] * 4])
    for t, w in (("ctr", 1.0), ("cvr", 2.0)):
        _fill(mmoe.gates[t], 0.0)
        mmoe.heads[t].layers[-1].kernel.assign([[w]])
        mmoe.heads[t].layers[-1].bias.assign([0.0])
    out = model(batch)
    # Σx: 3.75 and 1.5 -> mixed 1.875, 0.75
    np.testing.assert_allclose(out["ctr"].numpy(), [1.875, 0.75], rtol=1e-6)
    np.testing.assert_allclose(out["cvr"].numpy(), [3.75, 1.5], rtol=1e-6)


def test_ple_closed_form():
    # shared experts kernels 1 and 0, each tower's own expert kernel 3 (one ReLU unit, biases 0), gates W = 0:
    # g = 1/3 over [own, shared0, shared1] -> mixed = (3 + 1 + 0)/3 · relu(Σx); head w = 1, b = 0
    model = _model(_config("ple", tower={"units": []}, ple={"shared_experts": 2, "task_experts": 1,
                                                             "expert_units": [1]}))
    batch = _batch(**BATCH)
    model(batch)
    _hand_set_embeddings(model)
    ple = model.towers["cvr"]
    ple.shared.kernels[0].assign([[[1.0]] * 4, [[0.0]] * 4])
    for t in ("ctr", "cvr"):
        ple.own[t].kernels[0].assign([[[3.0]] * 4])
        _fill(ple.gates[t], 0.0)
        ple.heads[t].layers[-1].kernel.assign([[1.0]])
        ple.heads[t].layers[-1].bias.assign([0.0])
    out = model(batch)
    np.testing.assert_allclose(out["ctr"].numpy(), [4 / 3 * 3.75, 4 / 3 * 1.5], rtol=1e-6)
    np.testing.assert_allclose(out["cvr"].numpy(), out["ctr"].numpy(), rtol=1e-6)


def test_softmax_gate_of_the_mixture_of_experts():
    """MixtureOfExperts(gate="softmax"): the EASQ mixture with MMoE's gate, weights summing to 1, no L1."""
    moe = MixtureOfExperts(2, [1], gate="softmax", kernel_initializer="ones", name="moe")
    h = tf.constant([[1.0, 2.0]])
    moe(h)
    assert isinstance(moe.router, SoftmaxRouter)
    _fill(moe.router, 0.0)
    moe.kernels[0].assign([[[1.0], [1.0]], [[2.0], [2.0]]])
    out = moe(h, training=True)
    np.testing.assert_allclose(out["gates"].numpy(), [[0.5, 0.5]])
    np.testing.assert_allclose(out["output"].numpy(), [[0.5 * 3 + 0.5 * 6]])  # linear last layer
    assert float(out["l1"]) == 0.0
    with pytest.raises(ValueError, match="no router"):
        MixtureOfExperts(2, [1], gate=None, name="bare")(h)


def test_mmoe_relu_gate_adds_the_routers_penalty():
    model = _model(_config("mmoe", mmoe={"experts": 2, "expert_units": [4], "gate": "relu"}))
    model(_batch(**BATCH))
    assert len(model.losses) == 2                                   # one L1 term per tower's router


def test_unknown_backbone_names_the_known_ones():
    from ctrcvr.config import ConfigError
    with pytest.raises((ConfigError, ValueError), match="did you mean 'dcn'"):
        _config("dcm")


def test_dlrm_needs_one_size_for_every_field_vector():
    features = [{"name": "user_id", "kind": "categorical", "embedding_dim": 8},
                {"name": "item_id", "kind": "categorical"}]
    with pytest.raises(ValueError, match=r"features\[user_id\]\.embedding_dim=8.*item_id: model\.embedding_dim=2"):
        _model(_config("dlrm", features=features))


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("name", FAMILY)
def test_every_estimator_trains_one_tiny_epoch(name, backbone):
    tf_keras.utils.set_random_seed(0)
    model = _model(_config(backbone, name, **estimator_knobs(name)))
    batch = random_batch(name, _batch, 16, 0.5)
    before, loss = fit_one_epoch(model, batch)
    assert np.isfinite(loss).all()
    assert changed_variables(model, before) > 0
    assert set(model.predict_named(batch)) >= {"pctr", "pcvr", "pctcvr"}


SURVEY = sorted(n for n, spec in ESTIMATORS.items() if issubclass(spec.load(), MultiTaskEstimator)
                and n not in FAMILY)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("name", SURVEY)
def test_every_survey_estimator_trains_one_tiny_epoch(name, backbone):
    tf_keras.utils.set_random_seed(0)
    config = config_from_dict({
        "features": [{"name": "user_id", "kind": "categorical"}, {"name": "item_id", "kind": "categorical"}],
        "labels": {"task": "survey", "selection": "responded", "outcome": "rating", "rating_range": [1.0, 5.0]},
        "model": {"name": name, "embedding_dim": 2, "backbone": backbone, **SMALL}})
    model = _model(config)
    rng = np.random.default_rng(0)
    o = (rng.random(16) < 0.5).astype(np.int64)
    batch = {"user_id_xf": tf.constant(rng.integers(0, 3, 16)), "item_id_xf": tf.constant(rng.integers(0, 2, 16)),
             "responded": tf.constant(o), "rating": tf.constant(np.where(o, rng.integers(1, 6, 16), 0), tf.float32)}
    before, loss = fit_one_epoch(model, batch)
    assert np.isfinite(loss).all()
    assert changed_variables(model, before) > 0
