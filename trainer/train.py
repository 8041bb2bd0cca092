"""Training: transform output + TFRecord shards + config -> a fitted model with saved weights.

Multi-task estimators (a loss over the shared towers) are fitted here by Keras; estimators with
their own loop (:class:`trainer.own_loop.OwnLoopEstimator`, e.g. c_ips) build and fit their model
themselves, and are saved and reloaded the same way (``model_dir/weights/final``).
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras

from trainer.config import TrainConfig
from ctrcvr.config import Config
from transforms.schema import cardinality
from trainer.estimators import get_estimator
from trainer.estimators.base import POTENTIAL_OUTCOME, SHARED
from trainer.input import make_dataset, split_files
from trainer.layers import FeatureEmbedding
from trainer.model import MultiTaskModel
from trainer.own_loop import OwnLoopEstimator

log = logging.getLogger(__name__)
WEIGHTS = "weights/final"


def build_model(config: Config, tft_output: tft.TFTransformOutput) -> MultiTaskModel:
    """The configured estimator on embeddings sized from the transform output."""
    estimator = get_estimator(config.model.name)(config.model)
    if estimator.needs_potential_outcome and POTENTIAL_OUTCOME not in tft_output.transformed_feature_spec():
        raise ValueError(f"model.name={config.model.name} trains on the potential outcome {POTENTIAL_OUTCOME!r}, "
                         "which only simulated data has; the preprocessed data has no such column")
    sizes = {f.name: cardinality(f, tft_output) for f in config.features if f.is_embedded}

    def make_embedding(group: str) -> FeatureEmbedding:
        name = "embedding" if group == SHARED else f"embedding_{group}"
        return FeatureEmbedding(config.features, sizes, config.model.embedding_dim, name=name)

    return MultiTaskModel(make_embedding, estimator, config, name=config.model.name)


def train(config: Config, data_dir, model_dir):
    """Fits the model on ``data_dir/train`` (multi-task: validating on ``data_dir/eval``); saves weights."""
    tf_keras.utils.set_random_seed(config.seed)
    model_dir = Path(model_dir)
    tft_output = tft.TFTransformOutput(str(data_dir))
    own_loop = _own_loop(config)
    if own_loop is not None:
        log.info("training %s with its own loop", config.model.name)
        model = own_loop.build(tft_output)
        own_loop.fit(model, data_dir)
        model.save_weights(str(model_dir / WEIGHTS))
        return model
    spec = tft_output.transformed_feature_spec()
    cfg = config.train
    train_ds = make_dataset(split_files(data_dir, "train"), spec, cfg.batch_size, cfg.shuffle_buffer,
                            seed=config.seed, repeat=cfg.steps_per_epoch is not None).with_options(input_options(cfg))
    eval_ds = make_dataset(split_files(data_dir, "eval"), spec, config.eval.batch_size).with_options(
        input_options(cfg))
    model = build_model(config, tft_output)
    _check_monitor(config, model)
    model(next(iter(eval_ds)))  # build the variables before fit (BackupAndRestore needs them)
    model.compile(optimizer=tf_keras.optimizers.legacy.Adam(cfg.learning_rate))
    log.info("training %s: %d epoch(s), batch %d, lr %g", config.model.name, cfg.epochs, cfg.batch_size,
             cfg.learning_rate)
    model.fit(train_ds, validation_data=eval_ds, epochs=cfg.epochs, steps_per_epoch=cfg.steps_per_epoch,
              callbacks=_callbacks(config, model_dir), verbose=0)
    model.save_weights(str(model_dir / WEIGHTS))
    return model


def input_options(cfg: TrainConfig) -> tf.data.Options:
    """tf.data options of the training input: a private thread pool when ``train.input_threads`` is set."""
    options = tf.data.Options()
    if cfg.input_threads:
        options.threading.private_threadpool_size = cfg.input_threads
        options.threading.max_intra_op_parallelism = 1
    return options


def load_trained_model(config: Config, data_dir, model_dir):
    """Rebuilds the model and restores the weights ``train`` saved."""
    tft_output = tft.TFTransformOutput(str(data_dir))
    own_loop = _own_loop(config)
    if own_loop is not None:
        model = own_loop.build(tft_output)
    else:
        model = build_model(config, tft_output)
        batch = next(iter(make_dataset(split_files(data_dir, "eval"), tft_output.transformed_feature_spec(), 2)))
        model(batch)
    model.load_weights(str(Path(model_dir) / WEIGHTS)).expect_partial()
    return model


def _own_loop(config: Config):
    """The estimator instance if ``model.name`` brings its own training loop, else None."""
    estimator = get_estimator(config.model.name)
    return estimator(config) if issubclass(estimator, OwnLoopEstimator) else None


def _callbacks(config: Config, model_dir: Path) -> list[tf_keras.callbacks.Callback]:
    callbacks = [
        StopOnNonFiniteLoss(),
        ProgressLogger(config.train.batch_size, every_seconds=15.0),
        tf_keras.callbacks.BackupAndRestore(str(model_dir / "backup")),
        tf_keras.callbacks.TensorBoard(str(model_dir / "tensorboard"), update_freq="epoch"),
    ]
    if config.train.early_stopping_patience:
        callbacks.append(tf_keras.callbacks.EarlyStopping(
            monitor=config.train.early_stopping_monitor, patience=config.train.early_stopping_patience,
            mode="min", restore_best_weights=True, verbose=1))
    return callbacks


def _check_monitor(config: Config, model: MultiTaskModel) -> None:
    monitor = config.train.early_stopping_monitor
    valid = [f"val_{m.name}" for m in model.metrics]
    if config.train.early_stopping_patience and monitor not in valid:
        raise ValueError(f"train.early_stopping_monitor={monitor!r} is not reported by {config.model.name}; "
                         f"choose one of {', '.join(valid)}")


class StopOnNonFiniteLoss(tf_keras.callbacks.Callback):
    """Stops training with a clear error the moment the loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise FloatingPointError(f"training loss became {float(loss)} at step {batch}; lower "
                                     "train.learning_rate, or check the inputs for extreme values")


class ProgressLogger(tf_keras.callbacks.Callback):
    """Logs step, loss terms and examples/s every few seconds, and a line per epoch."""

    def __init__(self, batch_size: int, every_seconds: float):
        super().__init__()
        self._batch_size, self._every = batch_size, every_seconds

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._start, self._last, self._steps = epoch, time.time(), time.time(), 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps = batch + 1
        if time.time() - self._last >= self._every:
            self._last = time.time()
            log.info("epoch %d step %d: %s, %.0f examples/s", self._epoch + 1, self._steps, _fmt(logs),
                     self._steps * self._batch_size / (self._last - self._start))

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.time() - self._start
        log.info("epoch %d done in %.1fs (%.0f examples/s): %s", epoch + 1, seconds,
                 self._steps * self._batch_size / max(seconds, 1e-9), _fmt(logs))


def _fmt(logs) -> str:
    return " ".join(f"{k}={float(np.asarray(v)):.4f}" for k, v in sorted((logs or {}).items()))
