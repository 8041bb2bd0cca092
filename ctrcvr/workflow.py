"""The stages chained: simulate -> preprocess -> train -> evaluate -> export.

Each function is a pure function of the config and directories, so the CLI, tests and
notebooks call the same code. Heavy imports happen inside, so ``--help`` stays instant.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import yaml

from ctrcvr.config import Config, dump_config
from ctrcvr.output_dir import prepare_output_dir
from pipeline.inputs import SOURCES, get_source

log = logging.getLogger("ctrcvr")
RESOLVED_CONFIG = "config.resolved.yaml"
SIMULATED_SOURCES = tuple(name for name, source in SOURCES.items() if source.simulated)  # for trainer.compare


def simulate(config: Config, out_dir, overwrite: bool = False) -> dict:
    """Runs the simulator of ``data.source`` (``pipeline.inputs``) into ``out_dir``, refused if not empty
    unless ``overwrite``; returns the simulation summary."""
    source = get_source(config.data.source)
    if not source.simulated:
        raise ValueError(f"data.source {source.name!r} is not simulated; set data.source to one of the "
                         f"simulated sources: {', '.join(SIMULATED_SOURCES)}")
    out = prepare_output_dir(out_dir, overwrite)
    summary = source.simulate(out, config.seed, **_sections(config, source.reads))
    dump_config(config, out / RESOLVED_CONFIG)
    return summary


def preprocess(config: Config, out_dir, raw_dir=None, overwrite: bool = False) -> dict:
    from pipeline.config import PreprocessSections
    from pipeline.inputs import resolve_inputs
    from pipeline.job import run_preprocess
    inputs = resolve_inputs(config.data, raw_dir, task=config.labels.task, seed=config.seed)
    out = prepare_output_dir(out_dir, overwrite)
    report = run_preprocess(PreprocessSections.of(config), inputs, out)
    if "://" in str(out):  # e.g. gs:// on Dataflow
        from pipeline.report import write_text
        write_text(f"{out}/{RESOLVED_CONFIG}", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    else:
        dump_config(config, Path(out) / RESOLVED_CONFIG)
    return report


def _sections(config: Config, names) -> dict:
    """The root config's sections ``names``, by name (what a stage entry point reads)."""
    return {name: getattr(config, name) for name in names}


def train(config: Config, data_dir, model_dir, overwrite: bool = False):
    from trainer.train import train as fit
    prepare_output_dir(model_dir, overwrite)
    dump_config(config, Path(model_dir) / RESOLVED_CONFIG)
    return fit(config, data_dir, model_dir)


def evaluate(config: Config, data_dir, model_dir, model=None, out_dir=None) -> dict:
    from trainer.evaluate import evaluate as run_eval
    from trainer.train import load_trained_model
    model = model or load_trained_model(config, data_dir, model_dir)
    return run_eval(model, config, data_dir, out_dir or model_dir)


def export(config: Config, data_dir, model_dir, export_root, model=None, raw_dir=None) -> Path:
    """A new TF Serving version of the model under ``export_root/<model name>/``, with warmup
    requests built from real raw rows and an updated ``models.config``."""
    import tensorflow_transform as tft
    from ctrcvr.serving.warmup import warmup_requests, write_warmup_requests
    from trainer.export import export_serving_model
    from trainer.train import load_trained_model
    from transforms.schema import Schema
    model = model or load_trained_model(config, data_dir, model_dir)
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


def run(config: Config, out_dir, overwrite: bool = False) -> dict:
    """Every stage on the config's data, all outputs under ``out_dir``; returns where things are."""
    out = prepare_output_dir(out_dir, overwrite)
    _check_estimators([config.model.name, *config.run_models])
    dump_config(config, out / RESOLVED_CONFIG)
    raw, data, model_dir = out / "data" / "raw", out / "data" / "transformed", out / "model"
    source = get_source(config.data.source)
    if source.simulated:
        log.info("[1/5] simulating %s -> %s", source.announce(**_sections(config, source.reads)), raw)
        log.info("simulated: %s", source.describe(simulate(config, raw)))
    log.info("[2/5] preprocessing (Beam %s runner) -> %s", config.preprocess.runner, data)
    report = preprocess(config, data, raw_dir=raw)
    log.info("preprocessed: %d read, %d generated, %d written, %d rejected (%.1f rows/s)", report["rows_read"],
             report["rows_generated"], report["rows_written"], report["rows_rejected"],
             report["rows_per_second"] or 0)
    log.info("[3/5] training %s -> %s", config.model.name, model_dir)
    model = train(config, data, model_dir)
    log.info("[4/5] evaluating on the eval split")
    metrics = evaluate(config, data, model_dir, model=model, out_dir=out)
    results = {config.model.name: metrics, **train_side_by_side(config, data, out / "models")}
    log.info("[5/5] exporting the serving model")
    export_dir = export(config, data, model_dir, out / "serving", model=model, raw_dir=raw)
    where = {"metrics": str(out / "metrics.json"), "export": str(export_dir), "data": str(data),
             "model": str(model_dir), "config": str(out / RESOLVED_CONFIG)}
    if len(results) > 1:
        (out / "metrics_by_model.json").write_text(json.dumps(results, indent=2))
        where["metrics_by_model"] = str(out / "metrics_by_model.json")
    (out / "outputs.json").write_text(json.dumps(where, indent=2))
    return {"metrics": results, "outputs": where}


def train_side_by_side(config: Config, data_dir, models_dir) -> dict:
    """Trains and evaluates each of ``config.run_models`` other than ``model.name`` under
    ``models_dir/<name>``; estimators that need ground truth are skipped (with a warning) on data without it."""
    import tensorflow_transform as tft
    from trainer.estimators import get_estimator
    from trainer.estimators.base import POTENTIAL_OUTCOME
    names = [n for n in dict.fromkeys(config.run_models) if n != config.model.name]
    spec = tft.TFTransformOutput(str(data_dir)).transformed_feature_spec()
    results = {}
    for i, name in enumerate(names, 1):
        if get_estimator(name).needs_potential_outcome and POTENTIAL_OUTCOME not in spec:
            log.warning("run_models: skipping %s, the data has no %s", name, POTENTIAL_OUTCOME)
            continue
        variant = config.model_copy(update={"model": config.model.model_copy(update={"name": name})})
        log.info("[4/5] side by side (%d/%d): training and evaluating %s", i, len(names), name)
        model_dir = Path(models_dir) / name
        results[name] = evaluate(variant, data_dir, model_dir, model=train(variant, data_dir, model_dir))
    return results


def compare(config: Config, out_dir, overwrite: bool = False, data_dir=None) -> dict:
    """Estimators × seeds on the same preprocessed data: mean ± std tables (Markdown, CSV) and plots.
    See :mod:`trainer.compare`; ``data_dir`` reuses an existing preprocess output."""
    from trainer.compare import compare as run_compare
    out = prepare_output_dir(out_dir, overwrite)
    dump_config(config, out / RESOLVED_CONFIG)
    return run_compare(config, out, data_dir=data_dir)


def _check_estimators(names) -> None:
    """Fails before any work if a name is not a registered estimator."""
    from trainer.estimators import get_estimator
    for name in names:
        get_estimator(name)
