"""The stages chained: simulate -> preprocess -> train -> evaluate -> export.

Each function is a pure function of the config and directories, so the CLI, tests and
notebooks call the same code. Heavy imports happen inside, so ``--help`` stays instant.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, Optional

import yaml

from ctrcvr.config import Config, dump_config
from ctrcvr.output_dir import atomic_output_dir, is_complete, prepare_output_dir, require_complete
from ctrcvr.resume import mark_finished, prepare_model_dir
from pipeline.inputs import SOURCES, get_source

log = logging.getLogger("ctrcvr")
RESOLVED_CONFIG = "config.resolved.yaml"
SIMULATED_SOURCES = tuple(name for name, source in SOURCES.items() if source.simulated)


def simulate(config: Config, out_dir, overwrite: bool = False) -> dict:
    """Runs the simulator of ``data.source`` (``pipeline.inputs``) into ``out_dir``, refused if not empty
    unless ``overwrite``; returns the simulation summary."""
    source = get_source(config.data.source)
    if not source.simulated:
        raise ValueError(f"data.source {source.name!r} is not simulated; set data.source to one of the "
                         f"simulated sources: {', '.join(SIMULATED_SOURCES)}")
    with atomic_output_dir(out_dir, overwrite) as out:
        summary = source.simulate(out, config.seed, **_sections(config, source.reads))
        dump_config(config, out / RESOLVED_CONFIG)
    return summary


def preprocess(config: Config, out_dir, raw_dir=None, overwrite: bool = False) -> dict:
    from pipeline.config import PreprocessSections
    from pipeline.inputs import resolve_inputs
    from pipeline.job import run_preprocess
    inputs = resolve_inputs(config.data, raw_dir, task=config.labels.task, seed=config.seed)
    files = [path for path, _ in inputs if isinstance(path, (str, Path))]
    with atomic_output_dir(out_dir, overwrite, inputs=[raw_dir, *files]) as out:
        report = run_preprocess(PreprocessSections.of(config), inputs, out)
        if "://" in str(out):  # e.g. gs:// on Dataflow
            from pipeline.report import write_text
            write_text(f"{out}/{RESOLVED_CONFIG}", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        else:
            dump_config(config, Path(out) / RESOLVED_CONFIG)
    return report


def trainer_spec(config: Config):
    """The sections the trainer stage reads (:class:`trainer.config.TrainerSpec`), from the root config."""
    from trainer.config import TrainerSpec
    return TrainerSpec(features=tuple(config.features), labels=config.labels, model=config.model,
                       train=config.train, eval=config.eval, export=config.export, seed=config.seed,
                       pair_features=tuple(config.data.ratings.columns[:2]))


def _sections(config: Config, names) -> dict:
    """The root config's sections ``names``, by name (what a stage entry point reads)."""
    return {name: getattr(config, name) for name in names}


def train(config: Config, data_dir, model_dir, overwrite: bool = False, cluster=None, warm_start_from=None):
    """Trains into ``model_dir``; re-running it on an unfinished training of the same config resumes it
    from its backup (:mod:`ctrcvr.resume`). ``_SUCCESS`` is written once the weights are saved.
    ``cluster``: a cluster resolver for ``train.distribution`` (else TF_CONFIG; :mod:`ctrcvr.cluster` starts
    a local one), or a :class:`ctrcvr.cluster.LocalWorkers` (multi_worker_mirrored: its worker processes train,
    this one waits and loads worker 0's weights); ``warm_start_from``: the previous day's model dir, whose state the model takes over,
    embedding rows matched by token (:mod:`trainer.warm_start`)."""
    from ctrcvr.cluster import LocalWorkers
    from trainer.train import train as fit
    if warm_start_from is not None and not Path(warm_start_from).is_dir():
        raise FileNotFoundError(2, "no such model directory (--warm-start)", str(warm_start_from))
    require_complete(data_dir, "preprocess output")
    if isinstance(cluster, LocalWorkers):  # multi_worker_mirrored: one `ctrcvr train` per worker, this one waits
        cluster.train(config, data_dir, model_dir, overwrite=overwrite, warm_start_from=warm_start_from)
        from trainer.train import load_trained_model
        return load_trained_model(trainer_spec(config), data_dir, model_dir)
    chief = _writes_outputs(config, cluster)
    if chief and (overwrite or not _resumes(config, model_dir)):  # an online run resumes from its checkpoints
        prepare_model_dir(config, model_dir, overwrite, inputs=[data_dir])
    if chief:
        dump_config(config, Path(model_dir) / RESOLVED_CONFIG)
    model = fit(trainer_spec(config), data_dir, model_dir, cluster=cluster, warm_start_from=warm_start_from)
    if chief:
        mark_finished(model_dir)
    return model


def _writes_outputs(config: Config, cluster=None) -> bool:
    """Whether this process prepares and finishes the model dir: always, except a multi_worker_mirrored worker
    other than the chief (worker 0), which only trains (decided from TF_CONFIG, before TensorFlow starts)."""
    from trainer.distribute_settings import tf_config_writes_outputs, writes_outputs
    if config.train.distribution != "multi_worker_mirrored":
        return True
    if cluster is not None:
        return writes_outputs(cluster.task_type, cluster.task_id, cluster.cluster_spec().as_dict())
    return tf_config_writes_outputs()


def _resumes(config: Config, model_dir) -> bool:
    """``train.mode: online`` and ``model_dir`` holds the checkpoints of an earlier (stopped) run."""
    return config.train.mode == "online" and (Path(model_dir) / "checkpoints" / "checkpoint").is_file()


def evaluate(config: Config, data_dir, model_dir, model=None, out_dir=None, overwrite: bool = False) -> dict:
    """The metrics of the trained model; ``metrics.json`` in ``out_dir`` (default: the model dir) is
    refused if it exists, unless ``overwrite``."""
    from trainer.evaluation import METRICS, evaluate as run_eval
    from trainer.train import load_trained_model
    out = Path(out_dir or model_dir)
    if (out / METRICS).exists() and not overwrite:
        raise FileExistsError(f"{out / METRICS} exists; pass --overwrite to replace it")
    spec = trainer_spec(config)
    model = model or load_trained_model(spec, data_dir, model_dir)
    return run_eval(model, spec, data_dir, out)


def export(config: Config, data_dir, model_dir, export_root, model=None, raw_dir=None) -> Path:
    """A new TF Serving version of the model under ``export_root/<model name>/``, with warmup
    requests built from real raw rows and an updated ``models.config``."""
    import tensorflow_transform as tft
    from ctrcvr.serving.warmup import warmup_requests, write_warmup_requests
    from trainer.export import export_serving_model
    from trainer.train import load_trained_model
    from transforms.schema import Schema
    model = model or load_trained_model(trainer_spec(config), data_dir, model_dir)
    schema = Schema.from_config(config)
    path = export_serving_model(model, tft.TFTransformOutput(str(data_dir)), schema, export_root, config.model.name)
    rows = sample_raw_rows(config, raw_dir, config.export.warmup_examples)
    if rows is not None and len(rows):
        write_warmup_requests(path, config.model.name, warmup_requests(rows, schema))
    dump_config(config, path.parent / RESOLVED_CONFIG)
    return path


def sample_raw_rows(config: Config, raw_dir=None, n: int = 8):
    """The first ``n`` rows of the configured raw input (None if there is none to read)."""
    from pipeline.inputs import resolve_inputs, sample_rows
    if n <= 0:
        return None
    try:
        path, _ = resolve_inputs(config.data, raw_dir, task=config.labels.task, seed=config.seed)[0]
    except (ValueError, FileNotFoundError, IndexError):
        log.warning("no raw input to build warmup requests from; exporting without them")
        return None
    return sample_rows(config.data, path, n)


def prepare_data(config: Config, data_root) -> Path:
    """Simulates (when the source is a simulator) into ``data_root/raw`` and preprocesses into
    ``data_root/transformed``; returns the preprocess output."""
    raw, data = Path(data_root) / "raw", Path(data_root) / "transformed"
    simulated = get_source(config.data.source).simulated
    if simulated:
        simulate(config, raw)
    preprocess(config, data, raw_dir=raw if simulated else None)
    return data


def run(config: Config, out_dir, overwrite: bool = False, cluster=None, warm_start_from=None) -> dict:
    """Every stage on the config's data, all outputs under ``out_dir``; returns where things are.
    ``cluster`` and ``warm_start_from`` are :func:`train`'s, for the exported model ``model.name``
    (the side-by-side models train from scratch, in this process)."""
    _check_estimators([config.model.name, *config.run_models])
    resuming = not overwrite and _unfinished_run(Path(out_dir), config)
    if resuming:
        out = Path(out_dir)
        log.info("resuming the unfinished run in %s (same config): finished stages are kept", out)
    else:
        out = prepare_output_dir(out_dir, overwrite, inputs=input_files(config))
        dump_config(config, out / RESOLVED_CONFIG)
    raw, data, model_dir = out / "data" / "raw", out / "data" / "transformed", out / "model"
    source = get_source(config.data.source)
    if source.simulated and not is_complete(raw):
        log.info("[1/5] simulating %s -> %s", source.announce(**_sections(config, source.reads)), raw)
        log.info("simulated: %s", source.describe(simulate(config, raw)))
    log.info("[2/5] preprocessing (Beam %s runner) -> %s", config.preprocess.runner, data)
    if is_complete(data):
        log.info("kept the finished preprocess output %s", data)
        report = json.loads((data / "report.json").read_text())
    else:
        report = preprocess(config, data, raw_dir=raw)
    log.info("preprocessed: %d read, %d generated, %d written, %d rejected (%.1f rows/s)", report["rows_read"],
             report["rows_generated"], report["rows_written"], report["rows_rejected"],
             report["rows_per_second"] or 0)
    log.info("[3/5] training %s -> %s", config.model.name, model_dir)
    model = _train_or_reuse(config, data, model_dir, resuming, cluster=cluster, warm_start_from=warm_start_from)
    log.info("[4/5] evaluating on the eval split")
    metrics = evaluate(config, data, model_dir, model=model, out_dir=out, overwrite=True)
    others = [n for n in dict.fromkeys(config.run_models) if n != config.model.name]
    models = {config.model.name: model}
    side_by_side = train_many([(name, _single_process(_with_estimator(config, name)), out / "models" / name)
                               for name in others], data, keep_models=models)
    results = {config.model.name: metrics, **side_by_side}
    log.info("[5/5] exporting the serving model")
    export_dir = export(config, data, model_dir, out / "serving", model=model, raw_dir=raw)
    where = {"metrics": str(out / "metrics.json"), "export": str(export_dir), "data": str(data),
             "model": str(model_dir), "config": str(out / RESOLVED_CONFIG)}
    where.update(plot_calibration(config, data, models, out))
    if len(results) > 1:
        (out / "metrics_by_model.json").write_text(json.dumps(results, indent=2))
        where["metrics_by_model"] = str(out / "metrics_by_model.json")
    (out / "outputs.json").write_text(json.dumps(where, indent=2))
    return {"metrics": results, "outputs": where}


def train_many(jobs, data_dir, on_done: Optional[Callable[[int, dict, float], None]] = None,
               keep_models: Optional[dict] = None) -> dict[str, dict]:
    """Trains and evaluates each ``(title, config, model_dir)`` job in turn on the same data: the one
    loop behind ``run``'s side-by-side models and ``compare``. Every model dir gets its weights, logs,
    ``metrics.json`` and ``config.resolved.yaml``; an estimator that trains on the simulator's ground
    truth is skipped, with a warning, on data without it. ``on_done(index, metrics, seconds)`` is called
    after each job; ``keep_models`` (a dict) collects {title: trained model}; returns {title: metrics}."""
    import tensorflow_transform as tft
    from trainer.estimators import get_estimator
    from trainer.estimators.interface import POTENTIAL_OUTCOME
    columns = tft.TFTransformOutput(str(data_dir)).transformed_feature_spec() if jobs else {}
    results = {}
    for i, (title, config, model_dir) in enumerate(jobs):
        if get_estimator(config.model.name).needs_potential_outcome and POTENTIAL_OUTCOME not in columns:
            log.warning("skipping %s: %s trains on %s, which the data do not have", title, config.model.name,
                        POTENTIAL_OUTCOME)
            continue
        log.info("[%d/%d] training and evaluating %s", i + 1, len(jobs), title)
        started = time.time()
        model = _train_or_reuse(config, data_dir, Path(model_dir), resuming=True)
        results[title] = evaluate(config, data_dir, model_dir, model=model, overwrite=True)
        if keep_models is not None:
            keep_models[title] = model
        if on_done is not None:
            on_done(i, results[title], time.time() - started)
    return results


def plot_calibration(config: Config, data_dir, models: dict, out: Path) -> dict[str, str]:
    """``calibration_by_<feature>.png`` for each feature of ``eval.calibration_slices``: every model's mean
    pCVR over the true CVR per value, on the eval split (data with the simulator's ``gt_cvr`` only)."""
    if not config.eval.calibration_slices or not models:
        return {}
    import tensorflow_transform as tft
    from ctrcvr.plots import calibration_by_slice, slice_stats
    from trainer.evaluation.predict import predict_split
    from transforms.schema import transformed_name
    spec, tft_output = trainer_spec(config), tft.TFTransformOutput(str(data_dir))
    slices = [transformed_name(f) for f in config.eval.calibration_slices]
    frames = {name: predict_split(m, spec, data_dir, extra=slices) for name, m in models.items()}
    frames = {name: f for name, f in frames.items() if {"pcvr", "gt_cvr"} <= set(f)}
    written = {}
    for feature, column in zip(config.eval.calibration_slices, slices):
        if not frames:
            break
        declared = next(f for f in config.features if f.name == feature)
        vocabulary = [t.decode() if isinstance(t, bytes) else str(t) for t in tft_output.vocabulary_by_name(feature)
                      ] if declared.transform == "vocabulary" else None
        stats = {name: slice_stats(f, column, vocabulary) for name, f in frames.items()}
        path = calibration_by_slice(stats, feature, out / f"calibration_by_{feature}.png")
        written[f"calibration_by_{feature}"] = str(path)
    return written


def _unfinished_run(out: Path, config: Config) -> bool:
    """``out`` holds a run of this very config that did not finish (no ``outputs.json``)."""
    return not (out / "outputs.json").exists() and _same_config(out, config)


def _same_config(directory: Path, config: Config) -> bool:
    saved = Path(directory) / RESOLVED_CONFIG
    if not saved.is_file():
        return False
    try:
        return yaml.safe_load(saved.read_text()) == config.model_dump(mode="json")
    except yaml.YAMLError:
        return False


def _train_or_reuse(config: Config, data_dir, model_dir: Path, resuming: bool, **train_options):
    """Trains (resuming an unfinished training); a resumed run keeps a model it had finished.
    ``train_options`` go to :func:`train` (cluster, warm start)."""
    if resuming and is_complete(model_dir) and _same_config(model_dir, config):
        from trainer.train import load_trained_model
        log.info("kept the finished model %s", model_dir)
        return load_trained_model(trainer_spec(config), data_dir, model_dir)
    return train(config, data_dir, model_dir, **train_options)


def input_files(config: Config) -> list:
    """The configured input files (none for a simulated source: its inputs are written by the run)."""
    from pipeline.inputs import resolve_inputs
    if get_source(config.data.source).simulated:
        return []
    try:
        return [p for p, _ in resolve_inputs(config.data, None, task=config.labels.task, seed=config.seed)
                if isinstance(p, (str, Path))]
    except (ValueError, FileNotFoundError):
        return []


def _with_estimator(config: Config, name: str) -> Config:
    """The same config with another estimator: the model keys it reads kept, the others at their defaults."""
    return config.model_copy(update={"model": config.model.switch_to(name)})


def _single_process(config: Config) -> Config:
    """The config trained in this process (train.distribution: none)."""
    return config.model_copy(update={"train": config.train.model_copy(update={"distribution": "none"})})


def _check_estimators(names) -> None:
    """Fails before any work if a name is not a registered estimator."""
    from trainer.estimators import get_estimator
    for name in names:
        get_estimator(name)
