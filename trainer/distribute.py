"""Training through ``tf.distribute`` (``train.distribution``): the strategy, its inputs, where weights go.

    none                    one process, the default
    mirrored                MirroredStrategy over this machine's devices (synchronous, gradients summed)
    multi_worker_mirrored   MultiWorkerMirroredStrategy: every worker holds every table (TF_CONFIG per worker)
    parameter_server        ParameterServerStrategy: the coordinator (this process, task ``chief``) schedules
                            steps on the workers; every variable larger than ``train.distribute.min_shard_bytes``
                            (the embedding tables) is split across the parameter servers by
                            ``tf.distribute.experimental.partitioners``

The cluster is ``TF_CONFIG`` (``TFConfigClusterResolver``) unless a resolver is given (the local launcher
:mod:`ctrcvr.cluster`). The estimators' train steps run unchanged under every strategy: the generic
:class:`trainer.model.multitask.MultiTaskModel` divides each update's loss by the replicas in sync, since
the optimiser sums the replicas' gradients (one replica per worker under parameter_server: each worker
applies its own gradients asynchronously, nothing to divide).

Under parameter_server, ``Model.fit`` reads a ``tf_keras.utils.experimental.DatasetCreator``: each worker
reads the whole split, shuffled in its own order (a seed drawn on the worker: the strategy builds every
worker's input from one graph, with no worker index), repeated, so ``steps_per_epoch`` is needed: ``train.steps_per_epoch`` or ⌈train rows / batch⌉ from the preprocess
report; validation takes ⌈eval rows / eval batch⌉ steps, each a batch from whichever worker is free (an
approximate pass over the eval split; the evaluation after training is exact, in this process).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
from pathlib import Path
from typing import Optional

import tensorflow as tf
import tf_keras

from trainer.config import TrainConfig
from trainer.data import TrainingData, input_options, make_dataset, split_files
from trainer.data import split_rows as report_rows
from trainer.distribute_settings import writes_outputs
from transforms.errors import UserError

log = logging.getLogger("trainer")
_STRATEGIES: dict[tuple, tf.distribute.Strategy] = {}  # one per cluster and process: TF connects once


def make_strategy(cfg: TrainConfig, resolver=None) -> Optional[tf.distribute.Strategy]:
    """The strategy ``train.distribution`` names (None for ``none``), created once per process and cluster."""
    kind = cfg.distribution
    if kind == "none":
        if resolver is not None:
            raise UserError("a cluster was given but train.distribution is none: set it to parameter_server "
                            "(or multi_worker_mirrored)", key="train.distribution")
        return None
    if kind == "mirrored":
        key: tuple = (kind,)
    else:
        resolver = resolver or tf.distribute.cluster_resolver.TFConfigClusterResolver()
        spec = resolver.cluster_spec().as_dict()
        if not spec:
            raise UserError(f"train.distribution={kind} needs a cluster: set TF_CONFIG for every task, or use "
                            "`ctrcvr train --local-cluster workers=2,ps=1` (docs/distributed.md)",
                            key="train.distribution")
        key = (kind, json.dumps(spec, sort_keys=True), cfg.distribute.model_dump_json())
    if key not in _STRATEGIES:
        _STRATEGIES[key] = _create(kind, cfg, resolver)
    return _STRATEGIES[key]


def _create(kind: str, cfg: TrainConfig, resolver) -> tf.distribute.Strategy:
    if kind == "mirrored":  # the GPUs, else every logical CPU device (one, unless configured otherwise)
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if kind == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    n_ps = num_parameter_servers(resolver)
    if not n_ps or not resolver.cluster_spec().as_dict().get("worker"):
        raise UserError("train.distribution=parameter_server needs at least one 'ps' and one 'worker' task in "
                        "the cluster (TF_CONFIG)", key="train.distribution")
    return tf.distribute.ParameterServerStrategy(resolver, variable_partitioner=partitioner(cfg, n_ps))


def num_parameter_servers(resolver) -> int:
    return len(resolver.cluster_spec().as_dict().get("ps", []))


def partitioner(cfg: TrainConfig, n_ps: int):
    """``train.distribute``'s variable partitioner over ``n_ps`` parameter servers."""
    settings = cfg.distribute
    shards = settings.max_shards or n_ps
    partitioners = tf.distribute.experimental.partitioners
    if settings.partitioner == "fixed":
        return partitioners.FixedShardsPartitioner(shards)
    return partitioners.MinSizePartitioner(min_shard_bytes=settings.min_shard_bytes, max_shards=shards)


def is_parameter_server(strategy) -> bool:
    return isinstance(strategy, tf.distribute.ParameterServerStrategy)


def is_multi_worker(strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def num_workers(strategy) -> int:
    """The tasks that train under multi_worker_mirrored (the workers, and the chief if there is one)."""
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return len(spec.get("worker", [])) + len(spec.get("chief", []))


def is_chief(strategy) -> bool:
    """Whether this task writes the outputs: always, except a non-chief multi_worker_mirrored worker."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    return writes_outputs(resolver.task_type, resolver.task_id, resolver.cluster_spec().as_dict())


def weights_path(model_dir: Path, relative: str, strategy) -> str:
    """Where this task saves the weights: ``model_dir/relative`` on the chief; a scratch copy on other
    multi_worker_mirrored workers (every worker must save; only the chief's copy is kept)."""
    if is_chief(strategy):
        return str(Path(model_dir) / relative)
    resolver = strategy.cluster_resolver
    return str(Path(model_dir) / "workers" / f"{resolver.task_type}_{resolver.task_id}" / relative)


@dataclasses.dataclass(frozen=True)
class FitInputs:
    """What ``Model.fit`` reads: the train and eval inputs and the steps it must be told."""

    train: object
    eval: object
    steps_per_epoch: Optional[int]
    validation_steps: Optional[int]


def fit_inputs(model, data: TrainingData) -> FitInputs:
    """The Keras fit's inputs under the model's strategy (see the module docstring)."""
    cfg, eval_batch = data.spec.train, data.spec.eval.batch_size
    strategy = model.distribute_strategy
    if is_multi_worker(strategy):
        workers = num_workers(strategy)
        return FitInputs(*(_sharded(data, split, batch, workers, shuffle=split == "train",
                                    repeat=split == "train" and cfg.steps_per_epoch is not None)
                           for split, batch in (("train", cfg.batch_size), ("eval", eval_batch))),
                         cfg.steps_per_epoch, None)
    if not is_parameter_server(strategy):
        train = data.dataset("train", cfg.batch_size, shuffle=True, repeat=cfg.steps_per_epoch is not None)
        evaluation = data.dataset("eval", eval_batch)
        if cfg.steps_per_execution > 1:  # Keras runs several steps per call only on datasets of known size
            if cfg.steps_per_epoch is None:
                train = train.apply(tf.data.experimental.assert_cardinality(_batches(data, "train", train)))
            evaluation = evaluation.apply(tf.data.experimental.assert_cardinality(_batches(data, "eval", evaluation)))
        return FitInputs(train, evaluation, cfg.steps_per_epoch, None)
    rows = split_rows(data.data_dir)
    steps = cfg.steps_per_epoch or max(1, math.ceil(rows.get("train", 0) / cfg.batch_size))
    validation_steps = max(1, math.ceil(rows.get("eval", 0) / eval_batch))
    creator = tf_keras.utils.experimental.DatasetCreator
    return FitInputs(creator(functools.partial(worker_dataset, data, "train", cfg.batch_size, True)),
                     creator(functools.partial(worker_dataset, data, "eval", eval_batch, False)),
                     steps, validation_steps)


def _batches(data: TrainingData, split: str, dataset: tf.data.Dataset) -> int:
    """Batches in one pass over ``split`` (for ``train.steps_per_execution``): tf.data's own count when it knows
    it (full-matrix blocks), else ⌈rows / batch⌉ from the preprocess report, which tf.data checks as it runs."""
    known = int(dataset.cardinality())
    if known >= 0:
        return known
    batch = data.spec.train.batch_size if split == "train" else data.spec.eval.batch_size
    return max(1, math.ceil(split_rows(data.data_dir).get(split, 0) / batch))


def _sharded(data: TrainingData, split: str, batch_size: int, workers: int, shuffle: bool,
             repeat: bool) -> tf.data.Dataset:
    """multi_worker_mirrored: one worker's part of ``split``, the batch being the global batch (Keras splits it
    over the replicas). With at least one shard per worker each worker reads its own shards (tf.data's FILE
    auto-sharding); with fewer, every worker reads every shard in the same seeded order and keeps its share of
    the batches (DATA): TensorFlow's default, AUTO, fails outright on fewer files than workers."""
    policy = tf.data.experimental.AutoShardPolicy
    files = split_files(data.data_dir, split)
    options = tf.data.Options()
    in_memory = split == "train" and shuffle and data.spec.train.cache_examples  # no files to shard: DATA
    options.experimental_distribute.auto_shard_policy = policy.FILE if len(files) >= workers and not in_memory \
        else policy.DATA
    if len(files) < workers and not in_memory:
        log.info("%s: %d shard(s) for %d workers: every worker reads all of them and keeps its share of the batches",
                 split, len(files), workers)
    return data.dataset(split, batch_size, shuffle=shuffle, repeat=repeat, deterministic=True).with_options(options)


def worker_dataset(data: TrainingData, split: str, batch_size: int, shuffle: bool,
                   context: tf.distribute.InputContext) -> tf.data.Dataset:
    """One parameter-server worker's input: ``split`` parsed, shuffled in this worker's own order, repeated.

    ParameterServerStrategy traces this function once, on the coordinator, and runs the same graph on every
    worker to build its input; the context it passes is one input pipeline, id 0, whatever the workers. A
    seed fixed at trace time (the config's) would give every worker the same batches in the same order;
    the seed is drawn instead at run time, on each worker (TensorFlow's advice for this strategy: shuffle
    differently per worker, no sharding), so the workers' batches are independent draws over the split.
    Under ``train.deterministic`` (where an unseeded random op is an error) every worker uses the config's
    seed. Were the context ever to name several pipelines, each would read its own shards."""
    files = split_files(data.data_dir, split)
    n, i = context.num_input_pipelines, context.input_pipeline_id
    if n > 1:
        if len(files) < n:
            raise UserError(f"{len(files)} {split} shard(s) for {n} input pipelines: each reads its own shards; "
                            f"preprocess with preprocess.num_shards >= {n}", key="preprocess.num_shards")
        files = files[i::n]
    cfg = data.spec.train
    seed = data.spec.seed + i
    if shuffle and not cfg.deterministic:
        seed = tf.raw_ops.RandomUniformInt(shape=tf.constant([], tf.int32), minval=tf.constant(0, tf.int64),  # seed=seed2=0: drawn
                                           maxval=tf.constant(2 ** 62, tf.int64), seed=0, seed2=0)  # per run
    ds = make_dataset(files, data.feature_spec, batch_size, cfg.shuffle_buffer if shuffle else 0, seed=seed,
                      repeat=True, cache=cfg.cache_records and split == "train")
    return ds.with_options(input_options(cfg))


def split_rows(data_dir) -> dict[str, int]:
    """Rows per split, from the preprocess report (``report.json``)."""
    rows = report_rows(data_dir)
    if not rows:
        raise UserError("train.distribution=parameter_server derives steps_per_epoch from the preprocess report, "
                        "which is missing; set train.steps_per_epoch", file=Path(data_dir) / "report.json")
    return rows


def describe_placement(model) -> dict[str, list[str]]:
    """Embedding table -> the devices of its shards (a ShardedVariable's ``variables``), for logs and tests."""
    placement = {}
    for embedding in model.embeddings.values():
        for name, table in embedding.tables.items():
            variable = table.embeddings
            parts = getattr(variable, "variables", [variable])
            placement[f"{embedding.name}/{name}"] = [p.device for p in parts]
    return placement
