"""The ReLU-routed mixture of experts (seed 001 eqs. 9–10, 13–14; ReMoE) and the LoRA projection (eqs. 6–7).

Written once: EASQ's ReLU-routed mixtures, and the experts and softmax gates of the MMoE / PLE backbones
(:mod:`trainer.model.experts`): ``MixtureOfExperts(gate="softmax")`` routes by softmax(W_gate h), and
``gate=None`` keeps only the experts (:meth:`MixtureOfExperts.expert_outputs`) for several gates to mix
with :func:`mix_experts` (MMoE: one gate per task over shared experts; PLE: a task's own + the shared).

    R(h) = ReLU(W_gate h)                                   (eq. 10 / 14): no softmax, no top-k
    MoE(h) = Σ_k R(h)_k · FFN_k(h)                          (eq. 9 / 13)
    L1 = c · 1/|B| Σ_b Σ_k R(h_b)_k                          ReMoE's sparsity regulariser
    c ← c · α^sign(target − zero_share)  after each training step, c₀ = 1e-8, α = 1.2
Rows whose gates are all zero would output nothing (and learn nothing): they fall back to uniform
weights 1/K and are counted.
"""
from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf
import tf_keras


class ReluRouter(tf_keras.layers.Layer):
    """R(h) = ReLU(W_gate h) with ReMoE's adaptive L1 coefficient toward ``target_sparsity`` zero gates."""

    def __init__(self, n_experts: int, target_sparsity: float = 0.5, l1_init: float = 1e-8,
                 l1_factor: float = 1.2, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if n_experts < 1 or not 0.0 <= target_sparsity < 1.0 or l1_factor <= 1.0:
            raise ValueError("ReluRouter: n_experts >= 1, target_sparsity in [0, 1), l1_factor > 1")
        self.n_experts, self.target_sparsity = n_experts, target_sparsity
        self.l1_init, self.l1_factor = l1_init, l1_factor
        self.gate = tf_keras.layers.Dense(n_experts, kernel_initializer=kernel_initializer, name="w_gate")

    def build(self, input_shape):
        self.gate.build(input_shape)
        self.l1_coefficient = self.add_weight(name="l1_coefficient", shape=(), trainable=False,
                                              initializer=tf_keras.initializers.Constant(self.l1_init))
        super().build(input_shape)

    def call(self, h):
        """[batch, K] non-negative gates with exact zeros."""
        return tf.nn.relu(self.gate(h))

    def l1_penalty(self, gates: tf.Tensor) -> tf.Tensor:
        """c · mean over rows of Σ_k R(h)_k (gates ≥ 0, so this is their L1 norm)."""
        return self.l1_coefficient * tf.reduce_mean(tf.reduce_sum(gates, axis=-1))

    def update_l1_coefficient(self, zero_share: tf.Tensor) -> tf.Tensor:
        """c ← c · α^sign(target − zero_share): more zeros wanted -> a stronger L1, and vice versa."""
        step = tf.sign(tf.cast(self.target_sparsity, zero_share.dtype) - zero_share)
        return self.l1_coefficient.assign(self.l1_coefficient * tf.pow(self.l1_factor, step))

    def get_config(self):
        return {**super().get_config(), "n_experts": self.n_experts, "target_sparsity": self.target_sparsity,
                "l1_init": self.l1_init, "l1_factor": self.l1_factor}


class SoftmaxRouter(tf_keras.layers.Layer):
    """R(h) = softmax(W_gate h) (MMoE's gate, Ma et al. 2018): dense weights summing to 1, no regulariser."""

    def __init__(self, n_experts: int, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if n_experts < 1:
            raise ValueError("SoftmaxRouter: n_experts >= 1")
        self.n_experts = n_experts
        self.gate = tf_keras.layers.Dense(n_experts, kernel_initializer=kernel_initializer, name="w_gate")

    def call(self, h):
        return tf.nn.softmax(self.gate(h), axis=-1)

    def l1_penalty(self, gates: tf.Tensor) -> tf.Tensor:
        return tf.constant(0.0, gates.dtype)

    def update_l1_coefficient(self, zero_share: tf.Tensor) -> tf.Tensor:
        return zero_share

    def get_config(self):
        return {**super().get_config(), "n_experts": self.n_experts}


ROUTERS = {"relu": ReluRouter, "softmax": SoftmaxRouter}


def make_router(gate: str, n_experts: int, **kwargs):
    """The router of ``gate`` ("relu": :class:`ReluRouter`, "softmax": :class:`SoftmaxRouter`)."""
    if gate not in ROUTERS:
        raise ValueError(f"unknown gate {gate!r}; known: {', '.join(ROUTERS)}")
    return ROUTERS[gate](n_experts, **kwargs)


def mix_experts(gates: tf.Tensor, experts: tf.Tensor) -> tf.Tensor:
    """Σ_k w_k · FFN_k(h): gates [batch, K], experts [batch, K, out] -> [batch, out]; rows whose gates are
    all zero (a ReLU router) take uniform weights 1/K."""
    n = tf.cast(tf.shape(gates)[-1], gates.dtype)
    all_zero = tf.equal(tf.reduce_sum(tf.cast(gates > 0.0, gates.dtype), axis=-1), 0.0)
    weights = tf.where(all_zero[:, None], tf.ones_like(gates) / n, gates)
    return tf.einsum("bk,bko->bo", weights, experts)


class MixtureOfExperts(tf_keras.layers.Layer):
    """Σ_k R(h)_k · FFN_k(h) (eqs. 9 / 13): K feed-forward experts of widths ``units``, mixed by ``router``.

    The experts are one stacked kernel per layer ([K, in, out]); hidden layers use ``activation``, the
    last one ``output_activation`` (linear by default, so units=(32, 1) gives a score). ``call`` returns
    a dict: ``output`` [batch, units[-1]], ``gates`` [batch, K], ``l1`` (the router's penalty) and the
    sparsity metrics ``zero_gate_share``, ``experts_unused`` (in this batch), ``all_zero_rows``. With
    ``training=True`` it also updates the router's L1 coefficient and the running counters
    ``expert_rows`` (rows routed to each expert) and ``all_zero_rows_total``.

    ``gate`` picks the default router ("relu" or "softmax"); ``gate=None`` builds the experts only
    (no router, ``call`` unavailable): :meth:`expert_outputs` gives them to gates held elsewhere.
    """

    def __init__(self, n_experts: int, units: Sequence[int], router=None, activation="relu",
                 output_activation=None, kernel_initializer=None, gate: Optional[str] = "relu", **kwargs):
        super().__init__(**kwargs)
        self.router = router or (make_router(gate, n_experts, name="router") if gate else None)
        if self.router is not None and self.router.n_experts != n_experts:
            raise ValueError(f"router has {self.router.n_experts} experts, the mixture {n_experts}")
        if not units:
            raise ValueError("MixtureOfExperts needs at least one layer width")
        self.n_experts, self.units = n_experts, tuple(units)
        self.activation = tf_keras.activations.get(activation)
        self.output_activation = tf_keras.activations.get(output_activation)
        self._kernel_initializer = kernel_initializer

    def build(self, input_shape):
        if self.router is not None:
            self.router.build(input_shape)
        width, self.kernels, self.biases = int(input_shape[-1]), [], []
        for n, out in enumerate(self.units):
            init = self._kernel_initializer or _per_expert_glorot(width, out)
            self.kernels.append(self.add_weight(name=f"kernel_{n}", shape=(self.n_experts, width, out),
                                                initializer=init))
            self.biases.append(self.add_weight(name=f"bias_{n}", shape=(self.n_experts, out), initializer="zeros"))
            width = out
        self.expert_rows = self.add_weight(name="expert_rows", shape=(self.n_experts,), trainable=False,
                                           initializer="zeros")
        self.all_zero_rows_total = self.add_weight(name="all_zero_rows_total", shape=(), trainable=False,
                                                   initializer="zeros")
        super().build(input_shape)

    def call(self, h, training=None):
        if self.router is None:
            raise ValueError(f"{self.name}: a mixture built with gate=None has no router; use expert_outputs")
        gates = self.router(h)                                              # R(h), eq. 10
        l1 = self.router.l1_penalty(gates)
        active = tf.cast(gates > 0.0, h.dtype)
        all_zero = tf.equal(tf.reduce_sum(active, axis=-1), 0.0)
        zero_share = 1.0 - tf.reduce_mean(active)
        n_all_zero = tf.reduce_sum(tf.cast(all_zero, h.dtype))
        if training:
            self.router.update_l1_coefficient(zero_share)
            self.expert_rows.assign_add(tf.reduce_sum(active, axis=0))
            self.all_zero_rows_total.assign_add(n_all_zero)
        experts = self.expert_outputs(h)                                    # FFN_k(h): [batch, K, out]
        output = mix_experts(gates, experts)                                # Σ_k R(h)_k FFN_k(h), eq. 9
        return {"output": output, "gates": gates, "l1": l1, "zero_gate_share": zero_share,
                "experts_unused": tf.reduce_sum(tf.cast(tf.reduce_sum(active, axis=0) == 0.0, h.dtype)),
                "all_zero_rows": n_all_zero}

    def experts_never_used(self) -> tf.Tensor:
        """How many experts no training row was ever routed to."""
        return tf.reduce_sum(tf.cast(tf.equal(self.expert_rows, 0.0), tf.float32))

    def expert_outputs(self, h) -> tf.Tensor:
        """FFN_k(h) of every expert: [batch, K, units[-1]] (builds the experts on first use)."""
        if not self.built:
            self.build(h.shape)
        out = h
        for n, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            spec = "bi,kio->bko" if n == 0 else "bki,kio->bko"
            out = tf.einsum(spec, out, kernel) + bias
            out = self.output_activation(out) if n == len(self.kernels) - 1 else self.activation(out)
        return out


class LoraProjection(tf_keras.layers.Layer):
    """h = W0 x (eq. 6) and h_LoRA = B A x (eq. 7), rank r; A glorot, B zero so h_LoRA starts at 0 (MLoRA).

    In Keras' row convention: h = x W0 + b, h_LoRA = (x A) B with A [d, r] and B [r, units].
    ``lora_reads_input=False`` feeds stop_grad(x) to the LoRA path, so losses reaching A, B do not
    reach the input (the shared embeddings) through it.
    """

    def __init__(self, units: int, rank: int, lora_reads_input: bool = True, kernel_initializer="glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        if rank < 1 or units < 1:
            raise ValueError("LoraProjection: units and rank must be >= 1")
        self.units, self.rank, self.lora_reads_input = units, rank, lora_reads_input
        self.w0 = tf_keras.layers.Dense(units, kernel_initializer=kernel_initializer, name="w0")

    def build(self, input_shape):
        self.w0.build(input_shape)
        self.lora_a = self.add_weight(name="lora_a", shape=(int(input_shape[-1]), self.rank),
                                      initializer="glorot_uniform")
        self.lora_b = self.add_weight(name="lora_b", shape=(self.rank, self.units), initializer="zeros")
        super().build(input_shape)

    def call(self, x):
        h = self.w0(x)                                                      # eq. 6
        x_lora = x if self.lora_reads_input else tf.stop_gradient(x)
        h_lora = tf.matmul(tf.matmul(x_lora, self.lora_a), self.lora_b)    # eq. 7
        return h, h_lora

    def get_config(self):
        return {**super().get_config(), "units": self.units, "rank": self.rank,
                "lora_reads_input": self.lora_reads_input}


def _per_expert_glorot(fan_in: int, fan_out: int):
    """Glorot-uniform with each expert's own fan-in/fan-out (Keras' would count K into the fans)."""
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    return tf_keras.initializers.RandomUniform(-limit, limit)
