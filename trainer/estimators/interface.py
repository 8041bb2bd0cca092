"""The estimator protocol: one interface for every estimator, the Keras multi-task fit its default.

What the rest of the program calls (``ctrcvr`` compare / run / CLI, :mod:`trainer.train`)::

    spec = get_estimator(name)          # trainer.estimators.registry, no TensorFlow imported
    spec.name, spec.params              # the parameter groups it reads (config validation)
    spec.validation_metrics             # what it reports on the eval split besides its loss terms:
                                        #   early stopping may monitor val_loss, val_<term>, val_<metric>
    spec.sweeps                         # {knob: Sweep(axis, symbol, overrides(value) -> {dotted key: value})}
    spec.needs_potential_outcome        # trains on the simulator's r* (refuses data without it)
    find_sweep(knob) -> (spec, Sweep)   # who declares a knob (compare's sweeps hold no estimator names)

    estimator = spec.create(model_config)           # an Estimator (imports TensorFlow)
    model = estimator.build(data)                   # every variable created; data: trainer.data.TrainingData
    estimator.fit(model, data, model_dir)           # trains in place; progress + <model_dir>/tensorboard
    model.predict_named(features) -> {output: tensor}   # the served contract (pctr, pcvr, ...)

:class:`MultiTaskEstimator` is the default implementation: a declaration of towers, loss terms,
embedding groups and :class:`Update` s plus a loss over the towers' logits, built into
:class:`trainer.model.multitask.MultiTaskModel` and fitted by Keras (:mod:`trainer.model.keras_fit`).
An estimator whose algorithm is not a per-example loss (c_ips: alternating epochs over users and
over pairs) implements :meth:`Estimator.build` and :meth:`Estimator.fit` itself and reports
progress through :class:`trainer.progress.Progress` like the Keras fit does.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Mapping

import tensorflow as tf

if TYPE_CHECKING:
    from trainer.config import ModelConfig
    from trainer.data import TrainingData
    from trainer.estimators.registry import EstimatorSpec

from trainer.model.labels import POTENTIAL_OUTCOME, SHARED, Labels, Update  # noqa: F401 (the protocol's types)


class Estimator:
    """The protocol. ``params`` is the ``model`` section (read only the groups ``spec.params`` names)."""

    def __init__(self, params: "ModelConfig", spec: "EstimatorSpec"):
        self.params = params
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    def build(self, data: "TrainingData"):
        """The untrained model, every variable created (so saved weights load into it)."""
        raise NotImplementedError

    def fit(self, model, data: "TrainingData", model_dir: Path) -> None:
        """Trains ``model`` in place on ``data``'s train split."""
        raise NotImplementedError


class MultiTaskEstimator(Estimator):
    """Default implementation. Subclasses set ``towers``, ``terms`` and implement :meth:`loss`.

    ``loss`` returns a dict with the total under ``"loss"`` and every term named in
    ``terms`` (reported during training). Logits arrive as ``{tower name: [batch] tensor}``,
    plus ``field/<name>`` vectors of the shared embedding for every name in :meth:`fields`.

    Optional declarations (all data, read by the generic model and trainer):
        ``embeddings``  tower -> embedding group; towers in different groups share nothing
                        (default: every tower reads the shared group Φ);
        ``updates``     the optimiser steps per training step (default: one step on ``"loss"``).
    """

    towers: ClassVar[tuple[str, ...]] = ("ctr", "cvr")
    distributable: ClassVar[bool] = True  # its Keras fit runs under every train.distribution
    terms: ClassVar[tuple[str, ...]] = ()
    embeddings: ClassVar[Mapping[str, str]] = {}
    updates: ClassVar[tuple[Update, ...]] = (Update(),)

    def embedding_group(self, tower: str) -> str:
        """The tower's embedding group: the estimator's declaration, or the tower's own with
        ``model.separate_embeddings``."""
        if getattr(self.params, "separate_embeddings", False):
            return tower
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

    def build(self, data: "TrainingData"):
        from trainer.model.multitask import build_multitask_model
        return build_multitask_model(self, data)

    def fit(self, model, data: "TrainingData", model_dir: Path) -> None:
        from trainer.model.keras_fit import keras_fit
        keras_fit(model, data, model_dir)


class WeightedEstimator(MultiTaskEstimator):
    """A multi-task estimator whose loss uses the shared propensity weighting (:mod:`trainer.model.propensity`)."""

    def __init__(self, params: "ModelConfig", spec: "EstimatorSpec"):
        super().__init__(params, spec)
        from trainer.model.propensity import PropensityWeighting
        self.weighting = PropensityWeighting(params)
