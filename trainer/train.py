"""Training: one fit path for every estimator.

    estimator = get_estimator(spec.model.name).create(spec.model)
    model = estimator.build(data)          the untrained model, tables sized from the transform output
    estimator.fit(model, data, model_dir)  Keras for multi-task estimators, an own loop for others
    weights -> model_dir/weights/final     reloaded by :func:`load_trained_model` into a fresh ``build``
"""
from __future__ import annotations

import logging
from pathlib import Path

import tf_keras

from trainer.config import TrainerSpec
from trainer.data import TrainingData
from trainer.estimators import get_estimator
from trainer.estimators.interface import POTENTIAL_OUTCOME

log = logging.getLogger("trainer")
WEIGHTS = "weights/final"


def build_model(spec: TrainerSpec, data_dir):
    """The configured estimator's untrained model on ``data_dir`` (and the estimator)."""
    data = TrainingData(spec, data_dir)
    estimator_spec = get_estimator(spec.model.name)
    if estimator_spec.needs_potential_outcome and POTENTIAL_OUTCOME not in data.feature_spec:
        raise ValueError(f"model.name={spec.model.name} trains on the potential outcome {POTENTIAL_OUTCOME!r}, "
                         "which only simulated data has; the preprocessed data has no such column")
    estimator = estimator_spec.create(spec.model)
    return estimator, estimator.build(data), data


def train(spec: TrainerSpec, data_dir, model_dir):
    """Fits the configured estimator on ``data_dir``'s train split; saves its weights under ``model_dir``."""
    tf_keras.utils.set_random_seed(spec.seed)
    if spec.train.deterministic:  # process-wide and irreversible, as TensorFlow offers it
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()
    estimator, model, data = build_model(spec, data_dir)
    estimator.fit(model, data, Path(model_dir))
    model.save_weights(str(Path(model_dir) / WEIGHTS))
    return model


def load_trained_model(spec: TrainerSpec, data_dir, model_dir):
    """Rebuilds the model and restores the weights :func:`train` saved."""
    if not Path(model_dir, WEIGHTS + ".index").is_file():
        from transforms.errors import UserError
        raise UserError(f"no trained weights ({WEIGHTS}): its training did not finish; re-run the same "
                        "`ctrcvr train` command to resume it", file=str(model_dir))
    _, model, _ = build_model(spec, data_dir)
    model.load_weights(str(Path(model_dir) / WEIGHTS)).expect_partial()
    return model
