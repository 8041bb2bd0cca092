"""The multi-task model every multi-task estimator shares: embeddings -> one tower per task -> logits.

The model knows nothing about any particular estimator: the estimator names the towers it
needs, which embedding group each tower reads (one shared Φ unless it says otherwise), how
many optimiser updates a training step makes, which validation metrics it reports, and supplies
the loss; the model runs them and reports each loss term.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

import tensorflow as tf
import tf_keras

from trainer.model.backbones import BackboneContext, get_backbone
from trainer.model.labels import POTENTIAL_OUTCOME, SHARED, Labels, Update
from trainer.model.layers import FeatureEmbedding
from trainer.model.propensity import field_key
from trainer.model.validation import validation_metrics
from transforms.schema import LabelsConfig

if TYPE_CHECKING:
    from trainer.data import TrainingData


class MultiTaskModel(tf_keras.Model):
    """Embedding groups Φ_g, towers θ_task, and a pluggable estimator loss.

    ``make_embedding(group)`` builds the embedding of one group (constructor injection, so
    tests and benchmarks can size tables without a transform output). ``labels`` names the
    columns of o and r in a batch. ``backbones`` maps each tower to the layer computing its logit
    from the group's per-field vectors (:func:`build_backbones`; default: the MLP towers of
    ``model.tower``); towers mapped to one layer share it (a per-group backbone).
    """

    def __init__(self, make_embedding: Callable[[str], FeatureEmbedding], estimator,  # a MultiTaskEstimator
                 labels: LabelsConfig, dense_gradients: bool = True, backbones: Optional[dict] = None, **kwargs):
        super().__init__(**kwargs)
        self.estimator = estimator
        groups = sorted({estimator.embedding_group(t) for t in estimator.towers})
        self.embeddings = {g: make_embedding(g) for g in groups}
        self.towers = backbones or build_backbones(estimator, (), {})
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
        x = {g: emb.fields(features) for g, emb in self.embeddings.items()}
        out, done = {}, {}
        for name, tower in self.towers.items():
            if id(tower) not in done:
                done[id(tower)] = tower(x[self.estimator.embedding_group(name)], features, training=training)
            logits = done[id(tower)]
            out[name] = logits[name] if isinstance(logits, dict) else logits
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
        logs = self._track(terms)
        if replicas > 1 and self.distribute_reduction_method != "first":
            # Keras sums what each replica's step returns ("auto" is "sum" off TPUs), and a tracker read in a
            # replica is that replica's running mean: each returns its share, so the logs are the mean
            return {name: value / replicas for name, value in logs.items()}
        return logs

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


def backbone_contexts(estimator, features, cardinalities, pair_features=None) -> list[tuple]:
    """``[(BackboneSpec, BackboneContext)]``: one per tower, or one per embedding group for the towers of
    a group on a per-group backbone (``model.backbone`` / ``model.tower_backbones``)."""
    params, plans, grouped = estimator.params, [], {}
    for tower in estimator.towers:
        spec = get_backbone(params.backbone_of(tower))
        if spec.per == "group":
            grouped.setdefault((spec.name, estimator.embedding_group(tower)), []).append(tower)
        else:
            group = estimator.embedding_group(tower)
            peers = tuple(t for t in estimator.towers if t != tower and estimator.embedding_group(t) == group)
            plans.append((spec, BackboneContext(tower, (tower,), params, tuple(features), dict(cardinalities),
                                                pair_features, shares_with=peers)))
    for (name, group), towers in grouped.items():
        plans.append((get_backbone(name), BackboneContext(group, tuple(towers), params, tuple(features),
                                                          dict(cardinalities), pair_features)))
    return plans


def build_backbones(estimator, features, cardinalities, pair_features=None) -> dict:
    """{tower: backbone layer} for the estimator's towers (a per-group layer appears under each of its towers)."""
    layers = {}
    for spec, context in backbone_contexts(estimator, features, cardinalities, pair_features):
        layer = spec.load()(context)
        layers.update({t: layer for t in context.towers})
    return {t: layers[t] for t in estimator.towers}


def group_dims(estimator, features, cardinalities, pair_features=None) -> dict[str, dict[str, int]]:
    """{embedding group: {field: dim}}: the table sizes the group's backbones ask for (mf: p_u, q_i)."""
    dims: dict[str, dict[str, int]] = {}
    for spec, context in backbone_contexts(estimator, features, cardinalities, pair_features):
        for tower in context.towers:
            dims.setdefault(estimator.embedding_group(tower), {}).update(spec.load().field_dims(context))
    return dims


def build_multitask_model(estimator, data: "TrainingData") -> MultiTaskModel:
    """The estimator's model on embeddings sized from the transform output, its variables built."""
    spec = data.spec
    sizes = data.cardinalities()
    dims = group_dims(estimator, spec.features, sizes, spec.pair_features)

    def make_embedding(group: str) -> FeatureEmbedding:
        name = "embedding" if group == SHARED else f"embedding_{group}"
        return FeatureEmbedding(spec.features, sizes, estimator.params.embedding_dim, dims=dims.get(group), name=name)

    model = MultiTaskModel(make_embedding, estimator, spec.labels, spec.train.densify_embedding_gradients,
                           backbones=build_backbones(estimator, spec.features, sizes, spec.pair_features),
                           name=estimator.name)
    model(next(iter(data.dataset("eval", 2))))  # build the variables (weights load, BackupAndRestore)
    return model
