"""The stages chained: simulate -> preprocess -> train -> evaluate -> export.

Each function is a pure function of the config and directories, so the CLI, tests and
notebooks call the same code. Heavy imports happen inside, so ``--help`` stays instant.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ctrcvr.config import Config, dump_config
from ctrcvr.outputs import prepare_output_dir

log = logging.getLogger("ctrcvr")
RESOLVED_CONFIG = "config.resolved.yaml"


def simulate(config: Config, out_dir, overwrite: bool = False) -> dict:
    from pipeline.simulate import simulate as run_simulator
    summary = run_simulator(config.simulate, out_dir, seed=config.seed, overwrite=overwrite)
    dump_config(config, Path(out_dir) / RESOLVED_CONFIG)
    return summary


def preprocess(config: Config, out_dir, raw_dir=None, overwrite: bool = False) -> dict:
    from pipeline.job import run_preprocess
    from pipeline.sources import resolve_inputs
    report = run_preprocess(config, resolve_inputs(config.data, raw_dir), out_dir, overwrite=overwrite)
    dump_config(config, Path(out_dir) / RESOLVED_CONFIG)
    return report


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
    from trainer.export import export_serving_model
    from trainer.train import load_trained_model
    from transforms.features import Schema
    model = model or load_trained_model(config, data_dir, model_dir)
    path = export_serving_model(model, tft.TFTransformOutput(str(data_dir)), Schema.from_config(config),
                                export_root, config.model.name,
                                warmup_rows=sample_raw_rows(config, raw_dir, config.export.warmup_examples))
    dump_config(config, path.parent / RESOLVED_CONFIG)
    return path


def sample_raw_rows(config: Config, raw_dir=None, n: int = 8):
    """The first ``n`` rows of the configured raw input (None if there is none to read)."""
    from pipeline.sources import read_chunks, resolve_inputs
    if n <= 0:
        return None
    try:
        path, _ = resolve_inputs(config.data, raw_dir)[0]
    except (ValueError, FileNotFoundError, IndexError):
        log.warning("no raw input to build warmup requests from; exporting without them")
        return None
    frame, _, _ = next(iter(read_chunks(path, n)))
    return frame.head(n)


def run(config: Config, out_dir, overwrite: bool = False) -> dict:
    """Every stage on the config's data, all outputs under ``out_dir``; returns where things are."""
    out = prepare_output_dir(out_dir, overwrite)
    dump_config(config, out / RESOLVED_CONFIG)
    raw, data, model_dir = out / "data" / "raw", out / "data" / "transformed", out / "model"
    if config.data.source == "simulated":
        log.info("[1/5] simulating %d exposures -> %s", config.simulate.n_exposures, raw)
        summary = simulate(config, raw)
        log.info("simulated: CTR %.4f, CVR among clicks %.4f, selection-bias ratio %.2f",
                 summary["ctr"], summary["cvr_among_clicks"], summary["selection_bias_ratio"])
    log.info("[2/5] preprocessing (Beam %s runner) -> %s", config.preprocess.runner, data)
    report = preprocess(config, data, raw_dir=raw)
    log.info("preprocessed: %d read, %d written, %d rejected (%.1f rows/s)", report["rows_read"],
             report["rows_written"], report["rows_rejected"], report["rows_per_second"] or 0)
    log.info("[3/5] training %s -> %s", config.model.name, model_dir)
    model = train(config, data, model_dir)
    log.info("[4/5] evaluating on the eval split")
    metrics = evaluate(config, data, model_dir, model=model, out_dir=out)
    log.info("[5/5] exporting the serving model")
    export_dir = export(config, data, model_dir, out / "serving", model=model, raw_dir=raw)
    where = {"metrics": str(out / "metrics.json"), "export": str(export_dir), "data": str(data),
             "model": str(model_dir), "config": str(out / RESOLVED_CONFIG)}
    (out / "outputs.json").write_text(json.dumps(where, indent=2))
    return {"metrics": {config.model.name: metrics}, "outputs": where}
