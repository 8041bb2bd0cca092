"""The estimator interface: a loss over the towers' logits, and which towers it needs."""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Mapping, Optional

import tensorflow as tf

from trainer.config import ModelConfig

SHARED = "shared"  # the embedding group Φ every tower reads unless the estimator says otherwise
POTENTIAL_OUTCOME = "gt_conversion"  # the simulator's r*: would the exposure convert if clicked


@dataclasses.dataclass(frozen=True)
class Labels:
    """One batch's labels: o (click or response), r (conversion or rating), and, on simulated
    data only, the potential outcome r* that every exposure would have had if clicked."""

    click: tf.Tensor
    conversion: tf.Tensor
    potential_conversion: Optional[tf.Tensor] = None


@dataclasses.dataclass(frozen=True)
class Update:
    """One optimiser step inside a training step: minimise ``terms[loss]`` over the variables of
    ``towers`` and of the embedding groups they read (``None``: every trainable variable).

    An estimator lists several to alternate updates (e.g. joint-learning DR); each one runs its
    own forward pass, so later updates see the earlier ones' new weights.
    """

    loss: str = "loss"
    towers: Optional[tuple[str, ...]] = None


class Estimator:
    """Base class. Subclasses set ``name``, ``towers``, ``terms`` and implement :meth:`loss`.

    ``loss`` returns a dict with the total under ``"loss"`` and every term named in
    ``terms`` (reported during training). Logits arrive as ``{tower name: [batch] tensor}``,
    plus ``field/<name>`` vectors of the shared embedding for every name in :meth:`fields`.

    Optional declarations (all data, read by the generic model and trainer):
        ``embeddings``  tower -> embedding group; towers in different groups share nothing
                        (default: every tower reads the shared group Φ);
        ``updates``     the optimiser steps per training step (default: one step on ``"loss"``);
        ``needs_potential_outcome``  trains on the simulator's ground truth r*.
    """

    name: ClassVar[str]
    towers: ClassVar[tuple[str, ...]] = ("ctr", "cvr")
    terms: ClassVar[tuple[str, ...]] = ()
    embeddings: ClassVar[Mapping[str, str]] = {}
    updates: ClassVar[tuple[Update, ...]] = (Update(),)
    needs_potential_outcome: ClassVar[bool] = False

    def __init__(self, config: ModelConfig):
        self.config = config

    def embedding_group(self, tower: str) -> str:
        return self.embeddings.get(tower, SHARED)

    def fields(self) -> tuple[str, ...]:
        """Embedded fields whose shared-embedding vectors :meth:`loss` reads."""
        return ()

    def loss(self, y: Labels, logits: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        raise NotImplementedError

    def outputs(self, logits: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """The named predictions served and evaluated: a stable contract, never positions."""
        p_ctr = tf.sigmoid(logits["ctr"])
        p_cvr = tf.sigmoid(logits["cvr"])
        return {"pctr": p_ctr, "pcvr": p_cvr, "pctcvr": p_ctr * p_cvr}



class WeightedEstimator(Estimator):
    """An estimator whose loss uses the shared propensity weighting (:mod:`trainer.propensity`)."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        from trainer.propensity import PropensityWeighting
        self.weighting = PropensityWeighting(config)
