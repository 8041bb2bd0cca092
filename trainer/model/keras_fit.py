"""The default ``Estimator.fit``: Keras fits a multi-task model on the train split, validating on eval.

Callbacks: progress (:class:`trainer.progress.Progress`, TensorBoard under ``<model_dir>/tensorboard``),
a clear error on a non-finite loss, ``BackupAndRestore`` under ``<model_dir>/backup``, and early stopping
on any metric the model reports (``train.early_stopping_monitor``: val_loss, val_<term>, or val_<metric>
of the estimator's declared validation metrics); with ``train.select``, selection of the best epoch on a
named split and metric (:mod:`trainer.model.selection`).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import tensorflow as tf
import tf_keras

from trainer.config import TrainConfig
from trainer.data import TrainingData
from trainer.model.selection import selection_callbacks
from trainer.progress import Progress, ProgressCallback

log = logging.getLogger("trainer")


class CrossModelTracingFilter(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls to <function Model.make_train_function...> triggered
    tf.function retracing" for Keras' own step functions, and only those.

    TensorFlow counts traces per Python function across every instance: Keras builds each model's train
    and test step from the same code, so a process that fits several models (``compare``, ``run``'s
    side-by-side models) traces each step once per model and crosses the warning's threshold although no
    model ever retraces. A real retrace of our own functions (e.g. ``predict_named``) is still reported.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message and "Model.make_" in message)


class ParameterServerMetricsFilter(logging.Filter):
    """Drops Keras' "Could not get Model metric results. Using the results of last step function could lead to
    incorrect results when used with ParameterServerStrategy", logged twice per epoch under parameter_server.

    Keras re-reads the model's metrics at the end of an epoch only when their names are the train step's logs';
    ours are not (the validation metrics are updated in test_step only), so the epoch's logs are the last
    scheduled step's: the running means of the worker that ran it, which is what docs/distributed.md says they
    are. Nothing to act on; the exact evaluation runs after training.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "Could not get Model metric results" not in record.getMessage()


def _quiet_cross_model_tracing() -> None:
    tf_logger = logging.getLogger("tensorflow")
    for kind in (CrossModelTracingFilter, ParameterServerMetricsFilter):
        if not any(isinstance(f, kind) for f in tf_logger.filters):
            tf_logger.addFilter(kind())


def keras_fit(model, data: TrainingData, model_dir: Path) -> None:
    _quiet_cross_model_tracing()
    from trainer.distribute import fit_inputs
    cfg = data.spec.train
    check_monitor(model, cfg)
    inputs = fit_inputs(model, data)  # datasets, or per-worker dataset functions under parameter_server
    if model.optimizer is None:  # a warm-started model comes compiled, its optimiser state carried over
        with model.distribute_strategy.scope():
            model.compile(optimizer=make_optimizer(cfg), steps_per_execution=cfg.steps_per_execution)
    if not tf.distribute.has_strategy():
        _trace_test_function(model, inputs.eval)
    log.info("training %s: %d epoch(s), batch %d, lr %g", model.name, cfg.epochs, cfg.batch_size, cfg.learning_rate)
    model.fit(inputs.train, validation_data=inputs.eval, epochs=cfg.epochs, steps_per_epoch=inputs.steps_per_epoch,
              validation_steps=inputs.validation_steps,
              callbacks=selection_callbacks(data) + _callbacks(model.name, cfg, Path(model_dir)), verbose=0)


def make_optimizer(cfg: TrainConfig):
    """The optimiser of every Keras fit: ``train.optimizer`` at ``train.learning_rate``."""
    from trainer.model.optimizers import make_optimizer as named_optimizer
    return named_optimizer(cfg.optimizer, cfg.learning_rate)


def _trace_test_function(model, eval_ds) -> None:
    """Traces Keras' validation step once, explicitly, for the eval iterator's spec. Called lazily it is
    traced on each model's first validation batch, and TensorFlow counts those traces of every model
    together: a process that fits several models (run's side-by-side models, compare) warned of retracing."""
    model.make_test_function().get_concrete_function(iter(eval_ds))


def check_monitor(model, cfg: TrainConfig) -> None:
    """Early stopping must monitor a metric the model reports on the eval split."""
    valid = [f"val_{m.name}" for m in model.metrics]
    if cfg.early_stopping_patience and cfg.early_stopping_monitor not in valid:
        raise ValueError(f"train.early_stopping_monitor={cfg.early_stopping_monitor!r} is not reported by "
                         f"{model.name}; choose one of {', '.join(valid)}")


def _callbacks(name: str, cfg: TrainConfig, model_dir: Path) -> list[tf_keras.callbacks.Callback]:
    from trainer.distribute import is_chief
    chief = is_chief(tf.distribute.get_strategy())  # a non-chief multi_worker_mirrored worker: no TensorBoard
    callbacks = [
        StopOnNonFiniteLoss(),
        ProgressCallback(Progress(name, model_dir if chief else None, total_epochs=cfg.epochs), cfg.batch_size),
        tf_keras.callbacks.BackupAndRestore(str(model_dir / "backup")),
    ]
    if cfg.early_stopping_patience:
        callbacks.append(LoggedEarlyStopping(
            monitor=cfg.early_stopping_monitor, patience=cfg.early_stopping_patience,
            mode="min", restore_best_weights=True))
    return callbacks


class LoggedEarlyStopping(tf_keras.callbacks.EarlyStopping):
    """Keras' early stopping (best weights restored), saying what it did in the trainer's log, not on
    bare stdout lines."""

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0:
            log.info("early stopping after epoch %d: %s has not improved for %d epoch(s)",
                     self.stopped_epoch + 1, self.monitor, self.patience)
        if self.best_weights is not None:
            log.info("keeping the weights of epoch %d, the best %s (%.4g)", self.best_epoch + 1, self.monitor,
                     self.best)
        super().on_train_end(logs)


class StopOnNonFiniteLoss(tf_keras.callbacks.Callback):
    """Stops training with a clear error the moment the loss is NaN or infinite."""

    def __init__(self):
        super().__init__()
        self._supports_tf_logs = True  # reads one scalar, no conversion of every log per batch

    def on_train_batch_end(self, batch, logs=None):
        if hasattr(logs, "fetch"):  # parameter_server: a RemoteValue; fetching it would wait: checked per epoch
            return
        loss = (logs or {}).get("loss")
        if loss is not None:
            self._check(float(loss), f"step {batch}")

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None:
            self._check(float(loss), f"epoch {epoch + 1}")

    @staticmethod
    def _check(loss: float, where: str) -> None:
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} at {where}; lower "
                                     "train.learning_rate, or check the inputs for extreme values")
