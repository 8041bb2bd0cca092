"""The estimator interface: a loss over the towers' logits, and which towers it needs."""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

import ctrcvr  # noqa: F401
import tensorflow as tf

from ctrcvr.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class Labels:
    """One batch's labels: o (click or response), r (conversion or rating), and, on simulated
    data only, the potential outcome r* that every exposure would have had if clicked."""

    click: tf.Tensor
    conversion: tf.Tensor
    potential_conversion: Optional[tf.Tensor] = None


class Estimator:
    """Base class. Subclasses set ``name``, ``towers``, ``terms`` and implement :meth:`loss`.

    ``loss`` returns a dict with the total under ``"loss"`` and every term named in
    ``terms`` (reported during training). Logits arrive as ``{tower name: [batch] tensor}``.
    """

    name: ClassVar[str]
    towers: ClassVar[tuple[str, ...]] = ("ctr", "cvr")
    terms: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ModelConfig):
        self.config = config

    def loss(self, y: Labels, logits: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        raise NotImplementedError

    def outputs(self, logits: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """The named predictions served and evaluated: a stable contract, never positions."""
        p_ctr = tf.sigmoid(logits["ctr"])
        p_cvr = tf.sigmoid(logits["cvr"])
        return {"pctr": p_ctr, "pcvr": p_cvr, "pctcvr": p_ctr * p_cvr}
