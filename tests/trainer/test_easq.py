"""EASQ (trainer/estimators/easq): gradient routing, closed-form losses, the ReLU router, pair formation.

Every batch is 2–6 rows; the gradient-routing tests pin which parameter group each loss reaches
(eqs. 8, 12, 16: stop_grad on h_LoRA in the main path, on h in the satisfaction path, on ŝ in L_DPO).
"""
import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from trainer.estimators.easq import (Easq, EasqConfig, EasqLossConfig, MixtureOfExperts, QuestionnaireBuffer,
                                     ReluRouter, answer_grades, behaviour_grades, bpr_loss, dpo_loss, easq_loss,
                                     request_pairs, satisfaction_loss, within_group_pairs, within_group_pairs_tf)

SMALL = EasqConfig(units=6, lora_rank=2, main_experts=3, satisfaction_experts=2, expert_units=(4, 1),
                   target_sparsity=0.0)
BEHAVIOUR = tf.constant([[0, 1], [2, 1], [3, 1]])
QUESTIONNAIRE = tf.constant([[0, 3], [2, 1]])


def _softplus(z):
    return math.log1p(math.exp(z))


def _sig(z):
    return 1.0 / (1.0 + math.exp(-z))


def _model(seed=0, **changes):
    tf.keras.utils.set_random_seed(seed)
    config = EasqConfig(**{**SMALL.__dict__, **changes})
    model = Easq(config)
    x = tf.random.normal([4, 5], seed=seed)
    model(x)
    return model, x


def _grads(model, x, term, sources=None, lambda1=1.0, lambda2=1.0):
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        out = model(x)
        losses = easq_loss(out, BEHAVIOUR, QUESTIONNAIRE, EasqLossConfig(lambda1=lambda1, lambda2=lambda2))
    groups = {"lora": model.lora_variables(), "w0": model.backbone_variables(), "main": model.main_variables(),
              "satisfaction": model.satisfaction_variables()}
    got = {name: tape.gradient(losses[term], variables) for name, variables in groups.items()}
    got["x"] = tape.gradient(losses[term], x)
    got["s_hat"] = tape.gradient(losses[term], out["satisfaction"])
    return got


def _none(grads):
    return all(g is None for g in grads)


def _flowing(grads):
    return all(g is not None for g in grads) and any(float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)


# ----------------------------------------------------------------------------- LoRA and gradient routing
def test_lora_b_starts_at_zero_so_the_satisfaction_path_starts_from_h_alone():
    model, x = _model()
    out = model(x)
    assert np.all(model.backbone.lora_b.numpy() == 0) and np.any(model.backbone.lora_a.numpy() != 0)
    np.testing.assert_array_equal(out["h_lora"].numpy(), 0)
    alone = model.satisfaction_moe(out["h"])["output"][:, 0]
    np.testing.assert_allclose(out["satisfaction"].numpy(), alone.numpy(), rtol=1e-6)


def test_l_satis_trains_lora_and_the_satisfaction_experts_only():
    model, x = _model()
    model.backbone.lora_b.assign(tf.random.normal(model.backbone.lora_b.shape, seed=1))  # so A's gradient ≠ 0
    g = _grads(model, x, "satis")
    assert _flowing(g["lora"]) and _flowing(g["satisfaction"])
    assert _none(g["w0"]) and _none(g["main"])


def test_l_satis_gradient_at_init_reaches_b_not_a():
    model, x = _model()
    g = _grads(model, x, "satis")
    grad_a, grad_b = g["lora"]
    assert float(tf.reduce_sum(tf.abs(grad_b))) > 0 and float(tf.reduce_sum(tf.abs(grad_a))) == 0


@pytest.mark.parametrize("term", ["main", "dpo"])
def test_l_main_and_l_dpo_train_w0_and_the_main_experts_never_lora_or_the_reference(term):
    model, x = _model()
    model.backbone.lora_b.assign(tf.random.normal(model.backbone.lora_b.shape, seed=1))
    g = _grads(model, x, term)
    assert _flowing(g["w0"]) and _flowing(g["main"])
    assert _none(g["lora"]) and _none(g["satisfaction"])
    if term == "dpo":
        assert g["s_hat"] is None  # π_ref = stop_grad(ŝ)


@pytest.mark.parametrize("reads_input", [True, False])
def test_switch_decides_whether_l_satis_reaches_the_input(reads_input):
    model, x = _model(lora_reads_input=reads_input)
    model.backbone.lora_b.assign(tf.random.normal(model.backbone.lora_b.shape, seed=1))
    g = _grads(model, x, "satis")
    assert (g["x"] is not None) == reads_input
    assert _flowing(g["lora"])
    assert _grads(model, x, "main")["x"] is not None  # the main task always trains the embeddings


# ----------------------------------------------------------------------------- closed-form losses
def test_bpr_is_mean_softplus_of_negative_margins():
    y = tf.constant([2.0, 0.0, 1.0])
    pairs = tf.constant([[0, 1], [2, 1]])
    assert float(bpr_loss(y, pairs)) == pytest.approx((_softplus(-2.0) + _softplus(-1.0)) / 2, rel=1e-6)
    assert float(bpr_loss(y, pairs, "sum")) == pytest.approx(_softplus(-2.0) + _softplus(-1.0), rel=1e-6)


def test_satisfaction_loss_reads_s_hat():
    s = tf.constant([0.5, -0.5, 3.0, 1.0])
    assert float(satisfaction_loss(s, QUESTIONNAIRE)) == pytest.approx(
        (_softplus(-(0.5 - 1.0)) + _softplus(-(3.0 + 0.5))) / 2, rel=1e-6)


def test_dpo_softmax_reading_is_beta_times_margin_difference():
    y, s = tf.constant([1.0, 0.0]), tf.constant([0.5, 1.0])
    # β[(ŷ⁺ − ŷ⁻) − (ŝ⁺ − ŝ⁻)] = 0.1 · [(1 − 0) − (0.5 − 1)] = 0.15
    assert float(dpo_loss(y, s, tf.constant([[0, 1]]))) == pytest.approx(_softplus(-0.15), rel=1e-6)
    # the per-user normaliser cancels: shifting every score of the user changes nothing
    assert float(dpo_loss(y + 7.0, s - 3.0, tf.constant([[0, 1]]))) == pytest.approx(_softplus(-0.15), rel=1e-5)


def test_dpo_sigmoid_reading_uses_log_sigmoid_ratios():
    y, s = tf.constant([1.0, 0.0]), tf.constant([0.5, 1.0])
    ratio = lambda a, b: math.log(_sig(a)) - math.log(_sig(b))  # noqa: E731
    expected = _softplus(-0.1 * (ratio(1.0, 0.5) - ratio(0.0, 1.0)))
    got = dpo_loss(y, s, tf.constant([[0, 1]]), beta=0.1, log_pi="sigmoid")
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_total_is_eq_17_with_lambdas_and_router_l1():
    out = {"score": tf.constant([2.0, 0.0, 1.0, -1.0]), "satisfaction": tf.constant([0.5, -0.5, 3.0, 1.0]),
           "router_l1": tf.constant(0.25)}
    got = easq_loss(out, BEHAVIOUR, QUESTIONNAIRE, EasqLossConfig(lambda1=0.5, lambda2=2.0))
    main = (_softplus(-2.0) + _softplus(-1.0) + _softplus(-(-1.0))) / 3
    satis = (_softplus(-(0.5 - 1.0)) + _softplus(-(3.0 + 0.5))) / 2
    dpo = (_softplus(-0.1 * ((2.0 + 1.0) - (0.5 - 1.0))) + _softplus(-0.1 * ((1.0 - 0.0) - (3.0 + 0.5)))) / 2
    assert float(got["main"]) == pytest.approx(main, rel=1e-6)
    assert float(got["satis"]) == pytest.approx(satis, rel=1e-6)
    assert float(got["dpo"]) == pytest.approx(dpo, rel=1e-6)
    assert float(got["loss"]) == pytest.approx(main + 0.5 * satis + 2.0 * dpo + 0.25, rel=1e-6)


def test_without_questionnaire_pairs_the_total_is_l_main_plus_the_main_router_l1():
    model, x = _model()
    out = model(x)
    got = easq_loss(out, BEHAVIOUR, tf.zeros([0, 2], tf.int32))
    assert float(got["satis"]) == 0.0 and float(got["dpo"]) == 0.0
    assert float(got["loss"]) == pytest.approx(float(got["main"] + out["main/router_l1"]), rel=1e-7)
    assert float(got["router_l1"]) == pytest.approx(float(out["main/router_l1"]))  # no satisfaction L1 either
    assert np.isfinite(float(got["loss"]))


def test_loss_config_rejects_unknown_choices():
    with pytest.raises(ValueError, match="log_pi"):
        EasqLossConfig(log_pi="pointwise")


# ----------------------------------------------------------------------------- the model, equation by equation
def test_forward_pass_matches_eqs_6_to_10_with_ones_kernels():
    config = EasqConfig(units=2, lora_rank=1, main_experts=2, satisfaction_experts=1, expert_units=(1,))
    model = Easq(config, kernel_initializer="ones")
    out = model(tf.constant([[1.0, 2.0]]))
    # h = W0 x = [3, 3]; h_LoRA = 0; R(h) = ReLU([6, 6]); FFN_k(h) = 6; ŷ = Σ_k 6·6 = 72; ŝ = 36
    np.testing.assert_allclose(out["h"].numpy(), [[3.0, 3.0]])
    assert float(out["score"][0]) == pytest.approx(72.0)
    assert float(out["satisfaction"][0]) == pytest.approx(36.0)


# ----------------------------------------------------------------------------- the ReLU router
def _mixture(target=0.5, l1_init=1e-8):
    router = ReluRouter(2, target_sparsity=target, l1_init=l1_init)
    moe = MixtureOfExperts(2, (1,), router)
    moe.build((None, 1))
    router.gate.kernel.assign([[1.0, -1.0]])
    router.gate.bias.assign([-1.0, -1.0])
    moe.kernels[0].assign([[[1.0]], [[2.0]]])  # FFN_0(h) = h, FFN_1(h) = 2h
    return moe


def test_relu_router_gives_exact_zeros_and_all_zero_rows_fall_back_to_uniform():
    moe = _mixture()
    out = moe(tf.constant([[3.0], [-3.0], [0.5]]))
    # gates: relu([2, −4]) = [2, 0]; relu([−4, 2]) = [0, 2]; relu([−0.5, −1.5]) = [0, 0] -> uniform
    np.testing.assert_array_equal(out["gates"].numpy(), [[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    np.testing.assert_allclose(out["output"].numpy()[:, 0], [2 * 3.0, 2 * (2 * -3.0), 0.5 * 0.5 + 0.5 * 1.0])
    assert float(out["zero_gate_share"]) == pytest.approx(4 / 6)
    assert float(out["all_zero_rows"]) == 1.0 and float(out["experts_unused"]) == 0.0
    assert float(out["l1"]) == pytest.approx(1e-8 * (2 + 2 + 0) / 3)


def test_l1_coefficient_steps_toward_the_target_share_of_zero_gates():
    moe = _mixture(target=0.5)
    dense = tf.constant([[3.0], [-3.0]])  # one zero per row: share 0.5 = target -> unchanged
    moe(dense, training=True)
    assert float(moe.router.l1_coefficient) == pytest.approx(1e-8)
    moe.router.target_sparsity = 0.9       # too few zeros -> stronger L1
    moe(dense, training=True)
    moe(dense, training=True)
    assert float(moe.router.l1_coefficient) == pytest.approx(1e-8 * 1.2 ** 2)
    moe.router.target_sparsity = 0.1       # too many zeros -> weaker L1
    moe(dense, training=True)
    assert float(moe.router.l1_coefficient) == pytest.approx(1e-8 * 1.2)
    moe(dense)                             # inference leaves it alone
    assert float(moe.router.l1_coefficient) == pytest.approx(1e-8 * 1.2)
    assert float(moe.all_zero_rows_total) == 0.0 and float(moe.experts_never_used()) == 0.0


def test_l1_drives_gates_to_zero_and_the_coefficient_then_backs_off():
    tf.keras.utils.set_random_seed(3)
    router = ReluRouter(4, target_sparsity=0.75, l1_init=0.5)
    moe = MixtureOfExperts(4, (1,), router)
    h = tf.random.normal([64, 3], seed=3)
    sgd = tf_keras.optimizers.SGD(0.5)
    start = float(moe(h)["zero_gate_share"])
    coefficients = []
    for _ in range(25):
        with tf.GradientTape() as tape:
            out = moe(h, training=True)
        sgd.apply_gradients(zip(tape.gradient(out["l1"], router.trainable_variables), router.trainable_variables))
        coefficients.append(float(router.l1_coefficient))
    end = float(moe(h)["zero_gate_share"])
    assert start < 0.75 <= end
    assert coefficients[-1] < max(coefficients)  # above target the coefficient shrinks again


def test_router_rejects_a_mismatched_mixture():
    with pytest.raises(ValueError, match="experts"):
        MixtureOfExperts(3, (1,), ReluRouter(2))


# ----------------------------------------------------------------------------- pairs
def test_behaviour_pairs_within_each_request():
    request = [7, 7, 7, 8, 8]
    grades = behaviour_grades(play=[1, 0, 1, 1, 0], like=[1, 0, 0, 0, 0])
    np.testing.assert_array_equal(grades, [2, 0, 1, 1, 0])
    np.testing.assert_array_equal(within_group_pairs(request, grades), [[0, 1], [0, 2], [2, 1], [3, 4]])


def test_tf_pairs_equal_numpy_pairs():
    rng = np.random.default_rng(0)
    groups, grades = rng.integers(0, 4, 40), rng.integers(0, 3, 40).astype(float)
    grades[::7] = np.nan
    np.testing.assert_array_equal(within_group_pairs_tf(tf.constant(groups), tf.constant(grades)).numpy(),
                                  within_group_pairs(groups, grades))


def test_uncertain_answers_are_left_out_of_pairs_by_default():
    answers = ["satisfied", "uncertain", "dissatisfied", ""]
    users = [1, 1, 1, 1]
    np.testing.assert_array_equal(answer_grades(answers), [2.0, np.nan, 0.0, np.nan])
    np.testing.assert_array_equal(within_group_pairs(users, answer_grades(answers)), [[0, 2]])
    middle = answer_grades(answers, uncertain="middle")
    np.testing.assert_array_equal(within_group_pairs(users, middle), [[0, 1], [0, 2], [1, 2]])
    with pytest.raises(ValueError, match="unknown questionnaire answers"):
        answer_grades(["meh"])


def test_request_pairs_put_unanswered_candidates_below_a_satisfied_answer():
    request = [1, 1, 1, 2, 2]
    grades = answer_grades(["satisfied", "", "", "dissatisfied", ""])
    np.testing.assert_array_equal(request_pairs(request, grades), [[0, 1], [0, 2]])
    np.testing.assert_array_equal(request_pairs(request, grades, dissatisfied_below_unanswered=True),
                                  [[0, 1], [0, 2], [4, 3]])


def test_buffer_pairs_answers_of_one_user_across_batches():
    buffer = QuestionnaireBuffer(capacity=2)
    first = buffer.pair_batch([5, 6], answer_grades(["satisfied", ""]), {"x": np.array([[1.0], [2.0]])})
    assert len(first.pairs) == 0 and len(buffer) == 1 and first.extra["x"].shape == (0, 1)
    second = buffer.pair_batch([9, 5, 5], answer_grades(["satisfied", "dissatisfied", "uncertain"]),
                               {"x": np.array([[3.0], [4.0], [5.0]])})
    # row 3 = user 5's buffered satisfied answer (x = 1), preferred to the batch's dissatisfied row 1
    np.testing.assert_array_equal(second.pairs, [[3, 1]])
    np.testing.assert_array_equal(second.extra["x"], [[1.0]])
    np.testing.assert_array_equal(second.extra_grades, [2.0])
    third = buffer.pair_batch([5], answer_grades(["satisfied"]), {"x": np.array([[6.0]])})
    np.testing.assert_array_equal(third.pairs, [[0, 1]])  # beats the buffered dissatisfied one
    np.testing.assert_array_equal(third.extra["x"], [[4.0]])


def test_buffer_forgets_answers_older_than_max_age():
    buffer = QuestionnaireBuffer(capacity=4, max_age=1)
    buffer.pair_batch([1], answer_grades(["satisfied"]), {"x": np.zeros((1, 1))})
    buffer.pair_batch([2], answer_grades(["satisfied"]), {"x": np.zeros((1, 1))})
    late = buffer.pair_batch([1], answer_grades(["dissatisfied"]), {"x": np.zeros((1, 1))})
    assert len(late.pairs) == 0


# ----------------------------------------------------------------------------- a few steps end to end
def test_a_few_training_steps_lower_the_total_and_keep_routing_metrics():
    model, x = _model(seed=4)
    optimizer = tf_keras.optimizers.Adam(0.05)
    history = []
    for _ in range(5):
        with tf.GradientTape() as tape:
            losses = easq_loss(model(x, training=True), BEHAVIOUR, QUESTIONNAIRE)
        grads = tape.gradient(losses["loss"], model.trainable_variables)
        optimizer.apply_gradients((g, v) for g, v in zip(grads, model.trainable_variables) if g is not None)
        history.append(float(losses["loss"]))
    assert history[-1] < history[0]
    assert float(tf.reduce_sum(tf.abs(model.backbone.lora_b))) > 0  # L_satis moved B off zero
    assert set(model.router_metrics()) >= {"main/l1_coefficient", "main/experts_never_used",
                                           "satisfaction/all_zero_rows_total"}
