"""The types every estimator and the shared model exchange: a batch's labels, an optimiser update,
the names of the shared embedding group and of the simulator's potential outcome.

They live with the model machinery (the ground of the trainer) so that the generic model never
imports the estimator interface; :mod:`trainer.estimators.interface` re-exports them.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow as tf

SHARED = "shared"  # the embedding group Φ every tower reads unless the estimator says otherwise
POTENTIAL_OUTCOME = "gt_conversion"  # the simulator's r*: would the exposure convert if selected


@dataclasses.dataclass(frozen=True)
class Labels:
    """One batch's labels, task-neutral as in the papers: o the selection event (click, response,
    rating observed), r the outcome seen only where o = 1 (conversion, rating, relevance), and, on
    simulated data only, the potential outcome r* every row would have had if selected."""

    o: tf.Tensor
    r: tf.Tensor
    r_star: Optional[tf.Tensor] = None


@dataclasses.dataclass(frozen=True)
class Update:
    """One optimiser step inside a training step: minimise ``terms[loss]`` over the variables of
    ``towers`` and of the embedding groups they read (``None``: every trainable variable).

    An estimator lists several to alternate updates (e.g. joint-learning DR); each one runs its
    own forward pass, so later updates see the earlier ones' new weights.
    """

    loss: str = "loss"
    towers: Optional[tuple[str, ...]] = None
