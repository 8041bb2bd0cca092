"""Early stopping and model selection on a named split and metric (``train.select``; seed 002's protocol:
early stopping with patience on the MAR validation slice, the best epoch's weights kept).

    after every epoch   s = split_metric(model, split, metric)   (trainer.evaluation.ratings)
                        best so far -> remember the weights; ``patience`` epochs without -> stop
    at the end          the best epoch's weights are restored

:class:`ModelSelection` works on any model with ``get_weights`` / ``set_weights`` (own loops call
:meth:`ModelSelection.after_epoch` and :meth:`ModelSelection.finish`); :class:`SelectionCallback` is
the Keras fit's wrapper, which also logs the score as ``select_<split>_<metric>``.
"""
from __future__ import annotations

import logging
import math

import tf_keras

from trainer.data import TrainingData

log = logging.getLogger("trainer")


class ModelSelection:
    def __init__(self, data: TrainingData):
        self.data, self.config = data, data.spec.train.select
        if self.config.split == "validation" and not data.has_split("validation"):
            raise ValueError("train.select.split: validation needs MAR test data and eval.validation_fraction > 0;"
                             " select on split: eval (SNIPS on the MNAR eval split) otherwise")
        self.best, self.best_epoch, self.weights, self.waited = -math.inf, None, None, 0

    def score(self, model) -> float:
        from trainer.evaluation.ratings import split_metric
        return split_metric(model, self.data.spec, self.data.data_dir, self.config.split, self.config.metric)

    def after_epoch(self, model, epoch: int) -> tuple[float, bool]:
        """(score, stop): scores ``model``, keeps its weights if best, says whether patience ran out."""
        value = self.score(model)
        signed = value if self.config.higher_is_better else -value
        if signed > self.best:
            self.best, self.best_epoch, self.weights, self.waited = signed, epoch, model.get_weights(), 0
        else:
            self.waited += 1
        return value, self.config.patience is not None and self.waited >= self.config.patience

    def finish(self, model) -> None:
        if self.weights is not None:
            model.set_weights(self.weights)
            best = self.best if self.config.higher_is_better else -self.best
            log.info("model selection: epoch %d had the best %s = %.4f; its weights restored",
                     self.best_epoch + 1, self.config.log_name, best)


class SelectionCallback(tf_keras.callbacks.Callback):
    def __init__(self, selection: ModelSelection):
        super().__init__()
        self.selection = selection

    def on_epoch_end(self, epoch, logs=None):
        value, stop = self.selection.after_epoch(self.model, epoch)
        if logs is not None:
            logs[self.selection.config.log_name] = value
        if stop:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.selection.finish(self.model)


def selection_callbacks(data: TrainingData) -> list[tf_keras.callbacks.Callback]:
    return [] if data.spec.train.select is None else [SelectionCallback(ModelSelection(data))]
