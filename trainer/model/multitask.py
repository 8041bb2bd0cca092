"""The multi-task model every multi-task estimator shares: embeddings -> one tower per task -> logits.

The model knows nothing about any particular estimator: the estimator names the towers it
needs, which embedding group each tower reads (one shared Φ unless it says otherwise), how
many optimiser updates a training step makes, which validation metrics it reports, and supplies
the loss; the model runs them and reports each loss term.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import tensorflow as tf
import tf_keras

from trainer.model.labels import POTENTIAL_OUTCOME, SHARED, Labels, Update
from trainer.model.layers import FeatureEmbedding, make_tower
from trainer.model.propensity import field_key
from trainer.model.validation import validation_metrics
from transforms.schema import LabelsConfig

if TYPE_CHECKING:
    from trainer.data import TrainingData


class MultiTaskModel(tf_keras.Model):
    """Embedding groups Φ_g, towers θ_task, and a pluggable estimator loss.

    ``make_embedding(group)`` builds the embedding of one group (constructor injection, so
    tests and benchmarks can size tables without a transform output). ``labels`` names the
    columns of o and r in a batch.
    """

    def __init__(self, make_embedding: Callable[[str], FeatureEmbedding], estimator,  # a MultiTaskEstimator
                 labels: LabelsConfig, dense_gradients: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.estimator = estimator
        groups = sorted({estimator.embedding_group(t) for t in estimator.towers})
        self.embeddings = {g: make_embedding(g) for g in groups}
        self.towers = {name: make_tower(estimator.params.tower, name) for name in estimator.towers}
        self._selection, self._outcome = labels.selection, labels.outcome
        self._dense_gradients = dense_gradients
        self._trackers = [tf_keras.metrics.Mean(name=t) for t in ("loss", *estimator.terms)]
        self._validation = validation_metrics(estimator.spec.validation_metrics, estimator.params)

    def get_config(self) -> dict:
        """What the SavedModel's Keras metadata records. The model is rebuilt from the trainer's config and
        its weights (:func:`trainer.train.load_trained_model`), and served through its signatures, never
        from this: the constructor's arguments (an embedding factory, the estimator) are not data."""
        return {"name": self.name, "estimator": self.estimator.name, "towers": list(self.towers)}

    def call(self, features, training=False):
        """Transformed features -> {tower name: logits of shape [batch]} (+ ``field/<name>`` vectors)."""
        x = {g: emb(features) for g, emb in self.embeddings.items()}
        out = {name: tf.squeeze(tower(x[self.estimator.embedding_group(name)], training=training), axis=-1)
               for name, tower in self.towers.items()}
        fields = self.estimator.fields()
        if fields:
            vectors = self.embeddings[self.estimator.embedding_group("cvr")].vectors(features, fields)
            out.update({field_key(n): v for n, v in vectors.items()})
        return out

    def predict_named(self, features) -> dict[str, tf.Tensor]:
        """Transformed features -> the estimator's named outputs (pctr, pcvr, pctcvr, ...)."""
        return self.estimator.outputs(self(features, training=False))

    def labels(self, batch) -> Labels:
        potential = batch.get(POTENTIAL_OUTCOME)
        return Labels(o=tf.cast(batch[self._selection], tf.float32), r=tf.cast(batch[self._outcome], tf.float32),
                      r_star=None if potential is None else tf.cast(potential, tf.float32))

    @property
    def metrics(self):
        return self._trackers + self._validation

    def train_step(self, batch):
        y = self.labels(batch)
        # the optimiser sums the gradients of the replicas in sync (tf.distribute): each replica's share
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for update in self.estimator.updates:
            with tf.GradientTape() as tape:
                terms = self.estimator.loss(y, self(batch, training=True))
                total = terms[update.loss] + (tf.add_n(self.losses) if self.losses else 0.0)
                if replicas > 1:
                    total = total / replicas
            variables = self.update_variables(update)
            grads = tape.gradient(total, variables)
            self.optimizer.apply_gradients(
                (self._maybe_dense(g), v) for g, v in zip(grads, variables) if g is not None)
        return self._track(terms)

    def test_step(self, batch):
        y, logits = self.labels(batch), self(batch, training=False)
        logs = self._track(self.estimator.loss(y, logits))
        served = self.estimator.outputs(logits)
        for metric in self._validation:
            metric.observe(y, served)
            logs[metric.name] = metric.result()
        return logs

    def update_variables(self, update: Update) -> list[tf.Variable]:
        """The variables one update trains: its towers' and the embedding groups they read."""
        if update.towers is None:
            return self.trainable_variables
        groups = {self.estimator.embedding_group(t) for t in update.towers}
        layers = [self.towers[t] for t in update.towers] + [self.embeddings[g] for g in sorted(groups)]
        return [v for layer in layers for v in layer.trainable_variables]

    def _maybe_dense(self, grad):
        if self._dense_gradients and isinstance(grad, tf.IndexedSlices):
            return tf.convert_to_tensor(grad)
        return grad

    def _track(self, terms):
        for tracker in self._trackers:
            tracker.update_state(terms[tracker.name])
        return {t.name: t.result() for t in self._trackers}


def build_multitask_model(estimator, data: "TrainingData") -> MultiTaskModel:
    """The estimator's model on embeddings sized from the transform output, its variables built."""
    spec = data.spec
    sizes = data.cardinalities()

    def make_embedding(group: str) -> FeatureEmbedding:
        name = "embedding" if group == SHARED else f"embedding_{group}"
        return FeatureEmbedding(spec.features, sizes, estimator.params.embedding_dim, name=name)

    model = MultiTaskModel(make_embedding, estimator, spec.labels, spec.train.dense_embedding_gradients,
                           name=estimator.name)
    model(next(iter(data.dataset("eval", 2))))  # build the variables (weights load, BackupAndRestore)
    return model
