"""The EASQ network (seed 001 §4.3–4.4): backbone + LoRA, a main and a satisfaction mixture of experts.

    h       = W0 x                              (eq. 6)   backbone over the concatenated feature embeddings x
    h_LoRA  = B A x                             (eq. 7)   rank r, A glorot, B = 0 at init
    h_main  = h + stop_grad(h_LoRA)             (eq. 8)   the main task reads LoRA, never trains it
    ŷ       = Σ_k^{K1} R(h_main)_k FFN_k(h_main) (eq. 9)   R = ReLU(W_gate ·) (eq. 10)
    h_satis = stop_grad(h) + h_LoRA             (eq. 12)  the satisfaction task trains LoRA, never W0
    ŝ       = Σ_k^{K2} R(h_satis)_k FFN_k(h_satis) (eq. 13) its own ReLU router (eq. 14)

Eqs. 9 and 13 write the routers' input as h and h_satis; §4.4.1 says the fused h_main "is fed into
the MoE", so both the router and the experts of each pathway read that pathway's input.
Served output: ``score`` = ŷ (the ranking score); ``satisfaction`` = ŝ is a training-time reference
(the lead may export it too). ``lora_reads_input`` (default True, as eq. 7 is written) lets L_satis
reach x, i.e. the shared embeddings, through B A x; False stops it there. Two switches make the
baselines of the same network: ``lora=False`` (h_LoRA = 0: w/o LoRA) and ``shared_bottom=True``
(h_satis = h + h_LoRA without eq. 12's stop-gradient: L_satis trains W0, a shared-bottom multi-task model).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import tensorflow as tf
import tf_keras

from trainer.estimators.easq.layers import LoraProjection, MixtureOfExperts, ReluRouter

SCORE, SATISFACTION = "score", "satisfaction"  # the named outputs (a contract: losses, evaluation, export)


@dataclass(frozen=True)
class EasqConfig:
    """Architecture knobs (the loss weights live in ``losses.EasqLossConfig``)."""

    units: int = 64                         # width k of h = W0 x
    lora_rank: int = 8                      # r of B A (MLoRA: units / r with r in 4..256)
    main_experts: int = 4                   # K1
    satisfaction_experts: int = 2           # K2
    expert_units: Sequence[int] = (32, 1)   # each FFN's widths; the last is the score (linear)
    target_sparsity: float = 0.5            # ReMoE target share of zero gates (0 when a pathway has 1 expert)
    l1_init: float = 1e-8                   # ReMoE start of the adaptive L1 coefficient
    l1_factor: float = 1.2                  # ReMoE step of the adaptive L1 coefficient
    lora_reads_input: bool = True           # may L_satis reach x through B A x (eq. 7 as written: yes)
    lora: bool = True                       # False: h_LoRA = 0 (the "w/o LoRA" ablation, and the baselines)
    shared_bottom: bool = False             # True: h_satis = h + h_LoRA, L_satis trains W0 (Imputation Network)


class Easq(tf_keras.Model):
    """x [batch, d] -> {"score": ŷ [batch], "satisfaction": ŝ [batch], intermediates, router metrics}."""

    def __init__(self, config: EasqConfig = EasqConfig(), kernel_initializer: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        init = kernel_initializer or "glorot_uniform"
        self.backbone = LoraProjection(config.units, config.lora_rank, config.lora_reads_input,
                                       kernel_initializer=init, name="backbone")
        self.main_moe = self._moe(config.main_experts, "main", kernel_initializer)
        self.satisfaction_moe = self._moe(config.satisfaction_experts, "satisfaction", kernel_initializer)

    def _moe(self, n_experts: int, name: str, kernel_initializer) -> MixtureOfExperts:
        c = self.config
        target = c.target_sparsity if n_experts > 1 else 0.0
        router = ReluRouter(n_experts, target, c.l1_init, c.l1_factor,
                            kernel_initializer=kernel_initializer or "glorot_uniform", name=f"{name}_router")
        return MixtureOfExperts(n_experts, c.expert_units, router, kernel_initializer=kernel_initializer,
                                name=f"{name}_experts")

    def call(self, x, training=None):
        h, h_lora = self.backbone(x)                                   # eqs. 6, 7
        if not self.config.lora:
            h_lora = tf.zeros_like(h)
        h_main = h + tf.stop_gradient(h_lora)                          # eq. 8
        h_satis = (h if self.config.shared_bottom else tf.stop_gradient(h)) + h_lora   # eq. 12
        main = self.main_moe(h_main, training=training)                # eqs. 9, 10
        satis = self.satisfaction_moe(h_satis, training=training)      # eqs. 13, 14
        out = {SCORE: main["output"][:, 0], SATISFACTION: satis["output"][:, 0],
               "h": h, "h_lora": h_lora, "router_l1": main["l1"] + satis["l1"],
               "main/router_l1": main["l1"], "satisfaction/router_l1": satis["l1"]}
        for prefix, moe in (("main", main), ("satisfaction", satis)):
            for key in ("zero_gate_share", "experts_unused", "all_zero_rows"):
                out[f"{prefix}/{key}"] = moe[key]
        return out

    def router_metrics(self) -> dict[str, tf.Tensor]:
        """Running sparsity state: each router's L1 coefficient, experts never used, all-zero rows so far."""
        out = {}
        for prefix, moe in (("main", self.main_moe), ("satisfaction", self.satisfaction_moe)):
            out[f"{prefix}/l1_coefficient"] = tf.identity(moe.router.l1_coefficient)
            out[f"{prefix}/experts_never_used"] = moe.experts_never_used()
            out[f"{prefix}/all_zero_rows_total"] = tf.identity(moe.all_zero_rows_total)
        return out

    # Parameter groups, by the pathway that owns them (what the gradient-routing tests pin).
    def lora_variables(self) -> list[tf.Variable]:
        return [self.backbone.lora_a, self.backbone.lora_b]

    def backbone_variables(self) -> list[tf.Variable]:
        return list(self.backbone.w0.trainable_variables)

    def main_variables(self) -> list[tf.Variable]:
        return list(self.main_moe.trainable_variables)

    def satisfaction_variables(self) -> list[tf.Variable]:
        return list(self.satisfaction_moe.trainable_variables)
