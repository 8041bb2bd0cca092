"""EASQ's training loop (seed 001 Algorithm 1): offline epochs, or one online pass, over a time-ordered stream.

Per batch of whole requests (``stream.Stream``):
    B+  behaviour pairs within each request (or user): like > valid play > none (eq. 11)
    D+  questionnaire pairs: each answer against the same user's answers of another grade, in the batch
        and in the per-user ``QuestionnaireBuffer`` (whose rows are appended and scored again) (eqs. 15, 16)
    one Adam step on L_total = L_main + λ1 L_satis + λ2 L_DPO + router L1 (eq. 17)
The scores the step computes before its update are the batch's test-then-train predictions (the
same forward pass: the model is evaluated on every batch before it trains on it). At the end of
every day of the stream: the day's progressive metrics (``trainer.evaluation.questionnaire`` on those
predictions) go to the progress log, TensorBoard and ``<model_dir>/progressive_metrics.jsonl``; a
checkpoint (model, optimizer, position in the stream, and the buffer beside it) is written under
``<model_dir>/checkpoints``; online, a new serving version is exported every ``export_every_days``.
A run that finds a checkpoint resumes from it: the batches it covers are skipped, the buffer restored.
Offline runs ``train.epochs`` passes (the buffer emptied at each epoch's start); online one pass.
"""
from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import tensorflow as tf
import tf_keras

from trainer.estimators.easq.losses import EasqLossConfig, easq_loss
from trainer.estimators.easq.model import SATISFACTION, SCORE
from trainer.estimators.easq.pairs import QuestionnaireBuffer, within_group_pairs
from trainer.estimators.easq.stream import Stream
from trainer.evaluation.questionnaire import questionnaire_metrics
from trainer.progress import Progress

log = logging.getLogger("trainer")
CHECKPOINTS, PROGRESSIVE = "checkpoints", "progressive_metrics.jsonl"
ROUTER_TERMS = ("main/zero_gate_share", "main/experts_unused", "main/all_zero_rows",
                "satisfaction/zero_gate_share", "satisfaction/experts_unused", "satisfaction/all_zero_rows")


def fit_easq(model, stream: Stream, settings, train, model_dir, progress: Progress,
             export: Optional[Callable[[int], None]] = None) -> dict:
    """Trains ``model`` on ``stream`` (``settings`` = ``model.easq``, ``train`` = the train section);
    ``export(day)`` writes a serving version (online). Returns {'batches': done, 'resumed_from': k}."""
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    online = train.mode == "online"
    epochs = 1 if online else train.epochs
    optimizer = tf_keras.optimizers.legacy.Adam(train.learning_rate)
    position = tf.Variable(0, dtype=tf.int64, trainable=False, name="position")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, position=position)
    manager = tf.train.CheckpointManager(checkpoint, str(Path(model_dir) / CHECKPOINTS),
                                         max_to_keep=train.online.checkpoints_to_keep)
    buffer = QuestionnaireBuffer(settings.buffer_capacity, settings.buffer_max_age)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).expect_partial()
        buffer = _load_buffer(model_dir, int(position.numpy())) or buffer
        log.info("easq: resumed from %s (batch %d of %d)", manager.latest_checkpoint, int(position.numpy()),
                 epochs * stream.n_batches)
    elif online and train.online.warm_start:
        model.load_weights(str(Path(train.online.warm_start) / "weights" / "final")).expect_partial()
        log.info("easq: warm start from %s", train.online.warm_start)
    resumed_from = int(position.numpy())
    optimizer._create_all_weights(model.trainable_variables)  # slots first: the step is traced once
    step = _train_step(model, optimizer, EasqLossConfig(settings.lambda1, settings.lambda2, settings.beta,
                                                        settings.log_pi), stream)
    main_grades, answers = stream.main_grades(settings.main_target), stream.answer_grades(settings.uncertain)
    groups = stream.request if settings.behaviour_pairs == "request" else stream.user
    days_done, day_rows, day_terms = 0, [], []
    total = epochs * stream.n_batches
    for g in range(resumed_from, total):
        epoch, k = divmod(g, stream.n_batches)
        if k == 0:  # an epoch starts: its buffer starts empty
            buffer = QuestionnaireBuffer(settings.buffer_capacity, settings.buffer_max_age)
        if not day_rows:
            day = stream.day_of_batch(k)
            label = f"day {day}" if online else f"epoch {epoch + 1}/{epochs} day {day}"
            progress.start_epoch(label)
        rows = stream.rows(k)
        feats = {n: v[rows] for n, v in stream.features.items()}
        b_pairs = within_group_pairs(groups[rows], main_grades[rows])
        paired = buffer.pair_batch(stream.user[rows], answers[rows], feats)
        feats = {n: np.concatenate([v, paired.extra[n]]) for n, v in feats.items()}
        terms, score, satisfaction = step(feats, tf.constant(b_pairs), tf.constant(paired.pairs))
        n = rows.stop - rows.start
        day_rows.append(pd.DataFrame({"score": score.numpy()[:n], "satisfaction": satisfaction.numpy()[:n],
                                      **{c: v[rows] for c, v in stream.columns.items()}}))
        day_terms.append({name: float(v) for name, v in terms.items()})
        progress.step(n, terms)
        position.assign(g + 1)
        last_of_day = k + 1 == stream.n_batches or stream.day_of_batch(k + 1) != stream.day_of_batch(k)
        if not last_of_day:
            continue
        day = stream.day_of_batch(k)
        metrics = _day_metrics(pd.concat(day_rows), settings.uncertain)
        mean_terms = {**pd.DataFrame(day_terms).mean().to_dict(), **{
            k2: float(v) for k2, v in model.easq.router_metrics().items()}}
        progress.end_epoch(mean_terms, metrics)
        _append_jsonl(Path(model_dir) / PROGRESSIVE, {"epoch": epoch + 1, "day": day, "batches": g + 1,
                                                       **metrics, **mean_terms})
        manager.save(checkpoint_number=g + 1)
        _save_buffer(model_dir, g + 1, buffer, manager)
        days_done += 1
        day_rows, day_terms = [], []
        if online and export is not None and days_done % train.online.export_every_days == 0:
            export(day)
        if online and train.online.max_days and days_done >= train.online.max_days and g + 1 < total:
            log.info("easq: stopping after %d day(s) (train.online.max_days); a re-run resumes", days_done)
            break
    return {"batches": int(position.numpy()), "resumed_from": resumed_from, "total": total}


def _train_step(model, optimizer, loss_config: EasqLossConfig, stream: Stream):
    spec = ({n: tf.TensorSpec([None], tf.as_dtype(v.dtype)) for n, v in stream.features.items()},
            tf.TensorSpec([None, 2], tf.int64), tf.TensorSpec([None, 2], tf.int64))

    @tf.function(input_signature=spec)
    def step(features, behaviour_pairs, satisfaction_pairs):
        with tf.GradientTape() as tape:
            out = model(features, training=True)
            terms = easq_loss(out, behaviour_pairs, satisfaction_pairs, loss_config)
        variables = model.trainable_variables
        grads = tape.gradient(terms["loss"], variables)
        optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
        terms = {**terms, **{name: out[name] for name in ROUTER_TERMS},
                 "behaviour_pairs": tf.cast(tf.shape(behaviour_pairs)[0], tf.float32),
                 "questionnaire_pairs": tf.cast(tf.shape(satisfaction_pairs)[0], tf.float32)}
        return terms, out[SCORE], out[SATISFACTION]

    return step


def _day_metrics(frame: pd.DataFrame, uncertain: str) -> dict:
    """The test-then-train metrics of one day's predictions (made before training on each batch)."""
    keep = ("q_ndcg@5", "q_ndcg@10", "q_hr@1", "q_mrr", "gt_ndcg@5", "gt_ndcg@10", "play_auc", "top_watch_seconds")
    metrics = questionnaire_metrics(frame, uncertain)
    return {k: v for k, v in metrics.items() if k in keep and v is not None and np.isfinite(v)}


def _append_jsonl(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record, default=float) + "\n")


def _buffer_path(model_dir, number: int) -> Path:
    return Path(model_dir) / CHECKPOINTS / f"buffer-{number}.pkl"


def _save_buffer(model_dir, number: int, buffer: QuestionnaireBuffer, manager) -> None:
    """The buffer beside checkpoint ``number``; buffers of checkpoints the manager dropped are deleted."""
    _buffer_path(model_dir, number).write_bytes(pickle.dumps(buffer))
    kept = {_buffer_path(model_dir, int(c.rsplit("-", 1)[1])).name for c in manager.checkpoints}
    for path in (Path(model_dir) / CHECKPOINTS).glob("buffer-*.pkl"):
        if path.name not in kept:
            path.unlink()


def _load_buffer(model_dir, number: int) -> Optional[QuestionnaireBuffer]:
    path = _buffer_path(model_dir, number)
    return pickle.loads(path.read_bytes()) if path.is_file() else None
