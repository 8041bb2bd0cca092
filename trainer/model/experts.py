"""Shared-expert multi-task bottoms, per embedding group (per="group" in :mod:`trainer.model.backbones`):
``mmoe`` (Ma et al. 2018) and ``ple`` (Tang et al. 2020, one extraction layer). The experts and the gates are
EASQ's :class:`~trainer.estimators.easq.layers.MixtureOfExperts` / routers, written once.

    h        = [v_1 : … : v_F]                                 the group's field vectors
    mmoe     y_t = head_t(Σ_k g_t(h)_k E_k(h)),  g_t = softmax(W_t h)     K shared experts
    ple      y_t = head_t(Σ_k g_t(h)_k [E^t(h) : E^s(h)]_k)              the tower's own + the shared experts
    head_t   ``model.tower`` (hidden layers and Dense(1))
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras

from trainer.estimators.easq.layers import MixtureOfExperts, SoftmaxRouter, make_router, mix_experts
from trainer.model.layers import make_tower


def _experts(n: int, units, activation: str, name: str) -> MixtureOfExperts:
    """n expert MLPs of widths ``units`` (every layer ``activation``), no router of their own."""
    return MixtureOfExperts(n, units, activation=activation, output_activation=activation, gate=None, name=name)


class _ExpertsBackbone(tf_keras.layers.Layer):
    """What MMoE and PLE share: the group's fields concatenated into h, one mixture of experts per tower
    (:meth:`mixtures`, the part that differs), each tower's own MLP head on its mixture."""

    def _make_heads(self, context) -> None:
        self.heads = {t: make_tower(context.model.tower, t) for t in self.tower_names}

    @classmethod
    def field_dims(cls, context) -> dict[str, int]:
        return {}

    def call(self, fields, features=None, training=False):
        h = tf.concat(list(fields.values()), axis=-1)
        mixed = self.mixtures(h, training)
        return {t: tf.squeeze(self.heads[t](mixed[t], training=training), axis=-1) for t in self.tower_names}

    def mixtures(self, h, training) -> dict:
        raise NotImplementedError


class MmoeBackbone(_ExpertsBackbone):
    def __init__(self, context, **kwargs):
        super().__init__(name=f"{context.name}_mmoe", **kwargs)
        config, tower = context.model.mmoe, context.model.tower
        self.tower_names, self.gate_kind = tuple(context.towers), config.gate
        self.experts = _experts(config.experts, config.expert_units, tower.activation, f"{context.name}_experts")
        self.gates = {t: make_router(config.gate, config.experts, name=f"{t}_gate") for t in self.tower_names}
        self._make_heads(context)

    def mixtures(self, h, training) -> dict:
        experts = self.experts.expert_outputs(h)
        mixed = {}
        for t in self.tower_names:
            router = self.gates[t]
            gates = router(h)
            if self.gate_kind == "relu":       # EASQ's router: its L1 penalty and adaptive coefficient
                self.add_loss(router.l1_penalty(gates))
                if training:
                    router.update_l1_coefficient(1.0 - tf.reduce_mean(tf.cast(gates > 0.0, h.dtype)))
            mixed[t] = mix_experts(gates, experts)
        return mixed


class PleBackbone(_ExpertsBackbone):
    def __init__(self, context, **kwargs):
        super().__init__(name=f"{context.name}_ple", **kwargs)
        config, tower = context.model.ple, context.model.tower
        self.tower_names = tuple(context.towers)
        units, act = config.expert_units, tower.activation
        self.shared = _experts(config.shared_experts, units, act, f"{context.name}_shared_experts")
        self.own = {t: _experts(config.task_experts, units, act, f"{t}_experts") for t in self.tower_names}
        self.gates = {t: SoftmaxRouter(config.task_experts + config.shared_experts, name=f"{t}_gate")
                      for t in self.tower_names}
        self._make_heads(context)

    def mixtures(self, h, training) -> dict:
        shared = self.shared.expert_outputs(h)
        return {t: mix_experts(self.gates[t](h), tf.concat([self.own[t].expert_outputs(h), shared], axis=1))
                for t in self.tower_names}                                       # [batch, own + shared, out]
