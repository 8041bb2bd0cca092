"""Two-stage training: the propensity model is fitted first and then held fixed (Schnabel et al. 2016
§5; Wang et al. 2019 §4 estimate p̂ before the prediction model), instead of being co-trained.

    stage 1  (``model.propensity_epochs`` epochs, default train.epochs; no early stopping)
             minimise L_ctr = 1/|D| Σ_D BCE(o, p̂) over the ``ctr`` tower and its embedding group
    stage 2  (train.epochs, early stopping and selection as configured)
             the estimator's own updates, each without the ``ctr`` tower: p̂ is a constant

A mixin over an estimator whose ``ctr`` tower reads its own embedding group (naive IPW, joint-learning
DR): otherwise stage 2 would move p̂ through the shared embeddings.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from trainer.data import TrainingData
from trainer.model.labels import Update


class TwoStage:
    def fit(self, model, data: TrainingData, model_dir: Path) -> None:
        from trainer.model.keras_fit import keras_fit
        if self.embedding_group("ctr") in {self.embedding_group(t) for t in self.towers if t != "ctr"}:
            raise ValueError(f"{self.name}: the propensity tower must not share embeddings with the others")
        spec, own = data.spec, type(self).updates
        stage1 = spec.train.model_copy(update={"epochs": self.params.propensity_epochs or spec.train.epochs,
                                               "early_stopping_patience": None, "select": None})
        self.updates = (Update("ctr", ("ctr",)),)
        keras_fit(model, TrainingData(dataclasses.replace(spec, train=stage1), data.data_dir),
                  Path(model_dir) / "propensity")
        self.updates = tuple(Update(u.loss, tuple(t for t in (u.towers or self.towers) if t != "ctr")) for u in own)
        model.train_function = None  # Keras keeps stage 1's traced step (its updates) across fit calls: retrace
        keras_fit(model, data, model_dir)
