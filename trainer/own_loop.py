"""The protocol of estimators that bring their own training loop.

Most estimators are a loss over the towers of the shared multi-task model, trained per example
by Keras (:mod:`trainer.model`). Some algorithms are not: C-IPS (seed 004, Algorithm 2) alternates
epochs over users (deep embedded clustering) with epochs over rated pairs. Such an estimator
subclasses :class:`OwnLoopEstimator` and is registered like any other; :mod:`trainer.train` then
calls, and only calls,

    model = estimator.build(tft_output)        the untrained model, every variable created,
                                               tables sized from the transform output
    estimator.fit(model, data_dir)             its own loop on the train split (``data_dir/train``)

saves ``model``'s weights the same way as for every estimator, and reloads them into a fresh
``build`` for ``evaluate`` and ``export``. The model serves through the common path
(:func:`trainer.export.make_serving_signatures`): it must provide ``predict_named(features)``,
transformed features in, a dict of named outputs out (a stable contract, never positions).
"""
from __future__ import annotations

from typing import ClassVar

import tensorflow_transform as tft

from ctrcvr.config import Config


class OwnLoopEstimator:
    """Base class: set ``name``, implement :meth:`build` and :meth:`fit`."""

    name: ClassVar[str]
    needs_potential_outcome: ClassVar[bool] = False

    def __init__(self, config: Config):
        self.config = config

    def build(self, tft_output: tft.TFTransformOutput):
        """The untrained model with all its variables (so that saved weights load into it)."""
        raise NotImplementedError

    def fit(self, model, data_dir) -> None:
        """Trains ``model`` in place on ``data_dir/train`` (``data_dir/eval`` is for evaluation)."""
        raise NotImplementedError
