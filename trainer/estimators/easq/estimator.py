"""``model.name: easq`` (seed 001): the estimator protocol around the EASQ network and its own loop.

``build`` puts the shared ``FeatureEmbedding`` in front of ``Easq`` (:class:`.ranker.EasqRanker`), tables
sized from the transform output; ``fit`` reads the train split into memory in time order
(:mod:`.stream`) and runs :func:`.fit.fit_easq`: offline epochs, or with ``train.mode: online`` one
test-then-train pass that checkpoints and resumes, exporting a serving version per
``train.online.export_every_days`` when ``train.online.export_dir`` is set (Algorithm 1). Progress,
router sparsity included, goes through :class:`trainer.progress.Progress`.
"""
from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from trainer.data import TrainingData
from trainer.estimators.easq.fit import fit_easq
from trainer.estimators.easq.model import EasqConfig
from trainer.estimators.easq.ranker import EasqRanker
from trainer.estimators.easq.stream import load_stream
from trainer.estimators.interface import Estimator
from trainer.progress import Progress


def network_config(settings) -> EasqConfig:
    """The ``model.easq`` section as the network's :class:`EasqConfig`."""
    return EasqConfig(units=settings.units, lora_rank=settings.lora_rank, main_experts=settings.main_experts,
                      satisfaction_experts=settings.satisfaction_experts, expert_units=tuple(settings.expert_units),
                      target_sparsity=settings.target_sparsity, lora_reads_input=settings.lora_reads_input,
                      lora=settings.lora, shared_bottom=settings.shared_bottom)


class EasqEstimator(Estimator):
    def build(self, data: TrainingData) -> EasqRanker:
        return EasqRanker(data.spec.features, data.cardinalities(), self.params.embedding_dim,
                          network_config(self.params.easq), name=self.name)

    def fit(self, model: EasqRanker, data: TrainingData, model_dir: Path) -> dict:
        train = data.spec.train
        stream = load_stream(data, "train", train.batch_size, list(model.feature_specs))
        days = len(set(stream.columns["day"].tolist()))
        progress = Progress(self.name, model_dir, total_epochs=days * (1 if train.mode == "online" else train.epochs))
        export = _exporter(model, data, train.online.export_dir) if train.online.export_dir else None
        return fit_easq(model, stream, self.params.easq, train, model_dir, progress, export)


class _Serving(tf.Module):
    """What a per-day export saves: the model's ``predict_named`` (the export attaches the TFT layer here,
    not to the model being trained)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def predict_named(self, features):
        return self.model.predict_named(features)


def _exporter(model, data: TrainingData, export_dir):
    from trainer.export import export_serving_model
    from transforms.schema import Schema

    def export(day: int) -> None:
        path = export_serving_model(_Serving(model), data.tft_output, Schema.from_config(data.spec), export_dir,
                                    data.spec.model.name)
        import logging
        logging.getLogger("trainer").info("easq: day %d exported to %s", day, path)

    return export
