"""Training: one fit path for every estimator.

    estimator = get_estimator(spec.model.name).create(spec.model)
    model = estimator.build(data)          the untrained model, tables sized from the transform output
    estimator.fit(model, data, model_dir)  Keras for multi-task estimators, an own loop for others
    weights -> model_dir/weights/final     reloaded by :func:`load_trained_model` into a fresh ``build``
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import tf_keras

from trainer.config import TrainerSpec
from trainer.data import TrainingData
from trainer.estimators import get_estimator
from trainer.estimators.interface import POTENTIAL_OUTCOME
from trainer.model_dir import WEIGHTS  # noqa: F401 (part of this module's interface)
from trainer.threads import apply_op_threads
from trainer.warm_start import record_tables
from transforms.errors import UserError

log = logging.getLogger("trainer")


def build_model(spec: TrainerSpec, data_dir):
    """The configured estimator's untrained model on ``data_dir`` (and the estimator)."""
    data = TrainingData(spec, data_dir)
    estimator_spec = get_estimator(spec.model.name)
    if estimator_spec.needs_potential_outcome and POTENTIAL_OUTCOME not in data.feature_spec:
        raise ValueError(f"model.name={spec.model.name} trains on the potential outcome {POTENTIAL_OUTCOME!r}, "
                         "which only simulated data has; the preprocessed data has no such column")
    estimator = estimator_spec.create(spec.model)
    return estimator, estimator.build(data), data


def train(spec: TrainerSpec, data_dir, model_dir, cluster=None, warm_start_from=None):
    """Fits the configured estimator on ``data_dir``'s train split; saves its weights under ``model_dir``.

    Under ``train.distribution`` (:mod:`trainer.distribute`; ``cluster``: a cluster resolver, else
    TF_CONFIG) the model is built and fitted in the strategy's scope, and the model returned is rebuilt
    without the strategy from the saved weights (sharded tables as ordinary ones): what evaluation and
    export see is the single-process model, whatever trained it.

    ``warm_start_from``: a previous model dir whose trained state the model takes over, embedding rows
    matched by token (:mod:`trainer.warm_start`; report in ``<model_dir>/warm_start.json``).
    """
    apply_op_threads(spec.train)  # first: seeding already starts TensorFlow
    tf_keras.utils.set_random_seed(spec.seed)
    if spec.train.deterministic:  # process-wide and irreversible, as TensorFlow offers it
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()
    strategy = None
    if spec.train.distribution != "none" or cluster is not None:
        from trainer.distribute import make_strategy
        strategy = make_strategy(spec.train, cluster)
        if spec.train.distribution == "multi_worker_mirrored":
            resolver = strategy.cluster_resolver
            log.info("multi_worker_mirrored: task %s/%s, %d replicas in sync", resolver.task_type, resolver.task_id,
                     strategy.num_replicas_in_sync)
    _check_memory(spec, data_dir, strategy)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        estimator, model, data = build_model(spec, data_dir)
        if strategy is not None and not getattr(estimator, "distributable", False):
            raise UserError(f"{spec.model.name} trains with its own loop, which does not run under tf.distribute; "
                            "set train.distribution: none", key="train.distribution")
        if spec.train.optimizer != "adam" and not getattr(estimator, "distributable", False):
            raise UserError(f"{spec.model.name} trains with its own loop and the optimiser its paper specifies; "
                            "train.optimizer applies to the Keras multi-task estimators: remove it",
                            key="train.optimizer")
        chief = strategy is None or _is_chief(strategy)  # a non-chief multi_worker_mirrored worker writes no outputs
        if warm_start_from is not None:
            _warm_start(estimator, model, spec, data, warm_start_from, Path(model_dir), chief)
        estimator.fit(model, data, Path(model_dir))
        if chief:
            record_tables(spec, data, model_dir)
        if strategy is None:
            model.save_weights(str(Path(model_dir) / WEIGHTS))
            return model
        from trainer.distribute import describe_placement, is_parameter_server, weights_path
        if is_parameter_server(strategy):
            log.info("table placement: %s", describe_placement(model))
        weights = weights_path(Path(model_dir), WEIGHTS, strategy)  # every worker saves (sync-on-read metrics)
        model.save_weights(weights)
    if chief:
        return load_trained_model(spec, data_dir, model_dir)
    _, local, _ = build_model(spec, data_dir)  # this worker's copy, then deleted: only the chief's is kept
    local.load_weights(weights).expect_partial()
    _remove_scratch(Path(model_dir), weights)
    return local


def _is_chief(strategy) -> bool:
    from trainer.distribute import is_chief
    return is_chief(strategy)


def _remove_scratch(model_dir: Path, weights: str) -> None:
    """Deletes a non-chief worker's ``<model_dir>/workers/<task>/`` (and ``workers/`` once empty)."""
    import shutil
    task = Path(weights).relative_to(model_dir / "workers").parts[0]
    shutil.rmtree(model_dir / "workers" / task, ignore_errors=True)
    try:
        (model_dir / "workers").rmdir()
    except OSError:  # another worker's copy is still there
        pass


def _warm_start(estimator, model, spec: TrainerSpec, data, previous_dir, model_dir: Path, chief: bool = True) -> None:
    from trainer.model.keras_fit import make_optimizer
    from trainer.warm_start import warm_start, write_report
    if not getattr(estimator, "distributable", False):
        raise UserError(f"{spec.model.name} trains with its own loop: warm start covers the Keras multi-task "
                        "estimators", key="--warm-start")
    model.compile(optimizer=make_optimizer(spec.train))
    report = warm_start(model, estimator, spec, data, previous_dir)
    if chief:
        write_report(report, model_dir)


def _check_memory(spec: TrainerSpec, data_dir, strategy) -> None:
    """The tables' estimated memory against what the strategy can hold (:mod:`trainer.table_memory`)."""
    from trainer.table_memory import check_table_memory, table_memory
    estimator = get_estimator(spec.model.name).create(spec.model)
    towers = getattr(estimator, "towers", ())
    groups = len({estimator.embedding_group(t) for t in towers}) if towers else 1
    n_ps = None
    if strategy is not None and spec.train.distribution == "parameter_server":
        n_ps = len(strategy.extended.parameter_devices)
    sizes = TrainingData(spec, data_dir).cardinalities()
    dims: dict[str, int] = {}
    if towers:
        from trainer.model.multitask import group_dims
        for group in group_dims(estimator, spec.features, sizes, spec.pair_features).values():
            dims.update(group)
    tables = table_memory(spec.features, sizes, spec.model.embedding_dim, groups, dims)
    check_table_memory(tables, spec.train.distribution, spec.train.distribute.task_memory_gb, n_ps)


def load_trained_model(spec: TrainerSpec, data_dir, model_dir):
    """Rebuilds the model and restores the weights :func:`train` saved."""
    if not Path(model_dir, WEIGHTS + ".index").is_file():
        from transforms.errors import UserError
        raise UserError(f"no trained weights ({WEIGHTS}): its training did not finish; re-run the same "
                        "`ctrcvr train` command to resume it", file=str(model_dir))
    _, model, _ = build_model(spec, data_dir)
    model.load_weights(str(Path(model_dir) / WEIGHTS)).expect_partial()
    return model
